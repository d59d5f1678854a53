"""Attacks on the login: forged callbacks, open redirects, fixation, replay, markup in errors.

Each test counts what got through; the target is always 0.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import aiohttp_session
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from bearersupport import bearer, own_token, token_routes
from cryptography.fernet import Fernet
from relsupport import Figures, SecretWatch, scaled, signed_in_browser, start_redis
from websupport import (
    CALLBACK,
    JSON,
    LOGIN,
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    Site,
    browse,
    follow,
    free_port,
)
from yarl import URL

from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, cookie_storage, redis_storage, setup
from aiotwinne.web._middleware import WAIT_AFTER_LOGIN, WAIT_FOR_OTHER_TAB

SiteFactory = Callable[..., Any]
Browser = Callable[[], aiohttp.ClientSession]
KEY = "0123456789abcdef0123456789abcdef"


async def _start_login(browser: aiohttp.ClientSession, site: Site, next_path: str = "/") -> None:
    """Open the login route without following Twinne: the session now holds a pending login."""
    async with browser.get(
        site(f"{LOGIN}?next={next_path}"), headers=NAVIGATE, allow_redirects=False
    ) as answer:
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
    # Later than the few seconds in which it would pass for the same browser's other tab.
    emu.advance(WAIT_AFTER_LOGIN)
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
    # (A victim sending that session within seconds would wait for the
    # attacker's login as for another tab's, then log in on its own.)
    emu.advance(WAIT_FOR_OTHER_TAB)
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
    browser = await signed_in_browser(twinne_browser, site, emu, user)
    copied = _session_cookie(browser, site)
    assert copied is not None
    assert await _guarded_json(site, copied) == 200
    async with browser.post(
        site(LOGOUT), headers=SAME_ORIGIN_POST, allow_redirects=False
    ) as answer:
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
    browser = await signed_in_browser(twinne_browser, site, emu, user)
    copied = _session_cookie(browser, site)
    assert copied is not None
    async with browser.post(
        site(LOGOUT), headers=SAME_ORIGIN_POST, allow_redirects=False
    ) as answer:
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


# -- login CSRF and cross-site logout (issue 11, rows 1-2) ----------------------------------

EVIL = "http://127.0.0.2:8000"
#: How another site's page sends a browser here: Fetch Metadata as current
#: browsers send it, an older browser's Referer, or nothing at all.
NAVIGATION_SIGNALS = {
    "Sec-Fetch-Site: cross-site": {"Sec-Fetch-Site": "cross-site"},
    "Sec-Fetch-Site: same-site": {"Sec-Fetch-Site": "same-site"},
    "old browser, foreign Referer": {"Referer": EVIL + "/"},
    "old browser, no Referer": {},
}
#: The same for another site's form post to the logout route.
POST_SIGNALS = {
    "Sec-Fetch-Site: cross-site": {"Sec-Fetch-Site": "cross-site", "Origin": EVIL},
    "old browser, foreign Origin": {"Origin": EVIL},
    "opaque Origin": {"Origin": "null"},
    "old browser, foreign Referer": {"Referer": EVIL + "/"},
    "nothing": {},
}
#: Every way in that could start a login: the login route and guarded pages of each kind.
LOGIN_TARGETS = [
    f"{LOGIN}?next=/dashboard",
    "/dashboard",
    "/settings",
    "/account/home",
    "/explicit?guard=1",
    "/fresh",
]
_NAVIGATE_ONLY = {k: v for k, v in NAVIGATE.items() if k != "Sec-Fetch-Site"}


def _has_set_cookie(answer: aiohttp.ClientResponse) -> bool:
    return "Set-Cookie" in answer.headers


async def test_another_site_cannot_start_a_login_or_end_one(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """Every way in x every signal x anonymous/signed-in/expired victims: nothing moves."""
    site = await site_factory()
    mallory = emu.add_user(user_name="mallory")
    emu.approve(mallory, site.app)
    emu.approve(user, site.app)
    tried = set_cookies = logins_started = as_attacker = sessions_changed = exchanges = 0
    for state in ("anonymous", "signed in", "expired"):
        for signals in (NAVIGATION_SIGNALS, POST_SIGNALS):
            for signal in signals.values():
                victim = twinne_browser()
                if state != "anonymous":
                    hops = await follow(victim, site("/dashboard"), headers=NAVIGATE)
                    assert hops[-1].status == 200
                if state == "expired":
                    emu.advance(3601)
                before = _session_cookie(victim, site)
                exchanged = emu.count("authorize")
                if signals is NAVIGATION_SIGNALS:
                    key = emu.authorize(mallory, site.app)
                    for target in [*LOGIN_TARGETS, f"{CALLBACK}?auth_key={key}", LOGOUT]:
                        async with victim.get(
                            site(target),
                            headers={**_NAVIGATE_ONLY, **signal},
                            allow_redirects=False,
                        ) as answer:
                            tried += 1
                            set_cookies += _has_set_cookie(answer)
                            logins_started += answer.status == 302
                            as_attacker += answer.status == 303
                            watch.page(await answer.text())
                else:
                    async with victim.post(
                        site(LOGOUT), headers=signal, allow_redirects=False
                    ) as answer:
                        tried += 1
                        set_cookies += _has_set_cookie(answer)
                        sessions_changed += answer.status != 403
                        watch.page(await answer.text())
                exchanges += emu.count("authorize") - exchanged
                sessions_changed += _session_cookie(victim, site) != before
    moved = (set_cookies, logins_started, as_attacker, sessions_changed, exchanges)
    assert moved == (0, 0, 0, 0, 0)
    figures.record(
        "Login CSRF and cross-site logout",
        **{
            "requests from another site (or saying nothing)": tried,
            "answers with Set-Cookie": set_cookies,
            "logins started (redirects to Twinne)": logins_started,
            "victims signed in as the attacker": as_attacker,
            "sessions changed or ended": sessions_changed,
            "auth_keys exchanged": exchanges,
            "signals tried": ", ".join([*NAVIGATION_SIGNALS, *POST_SIGNALS]),
        },
    )


# -- tabs at once, and handed-back tokens (issue 11, rows 3-4) ---------------------------------


async def test_tabs_of_one_browser_re_log_in_at_once_without_an_error(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """Tabs reloading together after the hour, again and again: every tab on its page."""
    site = await site_factory()
    browser = await signed_in_browser(twinne_browser, site, emu, user)
    tabs = scaled(10, 50)
    rounds = scaled(3, 10)
    landed = wrong = errors = 0
    exchanges_before = emu.count("authorize")
    for _ in range(rounds):
        emu.advance(3601)
        ends = await asyncio.gather(
            *(browse(browser, site(f"/dashboard?tab={i}")) for i in range(tabs))
        )
        for i, end in enumerate(ends):
            watch.page(end.text)
            errors += end.status != 200
            wrong += str(end.url) != site(f"/dashboard?tab={i}")
            landed += end.text == "dashboard:user1:Ada Lovelace"
    exchanges = emu.count("authorize") - exchanges_before
    assert (errors, wrong, landed) == (0, 0, tabs * rounds)
    assert exchanges == rounds
    figures.record(
        "Tabs re-logging in at once (one browser)",
        **{
            "tabs x hours": f"{tabs} x {rounds}",
            "tabs on their own page": landed,
            "error pages": errors,
            "tabs on another tab's page": wrong,
            "exchanges (one per hour)": exchanges,
        },
    )


async def test_a_handed_back_token_never_gets_a_new_hour(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    figures: Figures,
) -> None:
    """Re-logins inside the token's window: no page is served past Twinne's expiry of it."""
    site = await site_factory()
    browser = await signed_in_browser(twinne_browser, site, emu, user)
    relogins = scaled(10, 50)
    for _ in range(relogins):
        emu.advance(3500 / relogins)
        end = await browse(browser, site(f"{LOGIN}?next=/dashboard"))
        assert end.text.startswith("dashboard:user1")
    emu.advance(101)  # Twinne's hour is over
    served_past_expiry = 0
    async with browser.get(site("/dashboard"), headers=NAVIGATE, allow_redirects=False) as answer:
        served_past_expiry += answer.status == 200
    assert served_past_expiry == 0
    figures.record(
        "Handed-back tokens",
        **{
            "re-logins inside the token's hour": relogins,
            "pages served past Twinne's expiry": served_past_expiry,
        },
    )


# -- Bearer tokens and unauthenticated sessions (issue 11, rows 5-7) -----------------------------


async def test_bearer_mode_takes_only_this_sites_tokens_and_junk_evicts_none(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: SiteFactory,
    twinne_browser: Browser,
    figures: Figures,
) -> None:
    """Another app's token, a token this site never obtained, a flood of junk: none accepted."""
    site = await site_factory(routes=token_routes())
    emu.approve(user, site.app)
    own = await own_token(twinne_browser(), site, emu, user)
    other_app = emu.add_app(name="Another app")
    foreign = {
        "another app's token for the same user": emu.issue_token(user, other_app),
        "this app's token, not from this site's callback": emu.issue_token(
            emu.add_user(user_name="someone"), site.app
        ),
    }
    api = twinne_browser()
    accepted = 0
    for token in foreign.values():
        async with api.get(site("/api/me"), headers=bearer(token)) as answer:
            accepted += answer.status == 200
    junk = scaled(500, 20_000)
    junk_accepted = 0
    for i in range(junk):
        async with api.get(site("/api/me"), headers=bearer(f"{i:032x}")) as answer:
            junk_accepted += answer.status == 200
    emu.reset_stats()
    async with api.get(site("/api/me"), headers=bearer(own)) as answer:
        own_ok = answer.status == 200
    upstream_for_own = emu.count("user_info")
    assert (accepted, junk_accepted, own_ok, upstream_for_own) == (0, 0, True, 0)
    plain = web.Application()
    aiohttp_session.setup(plain, aiohttp_session.SimpleCookieStorage(samesite="Lax", max_age=60))
    with pytest.raises(ValueError, match="plain JSON in the cookie"):
        setup(plain, site.client, secure_cookies=False)
    figures.record(
        "Bearer tokens and session storages",
        **{
            "foreign tokens accepted": accepted,
            "foreign kinds tried": ", ".join(foreign),
            "junk tokens sent": junk,
            "junk tokens accepted": junk_accepted,
            "upstream calls for this site's token after the junk": upstream_for_own,
            "setup() with an unauthenticated cookie storage": "refused",
        },
    )
