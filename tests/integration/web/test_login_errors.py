"""Twinne failing during a login: friendly pages (4xx/502), JSON for API callers, no loops."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from websupport import CALLBACK, JSON, LOGIN, NAVIGATE, Site

from aiotwinne.testing import EmulatedUser, TwinneEmulator

BOGUS = "0123456789abcdef0123456789abcdef"


async def _pending(
    visitor: aiohttp.ClientSession, site: Site, next_path: str = "/dashboard"
) -> None:
    async with visitor.get(
        site(LOGIN), params={"next": next_path}, headers=NAVIGATE, allow_redirects=False
    ) as r:
        assert r.status == 302


async def _bogus_callback(
    visitor: aiohttp.ClientSession, site: Site, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    async with visitor.get(
        site(f"{CALLBACK}?auth_key={BOGUS}"), headers=headers, allow_redirects=False
    ) as answer:
        await answer.read()
        return answer


async def test_an_invalid_auth_key_gets_one_more_round_trip_then_a_400_page(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator
) -> None:
    """An unknown key: one more round trip; unknown again: 400 with 'Try again', no key shown."""
    await _pending(visitor, site)
    first = await _bogus_callback(visitor, site)
    assert first.status == 302
    assert first.headers["Location"] == site.client.login_url()
    page = await _bogus_callback(visitor, site)
    assert page.status == 400
    text = await page.text()
    assert "no longer valid" in text
    assert 'href="/auth/twinne/login?next=/dashboard"' in text
    assert BOGUS not in text
    assert emu.count("authorize") == 2


async def test_invalid_auth_key_gives_json_to_api_callers(
    visitor: aiohttp.ClientSession, site: Site
) -> None:
    """The same failure answers JSON when JSON is asked for."""
    await _pending(visitor, site)
    assert (await _bogus_callback(visitor, site, JSON)).status == 302
    answer = await _bogus_callback(visitor, site, JSON)
    assert answer.status == 400
    body = await answer.json()
    assert body["error"] == "invalid_auth_key"
    assert body["login_url"] == "/auth/twinne/login?next=/dashboard"


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("drop", {}),
        ("http_error", {"status": 502, "after_processing": True}),
        ("html", {"after_processing": True}),
        ("malformed_json", {}),
    ],
)
async def test_a_possibly_spent_key_is_retried_once_with_a_fresh_login(
    visitor: aiohttp.ClientSession,
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
    kind: str,
    params: dict[str, Any],
) -> None:
    """A failed exchange that may have spent the key sends the browser to one fresh login."""
    emu.approve(user, site.app)
    emu.inject(kind, endpoint="authorize", **params)  # type: ignore[arg-type]
    async with visitor.get(site("/dashboard"), headers=NAVIGATE) as page:
        assert page.status == 200
        assert await page.text() == "dashboard:user1:Ada Lovelace"
    assert emu.count("authorize") == 2


@pytest.mark.parametrize(
    ("kind", "params", "marker"),
    [
        ("http_error", {"status": 502}, "Twinne answered with an error"),
        ("html", {}, "Twinne answered with an error"),
        ("drop", {}, "could not be reached"),
    ],
)
async def test_a_provider_that_keeps_failing_ends_in_an_error_page(
    visitor: aiohttp.ClientSession,
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
    kind: str,
    params: dict[str, Any],
    marker: str,
) -> None:
    """Two spent-key failures in a row: a 502 page with 'Try again', not a redirect loop."""
    emu.approve(user, site.app)
    emu.inject(kind, endpoint="authorize", count=5, **params)  # type: ignore[arg-type]
    async with visitor.get(site("/dashboard"), headers=NAVIGATE) as page:
        assert page.status == 502
        text = await page.text()
    assert marker in text
    assert "Try again" in text
    assert "Traceback" not in text
    assert emu.count("authorize") == 2


async def test_twinne_unreachable_during_the_exchange_gives_502(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A connection that never opens (the key is not spent): a 502 page at once."""
    await _pending(visitor, site)
    key = emu.authorize(user, site.app)
    await emu.stop()
    try:
        async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as page:
            assert page.status == 502
            assert "could not be reached" in await page.text()
    finally:
        await emu.start()


async def test_provider_text_is_escaped(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Twinne's error text is shown HTML-escaped."""
    await _pending(visitor, site)
    key = emu.authorize(user, site.app)
    emu.set_feature_enabled(False, message="<script>alert('x')</script>")
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as page:
        assert page.status == 502
        text = await page.text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text


async def test_a_disabled_app_gives_502(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Twinne refusing the app itself is the provider's refusal: 502 with its message."""
    await _pending(visitor, site)
    key = emu.authorize(user, site.app)
    site.app.enabled = False
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as page:
        assert page.status == 502
        assert "doesn&#x27;t exist or has been disabled" in await page.text()


async def test_a_deleted_user_gets_403(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A key whose user vanished before the profile was read: 403, no session."""
    await _pending(visitor, site)
    key = emu.authorize(user, site.app)
    emu.delete_user(user)
    async with visitor.get(site(f"{CALLBACK}?auth_key={key}"), allow_redirects=False) as page:
        assert page.status == 403
        assert "no longer exists" in await page.text()
