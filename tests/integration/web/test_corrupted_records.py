"""A session record that is corrupted or from another layout means a fresh login, never a 500."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from websupport import NAVIGATE, Site, SiteFactory, log_in, plain_storage
from yarl import URL

from aiotwinne.testing import EmulatedUser, TwinneEmulator

COOKIE = "TEST_SESSION"

# name -> how the signed-in ``auth`` record is damaged
DAMAGE: dict[str, Callable[[dict[str, Any]], object]] = {
    "no tk": lambda auth: auth.pop("tk"),
    "tk not a str": lambda auth: auth.update(tk=12345),
    "tk empty": lambda auth: auth.update(tk=""),
    "tk with a space": lambda auth: auth.update(tk="abc def"),
    "no iat": lambda auth: auth.pop("iat"),
    "iat a string": lambda auth: auth.update(iat="yesterday"),
    "exp a string": lambda auth: auth.update(exp="soon"),
    "exp not a number": lambda auth: auth.update(exp=math.nan),
    "exp past year 9999": lambda auth: auth.update(exp=1e300),
    "exp a huge int": lambda auth: auth.update(exp=10**400),
    "no u": lambda auth: auth.pop("u"),
    "u not a dict": lambda auth: auth.update(u=["user1"]),
    "u without id": lambda auth: auth["u"].pop("id"),
    "u id a string": lambda auth: auth["u"].update(id="1"),
    "u without username": lambda auth: auth["u"].pop("un"),
}


async def _signed_in_with_damaged_record(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    damage: Callable[[dict[str, Any]], object],
) -> Site:
    """Log *visitor* in on a plain-cookie site, then damage the record in its cookie."""
    site = await site_factory(storage=plain_storage())
    await log_in(visitor, site, emu, user)
    cookie = visitor.cookie_jar.filter_cookies(URL(site.url))[COOKIE]
    data = json.loads(cookie.value)
    damage(data["session"]["aiotwinne"]["auth"])
    visitor.cookie_jar.update_cookies({COOKIE: json.dumps(data)}, URL(site.url))
    return site


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
@pytest.mark.parametrize("path", ["/dashboard", "/explicit?guard=1", "/fresh", "/account/home"])
async def test_a_guarded_page_with_a_corrupted_record_starts_a_fresh_login(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    damage: Callable[[dict[str, Any]], object],
    path: str,
) -> None:
    """Decorator, require_login, get_user(fresh=True) and prefix guard: a redirect to Twinne."""
    site = await _signed_in_with_damaged_record(site_factory, visitor, emu, user, damage)
    emu.reset_stats()
    async with visitor.get(site(path), headers=NAVIGATE, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        assert answer.headers["Location"] == site.client.login_url()
    assert emu.count() == 0  # the damaged token was never sent


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
async def test_a_public_page_with_a_corrupted_record_sees_an_anonymous_visitor(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    damage: Callable[[dict[str, Any]], object],
) -> None:
    """get_user() is None for a record that does not read back whole."""
    site = await _signed_in_with_damaged_record(site_factory, visitor, emu, user, damage)
    async with visitor.get(site("/")) as answer:
        assert answer.status == 200
        assert await answer.text() == "public:anonymous"


async def test_a_corrupted_record_then_logs_in_again_silently(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Following the redirect, a user who approved before is back on the page, signed in."""
    site = await _signed_in_with_damaged_record(site_factory, visitor, emu, user, DAMAGE["no tk"])
    async with visitor.get(site("/fresh"), headers=NAVIGATE) as page:
        assert page.status == 200
        assert (await page.text()).startswith("fresh:")
