"""Fixtures for the web integration tests: an emulator, a guarded site on a real port, a visitor.

``site_factory(**setup_options)`` starts the test site (see
:func:`websupport.build_app`) on ``127.0.0.1:0`` behind a real
:class:`aiohttp.web.AppRunner`, wired to the emulator: the emulator's app has
the site's callback as its redirect URL and the web layer runs on the
emulator's clock, so ``emu.advance(3601)`` expires the session's token too.
``visitor_factory()`` gives cookie-keeping client sessions (browsers);
``signed_in`` is one logged in through the real round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from websupport import (
    AIOHTTP_SESSION_WARNING,
    RedisServer,
    Site,
    SiteFactory,
    free_port,
    log_in,
    serving_sites,
    start_redis,
)
from websupport import emu as emu  # the shared fixtures (see websupport)
from websupport import user as user

from aiotwinne.testing import EmulatedUser, TwinneEmulator


@pytest.fixture
async def site_factory(emu: TwinneEmulator) -> AsyncIterator[SiteFactory]:
    """``await site_factory(builder=build_app, emu_app=None, client=None, **setup_options)``.

    See :func:`websupport.serving_sites`.
    """
    async with serving_sites(emu) as factory:
        yield factory


@pytest.fixture
async def site(site_factory: SiteFactory) -> Site:
    """The test site with default options."""
    return await site_factory()


@pytest.fixture
async def visitor_factory() -> AsyncIterator[Callable[[], aiohttp.ClientSession]]:
    """New browser-like sessions (cookie jars that accept IP hosts), closed at teardown."""
    sessions: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.close()


@pytest.fixture
async def visitor(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> aiohttp.ClientSession:
    """A browser already signed in on the emulator (Twinne) as ``user1``."""
    session = visitor_factory()
    session.cookie_jar.update_cookies(emu.sign_in(user))
    return session


@pytest.fixture
async def signed_in(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> aiohttp.ClientSession:
    """A visitor logged in to the default site."""
    await log_in(visitor, site, emu, user)
    return visitor


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    """A redis-server on a free loopback port, no persistence; stopped at teardown."""
    server = await start_redis(free_port())
    try:
        yield server
    finally:
        await server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """aiohttp-session 2.12 stores its state under string request keys, which aiohttp 3.13+
    flags with NotAppKeyWarning; that warning is not ours, and it is ignored for these tests."""
    here = str(__file__).rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.filterwarnings(AIOHTTP_SESSION_WARNING))
