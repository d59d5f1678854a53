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

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websupport import (
    AIOHTTP_SESSION_WARNING,
    RedisServer,
    Site,
    SiteFactory,
    build_app,
    free_port,
    log_in,
    require_binary,
    start_site,
)

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import EmulatedApp, EmulatedUser, TwinneEmulator


@pytest.fixture
async def emu() -> AsyncIterator[TwinneEmulator]:
    """A running emulator with one user, ``user1`` (the apps come with each site)."""
    async with TwinneEmulator() as emulator:
        emulator.add_user(user_name="user1", user_firstname="Ada", user_lastname="Lovelace")
        yield emulator


@pytest.fixture
def user(emu: TwinneEmulator) -> EmulatedUser:
    """The emulator's user."""
    return emu.users[0]


@pytest.fixture
async def site_factory(emu: TwinneEmulator) -> AsyncIterator[SiteFactory]:
    """``await site_factory(app_builder=build_app, storage=None, **setup_options)``."""
    runners: list[web.AppRunner] = []

    async def factory(
        *,
        builder: Callable[..., web.Application] = build_app,
        emu_app: EmulatedApp | None = None,
        client: TwinneClient | None = None,
        **options: Any,
    ) -> Site:
        target = emu_app if emu_app is not None else emu.add_app(name="Site")
        if client is None:
            client = TwinneClient(
                target.app_id,
                target.secret,
                base_url=emu.base_url,
                retry=RetryPolicy.no_wait(attempts=2),
            )
        options.setdefault("clock", emu.now)
        app = builder(client, **options)
        site = await start_site(app, target, client)
        runners.append(site.runner)
        return site

    yield factory
    for runner in reversed(runners):
        await runner.cleanup()


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
    binary = require_binary("redis-server")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    server = RedisServer(port, process)
    try:
        await server.wait_ready()
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
