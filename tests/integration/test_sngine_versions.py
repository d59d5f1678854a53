"""The client against every Sngine version the emulator can be, with no setting.

Twinne does not publish its Sngine version, and the versions differ on the wire
(PROTOCOL.md, "Sngine versions"): 4.x reads the exchange from a POST form body,
2.x/3.x from the query string; 4.x sends gender names and real picture URLs.
Every test here runs once per version, against the emulator over real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiotwinne import (
    InvalidAppError,
    InvalidAuthKeyError,
    InvalidSecretError,
    InvalidTokenError,
    RetryPolicy,
    TokenExpiredError,
    TwinneClient,
)
from aiotwinne.testing import (
    SNGINE_VERSIONS,
    STOCK_TOKEN_LIFETIME,
    EmulatedApp,
    TwinneEmulator,
)


@pytest.fixture(params=SNGINE_VERSIONS, ids=lambda v: f"sngine{v}")
def sngine(request: pytest.FixtureRequest) -> str:
    """Each Sngine version in turn."""
    version: str = request.param
    return version


@pytest.fixture
async def emu(sngine: str) -> AsyncIterator[TwinneEmulator]:
    """An emulator of that version with one app, keeping tokens for the documented hour."""
    async with TwinneEmulator(sngine=sngine) as emulator:
        emulator.add_app(name="Versions")
        yield emulator


def client_for(emu: TwinneEmulator, app: EmulatedApp, secret: str | None = None) -> TwinneClient:
    """A client with the library's defaults (token_lifetime=3600), retries never sleeping."""
    return TwinneClient(
        app.app_id,
        app.secret if secret is None else secret,
        base_url=emu.base_url,
        retry=RetryPolicy.no_wait(),
    )


async def test_login_exchange_and_profile(emu: TwinneEmulator, sngine: str) -> None:
    """The whole server-side story works on every version, one request per exchange."""
    app = emu.default_app
    user = emu.add_user(user_name="ada", user_gender="female", user_picture="photos/ada.jpg")
    async with client_for(emu, app) as twinne:
        token = await twinne.exchange(emu.authorize(user, app))
        profile = await twinne.get_user_info(token)
    assert emu.count("authorize") == 1
    assert (profile.id, profile.username) == (user.id, "ada")
    # 2.x/3.x send the stored text, 4.x the gender's name: the same normalised view.
    assert profile.gender == ("Female" if sngine == "4" else "female")
    assert profile.gender_normalized == "female"
    # 2.x/3.x send the default picture as profile_picture (a server bug): still her own.
    assert profile.picture_url == f"{emu.base_url}/content/uploads/photos/ada.jpg"
    # Every version sends the bare uploads folder as profile_cover: no cover.
    assert profile.cover_url is None


async def test_a_user_without_picture_or_gender(emu: TwinneEmulator) -> None:
    """No own picture gives picture_url None (the default one is told apart); no gender, None."""
    app = emu.default_app
    user = emu.add_user(user_picture="", user_gender=None)
    async with client_for(emu, app) as twinne:
        profile = await twinne.get_user_info(emu.issue_token(user, app))
    assert profile.picture_url is None
    assert profile.display_picture_url is not None
    assert "blank_profile" in profile.display_picture_url
    assert profile.gender_normalized is None


async def test_errors_map_exactly_on_every_version(emu: TwinneEmulator) -> None:
    """Wrong secret, spent key, unknown app and removed app give their own errors."""
    app = emu.default_app
    user = emu.add_user()
    key = emu.authorize(user, app)
    async with client_for(emu, app, secret="f" * 32) as wrong:
        with pytest.raises(InvalidSecretError) as refused:
            await wrong.exchange(key)
    assert not refused.value.auth_key_may_be_spent
    async with client_for(emu, app) as twinne:
        token = await twinne.exchange(key)  # a wrong secret did not use the key up
        with pytest.raises(InvalidAuthKeyError):
            await twinne.exchange(key)
        await twinne.get_user_info(token)
        emu.remove_app(app)
        with pytest.raises(InvalidTokenError) as gone:
            await twinne.get_user_info(token)
        assert type(gone.value) is InvalidTokenError
        with pytest.raises(InvalidAppError):
            await twinne.exchange(emu.authorize(user, emu.add_app()))


async def test_a_later_bounce_kills_the_older_key(emu: TwinneEmulator) -> None:
    """Sngine replaces a user's unexchanged key at each bounce: the older one is refused."""
    app = emu.default_app
    user = emu.add_user()
    older = emu.authorize(user, app)
    newer = emu.authorize(user, app)
    async with client_for(emu, app) as twinne:
        with pytest.raises(InvalidAuthKeyError):
            await twinne.exchange(older)
        await twinne.exchange(newer)


async def test_the_stock_sixty_second_window(sngine: str) -> None:
    """With the window the server code really uses (60 s), the client's 3600 s guess yields.

    Twinne's "expired access_token" is the truth: get_user_info raises
    TokenExpiredError, bulk classifies the token as expired, and an exchange
    inside the window hands back the same token without renewing its date.
    """
    async with TwinneEmulator(sngine=sngine, token_lifetime=STOCK_TOKEN_LIFETIME) as emu:
        app = emu.add_app()
        user = emu.add_user()
        async with client_for(emu, app) as twinne:
            first = await twinne.exchange(emu.authorize(user, app))
            emu.advance(40)
            again = await twinne.exchange(emu.authorize(user, app))
            assert again.value == first.value  # handed back, inside the window
            assert not again.is_expired(twinne.leeway)  # our clock still trusts its guess...
            emu.advance(21)  # ...61 s after it was issued, not after it was handed back
            with pytest.raises(TokenExpiredError):
                await twinne.get_user_info(again)
            (result,) = await twinne.gather_profiles([again.value])
            assert isinstance(result.error, TokenExpiredError)
            fresh = await twinne.exchange(emu.authorize(user, app))
            assert fresh.value != first.value
            assert (await twinne.get_user_info(fresh)).id == user.id
