"""TwinneClient against the emulator over real sockets: the whole flow and every API error."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest

from aiotwinne import (
    AccessToken,
    FeatureDisabledError,
    InvalidAppError,
    InvalidAuthKeyError,
    InvalidSecretError,
    InvalidTokenError,
    TokenExpiredError,
    TwinneClient,
    UserNotFoundError,
)
from aiotwinne.testing import SNGINE_VERSIONS, ClientFactory, TwinneEmulator

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]


@pytest.fixture(params=SNGINE_VERSIONS, ids=lambda v: f"sngine{v}")
def twinne_sngine(request: pytest.FixtureRequest) -> str:
    """Every test here runs against each Sngine version (overrides the plugin's fixture)."""
    version: str = request.param
    return version


async def test_full_login_flow_through_the_pages(
    twinne_emulator: TwinneEmulator,
    twinne_client_factory: ClientFactory,
    browser: aiohttp.ClientSession,
    read_form: Callable[[str], Any],
) -> None:
    """Login link → login form → Approve → callback key → exchange → typed user info."""
    emu = twinne_emulator
    app = emu.add_app(name="Shop", redirect_url="https://shop.example/auth/twinne")
    emu.add_user(
        user_name="jdoe",
        user_email="j@example.com",
        user_firstname="Jane",
        user_lastname="Doe",
        user_birthdate="1990-05-17",
        user_registered="2021-03-04 10:11:12",
        user_verified="1",
        user_picture="photos/2021/03/abc.jpg",
    )
    client = twinne_client_factory(app)

    async with browser.get(client.login_url()) as page:  # redirected to the login form
        login = read_form(await page.text())
    async with browser.post(
        urljoin(emu.base_url, login.action), data=login.submit(username="jdoe")
    ) as page:  # back on /api/oauth: the consent page
        consent = read_form(await page.text())
    async with browser.post(
        urljoin(emu.base_url, consent.action),
        data=consent.submit("Approve"),
        allow_redirects=False,
    ) as answer:
        callback = answer.headers["Location"]
    assert callback.startswith("https://shop.example/auth/twinne?auth_key=")
    auth_key = callback.split("?auth_key=", 1)[1]

    token = await client.exchange(auth_key)
    assert isinstance(token, AccessToken)
    user = await client.get_user_info(token)
    assert user.username == "jdoe"
    assert user.email == "j@example.com"
    assert user.full_name == "Jane Doe"
    assert isinstance(user.id, int)
    assert user.birthdate == dt.date(1990, 5, 17)
    assert user.registered == dt.datetime(2021, 3, 4, 10, 11, 12)
    assert user.verified is True
    assert user.picture_url == f"{emu.base_url}/content/uploads/photos/2021/03/abc.jpg"
    assert "profile_picture" in user.extra


async def test_string_token_and_zero_date(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A token given as a string works; ``0000-00-00`` and ``"0"`` read as None and False."""
    emu = twinne_emulator
    user = emu.add_user(user_birthdate="0000-00-00", user_verified="0", user_email="")
    info = await twinne_client.get_user_info(emu.issue_token(user, emu.default_app))
    assert info.id == user.id
    assert info.birthdate is None
    assert info.verified is False
    assert info.email is None


async def test_reused_auth_key(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """Exchanging a key twice raises InvalidAuthKeyError the second time."""
    emu = twinne_emulator
    key = emu.authorize(emu.default_user, emu.default_app)
    await twinne_client.exchange(key)
    with pytest.raises(InvalidAuthKeyError):
        await twinne_client.exchange(key)


async def test_wrong_secret(
    twinne_emulator: TwinneEmulator, twinne_client_factory: ClientFactory
) -> None:
    """A wrong app_secret raises InvalidSecretError and does not spend the key."""
    emu = twinne_emulator
    key = emu.authorize(emu.default_user, emu.default_app)
    with pytest.raises(InvalidSecretError):
        await twinne_client_factory(app_secret="0" * 32).exchange(key)
    await twinne_client_factory().exchange(key)


async def test_unknown_and_disabled_app(
    twinne_emulator: TwinneEmulator, twinne_client_factory: ClientFactory
) -> None:
    """An unknown or disabled app raises InvalidAppError."""
    emu = twinne_emulator
    ghost = TwinneClient("123456789", "0" * 32, base_url=emu.base_url)
    async with ghost:
        with pytest.raises(InvalidAppError):
            await ghost.exchange("f" * 32)
    emu.default_app.enabled = False
    with pytest.raises(InvalidAppError):
        await twinne_client_factory().exchange("f" * 32)


async def test_deleted_user(twinne_emulator: TwinneEmulator, twinne_client: TwinneClient) -> None:
    """A deleted user's token raises UserNotFoundError."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    emu.delete_user(emu.default_user)
    with pytest.raises(UserNotFoundError):
        await twinne_client.get_user_info(token)


async def test_server_expiry_beats_local_clock(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """After ``advance(3601)`` the server says expired although the client's token looks fresh."""
    emu = twinne_emulator
    token = await twinne_client.exchange(emu.authorize(emu.default_user, emu.default_app))
    emu.advance(3601)
    assert not token.is_expired(twinne_client.leeway)
    with pytest.raises(TokenExpiredError):
        await twinne_client.get_user_info(token)


async def test_unknown_token(twinne_client: TwinneClient) -> None:
    """An unknown token raises InvalidTokenError (and not its expired subclass)."""
    with pytest.raises(InvalidTokenError) as caught:
        await twinne_client.get_user_info("a" * 32)
    assert not isinstance(caught.value, TokenExpiredError)


@pytest.mark.parametrize("call", ["exchange", "get_user_info"])
async def test_feature_disabled(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient, call: str
) -> None:
    """Both calls raise FeatureDisabledError when the admin turned apps off."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    key = emu.authorize(emu.default_user, emu.default_app)
    emu.set_feature_enabled(False)
    pending = (
        twinne_client.exchange(key) if call == "exchange" else twinne_client.get_user_info(token)
    )
    with pytest.raises(FeatureDisabledError):
        await pending
