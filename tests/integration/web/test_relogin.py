"""Past the token's hour: silent re-login for navigations, 401 for everything else, no loops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
from websupport import (
    JSON,
    LOGIN,
    NAVIGATE,
    Site,
    SiteFactory,
    browse,
    log_in,
    plain_storage,
    serving_sites,
    session_record,
)

from aiotwinne.testing import SNGINE_VERSIONS, EmulatedUser, TwinneEmulator


async def test_expired_navigation_logs_in_again_silently(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """After the hour, a page navigation goes through Twinne and back to the same page."""
    emu.advance(3601)
    emu.reset_stats()
    async with signed_in.get(site("/dashboard?tab=2"), headers=NAVIGATE) as page:
        assert page.status == 200
        assert str(page.url) == site("/dashboard?tab=2")
        assert await page.text() == "dashboard:user1:Ada Lovelace"
        assert len(page.history) == 3  # guard 302, Twinne 302, callback 303
    assert emu.count("authorize") == 1
    assert emu.count("oauth") == 1


async def test_expired_api_call_gets_401_json_and_no_pending_login(
    signed_in: aiohttp.ClientSession, site_factory: SiteFactory, emu: TwinneEmulator
) -> None:
    """A JSON caller gets 401 {"error": "login_required", "login_url"} and is not redirected."""
    site = await site_factory(storage=plain_storage())
    await log_in(signed_in, site, emu, emu.users[0])
    emu.advance(3601)
    emu.reset_stats()
    headers = {**JSON, "Referer": site("/dashboard?tab=2")}
    async with signed_in.get(site("/dashboard"), headers=headers, allow_redirects=False) as r:
        assert r.status == 401
        body = await r.json()
    assert body == {"error": "login_required", "login_url": f"{LOGIN}?next=/dashboard%3Ftab%3D2"}
    assert "pending" not in session_record(signed_in, site)
    assert emu.count() == 0


async def test_expired_post_is_never_replayed(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """A POST past the hour gets 401 (a page with a login link for forms), never a redirect."""
    emu.advance(3601)
    emu.reset_stats()
    async with signed_in.post(
        site("/dashboard"), data={"x": "1"}, headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 401
        assert "Location" not in answer.headers
        assert "Log in with Twinne" in await answer.text()
    async with signed_in.post(site("/dashboard"), allow_redirects=False) as answer:
        assert answer.status == 401
        assert (await answer.json())["error"] == "login_required"
    assert emu.count() == 0


async def test_scripted_requests_get_401(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """fetch() (Sec-Fetch-Mode: cors) and XMLHttpRequest get 401, not a redirect."""
    emu.advance(3601)
    for headers in ({"Sec-Fetch-Mode": "cors"}, {"X-Requested-With": "XMLHttpRequest"}):
        async with signed_in.get(
            site("/dashboard"), headers=headers, allow_redirects=False
        ) as answer:
            assert answer.status == 401


async def test_a_burst_of_expired_navigations_makes_one_pending_login(
    signed_in: aiohttp.ClientSession, site_factory: SiteFactory, emu: TwinneEmulator
) -> None:
    """Concurrent expired navigations of one browser: one goes to Twinne, the others wait."""
    site = await site_factory(storage=plain_storage())
    await log_in(signed_in, site, emu, emu.users[0])
    emu.advance(3601)

    async def hit(path: str) -> tuple[int, str]:
        async with signed_in.get(site(path), headers=NAVIGATE, allow_redirects=False) as r:
            return r.status, r.headers.get("Refresh", "")

    answers = await asyncio.gather(*(hit("/dashboard") for _ in range(20)))
    assert sorted(status for status, _ in answers) == [200] * 19 + [302]
    assert {refresh for status, refresh in answers if status == 200} == {"1; url=/dashboard"}
    assert len(session_record(signed_in, site)["pending"]) == 1
    await asyncio.gather(*(hit(f"/dashboard?n={i}") for i in range(20)))
    assert len(session_record(signed_in, site)["pending"]) <= 5


async def test_repeated_hours_keep_working(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """Hour after hour, each expiry costs exactly one exchange and never trips the loop guard."""
    for hour in range(1, 6):
        emu.advance(3601)
        async with signed_in.get(site("/dashboard"), headers=NAVIGATE) as page:
            assert page.status == 200
            assert await page.text() == "dashboard:user1:Ada Lovelace"
        assert emu.count("authorize") == 1 + hour


async def test_a_token_that_dies_at_once_ends_in_an_error_page_not_a_loop(
    visitor_factory: Callable[[], aiohttp.ClientSession],
) -> None:
    """If every fresh token is refused at once, the browser stops on a 502 page after 3 logins."""
    # A new token at every exchange (none handed back), each expired on arrival.
    async with (
        TwinneEmulator(reuse_valid_tokens=False) as emu,
        serving_sites(emu) as site_factory,
    ):
        emu_user = emu.add_user(user_name="user1")
        site = await site_factory(leeway=7200)
        emu.approve(emu_user, site.app)
        visitor = visitor_factory()
        visitor.cookie_jar.update_cookies(emu.sign_in(emu_user))
        async with visitor.get(site("/dashboard"), headers=NAVIGATE, max_redirects=50) as page:
            assert page.status == 502
            text = await page.text()
            assert "Logging in keeps failing" in text
            assert "Try again" in text
        assert emu.count("authorize") == 3


async def test_twinne_saying_expired_is_handled_like_local_expiry(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """get_user(fresh=True) meeting "expired access_token" re-logs in silently (one exchange)."""
    emu.token_lifetime = 60  # Twinne's own window is shorter than our hour
    emu.advance(61)
    emu.reset_stats()
    async with signed_in.get(site("/fresh"), headers=NAVIGATE) as page:
        assert page.status == 200
        assert await page.text() == "fresh:user1@example.com"
    assert emu.count("authorize") == 1


async def test_twinne_saying_expired_gives_api_callers_401(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """The same upstream expiry gives a JSON caller 401, without a login round trip."""
    emu.token_lifetime = 60
    emu.advance(61)
    emu.reset_stats()
    async with signed_in.get(site("/fresh"), headers=JSON, allow_redirects=False) as answer:
        assert answer.status == 401
    assert emu.count("authorize") == 0


async def test_twinne_down_during_a_fresh_fetch_gives_502_not_500(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """An unreachable Twinne behind get_user(fresh=True) is a friendly 502."""
    emu.inject("http_error", endpoint="user_info", status=503, count=5)
    async with signed_in.get(site("/fresh"), headers=NAVIGATE) as page:
        assert page.status == 502
        assert "Twinne is unavailable" in await page.text()


async def test_anonymous_visitors_need_no_upstream_call(
    visitor_factory: Callable[[], aiohttp.ClientSession], site: Site, emu: TwinneEmulator
) -> None:
    """An anonymous 401 or redirect costs no call to Twinne."""
    anonymous = visitor_factory()
    async with anonymous.get(site("/dashboard"), headers=JSON) as answer:
        assert answer.status == 401
    assert emu.count() == 0


# -- expiry counts from when Twinne issued the token (issue 11, row 4; issue 10) -------


async def test_a_token_handed_back_keeps_its_issue_time(
    visitor: aiohttp.ClientSession,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Logging in again inside the token's hour: Twinne hands the same token back; no new hour."""
    site = await site_factory(storage=plain_storage())
    await log_in(visitor, site, emu, user)
    first = session_record(visitor, site)["auth"]
    emu.advance(1800)
    end = await browse(visitor, site(f"{LOGIN}?next=/dashboard"))
    assert end.text == "dashboard:user1:Ada Lovelace"
    again = session_record(visitor, site)["auth"]
    assert again["tk"] == first["tk"]  # Twinne handed back the token it issued
    assert (again["iat"], again["exp"]) == (first["iat"], first["exp"])
    emu.advance(1801)  # an hour after Twinne issued it
    emu.reset_stats()
    end = await browse(visitor, site("/dashboard"))
    assert end.text == "dashboard:user1:Ada Lovelace"
    assert emu.count("oauth") == emu.count("authorize") == 1  # a new login, not a page
    assert session_record(visitor, site)["auth"]["tk"] != first["tk"]


async def test_a_token_handed_back_in_its_last_seconds_is_used_until_it_dies(
    visitor: aiohttp.ClientSession,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Re-logging in inside the leeway gets the same token: pages until its real end, no loop."""
    site = await site_factory(storage=plain_storage())
    await log_in(visitor, site, emu, user)
    emu.advance(3600 - 10)  # inside the client's 30-second leeway: the guard re-logs in
    emu.reset_stats()
    end = await browse(visitor, site("/dashboard"))
    assert end.text == "dashboard:user1:Ada Lovelace"
    assert emu.count("authorize") == 1
    for _ in range(3):
        assert (await browse(visitor, site("/dashboard"))).status == 200
    assert emu.count("authorize") == 1
    emu.advance(11)  # Twinne's hour is over: one more login, a new token
    assert (await browse(visitor, site("/dashboard"))).status == 200
    assert emu.count("authorize") == 2


@pytest.mark.parametrize("sngine", SNGINE_VERSIONS)
async def test_the_stock_sixty_second_window_costs_one_silent_relogin(
    visitor_factory: Callable[[], aiohttp.ClientSession], sngine: str
) -> None:
    """Sngine's own 60-second window (the client assumes an hour): fresh=True re-logs in once."""
    async with (
        TwinneEmulator(token_lifetime=60, sngine=sngine) as emu,
        serving_sites(emu) as site_factory,
    ):
        user = emu.add_user(user_name="user1")
        site = await site_factory(storage=plain_storage())
        emu.approve(user, site.app)
        visitor = visitor_factory()
        visitor.cookie_jar.update_cookies(emu.sign_in(user))
        assert (await browse(visitor, site("/fresh"))).text == "fresh:user1@example.com"
        issued = session_record(visitor, site)["auth"]
        emu.advance(30)  # a login inside the window gets the same token, and its issue time
        assert (await browse(visitor, site(f"{LOGIN}?next=/fresh"))).status == 200
        assert session_record(visitor, site)["auth"]["iat"] == issued["iat"]
        emu.advance(31)  # 61 seconds after Twinne issued it
        emu.reset_stats()
        end = await browse(visitor, site("/fresh"))
        assert end.text == "fresh:user1@example.com"
        assert emu.count("oauth") == emu.count("authorize") == 1
        assert emu.count("user_info") == 3  # refused, the callback's, the page's
