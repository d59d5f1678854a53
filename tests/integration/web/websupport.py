"""Helpers for the web integration tests: the test site, request headers, a redis-server.

``site_factory(**setup_options)`` starts the test site (see :func:`build_app`)
on ``127.0.0.1:0`` behind a real :class:`aiohttp.web.AppRunner`, wired to the
emulator: the emulator's app has the site's callback as its redirect URL and
the web layer runs on the emulator's clock, so ``emu.advance(3601)`` expires
the session's token too. ``visitor_factory()`` gives cookie-keeping client
sessions (browsers); ``signed_in`` logs one in through the real round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import aiohttp_session
import attrs
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography.fernet import Fernet
from redis.exceptions import ConnectionError as RedisConnectionError
from yarl import URL

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import EmulatedApp, EmulatedUser, TwinneEmulator
from aiotwinne.web import (
    RedactingAccessLogger,
    bearer_required,
    cookie_storage,
    get_token,
    get_user,
    login_required,
    require_login,
    setup,
)

#: aiohttp-session 2.12 uses string request keys, which aiohttp 3.13+ warns about.
AIOHTTP_SESSION_WARNING = "ignore::aiohttp.web_exceptions.NotAppKeyWarning:aiohttp_session"
CALLBACK = "/auth/twinne/callback"
LOGIN = "/auth/twinne/login"
LOGOUT = "/auth/twinne/logout"
#: What a browser sends when it navigates to a page from one of the site's own pages.
NAVIGATE = {
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Site": "same-origin",
}
#: The same navigation made by another site's link, form or window.open.
CROSS_SITE = {**NAVIGATE, "Sec-Fetch-Site": "cross-site"}
#: A form post from one of the site's own pages (the logout button).
SAME_ORIGIN_POST = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
JSON = {"Accept": "application/json"}


#: Debian's Chromium, driven through Playwright's own driver.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_binary(path: str) -> str:
    """The binary's path; skip when absent locally, fail in CI (where it must be installed)."""
    found = shutil.which(path)
    if found is None:
        message = f"{path} is not installed"
        if _ci():
            pytest.fail(f"{message}, and CI=true: install it (apt-get) instead of skipping")
        pytest.skip(message)
    return found


# -- the test site --------------------------------------------------------------


async def _public(request: web.Request) -> web.Response:
    user = await get_user(request)
    return web.Response(text=f"public:{user.username if user else 'anonymous'}")


@login_required
async def _dashboard(request: web.Request) -> web.Response:
    user = await get_user(request)
    assert user is not None
    return web.Response(text=f"dashboard:{user.username}:{user.full_name}")


@login_required
async def _submit(request: web.Request) -> web.Response:
    return web.Response(text="submitted")


@login_required
class _Settings(web.View):
    async def get(self) -> web.Response:
        user = await get_user(self.request)
        assert user is not None
        return web.Response(text=f"view:{user.username}")

    async def post(self) -> web.Response:
        return web.Response(text="view-post")


async def _explicit(request: web.Request) -> web.Response:
    if request.query.get("guard") == "1":
        user = await require_login(request)
        return web.Response(text=f"explicit:{user.id}")
    return web.Response(text="explicit:open")


@login_required
async def _fresh(request: web.Request) -> web.Response:
    user = await get_user(request, fresh=True)
    assert user is not None
    token = await get_token(request)
    assert token is not None
    return web.Response(text=f"fresh:{user.email}")


async def _account(request: web.Request) -> web.Response:
    user = await get_user(request)
    assert user is not None
    return web.Response(text=f"account:{user.username}")


async def _api_me(request: web.Request) -> web.Response:
    user = await get_user(request)
    assert user is not None
    return web.json_response({"id": user.id, "username": user.username})


@bearer_required
async def _api_decorated(request: web.Request) -> web.Response:
    user = await get_user(request)
    assert user is not None
    return web.json_response({"id": user.id})


def build_app(
    client: TwinneClient,
    *,
    storage: aiohttp_session.AbstractStorage | None = None,
    **setup_options: Any,
) -> web.Application:
    """The test site: public, decorated, class-based, explicit, prefix and Bearer routes."""
    app = web.Application()
    aiohttp_session.setup(
        app,
        storage if storage is not None else cookie_storage(Fernet.generate_key(), secure=False),
    )
    setup_options.setdefault("protect", ("/account/",))
    setup_options.setdefault("bearer_prefixes", ("/api/",))
    if isinstance(storage, aiohttp_session.SimpleCookieStorage):
        # plain_storage() lets tests read the record; setup() refuses it unless told.
        setup_options.setdefault("allow_unauthenticated_storage", True)
    setup(app, client, secure_cookies=False, **setup_options)
    app.router.add_get("/", _public)
    app.router.add_get("/dashboard", _dashboard)
    app.router.add_post("/dashboard", _submit)
    app.router.add_view("/settings", _Settings)
    app.router.add_get("/explicit", _explicit)
    app.router.add_get("/fresh", _fresh)
    app.router.add_get("/account/home", _account)
    app.router.add_get("/api/me", _api_me)
    app.router.add_get("/bearer/me", _api_decorated)
    return app


@attrs.define
class Site:
    """A running site and the emulator app it logs in with."""

    url: str
    runner: web.AppRunner
    app: EmulatedApp
    client: TwinneClient

    def __call__(self, path: str) -> str:
        """The absolute URL of *path* on this site."""
        return self.url + path


SiteFactory = Callable[..., Awaitable[Site]]


async def start_site(
    app: web.Application, emu_app: EmulatedApp, client: TwinneClient, host: str = "127.0.0.1"
) -> Site:
    """Serve *app* on *host*:0 and point the emulator app's redirect URL at its callback."""
    runner = web.AppRunner(app, handle_signals=False, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://{host}:{port}"
    emu_app.redirect_url = url + CALLBACK
    return Site(url, runner, emu_app, client)


# -- fixtures and factories both suites use -------------------------------------
# Both conftests import ``emu`` and ``user`` (a conftest's fixtures reach only its
# own folder, and the reliability suite lives beside, not below, this one).


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


@contextlib.asynccontextmanager
async def serving_sites(
    emu: TwinneEmulator, *, app_secret: str | None = None
) -> AsyncIterator[SiteFactory]:
    """Both suites' ``site_factory``: start test sites wired to *emu*, clean them all up after.

    ``await factory(builder=build_app, emu_app=None, client=None, routes=None,
    host="127.0.0.1", **setup_options)``: without *emu_app*, a new emulator app
    ``Site`` (with *app_secret* when given); without *client*, one for that app
    that retries without sleeping; the site runs on the emulator's clock;
    *routes* adds GET handlers to the built app; *host* is where it listens.
    """
    runners: list[web.AppRunner] = []

    async def factory(
        *,
        builder: Callable[..., web.Application] = build_app,
        emu_app: EmulatedApp | None = None,
        client: TwinneClient | None = None,
        routes: dict[str, Handler] | None = None,
        host: str = "127.0.0.1",
        **options: Any,
    ) -> Site:
        target = emu_app if emu_app is not None else emu.add_app(name="Site", secret=app_secret)
        if client is None:
            client = TwinneClient(
                target.app_id,
                target.secret,
                base_url=emu.base_url,
                retry=RetryPolicy.no_wait(attempts=2),
            )
        options.setdefault("clock", emu.now)
        app = builder(client, **options)
        for path, handler in (routes or {}).items():
            app.router.add_get(path, handler)
        site = await start_site(app, target, client, host=host)
        runners.append(site.runner)
        return site

    try:
        yield factory
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def log_in(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Approve the site's app for *user* and complete a login through the real redirects."""
    emu.approve(user, site.app)
    async with visitor.get(site("/dashboard"), headers=NAVIGATE) as page:
        assert page.status == 200, await page.text()
        assert (await page.text()).startswith("dashboard:user1")


# -- a private redis-server -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class RedisServer:
    """A private redis-server subprocess."""

    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def wait_ready(self) -> None:
        """Wait until the server answers PING (fails if it exits or never answers)."""
        probe = aioredis.Redis.from_url(self.url)
        try:
            for _ in range(400):
                try:
                    if await probe.ping():
                        return
                except (RedisConnectionError, OSError):
                    if self.process.returncode is not None:
                        pytest.fail(f"redis-server exited with {self.process.returncode}")
                    await asyncio.sleep(0.025)
            pytest.fail("redis-server did not answer PING")
        finally:
            await probe.aclose()

    async def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def start_redis(port: int) -> RedisServer:
    """A redis-server on 127.0.0.1:*port*, no persistence, answering PING.

    Skips locally when redis-server is absent and fails in CI (``CI=true``).
    The caller stops it (the reliability tests stop and restart it on the same port).
    """
    binary = require_binary("redis-server")
    process = await asyncio.create_subprocess_exec(
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    server = RedisServer(port, process)
    try:
        await server.wait_ready()
    except BaseException:
        await server.stop()
        raise
    return server


def plain_storage() -> aiohttp_session.SimpleCookieStorage:
    """A readable (unencrypted) cookie storage, so tests can look inside the session."""
    return aiohttp_session.SimpleCookieStorage(
        cookie_name="TEST_SESSION", samesite="Lax", max_age=3600
    )


def session_record(visitor: aiohttp.ClientSession, site: Site) -> dict[str, Any]:
    """aiotwinne's record in a visitor's plain_storage() session ({} when none)."""
    cookie = visitor.cookie_jar.filter_cookies(URL(site.url)).get("TEST_SESSION")
    if cookie is None or not cookie.value:
        return {}
    data = json.loads(cookie.value)
    record: dict[str, Any] = data.get("session", {}).get("aiotwinne", {})
    return record


@attrs.frozen
class Hop:
    """One answer in a chain of redirects."""

    url: URL
    status: int
    location: str
    text: str


async def follow(
    visitor: aiohttp.ClientSession, url: str, *, limit: int = 10, **kwargs: Any
) -> list[Hop]:
    """GET *url* and follow redirects by hand, keeping every answer's headers and body."""
    hops: list[Hop] = []
    target = URL(url)
    for _ in range(limit):
        async with visitor.get(target, allow_redirects=False, **kwargs) as answer:
            location = answer.headers.get("Location", "")
            hops.append(Hop(answer.url, answer.status, location, await answer.text()))
        if answer.status not in (301, 302, 303, 307, 308):
            return hops
        target = target.join(URL(location, encoded=True))
    raise AssertionError(f"more than {limit} redirects")


async def browse(
    visitor: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    limit: int = 40,
    pause: float = 0.05,
) -> Hop:
    """Open *url* as a browser tab would: follow redirects and ``Refresh`` pages to the end.

    A tab that waits for another tab's login gets a page that loads its URL
    again (``Refresh: 1; url=...``); a browser follows it after a second, this
    helper after *pause* seconds. Returns the last answer.
    """
    target = URL(url)
    for _ in range(limit):
        async with visitor.get(
            target, headers=headers or NAVIGATE, allow_redirects=False
        ) as answer:
            location = answer.headers.get("Location", "")
            refresh = answer.headers.get("Refresh", "")
            hop = Hop(answer.url, answer.status, location, await answer.text())
        if answer.status in (301, 302, 303, 307, 308):
            target = target.join(URL(location, encoded=True))
        elif refresh:
            await asyncio.sleep(pause)
            target = target.join(URL(refresh.partition("url=")[2], encoded=True))
        else:
            return hop
    raise AssertionError(f"more than {limit} hops")


def set_cookie_headers(headers: Any) -> list[str]:
    """The ``Set-Cookie`` headers of an answer."""
    return list(headers.getall("Set-Cookie", []))
