"""Session store faults: Redis down, paused or back; cookies that no longer decrypt."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import aiohttp_session
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.fernet import Fernet
from relsupport import Figures, SecretWatch, signed_in_browser, start_redis
from websupport import CALLBACK, JSON, LOGIN, LOGOUT, NAVIGATE, Site, follow, free_port
from yarl import URL

from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, cookie_storage, redis_storage

SiteFactory = Callable[..., Any]
Browser = Callable[[], aiohttp.ClientSession]

#: Every kind of request that touches the session: (method, path, headers).
SESSION_REQUESTS = [
    ("GET", "/dashboard", NAVIGATE),
    ("GET", "/dashboard", JSON),
    ("POST", "/dashboard", NAVIGATE),
    ("GET", "/account/home", NAVIGATE),
    ("GET", "/", NAVIGATE),
    ("GET", LOGIN, NAVIGATE),
    ("GET", f"{CALLBACK}?auth_key=0123456789abcdef0123456789abcdef", NAVIGATE),
    ("POST", LOGOUT, NAVIGATE),
]


async def _statuses(
    browser: aiohttp.ClientSession, site: Site, watch: SecretWatch, rounds: int = 1
) -> Counter[int]:
    """Send every session-touching request *rounds* times at once; count the statuses."""
    statuses: Counter[int] = Counter()

    async def one(method: str, path: str, headers: dict[str, str]) -> None:
        async with browser.request(
            method, site(path), headers=headers, allow_redirects=False
        ) as answer:
            text = await answer.text()
            statuses[answer.status] += 1
            watch.page(text)
            assert "Traceback" not in text

    await asyncio.gather(*(one(*request) for request in SESSION_REQUESTS * rounds))
    return statuses


@pytest.fixture
async def redis_port() -> int:
    """A free loopback port for a redis-server that will be stopped and started again."""
    return free_port()


async def test_redis_down_gives_clean_503s_and_sessions_work_once_it_is_back(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    redis_port: int,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """Redis stopped: each session-touching request gets 503, never 500; restarted: logins work."""
    server = await start_redis(redis_port)
    redis = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    try:
        site = await site_factory(storage=redis_storage(redis, secure=False))
        browser = await signed_in_browser(twinne_browser, site, emu, user)

        await server.stop()
        down = await _statuses(browser, site, watch, rounds=10)

        server = await start_redis(redis_port)  # empty: no persistence
        # The old session is gone with the old server: a fresh login, then pages again.
        hops = await follow(browser, site("/dashboard"), headers=NAVIGATE)
        back = [hop.status for hop in hops]
        assert (await follow(browser, site("/settings"), headers=NAVIGATE))[-1].status == 200
    finally:
        await redis.aclose()
        await server.stop()

    assert down == {503: len(SESSION_REQUESTS) * 10}
    assert back == [302, 302, 303, 200]
    figures.record(
        "Session store faults",
        **{
            "Redis stopped: session-touching requests": down.total(),
            "... answered 503 / 500": f"{down[503]} / {down[500]}",
            "Redis restarted empty: the next navigation": " -> ".join(map(str, back)),
        },
    )


async def test_a_paused_redis_gives_503_after_the_socket_timeout_and_keeps_the_session(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    redis_port: int,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """A hung Redis (SIGSTOP) with socket_timeout set: 503s; resumed: the same session works."""
    server = await start_redis(redis_port)
    redis = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
    paused = False
    try:
        site = await site_factory(storage=redis_storage(redis, secure=False))
        browser = await signed_in_browser(twinne_browser, site, emu, user)
        os.kill(server.process.pid, signal.SIGSTOP)
        paused = True
        down = await _statuses(browser, site, watch)
        os.kill(server.process.pid, signal.SIGCONT)
        paused = False
        hops = await follow(browser, site("/dashboard"), headers=NAVIGATE)
    finally:
        if paused:
            os.kill(server.process.pid, signal.SIGCONT)
        await redis.aclose()
        await server.stop()

    assert down == {503: len(SESSION_REQUESTS)}
    assert [hop.status for hop in hops] == [200]  # the same session, no new login
    figures.record(
        "Session store faults",
        **{
            "Redis paused (SIGSTOP), socket_timeout=0.5: answered 503 / 500": (
                f"{down[503]} / {down[500]}"
            ),
            "Redis resumed: the same session's next page": hops[-1].status,
        },
    )


def _tamper(cookie: str, how: str) -> str:
    if how == "truncated":
        return cookie[: len(cookie) // 2]
    if how == "one character changed":
        middle = len(cookie) // 2
        return cookie[:middle] + ("A" if cookie[middle] != "A" else "B") + cookie[middle + 1 :]
    if how == "over 4 KB":
        return cookie[:100] + "A" * 4500
    if how == "valid, 4.5 KB appended":
        return cookie + "A" * 4500
    if how == "garbage":
        return "not-a-fernet-token"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "key rotated",
        "truncated",
        "one character changed",
        "over 4 KB",
        "garbage",
        "valid, 4.5 KB appended",
    ],
)
async def test_a_cookie_that_does_not_decrypt_means_logged_out_and_a_fresh_login(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    watch: SecretWatch,
    figures: Figures,
    how: str,
) -> None:
    """Rotated key, truncated, tampered, oversized or garbage cookie: logged out, no 500."""
    key = Fernet.generate_key()
    site = await site_factory(storage=cookie_storage(key, secure=False))
    browser = await signed_in_browser(twinne_browser, site, emu, user)
    morsel = browser.cookie_jar.filter_cookies(URL(site.url))[DEFAULT_COOKIE_NAME]
    if how == "key rotated":
        # The site restarts with a new key; the browser still holds the old cookie.
        rotated = await site_factory(
            storage=cookie_storage(Fernet.generate_key(), secure=False), emu_app=site.app
        )
        target, cookie = rotated, morsel.value
    else:
        target, cookie = site, _tamper(morsel.value, how)
    visitor = twinne_browser()
    visitor.cookie_jar.update_cookies({DEFAULT_COOKIE_NAME: cookie}, URL(target.url))
    async with visitor.get(target("/dashboard"), headers=JSON) as answer:
        json_status = answer.status
        watch.page(await answer.text())
    hops = await follow(visitor, target("/dashboard"), headers=NAVIGATE)
    for hop in hops:
        watch.page(hop.text)
    statuses = [hop.status for hop in hops]

    assert 500 not in [json_status, *statuses]
    if how.startswith("valid") and morsel.value.endswith("="):
        # Fernet ignores what follows a token's base64 padding: still the same,
        # authenticated session (nothing was forged; the HMAC still covers it all).
        # (A token whose length needs no padding takes the junk in: logged out.)
        assert json_status == 200
        assert statuses == [200]
    else:
        assert json_status == 401
        assert statuses == [302, 302, 303, 200]  # treated as logged out: a fresh login
    figures.record(
        "Session store faults",
        **{
            f"cookie {how}: JSON call / navigation": (
                f"{json_status} / {' -> '.join(map(str, statuses))}"
            )
        },
    )


async def test_a_session_cookie_beyond_the_header_limit_gets_400_not_500(
    site_factory: SiteFactory, watch: SecretWatch, figures: Figures
) -> None:
    """A 9 KB session cookie (no browser sends one) is refused by aiohttp's parser: 400."""
    site = await site_factory()
    cookie = f"{DEFAULT_COOKIE_NAME}={'A' * 9000}"
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw,
        raw.get(site("/dashboard"), headers={**NAVIGATE, "Cookie": cookie}) as answer,
    ):
        watch.page(await answer.text())
        status = answer.status
    assert status == 400
    # aiohttp logs the malformed request at ERROR; it is its parser's 400, not a crash.
    assert [c for c in watch.crashes if "(LineTooLong)" not in c] == []
    watch.crashes.clear()
    figures.record("Session store faults", **{"cookie over 8 KB (aiohttp's header limit)": status})


async def test_redis_dying_mid_request_gives_503_not_500(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    redis_port: int,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """Redis lost after the session was read but before it is saved: 503, never a 500."""
    server = await start_redis(redis_port)
    redis = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    try:
        site = await site_factory(storage=redis_storage(redis, secure=False))
        browser = twinne_browser()
        async with browser.get(
            site(f"{LOGIN}?next=/dashboard"), headers=NAVIGATE, allow_redirects=False
        ) as answer:
            assert answer.status == 302
        key = emu.authorize(user, site.app)
        emu.inject("latency", endpoint="authorize", delay=0.3)
        callback = asyncio.ensure_future(
            browser.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False)
        )
        # The callback has read its session and is waiting for Twinne (no event to wait on).
        while emu.in_flight == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await server.stop()
        async with await callback as answer:
            status = answer.status
            watch.page(await answer.text())
    finally:
        await redis.aclose()
        await server.stop()
    assert status == 503
    figures.record("Session store faults", **{"Redis lost mid-request (before the save)": status})


async def _broken(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session["touched"] = True
    raise ValueError("the application's own bug")


async def test_an_application_error_is_not_disguised_as_a_session_outage(
    site_factory: SiteFactory, watch: SecretWatch
) -> None:
    """A handler's own exception stays the application's 500, not a 'sessions unavailable' 503."""
    site = await site_factory(routes={"/broken": _broken})
    async with (
        aiohttp.ClientSession() as raw,
        raw.get(site("/broken"), headers=NAVIGATE) as answer,
    ):
        status = answer.status
    assert status == 500
    assert [c for c in watch.crashes if "(ValueError)" not in c] == []
    watch.crashes.clear()
