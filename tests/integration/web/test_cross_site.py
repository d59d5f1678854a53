"""Other sites: no login CSRF, no cross-site logout (issue 11, rows 1 and 2).

A browser sends the ``SameSite=Lax`` session cookie on another site's top-level
``GET`` navigations to this one and applies the ``Set-Cookie`` of their
answers; the cookie-keeping client here does the same, and sends the
``Sec-Fetch-Site`` header a browser would. Real Chromium tries the same
attacks in ``test_browser_attacks.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from websupport import (
    CALLBACK,
    CROSS_SITE,
    JSON,
    LOGIN,
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    Site,
    browse,
    log_in,
    set_cookie_headers,
)
from yarl import URL

from aiotwinne.testing import EmulatedUser, TwinneEmulator

EVIL = "http://127.0.0.2:8000"
#: A navigation from the evil site, as a browser sends it.
FROM_EVIL = {**CROSS_SITE, "Referer": EVIL + "/"}
#: A form post from the evil site.
EVIL_POST = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Origin": EVIL}
#: Guarded pages of the test site and the login route, as another site links them.
TARGETS = [f"{LOGIN}?next=/dashboard", "/dashboard", "/account/home", "/explicit?guard=1"]


def _cookies(visitor: aiohttp.ClientSession, site: Site) -> dict[str, str]:
    return {k: m.value for k, m in visitor.cookie_jar.filter_cookies(URL(site.url)).items()}


async def _whoami(visitor: aiohttp.ClientSession, site: Site) -> str:
    async with visitor.get(site("/")) as page:
        return await page.text()


# -- row 1: a login starts only from this site ---------------------------------------------


@pytest.mark.parametrize("path", TARGETS)
async def test_another_sites_navigation_gets_a_button_not_a_login(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    path: str,
) -> None:
    """A cross-site link to the login route or a guarded page: a button of ours, no cookie."""
    visitor = visitor_factory()
    async with visitor.get(site(path), headers=FROM_EVIL, allow_redirects=False) as answer:
        assert answer.status == 200
        assert set_cookie_headers(answer.headers) == []
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
        text = await answer.text()
    assert "Continue with Twinne" in text
    assert 'href="/auth/twinne/login?next=/' in text
    assert _cookies(visitor, site) == {}
    assert emu.count() == 0


async def test_the_button_starts_the_login_and_returns_to_the_page(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Clicking "Continue with Twinne" (a same-origin navigation) logs in and lands on the page."""
    emu.approve(user, site.app)
    async with visitor.get(site("/dashboard?tab=2"), headers=FROM_EVIL) as page:
        assert 'href="/auth/twinne/login?next=/dashboard%3Ftab%3D2"' in await page.text()
    end = await browse(visitor, site(f"{LOGIN}?next=/dashboard%3Ftab%3D2"))
    assert end.status == 200
    assert str(end.url) == site("/dashboard?tab=2")
    assert end.text == "dashboard:user1:Ada Lovelace"


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Referer": "SITE/page"},
    ],
    ids=["typed URL or bookmark", "same-origin link", "old browser, same-origin referer"],
)
async def test_own_navigations_stay_seamless(
    visitor: aiohttp.ClientSession,
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
    headers: dict[str, str],
) -> None:
    """Typed URLs, bookmarks and this site's links log in (and re-log in) with no extra click."""
    emu.approve(user, site.app)
    sent = {k: v.replace("SITE", site.url) for k, v in headers.items()}
    for _ in range(2):
        async with visitor.get(site("/dashboard"), headers={**JSON, **sent}) as page:
            assert page.status == 401  # (a script is never redirected)
        async with visitor.get(
            site("/dashboard"),
            headers={"Accept": NAVIGATE["Accept"], **sent},
        ) as page:
            assert page.status == 200
            assert await page.text() == "dashboard:user1:Ada Lovelace"
        emu.advance(3601)
    assert emu.count("oauth") == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": EVIL + "/"},
        {},
    ],
    ids=["cross-site", "same-site (a sibling origin)", "old browser, foreign referer", "nothing"],
)
async def test_foreign_or_unknown_navigations_need_the_click(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    headers: dict[str, str],
) -> None:
    """Another site, a sibling origin, or a request that says nothing: the button, no cookie."""
    visitor = visitor_factory()
    for path in (f"{LOGIN}?next=/dashboard", "/dashboard"):
        async with visitor.get(site(path), headers=headers, allow_redirects=False) as answer:
            assert answer.status == 200
            assert set_cookie_headers(answer.headers) == []
            assert "Continue with Twinne" in await answer.text()
    assert emu.count() == 0


@pytest.mark.parametrize("victim", ["anonymous", "signed in", "expired"])
async def test_an_attackers_key_cannot_sign_the_victim_in(
    visitor: aiohttp.ClientSession,
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
    victim: str,
) -> None:
    """Login CSRF: another site opens our login route, then our callback with its own key."""
    mallory = emu.add_user(user_name="mallory")
    emu.approve(mallory, site.app)
    if victim != "anonymous":
        await log_in(visitor, site, emu, user)
    if victim == "expired":
        emu.advance(3601)
    before = _cookies(visitor, site)
    emu.reset_stats()
    for path in TARGETS:
        async with visitor.get(site(path), headers=FROM_EVIL, allow_redirects=False) as answer:
            assert answer.status == 200
            assert set_cookie_headers(answer.headers) == []
    attackers_key = emu.authorize(mallory, site.app)
    async with visitor.get(
        site(f"{CALLBACK}?auth_key={attackers_key}"), headers=FROM_EVIL, allow_redirects=False
    ) as answer:
        assert answer.status == 400
        assert set_cookie_headers(answer.headers) == []
        assert "not started from this browser" in await answer.text()
    assert emu.count() == 0
    assert _cookies(visitor, site) == before
    if victim == "anonymous":
        assert await _whoami(visitor, site) == "public:anonymous"
    else:
        # The victim's own session, logging in again as the victim when expired.
        end = await browse(visitor, site("/dashboard"))
        assert end.text == "dashboard:user1:Ada Lovelace"


# -- row 2: logout --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [EVIL_POST, {"Origin": EVIL}, {"Referer": EVIL + "/x"}, {"Origin": "null"}, {}],
    ids=[
        "cross-site",
        "old browser, foreign origin",
        "foreign referer",
        "opaque origin",
        "nothing",
    ],
)
async def test_a_logout_post_from_elsewhere_changes_nothing(
    signed_in: aiohttp.ClientSession, site: Site, headers: dict[str, str]
) -> None:
    """A POST to logout that is not from this site: 403 with the button, no cookie, still in."""
    async with signed_in.post(site(LOGOUT), headers=headers, allow_redirects=False) as answer:
        assert answer.status == 403
        assert set_cookie_headers(answer.headers) == []
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert 'method="post"' in await answer.text()
    assert await _whoami(signed_in, site) == "public:user1"


async def test_a_cross_site_logout_post_without_the_cookie_sets_none(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    signed_in: aiohttp.ClientSession,
    site: Site,
) -> None:
    """The browser does not send a Lax cookie with another site's POST; the answer deletes none."""
    stranger = visitor_factory()
    async with stranger.post(site(LOGOUT), headers=EVIL_POST, allow_redirects=False) as answer:
        assert answer.status == 403
        assert set_cookie_headers(answer.headers) == []
    assert await _whoami(signed_in, site) == "public:user1"


async def test_a_logout_without_a_session_sets_no_cookie(
    visitor_factory: Callable[[], aiohttp.ClientSession], site: Site
) -> None:
    """A same-site logout POST from a browser with no session: 303 and no Set-Cookie."""
    stranger = visitor_factory()
    for headers in (SAME_ORIGIN_POST, {"Origin": site.url}):
        async with stranger.post(site(LOGOUT), headers=headers, allow_redirects=False) as answer:
            assert answer.status == 303
            assert set_cookie_headers(answer.headers) == []


async def test_a_logout_from_this_site_still_works(
    signed_in: aiohttp.ClientSession, site: Site
) -> None:
    """The logout button (same-origin, or an old browser's same-origin Origin) logs out."""
    async with signed_in.post(
        site(LOGOUT), headers={"Origin": site.url}, allow_redirects=False
    ) as answer:
        assert answer.status == 303
        assert set_cookie_headers(answer.headers) != []
    assert await _whoami(signed_in, site) == "public:anonymous"


async def test_a_cross_site_link_to_the_login_route_keeps_the_login(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """Another site linking our login route (or logout, by GET) removes nothing."""
    emu.reset_stats()
    for path in (f"{LOGIN}?next=/", LOGOUT):
        async with signed_in.get(site(path), headers=FROM_EVIL, allow_redirects=False) as answer:
            assert answer.status == 200
            assert set_cookie_headers(answer.headers) == []
    async with signed_in.get(site("/dashboard"), headers=NAVIGATE, allow_redirects=False) as page:
        assert page.status == 200
    assert emu.count() == 0
