"""The login round trip through a real server: guard, Twinne, callback, new session."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from websupport import (
    CALLBACK,
    JSON,
    LOGIN,
    NAVIGATE,
    Site,
    SiteFactory,
    follow,
    log_in,
    plain_storage,
    serving_sites,
    session_record,
)

from aiotwinne.testing import SNGINE_VERSIONS, EmulatedUser, TwinneEmulator
from aiotwinne.web._middleware import WAIT_AFTER_LOGIN, WAIT_FOR_OTHER_TAB

KEY = "0123456789abcdef0123456789abcdef"


async def _start_login(visitor: aiohttp.ClientSession, site: Site, next_path: str = "/") -> str:
    """Open the login route without following Twinne; return where it redirects."""
    async with visitor.get(
        site(LOGIN), params={"next": next_path}, headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 302
        return answer.headers["Location"]


@pytest.mark.parametrize("sngine", SNGINE_VERSIONS)
async def test_anonymous_navigation_logs_in_and_returns_to_the_page(
    visitor_factory: Callable[[], aiohttp.ClientSession], sngine: str
) -> None:
    """A guarded page sends an anonymous visitor through Twinne and back to it (every Sngine)."""
    async with TwinneEmulator(sngine=sngine) as emu, serving_sites(emu) as site_factory:
        user = emu.add_user(user_name="user1", user_firstname="Ada", user_lastname="Lovelace")
        site = await site_factory()
        visitor = visitor_factory()
        visitor.cookie_jar.update_cookies(emu.sign_in(user))
        emu.approve(user, site.app)
        hops = await follow(visitor, site("/dashboard?tab=2"), headers=NAVIGATE)
        assert [hop.status for hop in hops] == [302, 302, 303, 200]
        assert str(hops[-1].url) == site("/dashboard?tab=2")
        assert hops[-1].text == "dashboard:user1:Ada Lovelace"
        assert emu.count("authorize") == 1
        assert emu.count("user_info") == 1
        emu.advance(3601)  # and again after the hour, silently
        hops = await follow(visitor, site("/dashboard?tab=2"), headers=NAVIGATE)
        assert [hop.status for hop in hops] == [302, 302, 303, 200]
        assert emu.count("authorize") == 2


async def test_guarded_pages_make_no_upstream_call_while_the_token_is_valid(
    signed_in: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """The session's summary serves guarded pages: Twinne is not asked again."""
    emu.reset_stats()
    for _ in range(5):
        async with signed_in.get(site("/dashboard"), headers=NAVIGATE) as page:
            assert await page.text() == "dashboard:user1:Ada Lovelace"
    assert emu.count() == 0


async def test_guard_redirects_to_twinne_with_no_store(
    visitor_factory: Callable[[], aiohttp.ClientSession], site: Site, emu: TwinneEmulator
) -> None:
    """The guard answers 302 to Twinne's login link, uncacheable, and stores a pending login."""
    async with visitor_factory().get(
        site("/dashboard?tab=2"), headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 302
        assert answer.headers["Location"] == site.client.login_url()
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" in answer.headers
    assert emu.count() == 0


async def test_pending_login_records_marker_time_and_page(
    visitor_factory: Callable[[], aiohttp.ClientSession], site_factory: SiteFactory
) -> None:
    """A pending login holds a 128-bit marker, its creation time and the page to return to."""
    site = await site_factory(storage=plain_storage())
    visitor = visitor_factory()
    async with visitor.get(
        site("/dashboard?tab=2"), headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 302
    (pending,) = session_record(visitor, site)["pending"]
    assert pending["next"] == "/dashboard?tab=2"
    assert len(pending["m"]) >= 22
    assert isinstance(pending["t"], float)


async def test_login_route_returns_to_next(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """The login button's route (?next=) lands on the page it names."""
    emu.approve(user, site.app)
    async with visitor.get(site(LOGIN), params={"next": "/settings"}, headers=NAVIGATE) as page:
        assert page.url.path == "/settings"
        assert await page.text() == "view:user1"


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "/%2F%2Fevil", CALLBACK],
)
async def test_login_route_never_returns_off_site(
    visitor: aiohttp.ClientSession,
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
    next_path: str,
) -> None:
    """A hostile or looping ?next= falls back to the home page."""
    emu.approve(user, site.app)
    async with visitor.get(site(LOGIN), params={"next": next_path}, headers=NAVIGATE) as page:
        assert str(page.url) == site("/")
        assert await page.text() == "public:user1"


async def test_callback_answers_303_without_leaking_the_key(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """The callback's 303 goes to the saved page, uncacheable, with no referrer and no key."""
    await _start_login(visitor, site, "/dashboard")
    key = emu.authorize(user, site.app)
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as answer:
        assert answer.status == 303
        assert answer.headers["Location"] == "/dashboard"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert key not in str(answer.headers)
        assert key not in await answer.text()


async def test_callback_starts_a_new_session(
    visitor: aiohttp.ClientSession,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """The signed-in session is a new one: the pre-login session's data is not promoted."""
    site = await site_factory(storage=plain_storage())
    await _start_login(visitor, site, "/dashboard")
    before = session_record(visitor, site)
    assert "auth" not in before
    key = emu.authorize(user, site.app)
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False):
        pass
    after = session_record(visitor, site)
    assert after["auth"]["u"]["un"] == "user1"
    assert "pending" not in after
    assert after["auth"]["tk"] not in str(before)


async def test_callback_after_an_existing_query(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A registered URL with a query gets `?auth_key=` appended after it, and still works."""
    site.app.redirect_url = site(f"{CALLBACK}?from=twinne")
    await log_in(visitor, site, emu, user)
    assert emu.count("authorize") == 1


async def test_callback_without_pending_login_is_refused(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A callback this browser did not start gets 400 and Twinne is not called."""
    key = emu.authorize(user, site.app)
    emu.reset_stats()
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as page:
        assert page.status == 400
        text = await page.text()
        assert "not started from this browser" in text
        assert "Try again" in text
    assert emu.count() == 0


@pytest.mark.parametrize(
    "query",
    [
        "",
        "auth_key=",
        f"auth_key={KEY}&auth_key={KEY}",
        f"auth_key={KEY}?auth_key={KEY}",
        "auth_key=" + "a" * 300,
        "auth_key=abc%20def",
        "auth_key=abc%0d%0adef",
    ],
)
async def test_malformed_auth_key_is_refused_without_calling_twinne(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, query: str
) -> None:
    """Missing, empty, repeated, over-long or whitespace keys get 400 and no call."""
    await _start_login(visitor, site)
    emu.reset_stats()
    async with visitor.get(site(f"{CALLBACK}?{query}"), allow_redirects=False) as page:
        assert page.status == 400
        assert "did not carry a usable login key" in await page.text()
    assert emu.count() == 0


async def test_a_used_pending_login_cannot_be_replayed(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Replaying the pre-login cookie after the login completed: no call, nobody signed in."""
    visitor = visitor_factory()
    await _start_login(visitor, site, "/dashboard")
    old_cookies = {c.key: c.value for c in visitor.cookie_jar}
    key = emu.authorize(user, site.app)
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as ok:
        assert ok.status == 303
    replay = visitor_factory()
    replay.cookie_jar.update_cookies(old_cookies, response_url=ok.url)
    emu.reset_stats()
    # Right after the login, this looks like the browser's other tab, whose
    # pending login the first callback took: sent to the page, key unused.
    fresh_key = emu.authorize(user, site.app)
    async with replay.get(site(f"{CALLBACK}?auth_key={fresh_key}"), allow_redirects=False) as page:
        assert page.status == 303
        assert "Set-Cookie" not in page.headers
    async with replay.get(site("/dashboard"), headers=JSON) as page:
        assert page.status == 401
    # Later, a plain refusal.
    emu.advance(WAIT_AFTER_LOGIN)
    async with replay.get(site(f"{CALLBACK}?auth_key={fresh_key}"), allow_redirects=False) as page:
        assert page.status == 400
        assert "already completed" in await page.text()
    assert emu.count() == 0


async def test_json_callers_get_json_refusals(visitor: aiohttp.ClientSession, site: Site) -> None:
    """An API caller at the callback gets a JSON error, not a page."""
    async with visitor.get(site(CALLBACK), headers=JSON, allow_redirects=False) as page:
        assert page.status == 400
        assert (await page.json())["error"] == "no_pending_login"


async def test_several_tabs_each_complete_their_login(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Two pending logins: each callback takes the oldest; the other survives the new session."""
    await _start_login(visitor, site, "/dashboard")
    await _start_login(visitor, site, "/settings")
    first = emu.authorize(user, site.app)
    async with visitor.get(site(f"{CALLBACK}?auth_key={first}"), allow_redirects=False) as a:
        assert a.headers["Location"] == "/dashboard"
    second = emu.authorize(user, site.app)
    async with visitor.get(site(f"{CALLBACK}?auth_key={second}"), allow_redirects=False) as b:
        assert b.status == 303
        assert b.headers["Location"] == "/settings"


async def test_pending_logins_are_capped(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site_factory: SiteFactory,
    emu: TwinneEmulator,
) -> None:
    """Many abandoned logins to different pages keep at most five in the session."""
    site = await site_factory(storage=plain_storage())
    visitor = visitor_factory()
    for i in range(12):
        emu.advance(WAIT_FOR_OTHER_TAB)  # no tab waits for the login before
        async with visitor.get(
            site(f"/dashboard?n={i}"), headers=NAVIGATE, allow_redirects=False
        ) as answer:
            assert answer.status == 302
    pending = session_record(visitor, site)["pending"]
    assert [p["next"] for p in pending] == [f"/dashboard?n={i}" for i in range(7, 12)]


async def test_an_expired_pending_login_is_refused(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A login left pending longer than pending_ttl cannot be completed."""
    await _start_login(visitor, site)
    emu.advance(601)
    key = emu.authorize(user, site.app)
    emu.reset_stats()
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as page:
        assert page.status == 400
    assert emu.count() == 0


async def test_public_pages_see_anonymous_and_signed_in_visitors(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    signed_in: aiohttp.ClientSession,
    site: Site,
) -> None:
    """get_user() is None for anonymous visitors on unguarded routes, the user otherwise."""
    async with visitor_factory().get(site("/")) as page:
        assert await page.text() == "public:anonymous"
    async with signed_in.get(site("/")) as page:
        assert await page.text() == "public:user1"


async def test_class_based_views_are_guarded(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    signed_in: aiohttp.ClientSession,
    site: Site,
) -> None:
    """A decorated web.View guards each of its methods."""
    anonymous = visitor_factory()
    async with anonymous.get(site("/settings"), headers=NAVIGATE, allow_redirects=False) as answer:
        assert answer.status == 302
    async with anonymous.post(site("/settings"), allow_redirects=False) as answer:
        assert answer.status == 401
    async with signed_in.get(site("/settings")) as page:
        assert await page.text() == "view:user1"
    async with signed_in.post(site("/settings")) as page:
        assert await page.text() == "view-post"


async def test_require_login_guards_a_branch(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    signed_in: aiohttp.ClientSession,
    site: Site,
    user: EmulatedUser,
) -> None:
    """`await require_login(request)` guards only where it is called."""
    anonymous = visitor_factory()
    async with anonymous.get(site("/explicit")) as page:
        assert await page.text() == "explicit:open"
    async with anonymous.get(
        site("/explicit?guard=1"), headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 302
    async with signed_in.get(site("/explicit?guard=1")) as page:
        assert await page.text() == f"explicit:{user.id}"


async def test_protected_prefixes_need_no_decorator(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    signed_in: aiohttp.ClientSession,
    site: Site,
) -> None:
    """Paths under `protect` are guarded by the middleware."""
    async with visitor_factory().get(
        site("/account/home"), headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 302
    async with signed_in.get(site("/account/home")) as page:
        assert await page.text() == "account:user1"
