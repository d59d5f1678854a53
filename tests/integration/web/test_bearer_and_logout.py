"""Bearer-protected API routes, logout, and secrets kept out of pages, redirects and logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import pytest
from bearersupport import bearer, own_token, token_routes
from websupport import (
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    Site,
    SiteFactory,
    follow,
    log_in,
    plain_storage,
    session_record,
)

from aiotwinne.testing import EmulatedUser, TwinneEmulator


@pytest.fixture
async def site(site_factory: SiteFactory) -> Site:
    """The test site, with a page that hands the signed-in user's token to scripts."""
    return await site_factory(routes=token_routes())


@pytest.fixture
async def token(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> str:
    """An access token this site obtained through its own login (the callback)."""
    return await own_token(visitor, site, emu, user)


async def test_a_token_from_this_sites_login_needs_no_upstream_call(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
    token: str,
) -> None:
    """The callback already fetched the user: API requests right after a login cost nothing."""
    emu.reset_stats()
    api = visitor_factory()
    for _ in range(3):
        async with api.get(site("/api/me"), headers=bearer(token)) as answer:
            assert answer.status == 200
            assert await answer.json() == {"id": user.id, "username": "user1"}
    assert emu.count("user_info") == 0


async def test_a_valid_bearer_token_is_checked_once_then_cached(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
    token: str,
) -> None:
    """Past bearer_ttl the next request asks Twinne (revocations show); the ones after do not."""
    emu.advance(61)
    emu.reset_stats()
    api = visitor_factory()
    for _ in range(3):
        async with api.get(site("/api/me"), headers=bearer(token)) as answer:
            assert answer.status == 200
            assert await answer.json() == {"id": user.id, "username": "user1"}
    assert emu.count("user_info") == 1


async def test_concurrent_requests_with_a_token_to_check_make_one_call(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    token: str,
) -> None:
    """Twenty concurrent requests with a token due for a check share one upstream call."""
    emu.advance(61)
    emu.reset_stats()
    api = visitor_factory()
    emu.inject("latency", endpoint="user_info", delay=0.05)

    async def call() -> int:
        async with api.get(site("/api/me"), headers=bearer(token)) as answer:
            return answer.status

    assert set(await asyncio.gather(*(call() for _ in range(20)))) == {200}
    assert emu.count("user_info") == 1


@pytest.mark.parametrize("advance", [0, 3601])
async def test_invalid_or_expired_tokens_get_401_invalid_token(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    token: str,
    advance: int,
) -> None:
    """Unknown or expired tokens: 401 with WWW-Authenticate: Bearer error="invalid_token"."""
    emu.advance(advance)
    bad = token if advance else "f" * 32
    async with visitor_factory().get(site("/api/me"), headers=bearer(bad)) as answer:
        assert answer.status == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
        assert (await answer.json())["error"] == "invalid_token"


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer a b"])
async def test_missing_or_malformed_authorization_gets_401(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    header: str | None,
) -> None:
    """No usable Bearer header: 401 with a Bearer challenge, and no call to Twinne."""
    headers = {"Authorization": header} if header else {}
    async with visitor_factory().get(site("/api/me"), headers=headers) as answer:
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert emu.count() == 0


async def test_twinne_down_gives_503_json_not_500(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    token: str,
) -> None:
    """Twinne unable to vouch for a token due for a check: 503 JSON; the next one asks again."""
    emu.advance(61)
    emu.inject("http_error", endpoint="user_info", status=503, count=2)
    api = visitor_factory()
    async with api.get(site("/api/me"), headers=bearer(token)) as answer:
        assert answer.status == 503
        assert (await answer.json())["error"] == "provider_unavailable"
    async with api.get(site("/api/me"), headers=bearer(token)) as answer:
        assert answer.status == 200


async def test_bearer_required_decorator(
    visitor_factory: Callable[[], aiohttp.ClientSession],
    site: Site,
    token: str,
    user: EmulatedUser,
) -> None:
    """@bearer_required guards a route outside the Bearer prefixes."""
    api = visitor_factory()
    async with api.get(site("/bearer/me")) as answer:
        assert answer.status == 401
    async with api.get(site("/bearer/me"), headers=bearer(token)) as answer:
        assert await answer.json() == {"id": user.id}


async def test_logout_clears_the_session_and_lands_on_the_landing_page(
    signed_in: aiohttp.ClientSession, site: Site
) -> None:
    """POST logout: 303 to '/', and guarded pages need a login again."""
    async with signed_in.post(
        site(LOGOUT), headers=SAME_ORIGIN_POST, allow_redirects=False
    ) as answer:
        assert answer.status == 303
        assert answer.headers["Location"] == "/"
    async with signed_in.get(site("/")) as page:
        assert await page.text() == "public:anonymous"
    async with signed_in.get(
        site("/dashboard"), headers=NAVIGATE, allow_redirects=False
    ) as answer:
        assert answer.status == 302


async def test_logout_by_get_only_shows_a_button(
    signed_in: aiohttp.ClientSession, site: Site
) -> None:
    """GET on the logout path changes nothing (no logout by <img>); it offers a button."""
    async with signed_in.get(site(LOGOUT)) as page:
        assert page.status == 200
        assert 'method="post"' in await page.text()
    async with signed_in.get(site("/")) as page:
        assert await page.text() == "public:user1"


async def test_custom_logout_landing_page(
    visitor: aiohttp.ClientSession,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """logout_redirect names where a logout lands."""
    site = await site_factory(logout_redirect="/explicit")
    await log_in(visitor, site, emu, user)
    async with visitor.post(site(LOGOUT), headers=SAME_ORIGIN_POST) as page:
        assert str(page.url) == site("/explicit")


async def test_no_secret_in_pages_redirects_or_logs(
    visitor: aiohttp.ClientSession,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither the auth_key nor the token shows up in any answer of the site or any log line."""
    site = await site_factory(storage=plain_storage())
    emu.approve(user, site.app)
    with caplog.at_level(logging.DEBUG):
        hops = await follow(visitor, site("/dashboard"), headers=NAVIGATE)
        emu.advance(3601)
        hops += await follow(visitor, site("/fresh"), headers=NAVIGATE)
    assert hops[-1].text == "fresh:user1@example.com"
    token = session_record(visitor, site)["auth"]["tk"]
    keys = [hop.url.query["auth_key"] for hop in hops if "auth_key" in hop.url.query]
    assert len(keys) == 2
    assert "GET /auth/twinne/callback HTTP/1.1" in caplog.text
    for secret in (token, *keys):
        assert secret not in caplog.text
        for hop in hops:
            if hop.url.port != site.runner.addresses[0][1]:
                continue  # Twinne's own redirect carries the key: that is the protocol
            assert secret not in hop.location
            assert secret not in hop.text
