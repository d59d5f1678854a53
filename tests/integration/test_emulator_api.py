"""The emulator's server-to-server API, spoken to with raw HTTP: Sngine's exact answers.

Every test runs once per Sngine version: the exchange is posted with its
parameters in the query string and a form body, which every version reads.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from aiotwinne._protocol import MESSAGES
from aiotwinne.testing import (
    SNGINE_VERSIONS,
    USER_FIELDS,
    EmulatedApp,
    EmulatorFactory,
    TwinneEmulator,
)

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]


@pytest.fixture(params=SNGINE_VERSIONS, ids=lambda v: f"sngine{v}")
def twinne_sngine(request: pytest.FixtureRequest) -> str:
    """Each Sngine version in turn, for every emulator the fixtures start here."""
    version: str = request.param
    return version


async def _get(
    browser: aiohttp.ClientSession, emu: TwinneEmulator, path: str, **params: str
) -> tuple[int, str, bytes]:
    async with browser.get(f"{emu.base_url}{path}", params=params) as answer:
        return answer.status, answer.content_type, await answer.read()


async def _post_both(
    browser: aiohttp.ClientSession, emu: TwinneEmulator, path: str, **params: str
) -> tuple[int, str, bytes]:
    """POST *params* in the query string and a form body: read by every Sngine version."""
    url = f"{emu.base_url}{path}"
    async with browser.post(url, params=params, data=params) as answer:
        return answer.status, answer.content_type, await answer.read()


async def _exchange(
    browser: aiohttp.ClientSession, emu: TwinneEmulator, app: EmulatedApp, key: str
) -> Any:
    status, _, body = await _post_both(
        browser, emu, "/api/authorize", app_id=app.app_id, app_secret=app.secret, auth_key=key
    )
    assert status == 200
    return json.loads(body)


async def _user_info(browser: aiohttp.ClientSession, emu: TwinneEmulator, token: str) -> Any:
    status, content_type, body = await _get(browser, emu, "/api/get_user_info", access_token=token)
    assert (status, content_type) == (200, "application/json")
    return json.loads(body)


def _error(message: str) -> dict[str, object]:
    return {"error": True, "message": message}


async def test_exchange_returns_a_hex_token(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A fresh auth_key is exchanged for ``{"access_token": <32 lowercase hex>}``."""
    emu = twinne_emulator
    key = emu.authorize(emu.default_user, emu.default_app)
    answer = await _exchange(browser, emu, emu.default_app, key)
    assert set(answer) == {"access_token"}
    token = answer["access_token"]
    assert len(token) == 32
    assert int(token, 16) >= 0
    assert token == token.lower()


async def test_auth_key_is_single_use(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """The second exchange of the same key answers "invalid auth_key"."""
    emu = twinne_emulator
    key = emu.authorize(emu.default_user, emu.default_app)
    await _exchange(browser, emu, emu.default_app, key)
    again = await _exchange(browser, emu, emu.default_app, key)
    assert again == _error(MESSAGES.INVALID_AUTH_KEY)


async def test_new_key_replaces_an_unused_one(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Each (user, app) has one current key: handing out a new one voids the old."""
    emu = twinne_emulator
    old = emu.authorize(emu.default_user, emu.default_app)
    new = emu.authorize(emu.default_user, emu.default_app)
    assert await _exchange(browser, emu, emu.default_app, old) == _error(MESSAGES.INVALID_AUTH_KEY)
    assert "access_token" in await _exchange(browser, emu, emu.default_app, new)


async def test_valid_token_is_handed_back_on_a_new_exchange(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A still-valid token comes back again; an expired one is replaced."""
    emu = twinne_emulator
    app, user = emu.default_app, emu.default_user
    first = await _exchange(browser, emu, app, emu.authorize(user, app))
    second = await _exchange(browser, emu, app, emu.authorize(user, app))
    assert first == second
    emu.advance(3601)
    third = await _exchange(browser, emu, app, emu.authorize(user, app))
    assert third != first


async def test_fresh_token_each_exchange_when_reuse_is_off(
    twinne_emulator_factory: EmulatorFactory, browser: aiohttp.ClientSession
) -> None:
    """With ``reuse_valid_tokens=False`` every exchange issues a new token and voids the old."""
    emu = await twinne_emulator_factory(reuse_valid_tokens=False)
    app, user = emu.add_app(), emu.add_user()
    first = (await _exchange(browser, emu, app, emu.authorize(user, app)))["access_token"]
    second = (await _exchange(browser, emu, app, emu.authorize(user, app)))["access_token"]
    assert first != second
    assert await _user_info(browser, emu, first) == _error(MESSAGES.INVALID_ACCESS_TOKEN)


async def test_authorize_checks_in_sngine_order(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Each parameter's presence, then the app, the secret, the key: each with Sngine's text."""
    emu = twinne_emulator
    app = emu.default_app
    disabled = emu.add_app(enabled=False)
    key = emu.authorize(emu.default_user, app)
    cases: list[tuple[dict[str, str], str]] = [
        ({"app_secret": "x", "auth_key": "y"}, MESSAGES.INVALID_APP_ID),
        ({"app_id": "", "app_secret": "x", "auth_key": "y"}, MESSAGES.INVALID_APP_ID),
        ({"app_id": " \t", "app_secret": "x", "auth_key": "y"}, MESSAGES.INVALID_APP_ID),
        ({"app_id": "123", "auth_key": "y"}, MESSAGES.INVALID_APP_SECRET),
        ({"app_id": "123", "app_secret": "x"}, MESSAGES.INVALID_AUTH_KEY),
        ({"app_id": "123", "app_secret": "x", "auth_key": "y"}, MESSAGES.APP_DISABLED),
        (
            {"app_id": disabled.app_id, "app_secret": disabled.secret, "auth_key": key},
            MESSAGES.APP_DISABLED,
        ),
        ({"app_id": app.app_id, "auth_key": key}, MESSAGES.INVALID_APP_SECRET),
        (
            {"app_id": app.app_id, "app_secret": "0" * 32, "auth_key": key},
            MESSAGES.INVALID_APP_SECRET,
        ),
        ({"app_id": app.app_id, "app_secret": app.secret}, MESSAGES.INVALID_AUTH_KEY),
        (
            {"app_id": app.app_id, "app_secret": app.secret, "auth_key": "f" * 32},
            MESSAGES.INVALID_AUTH_KEY,
        ),
    ]
    for params, message in cases:
        status, content_type, body = await _post_both(browser, emu, "/api/authorize", **params)
        assert (status, content_type) == (200, "application/json")
        assert json.loads(body) == _error(message), params
    # None of the failures spent the key.
    assert "access_token" in await _exchange(browser, emu, app, key)


async def test_key_of_another_app_is_invalid(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """An auth_key issued for one app cannot be exchanged with another app's credentials."""
    emu = twinne_emulator
    other = emu.add_app()
    key = emu.authorize(emu.default_user, emu.default_app)
    assert await _exchange(browser, emu, other, key) == _error(MESSAGES.INVALID_AUTH_KEY)


async def test_user_info_values_are_strings_or_null(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Every field arrives as MySQL gives it to PHP: strings or null, plus Sngine's extras."""
    emu = twinne_emulator
    user = emu.add_user(
        user_name="jdoe", user_verified="1", user_birthdate="0000-00-00", user_email=None
    )
    token = emu.issue_token(user, emu.default_app)
    info = (await _user_info(browser, emu, token))["user_info"]
    assert set(USER_FIELDS) | {"profile_picture", "profile_cover"} == set(info)
    assert all(value is None or isinstance(value, str) for value in info.values())
    assert info["user_id"] == str(user.id)
    assert info["user_verified"] == "1"
    assert info["user_birthdate"] == "0000-00-00"
    assert info["user_email"] is None
    own_picture = f"{emu.base_url}/content/uploads/photos/"
    default_picture = f"{emu.base_url}/content/themes/default/images/blank_profile"
    # 4.x sends the user's picture; 2.x/3.x always the default one (a server bug).
    expected = own_picture if emu.sngine == "4" else default_picture
    assert info["profile_picture"].startswith(expected)
    assert info["profile_cover"] == f"{emu.base_url}/content/uploads/"


async def test_user_info_is_encoded_like_php(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Slashes come escaped and non-ASCII text as ``\\uXXXX``, as PHP's json_encode does."""
    emu = twinne_emulator
    user = emu.add_user(user_firstname="Zoë", user_website="https://zoe.example/")
    token = emu.issue_token(user, emu.default_app)
    _, _, body = await _get(browser, emu, "/api/get_user_info", access_token=token)
    assert b'"user_firstname":"Zo\\u00eb"' in body
    assert b'"user_website":"https:\\/\\/zoe.example\\/"' in body


async def test_extra_user_keys_are_sent(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Keys beyond the documented fields travel too, as a newer Sngine would send them."""
    emu = twinne_emulator
    user = emu.add_user(user_phone="+33 1 23 45 67 89")
    token = emu.issue_token(user, emu.default_app)
    info = (await _user_info(browser, emu, token))["user_info"]
    assert info["user_phone"] == "+33 1 23 45 67 89"


async def test_token_errors(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Missing or unknown token: "invalid access_token"."""
    emu = twinne_emulator
    _, _, body = await _get(browser, emu, "/api/get_user_info")
    assert json.loads(body) == _error(MESSAGES.INVALID_ACCESS_TOKEN)
    assert await _user_info(browser, emu, "a" * 32) == _error(MESSAGES.INVALID_ACCESS_TOKEN)


async def test_token_expires_on_the_emulator_clock(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """``advance()`` past the lifetime makes a known token "expired access_token"."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    emu.advance(3590)
    assert "user_info" in await _user_info(browser, emu, token)
    emu.advance(11)
    assert await _user_info(browser, emu, token) == _error(MESSAGES.EXPIRED_ACCESS_TOKEN)


async def test_token_lifetime_is_configurable(
    twinne_emulator_factory: EmulatorFactory, browser: aiohttp.ClientSession
) -> None:
    """A shorter ``token_lifetime`` (as some Sngine versions check) expires sooner."""
    emu = await twinne_emulator_factory(token_lifetime=60)
    app, user = emu.add_app(), emu.add_user()
    token = emu.issue_token(user, app)
    emu.advance(61)
    assert await _user_info(browser, emu, token) == _error(MESSAGES.EXPIRED_ACCESS_TOKEN)


async def test_deleted_user_answers_empty_list(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A deleted user's token answers ``[]``, PHP's empty array."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    emu.delete_user(emu.default_user)
    _, _, body = await _get(browser, emu, "/api/get_user_info", access_token=token)
    assert body == b"[]"


async def test_revoked_approval_voids_token(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """``revoke()`` forgets the approval and its token."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    emu.revoke(emu.default_user, emu.default_app)
    assert not emu.is_approved(emu.default_user, emu.default_app)
    assert await _user_info(browser, emu, token) == _error(MESSAGES.INVALID_ACCESS_TOKEN)


async def test_unknown_endpoint(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """An unknown ``/api/...`` path answers "invalid parameters" with HTTP 200."""
    status, _, body = await _get(browser, twinne_emulator, "/api/get_friends")
    assert status == 200
    assert json.loads(body) == _error(MESSAGES.INVALID_PARAMETERS)


@pytest.mark.parametrize("message", [MESSAGES.FEATURE_DISABLED, MESSAGES.DEVELOPERS_DISABLED])
async def test_feature_disabled(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession, message: str
) -> None:
    """With the feature off every API call answers the admin's message; on again, all works."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    key = emu.authorize(emu.default_user, emu.default_app)
    emu.set_feature_enabled(False, message=message)
    assert await _user_info(browser, emu, token) == _error(message)
    assert await _exchange(browser, emu, emu.default_app, key) == _error(message)
    emu.set_feature_enabled(True)
    assert "access_token" in await _exchange(browser, emu, emu.default_app, key)


async def test_api_reads_query_whatever_the_method(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Like PHP's ``$_GET``, a POST with the query string is answered the same way."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    async with browser.post(
        f"{emu.base_url}/api/get_user_info", params={"access_token": token}
    ) as answer:
        assert "user_info" in await answer.json()


def test_add_user_rejects_non_string_values() -> None:
    """Known fields must be strings or None, as MySQL sends them."""
    emu = TwinneEmulator()
    with pytest.raises(TypeError):
        emu.add_user(user_verified=1)
    with pytest.raises(ValueError, match="user_id"):
        emu.add_user(user_id="abc")
    emu.add_user(user_name="taken")
    with pytest.raises(ValueError, match="taken"):
        emu.add_user(user_name="taken")


def test_generated_users_and_apps_look_like_sngine() -> None:
    """Generated ids are decimal strings, secrets 32 lowercase hex, users numbered from 1."""
    emu = TwinneEmulator()
    app = emu.add_app()
    assert app.app_id.isdigit()
    assert len(app.secret) == 32
    assert app.secret == app.secret.lower()
    users = emu.add_users(3)
    assert [u.id for u in users] == [1, 2, 3]
    assert users[0].fields["user_id"] == "1"
    assert emu.default_user is users[0]
    assert "secret" not in repr(app).lower() or app.secret not in repr(app)


def test_bulk_users_and_tokens() -> None:
    """100,000 users and tokens can be made at once, all distinct and all valid."""
    emu = TwinneEmulator(fast=True)
    emu.add_app()
    tokens = emu.issue_tokens(100_000)
    assert len(set(tokens)) == 100_000
    assert all(len(t) == 32 for t in tokens)
    assert len(emu.users) == 100_000


def test_update_user_changes_login_name() -> None:
    """Renaming a user through ``update_user`` moves their login name."""
    emu = TwinneEmulator()
    user = emu.add_user(user_name="old")
    emu.update_user(user, user_name="new", user_verified="1")
    assert user.username == "new"
    assert user.fields["user_verified"] == "1"
    with pytest.raises(ValueError, match="user_id"):
        emu.update_user(user, user_id="7")


async def test_routing_and_repeated_parameters(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """``/api/x/`` is ``/api/x``; ``/api/`` and deeper paths are a 404; the last value wins."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    url = f"{emu.base_url}/api/get_user_info/?access_token=nope&access_token={token}"
    async with browser.get(url) as answer:
        assert "user_info" in await answer.json()
    for path in ("/api/", "/api/get_user_info/more"):
        status, content_type, _ = await _get(browser, emu, path, access_token=token)
        assert (status, content_type) == (404, "text/html")
    assert emu.count("user_info") == 1
    assert emu.count("other") == 2
