"""The emulator's records (apps, users, approvals, tokens) driven directly, without HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from aiotwinne._protocol import MESSAGES
from aiotwinne.testing import (
    DOCUMENTED_TOKEN_LIFETIME,
    SNGINE_VERSIONS,
    STOCK_TOKEN_LIFETIME,
    EmulatorFactory,
    TwinneEmulator,
)

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]


def test_chosen_user_id_is_kept_and_skipped_by_generated_ones() -> None:
    """``user_id="2"`` is honoured, and generated ids step over it."""
    emu = TwinneEmulator()
    chosen = emu.add_user(user_id="2")
    assert chosen.id == 2
    assert chosen.fields["user_id"] == "2"
    assert [u.id for u in emu.add_users(2)] == [1, 3]
    with pytest.raises(ValueError, match="taken"):
        emu.add_user(user_id="3")


def test_user_names_must_be_usable() -> None:
    """Empty or taken usernames are refused, at creation and on rename."""
    emu = TwinneEmulator()
    with pytest.raises(ValueError, match="user_name"):
        emu.add_user(user_name="")
    first, second = emu.add_users(2)
    with pytest.raises(ValueError, match="user_name"):
        emu.update_user(second, user_name=first.username)


async def test_issue_token_replaces_the_previous_one(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Each (user, app) holds one token: issuing a new one voids the old one."""
    emu = twinne_emulator
    old = emu.issue_token(emu.default_user, emu.default_app)
    new = emu.issue_token(emu.default_user, emu.default_app)
    url = f"{emu.base_url}/api/get_user_info"
    async with browser.get(url, params={"access_token": old}) as answer:
        assert (await answer.json())["message"] == MESSAGES.INVALID_ACCESS_TOKEN
    async with browser.get(url, params={"access_token": new}) as answer:
        assert "user_info" in await answer.json()


def test_revoke_without_approval_is_harmless() -> None:
    """Revoking an app the user never approved changes nothing."""
    emu = TwinneEmulator()
    app, user = emu.add_app(), emu.add_user()
    emu.revoke(user, app)
    assert not emu.is_approved(user, app)


def test_redirect_url_must_fit_in_a_header() -> None:
    """A redirect URL with a line break or a space is refused when the app is registered."""
    emu = TwinneEmulator()
    for bad in ("", "https://a.example/\r\nSet-Cookie: x=1", "https://a.example/ cb"):
        with pytest.raises(ValueError, match="redirect_url"):
            emu.add_app(redirect_url=bad)


def test_app_secret_is_not_in_repr() -> None:
    """An app's ``repr()`` never shows its secret."""
    app = TwinneEmulator().add_app()
    assert app.secret not in repr(app)


async def test_unusual_status_is_served(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """An injected 599 arrives as 599 with an HTML body."""
    emu = twinne_emulator
    emu.inject("http_error", status=599)
    async with browser.get(f"{emu.base_url}/api/authorize") as answer:
        assert answer.status == 599
        assert "599 Error" in await answer.text()


async def test_unknown_endpoint_with_feature_off(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """An unknown endpoint answers "invalid parameters" even with the module off (no check)."""
    emu = twinne_emulator
    emu.set_feature_enabled(False)
    async with browser.get(f"{emu.base_url}/api/whatever") as answer:
        assert answer.headers["Content-Type"] == "application/json"
        assert (await answer.json())["message"] == MESSAGES.INVALID_PARAMETERS


async def test_taken_port_fails_cleanly(
    twinne_emulator: TwinneEmulator, twinne_emulator_factory: EmulatorFactory
) -> None:
    """Starting on a port in use raises OSError and leaves the emulator stopped."""
    with pytest.raises(OSError, match="address"):
        await twinne_emulator_factory(port=twinne_emulator.port)
    assert twinne_emulator.running
    assert twinne_emulator.in_flight == 0


def test_version_switch() -> None:
    """``sngine`` picks the version (default the newest), read-only; unknown ones are refused."""
    assert TwinneEmulator().sngine == SNGINE_VERSIONS[-1] == "4"
    assert TwinneEmulator(sngine="2").sngine == "2"
    with pytest.raises(AttributeError):
        TwinneEmulator().sngine = "3"  # type: ignore[misc]
    with pytest.raises(ValueError, match="sngine must be one of"):
        TwinneEmulator(sngine="4.1")
    with pytest.raises(ValueError, match="sngine27_token_bug"):
        TwinneEmulator(sngine27_token_bug=True)


def test_token_window_setting() -> None:
    """``token_lifetime`` defaults to the documented hour and may be changed at any time."""
    emu = TwinneEmulator()
    assert emu.token_lifetime == DOCUMENTED_TOKEN_LIFETIME
    emu.token_lifetime = STOCK_TOKEN_LIFETIME
    assert emu.token_lifetime == 60.0
    assert TwinneEmulator(token_lifetime=STOCK_TOKEN_LIFETIME).token_lifetime == 60.0


def test_repr_shows_no_secret() -> None:
    """The emulator's repr names its version and address, nothing else."""
    emu = TwinneEmulator(sngine="3")
    app = emu.add_app()
    token = emu.issue_token(emu.add_user(), app)
    assert repr(emu) == "<TwinneEmulator sngine='3' not started>"
    assert app.secret not in repr(emu)
    assert token not in repr(emu._connections)


async def test_removed_app_loses_its_tokens(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """remove_app(): unknown app, tokens "invalid access_token"; it can no longer be used."""
    emu = twinne_emulator
    app, user = emu.add_app(), emu.default_user
    token = emu.issue_token(user, app)
    emu.remove_app(app)
    assert app not in emu.apps
    assert not emu.is_approved(user, app)
    url = f"{emu.base_url}/api/get_user_info"
    async with browser.get(url, params={"access_token": token}) as answer:
        assert (await answer.json())["message"] == MESSAGES.INVALID_ACCESS_TOKEN
    for use in (emu.authorize, emu.issue_token, emu.approve):
        with pytest.raises(ValueError, match="not registered"):
            use(user, app)
    with pytest.raises(ValueError, match="not registered"):
        emu.issue_tokens(1, app)


async def test_disabling_an_app_at_run_time_drops_its_tokens(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """``app.enabled = False`` is a removal: tokens die at once and stay dead when re-enabled."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    emu.default_app.enabled = False
    emu.default_app.enabled = True
    assert not emu.is_approved(emu.default_user, emu.default_app)
    url = f"{emu.base_url}/api/get_user_info"
    async with browser.get(url, params={"access_token": token}) as answer:
        assert (await answer.json())["message"] == MESSAGES.INVALID_ACCESS_TOKEN


async def test_site_defined_gender_on_the_wire(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """add_gender(): 4.x sends the name of the gender the user has."""
    emu = twinne_emulator
    user = emu.add_user(user_gender=emu.add_gender("Agender"))
    url = f"{emu.base_url}/api/get_user_info"
    async with browser.get(
        url, params={"access_token": emu.issue_token(user, emu.default_app)}
    ) as answer:
        assert (await answer.json())["user_info"]["user_gender"] == "Agender"


async def test_4x_reads_a_multipart_form_too(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """PHP fills $_POST from a multipart body as well; an unreadable body is an empty $_POST."""
    emu = twinne_emulator
    app = emu.default_app
    key = emu.authorize(emu.default_user, app)
    form = aiohttp.FormData({"app_id": app.app_id, "app_secret": app.secret, "auth_key": key})
    form.add_field("auth_key", key, filename="key.txt")  # a file is not a $_POST value
    async with browser.post(f"{emu.base_url}/api/authorize", data=form()) as answer:
        assert "access_token" in await answer.json()
    broken = b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--x--\r\n"
    async with browser.post(
        f"{emu.base_url}/api/authorize",
        data=broken,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    ) as answer:
        assert (await answer.json())["message"] == MESSAGES.INVALID_APP_ID
    (record,) = [r for r in emu.requests if r.form][-1:]
    assert record.form["app_secret"] == "***"


async def test_content_types(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """JSON answers say ``application/json`` with no charset; pages are UTF-8 HTML."""
    emu = twinne_emulator
    async with browser.get(f"{emu.base_url}/api/authorize/") as answer:
        assert answer.headers["Content-Type"] == "application/json"
        assert await answer.read() == b'{"error":true,"message":"Bad Request, invalid app_id"}'
    async with browser.get(f"{emu.base_url}/api/") as answer:
        assert answer.status == 404
        assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
