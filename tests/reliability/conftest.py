"""Fixtures for the reliability suite: the secret watch, an emulator, sites, browsers, redis.

Every test here runs under :class:`relsupport.SecretWatch`: all loggers at
DEBUG (ours, aiohttp's client/server/access, asyncio, stamina, the session
storages), every record scanned for the app secrets, auth_keys and tokens of
the run, and any crash logged by aiohttp or asyncio (an unhandled exception in
a handler, an unclosed session) fails the test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from relsupport import FIGURES, FIGURES_ENV, Figures, SecretWatch
from websupport import AIOHTTP_SESSION_WARNING, serving_sites
from websupport import emu as emu  # the web tests' fixtures (see websupport)
from websupport import user as user

import aiotwinne.testing._emulator as emulator_module
from aiotwinne.testing import EmulatedUser, TwinneEmulator

BrowserFactory = Callable[..., aiohttp.ClientSession]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """aiohttp-session's string request keys are not ours (see the web tests' conftest)."""
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.filterwarnings(AIOHTTP_SESSION_WARNING))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the figures when ``AIOTWINNE_FIGURES`` names a file."""
    target = os.environ.get(FIGURES_ENV)
    if target and FIGURES.rows:
        FIGURES.write(Path(target))


@pytest.fixture
def figures() -> Figures:
    """The suite's figures (written at the end when asked for)."""
    return FIGURES


@pytest.fixture(autouse=True)
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretWatch]:
    """All loggers at DEBUG; every secret the emulator makes is watched for; no crash logged."""
    spy = SecretWatch()
    original = emulator_module._new_secret

    def new_secret() -> str:
        value = original()
        spy.add(value)
        return value

    monkeypatch.setattr(emulator_module, "_new_secret", new_secret)
    spy.install()
    try:
        yield spy
    finally:
        spy.uninstall()
    assert spy.leaks == [], "\n".join(spy.leaks[:10])
    assert spy.crashes == [], "\n".join(spy.crashes[:10])
    FIGURES.rows.setdefault("Secrets (all rows at DEBUG)", {"leaks": 0})
    row = FIGURES.rows["Secrets (all rows at DEBUG)"]
    for key, value in (
        ("log records scanned", spy.records),
        ("pages scanned", spy.pages),
        ("exception chains scanned", spy.exceptions),
        ("secret values watched", spy.watched),
    ):
        row[key] = row.get(key, 0) + value


@pytest.fixture
def app_secret(watch: SecretWatch) -> str:
    """A sentinel app secret for this test, watched."""
    value = secrets.token_hex(16)
    watch.add(value)
    return value


@pytest.fixture
async def site_factory(emu: TwinneEmulator, app_secret: str) -> AsyncIterator[Callable[..., Any]]:
    """``await site_factory(client=None, routes=None, **build_app_options)``: the web tests' site.

    The emulator app has the sentinel secret, the site runs on the emulator's
    clock, and the site's client retries without sleeping
    (see :func:`websupport.serving_sites`).
    """
    async with serving_sites(emu, app_secret=app_secret) as factory:
        yield factory


@pytest.fixture
async def browser_factory() -> AsyncIterator[BrowserFactory]:
    """Cookie-keeping client sessions, like browsers (IP-host cookies accepted), closed at the end.

    ``browser_factory(connector=shared)`` lets many browsers share one connector.
    """
    sessions: list[aiohttp.ClientSession] = []

    def factory(**options: Any) -> aiohttp.ClientSession:
        options.setdefault("cookie_jar", aiohttp.CookieJar(unsafe=True))
        options.setdefault("timeout", aiohttp.ClientTimeout(total=60))
        if "connector" in options:
            options.setdefault("connector_owner", False)
        session = aiohttp.ClientSession(**options)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.close()


@pytest.fixture
def twinne_browser(
    browser_factory: BrowserFactory, emu: TwinneEmulator, user: EmulatedUser
) -> Callable[[], aiohttp.ClientSession]:
    """New browsers already signed in on the emulator (Twinne) as ``user1``."""

    def factory() -> aiohttp.ClientSession:
        session = browser_factory()
        session.cookie_jar.update_cookies(emu.sign_in(user))
        return session

    return factory
