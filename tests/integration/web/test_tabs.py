"""Several tabs of one browser logging in at once, and keys replaced by a later bounce (row 3).

Twinne keeps one auth_key per user and app and replaces it on every bounce
through its login link, and a cookie session keeps whichever answer's
``Set-Cookie`` came last. Real Chromium reloads two and ten tabs in
``test_browser_attacks.py``; here one cookie jar stands for the browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
import redis.asyncio as aioredis
from websupport import (
    CALLBACK,
    LOGIN,
    NAVIGATE,
    RedisServer,
    Site,
    SiteFactory,
    browse,
    log_in,
    set_cookie_headers,
)

from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import cookie_storage, redis_storage


async def _start(visitor: aiohttp.ClientSession, site: Site, next_path: str) -> None:
    """Click a login button of the site (the login route), without following Twinne."""
    async with visitor.get(
        site(LOGIN), params={"next": next_path}, headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 302


async def _callback(
    visitor: aiohttp.ClientSession, site: Site, key: str
) -> aiohttp.ClientResponse:
    async with visitor.get(
        site(f"{CALLBACK}?auth_key={key}"), headers=NAVIGATE, allow_redirects=False
    ) as answer:
        await answer.read()
        return answer


@pytest.mark.parametrize("tabs", [2, 10])
async def test_tabs_reloading_after_the_hour_all_land_on_their_page(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, tabs: int
) -> None:
    """N tabs reloading at once after expiry: each ends on its own page, one login for all."""
    emu.advance(3601)
    emu.reset_stats()
    ends = await asyncio.gather(
        *(browse(signed_in, site(f"/dashboard?tab={i}")) for i in range(tabs))
    )
    assert [str(end.url) for end in ends] == [site(f"/dashboard?tab={i}") for i in range(tabs)]
    assert {end.text for end in ends} == {"dashboard:user1:Ada Lovelace"}
    assert emu.count("oauth") == emu.count("authorize") == 1


async def test_tabs_of_a_redis_session_also_wait_for_one_login(
    visitor: aiohttp.ClientSession,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
    redis_server: RedisServer,
) -> None:
    """The same with RedisStorage (the session id is the cookie): one login, every tab served."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        site = await site_factory(storage=redis_storage(client, secure=False))
        await log_in(visitor, site, emu, user)
        emu.advance(3601)
        emu.reset_stats()
        ends = await asyncio.gather(*(browse(visitor, site(f"/settings?t={i}")) for i in range(5)))
        assert {end.text for end in ends} == {"view:user1"}
        assert emu.count("authorize") == 1
    finally:
        await client.aclose()


async def test_a_key_replaced_by_another_tabs_bounce_returns_to_the_page(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Tab A's key dies by tab B's later bounce: A goes back to its page and finds B's login."""
    emu.approve(user, site.app)
    await _start(visitor, site, "/dashboard?tab=a")
    await _start(visitor, site, "/settings")
    key_a = emu.authorize(user, site.app)
    key_b = emu.authorize(user, site.app)  # B's bounce: A's key is replaced
    answer_a = await _callback(visitor, site, key_a)
    assert answer_a.status == 303
    assert answer_a.headers["Location"] == "/dashboard?tab=a"
    # No cookie: this answer must not overwrite the one B's callback sets.
    assert set_cookie_headers(answer_a.headers) == []
    answer_b = await _callback(visitor, site, key_b)
    assert answer_b.status == 303
    assert answer_b.headers["Location"] == "/settings"
    end = await browse(visitor, site("/dashboard?tab=a"))
    assert end.text == "dashboard:user1:Ada Lovelace"
    assert emu.count("authorize") == 2


async def test_a_key_replaced_elsewhere_costs_one_more_round_trip(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A key replaced by a bounce this browser did not make (another device): one more trip."""
    emu.approve(user, site.app)
    await _start(visitor, site, "/dashboard?tab=a")
    key = emu.authorize(user, site.app)
    emu.authorize(user, site.app)  # the same user, on another device
    answer = await _callback(visitor, site, key)
    assert answer.status == 302
    assert answer.headers["Location"] == site.client.login_url()
    end = await browse(visitor, site.client.login_url())
    assert str(end.url) == site("/dashboard?tab=a")
    assert end.text == "dashboard:user1:Ada Lovelace"
    assert emu.count("authorize") == 2


async def test_a_key_replaced_twice_ends_on_a_page_never_a_loop(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """The retry's key replaced too: an error page with 'Try again', after exactly two tries."""
    emu.approve(user, site.app)
    await _start(visitor, site, "/dashboard")
    for expected in (302, 400):
        key = emu.authorize(user, site.app)
        emu.authorize(user, site.app)
        answer = await _callback(visitor, site, key)
        assert answer.status == expected
    assert "Try again" in await answer.text()
    assert emu.count("authorize") == 2


async def test_cookie_answers_that_cross_lose_no_tab(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Two tabs' answers crossing (the later Set-Cookie wins, from an older cookie): both land."""
    site = await site_factory(storage=cookie_storage(b"k" * 32, secure=False))
    visitor = visitor_factory()
    visitor.cookie_jar.update_cookies(emu.sign_in(user))
    await log_in(visitor, site, emu, user)
    emu.advance(3601)
    old = {c.key: c.value for c in visitor.cookie_jar}
    # Tab A starts its re-login; tab B's request left with the old cookie and
    # finds A's login in flight: it waits, and sets no cookie of its own.
    async with visitor.get(site("/dashboard?tab=a"), headers=NAVIGATE, allow_redirects=False) as a:
        assert a.status == 302
    tab_b = visitor_factory()
    tab_b.cookie_jar.update_cookies(old)
    async with tab_b.get(site("/settings"), headers=NAVIGATE, allow_redirects=False) as b:
        assert b.status == 200
        assert b.headers["Refresh"] == "1; url=/settings"
        assert set_cookie_headers(b.headers) == []
    end_a = await browse(visitor, site.client.login_url())
    assert str(end_a.url) == site("/dashboard?tab=a")
    # Tab B, reloading in the same browser, finds the new session.
    end_b = await browse(visitor, site("/settings"))
    assert end_b.text == "view:user1"
    assert emu.count("authorize") == 2
