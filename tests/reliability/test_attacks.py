"""Attacks on the login: forged callbacks, open redirects, fixation, replay, markup in errors.

Each test counts what got through; the target is always 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet
from relsupport import Figures, SecretWatch, start_redis
from websupport import CALLBACK, JSON, LOGIN, LOGOUT, NAVIGATE, Site, follow, free_port
from yarl import URL

from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, cookie_storage, redis_storage

SiteFactory = Callable[..., Any]
Browser = Callable[[], aiohttp.ClientSession]
KEY = "0123456789abcdef0123456789abcdef"


async def _start_login(browser: aiohttp.ClientSession, site: Site, next_path: str = "/") -> None:
    """Open the login route without following Twinne: the session now holds a pending login."""
    async with browser.get(site(f"{LOGIN}?next={next_path}"), allow_redirects=False) as answer:
        assert answer.status == 302


async def _callback(browser: aiohttp.ClientSession, site: Site, query: str) -> tuple[int, str]:
    target = URL(site(f"{CALLBACK}?{query}"), encoded=True)
    async with browser.get(target, allow_redirects=False) as answer:
        return answer.status, await answer.text()


# -- forged callbacks -------------------------------------------------------------

#: Malformed auth_keys, as they appear in the callback's raw query string.
BAD_KEYS = {
    "empty": "auth_key=",
    "257 characters": "auth_key=" + "a" * 257,
    "4,000 characters": "auth_key=" + "b" * 4000,
    "with & (encoded)": "auth_key=abc%26app_id%3D1",
    "with # (encoded)": "auth_key=abc%23def",
    "with %00": "auth_key=abc%00def",
    "with CR/LF": "auth_key=abc%0d%0adef",
    "with a space": "auth_key=abc%20def",
    "with a tab": "auth_key=abc%09def",
    "with +": "auth_key=abc+def",
    "non-ASCII": "auth_key=%C3%A9t%C3%A9" + "0" * 28,
    "invalid UTF-8": "auth_key=%ff%fe" + "0" * 30,
    "with a quote": "auth_key=abc%22%3E%3Cscript%3E",
    "with ?": "auth_key=abc%3Fx%3D1",
    "given twice": f"auth_key={KEY}&auth_key={KEY}",
    "given twice after ?": f"auth_key={KEY}?auth_key={KEY}",
    "missing": "x=1",
}


async def test_forged_callbacks_are_refused_before_twinne_is_called(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """No/stale/replayed pending login or a malformed key: 400, and Twinne is never called."""
    site = await site_factory()
    refused: dict[str, int] = {}
    called: dict[str, int] = {}

    # No pending login in this browser's session.
    status, text = await _callback(
        twinne_browser(), site, f"auth_key={emu.authorize(user, site.app)}"
    )
    refused["no pending login"] = status
    watch.page(text)

    # Every malformed key, each with a live pending login of its own.
    for name, query in BAD_KEYS.items():
        browser = twinne_browser()
        await _start_login(browser, site)
        before_calls = emu.count("authorize")
        status, text = await _callback(browser, site, query)
        refused[name] = status
        called[name] = emu.count("authorize") - before_calls
        watch.page(text)
    assert {name: n for name, n in called.items() if n} == {}

    # A replayed callback: the cookie from before a completed login, a fresh key.
    browser = twinne_browser()
    await _start_login(browser, site)
    before = browser.cookie_jar.filter_cookies(URL(site.url))
    emu.approve(user, site.app)
    status, _ = await _callback(browser, site, f"auth_key={emu.authorize(user, site.app)}")
    assert status == 303
    completed = emu.count("authorize")
    replay = twinne_browser()
    replay.cookie_jar.update_cookies(before)
    status, text = await _callback(replay, site, f"auth_key={emu.authorize(user, site.app)}")
    refused["replayed pending login"] = status
    watch.page(text)
    calls_before_stale = emu.count("authorize")

    # A stale pending login: older than pending_ttl (600 s) on the site's clock.
    browser = twinne_browser()
    await _start_login(browser, site)
    emu.advance(601)
    status, text = await _callback(browser, site, f"auth_key={emu.authorize(user, site.app)}")
    refused["stale pending login"] = status
    watch.page(text)

    let_through = {name: status for name, status in refused.items() if status != 400}
    assert let_through == {}
    assert calls_before_stale == completed
    assert emu.count("authorize") == completed == 1
    figures.record(
        "Forged callbacks",
        **{
            "cases": len(refused),
            "refused with 400": sum(status == 400 for status in refused.values()),
            "Twinne calls made for them": emu.count("authorize") - completed,
            "cases tried": ", ".join(refused),
        },
    )


# -- open redirects ---------------------------------------------------------------

#: Return-path payloads as an attacker writes them in the raw query (?next=...).
NEXT_PAYLOADS = [
    "//evil.example",
    "//evil.example/%2F..",
    "///evil.example",
    "////evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%5Cevil.example",
    "%5C%5Cevil.example",
    "https://evil.example",
    "https:evil.example",
    "http%3A%2F%2Fevil.example",
    "//evil.example@site.example",
    "/%2Fevil.example",
    "%2F%2Fevil.example",
    "%252F%252Fevil.example",
    "/%252Fevil.example",
    "%25252F%25252Fevil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "javascript:alert(1)",
    "javascript%3Aalert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%0d%0aLocation:%20https://evil.example",
    "/%0aSet-Cookie:%20a=b",
    "%0d%0a//evil.example",
    "/%09/evil.example",
    "%09//evil.example",
    "/%E2%80%8B/evil.example",
    "%EF%BC%8F%EF%BC%8Fevil.example",
    "/%E2%88%95evil.example",
    "%E3%80%82evil.example",
    "/.//evil.example",
    "/%2e%2e//evil.example",
    "%20//evil.example",
    "/%00//evil.example",
    "/ //evil.example",
    "https%253A%252F%252Fevil.example",
]
#: Raw request paths to a site that guards everything: the page requested before login.
PATH_PAYLOADS = [
    "//evil.example",
    "//evil.example/x?y=1",
    "///evil.example",
    "/%2F/evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "/%252F%252Fevil.example",
    "/%09/evil.example",
    "/%0d%0a/evil.example",
    "/.//evil.example",
    "/%E2%80%8B/evil.example",
    "/?next=//evil.example",
]


def _leaves_site(location: str, site: Site, emu: TwinneEmulator) -> bool:
    """Whether a Location from the site points anywhere but the site itself or Twinne's login."""
    if location.startswith(emu.base_url + "/api/oauth?"):
        return False
    if any(ch in location for ch in "\r\n\t\\") or location.startswith("//"):
        return True
    resolved = URL(site.url).join(URL(location, encoded=True))
    return resolved.origin() != URL(site.url).origin()


@pytest.mark.parametrize("channel", ["next", "path"])
async def test_no_return_path_leads_off_site(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    watch: SecretWatch,
    figures: Figures,
    channel: str,
) -> None:
    """Hostile return paths, end to end (request before login -> login -> 303): none leaves."""
    site = await site_factory(protect=("/",))
    emu.approve(user, site.app)
    payloads = NEXT_PAYLOADS if channel == "next" else PATH_PAYLOADS
    escaped: list[tuple[str, str]] = []
    landed: dict[str, str] = {}
    for payload in payloads:
        browser = twinne_browser()
        start = site(f"{LOGIN}?next={payload}") if channel == "next" else site.url + payload
        hops = await follow(browser, start, headers=NAVIGATE)
        site_hops = [hop for hop in hops if hop.url.origin() == URL(site.url).origin()]
        for hop in site_hops:
            watch.page(hop.text)
            if hop.location and _leaves_site(hop.location, site, emu):
                escaped.append((payload, hop.location))
        final = [hop for hop in site_hops if hop.status == 303]
        assert final, f"{payload!r}: no login completed: {[h.status for h in hops]}"
        landed[payload] = final[-1].location
    assert escaped == []
    figures.record(
        "Open redirect",
        **{
            f"payloads via {channel}": len(payloads),
            f"Location headers leaving the site ({channel})": len(escaped),
        },
    )


# -- session fixation, replay after logout ------------------------------------------


@pytest.fixture
async def redis_site(site_factory: SiteFactory) -> Any:
    """A site on a private redis-server (RedisStorage: the session key is the cookie)."""
    server = await start_redis(free_port())
    client = aioredis.Redis.from_url(server.url)
    try:
        yield await site_factory(storage=redis_storage(client, secure=False)), client
    finally:
        await client.aclose()
        await server.stop()


def _session_cookie(browser: aiohttp.ClientSession, site: Site) -> str | None:
    morsel = browser.cookie_jar.filter_cookies(URL(site.url)).get(DEFAULT_COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


async def _guarded_json(site: Site, cookie: str) -> int:
    """The status of a JSON call to a guarded page with only this session cookie."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw,
        raw.get(
            site("/dashboard"), headers={**JSON, "Cookie": f"{DEFAULT_COOKIE_NAME}={cookie}"}
        ) as answer,
    ):
        return answer.status


async def test_a_planted_session_never_carries_the_login(
    emu: TwinneEmulator,
    user: EmulatedUser,
    redis_site: Any,
    browser_factory: Callable[..., aiohttp.ClientSession],
    twinne_browser: Browser,
    figures: Figures,
) -> None:
    """Session fixation (RedisStorage): the login lands in a new session, never the planted one."""
    site, client = redis_site
    emu.approve(user, site.app)
    attacker = browser_factory()
    async with attacker.get(site("/dashboard"), headers=NAVIGATE, allow_redirects=False) as answer:
        assert answer.status == 302
    existing = _session_cookie(attacker, site)
    assert existing is not None
    fixated = 0
    for planted in (existing, "attacker-made-up-session-id"):
        victim = twinne_browser()
        victim.cookie_jar.update_cookies({DEFAULT_COOKIE_NAME: planted}, URL(site.url))
        hops = await follow(victim, site("/dashboard"), headers=NAVIGATE)
        assert hops[-1].status == 200
        assert hops[-1].text.startswith("dashboard:user1")
        after = _session_cookie(victim, site)
        assert after is not None
        stored = await client.get(f"{DEFAULT_COOKIE_NAME}_{planted}")
        planted_record = json.loads(stored)["session"] if stored else {}
        carries_login = (
            after == planted
            or "auth" in planted_record.get("aiotwinne", {})
            or await _guarded_json(site, planted) != 401
        )
        fixated += carries_login
    assert fixated == 0
    figures.record(
        "Session fixation (RedisStorage)",
        **{"planted sessions tried": 2, "planted sessions that carried the login": fixated},
    )


async def test_a_cookie_copied_before_logout_stops_working_in_redis_at_once(
    emu: TwinneEmulator,
    user: EmulatedUser,
    redis_site: Any,
    twinne_browser: Browser,
    figures: Figures,
) -> None:
    """Replay after logout (RedisStorage): the copied cookie is refused at once."""
    site, _ = redis_site
    emu.approve(user, site.app)
    browser = twinne_browser()
    assert (await follow(browser, site("/dashboard"), headers=NAVIGATE))[-1].status == 200
    copied = _session_cookie(browser, site)
    assert copied is not None
    assert await _guarded_json(site, copied) == 200
    async with browser.post(site(LOGOUT), allow_redirects=False) as answer:
        assert answer.status == 303
    status = await _guarded_json(site, copied)
    assert status == 401
    figures.record(
        "Replay after logout",
        **{"RedisStorage: copied cookie accepted after logout": 0},
    )


async def test_a_cookie_copied_before_logout_lasts_until_token_expiry_or_max_age(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    """Replay after logout (encrypted cookie): accepted until max_age or the token's hour only."""
    key = Fernet.generate_key()
    site = await site_factory(storage=cookie_storage(key, secure=False, max_age=120))
    emu.approve(user, site.app)
    browser = twinne_browser()
    assert (await follow(browser, site("/dashboard"), headers=NAVIGATE))[-1].status == 200
    copied = _session_cookie(browser, site)
    assert copied is not None
    async with browser.post(site(LOGOUT), allow_redirects=False) as answer:
        assert answer.status == 303
    right_after = await _guarded_json(site, copied)
    # A stateless cookie cannot be revoked: the copy still works (documented)...
    assert right_after == 200
    # ...until max_age: aiohttp-session and Fernet check it against the wall clock.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 121)
    after_max_age = await _guarded_json(site, copied)
    monkeypatch.setattr(time, "time", real_time)
    assert after_max_age == 401
    # ...or the token's hour, whichever comes first (Twinne will not bounce an attacker back).
    emu.advance(3601)
    after_hour = await _guarded_json(site, copied)
    assert after_hour == 401
    figures.record(
        "Replay after logout",
        **{
            "encrypted cookie: copy accepted right after logout": "yes (stateless; documented)",
            "encrypted cookie: copy accepted after max_age": "no",
            "encrypted cookie: copy accepted after the token's hour": "no",
        },
    )


# -- provider text on our pages -------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_provider_error_text_is_escaped_on_our_pages(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """Twinne's error message with markup in it is shown escaped (HTML) or as JSON text."""
    site = await site_factory()
    unescaped = 0
    for headers in (NAVIGATE, JSON):
        browser = twinne_browser()
        await _start_login(browser, site)
        key = emu.authorize(user, site.app)
        emu.set_feature_enabled(False, message=HOSTILE)
        try:
            async with browser.get(
                site(f"{CALLBACK}?auth_key={key}"), headers=headers, allow_redirects=False
            ) as answer:
                assert answer.status == 502
                text = await answer.text()
        finally:
            emu.set_feature_enabled(True)
        watch.page(text)
        if headers is JSON:
            assert json.loads(text)["message"].endswith(HOSTILE)
        else:
            assert "&lt;script&gt;" in text
        unescaped += "<script>" in text and headers is NAVIGATE
        unescaped += "<img" in text and headers is NAVIGATE
    assert unescaped == 0
    figures.record("Provider error text on our pages", **{"unescaped markup shown": unescaped})
