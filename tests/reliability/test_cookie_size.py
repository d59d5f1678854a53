"""The session cookie the site sends stays within what browsers keep (4,096 bytes).

A browser silently ignores a larger ``Set-Cookie``: the session keeps its old
value, and a login started in that response is lost. Long return paths (a
search page's query) in several tabs, on top of a signed-in record with long
names, are the worst case.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
from cryptography.fernet import Fernet
from relsupport import Figures, SecretWatch
from websupport import NAVIGATE, follow
from yarl import URL

from aiotwinne.testing import TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, cookie_storage
from aiotwinne.web._middleware import WAIT_FOR_OTHER_TAB

BROWSER_LIMIT = 4096  # name + value, as browsers count it (RFC 6265 section 6.1)


async def test_session_cookies_stay_under_the_browser_limit_with_long_return_paths(
    emu: TwinneEmulator,
    site_factory: Callable[..., Any],
    browser_factory: Callable[..., aiohttp.ClientSession],
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """Five tabs with long return paths, long names: each Set-Cookie under 4 KB, logins work."""
    site = await site_factory(storage=cookie_storage(Fernet.generate_key(), secure=False))
    user = emu.add_user(
        user_name="u" * 200,
        user_firstname="F" * 200,
        user_lastname="L" * 200,
        user_picture="photos/" + "p" * 400 + ".jpg",
    )
    emu.approve(user, site.app)
    browser = browser_factory()
    browser.cookie_jar.update_cookies(emu.sign_in(user))
    sizes: list[int] = []

    async def get(path: str) -> aiohttp.ClientResponse:
        async with browser.get(site(path), headers=NAVIGATE, allow_redirects=False) as answer:
            for header in answer.headers.getall("Set-Cookie", []):
                morsel = SimpleCookie(header).get(DEFAULT_COOKIE_NAME)
                if morsel is not None:
                    sizes.append(len(DEFAULT_COOKIE_NAME) + len(morsel.value))
            return answer

    # Signed in (a long summary), then the hour ends and five tabs need a login at once.
    assert (await follow(browser, site("/dashboard"), headers=NAVIGATE))[-1].status == 200
    emu.advance(3601)
    # Four tabs with long search queries (kept whole) and one with a 2 KB one (trimmed).
    tabs = [f"/dashboard?tab={n}&q=" + "x" * 480 for n in range(4)]
    tabs.append("/settings?q=" + "y" * 2000)
    for path in tabs:
        # Seconds apart, each still at Twinne's pages: no tab waits for another's login.
        emu.advance(WAIT_FOR_OTHER_TAB)
        assert (await get(path)).status == 302
    # Twinne sends each tab back with a key; every callback still finds a pending login.
    completed = 0
    for _ in tabs:
        key = emu.authorize(user, site.app)
        answer = await get(f"/auth/twinne/callback?auth_key={key}")
        completed += answer.status == 303
    cookie = browser.cookie_jar.filter_cookies(URL(site.url))[DEFAULT_COOKIE_NAME]

    assert max(sizes) <= BROWSER_LIMIT, sizes
    assert completed >= 1
    assert cookie.value  # the jar (which also drops over-4 KB cookies) kept the last one
    figures.record(
        "Session cookie size",
        **{
            "largest Set-Cookie (name + value, bytes)": max(sizes),
            "browser limit (bytes)": BROWSER_LIMIT,
            "tabs with long return paths (4 x 500 B, 1 x 2 KB)": len(tabs),
            "callbacks completed": completed,
        },
    )
