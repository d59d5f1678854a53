"""Real headless Chromium: another site tries login CSRF and logout; tabs re-log in (issue 11).

Three sites, as a browser sees them: the test site on ``localhost``, Twinne
(the emulator) on ``127.0.0.1``, and an "evil" site on ``127.0.0.2``. Each
is a different site, so ``SameSite=Lax``, ``Sec-Fetch-Site`` and Twinne's
cross-site redirect back are the real thing. The evil pages use what any
site can: links, forms (submitted by a script), ``window.open`` and frames.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web
from websupport import (
    CALLBACK,
    CHROMIUM,
    CHROMIUM_ARGS,
    LOGIN,
    LOGOUT,
    Site,
    SiteFactory,
    require_binary,
)

from aiotwinne.testing import EmulatedUser, TwinneEmulator

pytestmark = pytest.mark.browser

EVIL_HOST = "127.0.0.2"


@attrs.define
class Evil:
    """The attacker's site: ``evil.page(html)`` serves a page and returns its URL."""

    url: str
    pages: dict[str, str] = attrs.field(factory=dict)

    def page(self, body: str) -> str:
        """Serve *body* at a new path of the evil site; its absolute URL."""
        path = f"/p{len(self.pages)}"
        self.pages[path] = f"<!DOCTYPE html><html><body>{body}</body></html>"
        return self.url + path


@pytest.fixture
async def evil() -> AsyncIterator[Evil]:
    """The evil site on 127.0.0.2 (another site than localhost and 127.0.0.1)."""
    site = Evil("")

    async def serve(request: web.Request) -> web.Response:
        body = site.pages.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{page}", serve)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, EVIL_HOST, 0).start()
    site.url = f"http://{EVIL_HOST}:{runner.addresses[0][1]}"
    try:
        yield site
    finally:
        await runner.cleanup()


@attrs.define
class Browser:
    """A Chromium context signed in on Twinne, recording every Set-Cookie the site sends."""

    context: Any
    site: Site
    set_cookies: list[str] = attrs.field(factory=list)
    _pending: list[asyncio.Task[None]] = attrs.field(factory=list)

    def watch(self, response: Any) -> None:
        """Note the Set-Cookie headers of an answer from the test site."""
        if response.url.startswith(self.site.url):
            self._pending.append(asyncio.ensure_future(self._note(response)))

    async def _note(self, response: Any) -> None:
        for header in await response.headers_array():
            if header["name"].lower() == "set-cookie":
                self.set_cookies.append(f"{response.url}: {header['value']}")

    async def cookies_set(self) -> list[str]:
        """The Set-Cookie headers seen so far (then forgotten)."""
        await asyncio.gather(*self._pending)
        self._pending.clear()
        seen, self.set_cookies = self.set_cookies, []
        return seen

    async def site_cookies(self) -> list[tuple[str, str]]:
        """The test site's cookies in the browser."""
        return [(c["name"], c["value"]) for c in await self.context.cookies(self.site.url)]

    async def new_page(self) -> Any:
        """A new tab."""
        page = await self.context.new_page()
        page.set_default_timeout(15_000)
        return page


BrowserFactory = Callable[[Site], Awaitable[Browser]]


@pytest.fixture
async def chromium(emu: TwinneEmulator, user: EmulatedUser) -> AsyncIterator[BrowserFactory]:
    """``await chromium(site)``: a fresh Chromium context, signed in on Twinne as ``user1``."""
    require_binary(CHROMIUM)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        contexts: list[Any] = []

        async def factory(site: Site) -> Browser:
            context = await browser.new_context()
            contexts.append(context)
            ((name, value),) = emu.sign_in(user).items()
            await context.add_cookies([{"name": name, "value": value, "url": emu.base_url}])
            wrapped = Browser(context, site)
            context.on("response", lambda response: wrapped.watch(response))
            return wrapped

        try:
            yield factory
        finally:
            for context in contexts:
                await context.close()
            await browser.close()


@pytest.fixture
async def site(site_factory: SiteFactory, emu: TwinneEmulator, user: EmulatedUser) -> Site:
    """The test site on localhost, its app approved by user1 (re-logins are silent)."""
    served = await site_factory(host="localhost")
    emu.approve(user, served.app)
    return served


async def _text(page: Any) -> str:
    return str(await page.evaluate("document.body.innerText"))


async def _open(page: Any, url: str, expected: str) -> str:
    """Go to *url* (as typed) and wait until the body starts with *expected*; the body."""
    await page.goto(url)
    await page.wait_for_function(
        "expected => document.body && document.body.innerText.startsWith(expected)",
        arg=expected,
    )
    return await _text(page)


async def _signed_in_as(browser: Browser, expected: str) -> None:
    page = await browser.new_page()
    assert await _open(page, browser.site("/"), "public:") == f"public:{expected}"
    await page.close()


def _attack_pages(evil: Evil, target: str) -> dict[str, str]:
    """Evil pages that send the browser to *target*: a link, a script-submitted form, an iframe."""
    url = html.escape(target)
    action, _, query = target.partition("?")
    fields = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, _, v in (pair.partition("=") for pair in query.split("&") if pair)
    )
    return {
        "link": evil.page(f'<a id="go" href="{url}">win a prize</a>'),
        "form": evil.page(
            f'<form id="f" method="get" action="{html.escape(action)}">{fields}</form>'
            '<script>document.getElementById("f").submit()</script>'
        ),
        "window.open": evil.page(
            f'<button id="go" onclick="window.open(\'{url}\')">open</button>'
        ),
    }


async def _visit_from_evil(browser: Browser, evil: Evil, target: str) -> list[str]:
    """Send the browser to *target* from each evil page; the body text of each landing page."""
    landed = []
    for kind, url in _attack_pages(evil, target).items():
        page = await browser.new_page()
        await page.goto(url)
        if kind == "link":
            async with page.expect_navigation():
                await page.click("#go")
            landing = page
        elif kind == "form":
            await page.wait_for_url(lambda u: not u.startswith(evil.url))
            landing = page
        else:
            async with page.expect_popup() as popup:
                await page.click("#go")
            landing = await popup.value
            await landing.wait_for_load_state()
        landed.append(await _text(landing))
        await landing.close()
        if landing is not page:
            await page.close()
    return landed


# -- row 1: login CSRF ---------------------------------------------------------------------


@pytest.mark.parametrize("victim", ["anonymous", "signed in", "expired"])
async def test_another_site_cannot_log_the_victim_in_as_the_attacker(
    chromium: BrowserFactory,
    site: Site,
    evil: Evil,
    emu: TwinneEmulator,
    victim: str,
) -> None:
    """Links, forms and window.open to the login route, guarded pages and the callback: nothing."""
    browser = await chromium(site)
    if victim != "anonymous":
        page = await browser.new_page()
        assert (await _open(page, site("/dashboard"), "dashboard:")).startswith("dashboard:user1")
        await page.close()
    if victim == "expired":
        emu.advance(3601)
    await browser.cookies_set()
    before = await browser.site_cookies()
    emu.reset_stats()

    for target in (f"{LOGIN}?next=/dashboard", "/dashboard", "/account/home"):
        for text in await _visit_from_evil(browser, evil, site(target)):
            if victim == "signed in" and target != f"{LOGIN}?next=/dashboard":
                assert ":user1" in text  # a valid session is served, as for any link
            else:
                assert text.startswith("Log in with Twinne"), text
                assert "Continue with Twinne" in text
    mallory = emu.add_user(user_name="mallory")
    emu.approve(mallory, site.app)
    for text in await _visit_from_evil(
        browser, evil, site(f"{CALLBACK}?auth_key={emu.authorize(mallory, site.app)}")
    ):
        assert "not started from this browser" in text

    assert await browser.cookies_set() == []
    assert await browser.site_cookies() == before
    assert emu.count("oauth") == emu.count("authorize") == 0
    if victim == "anonymous":
        await _signed_in_as(browser, "anonymous")
    else:
        # Still the victim: pages (after a silent re-login if the hour is over).
        page = await browser.new_page()
        assert (await _open(page, site("/dashboard"), "dashboard:")).startswith("dashboard:user1")
        assert emu.count("authorize") == (1 if victim == "expired" else 0)


async def test_the_continue_page_cannot_be_framed_and_its_button_logs_in(
    chromium: BrowserFactory, site: Site, evil: Evil, emu: TwinneEmulator
) -> None:
    """Framed by another site, the page does not render; clicked on our site, it logs in."""
    browser = await chromium(site)
    framing = evil.page(f'<iframe id="f" src="{html.escape(site(LOGIN))}"></iframe>')
    page = await browser.new_page()
    await page.goto(framing)
    await page.wait_for_timeout(300)
    frame = page.frame_locator("#f")
    assert await frame.locator("#continue").count() == 0
    assert emu.count() == 0

    await page.goto(evil.page(f'<a id="go" href="{html.escape(site("/dashboard?tab=2"))}">x</a>'))
    async with page.expect_navigation():
        await page.click("#go")
    assert "Continue with Twinne" in await _text(page)
    await page.click("#continue")
    await page.wait_for_url(site("/dashboard?tab=2"))
    assert (await _text(page)).startswith("dashboard:user1")
    assert emu.count("authorize") == 1


# -- row 2: logout ----------------------------------------------------------------------


async def test_another_site_cannot_log_the_victim_out(
    chromium: BrowserFactory, site: Site, evil: Evil, emu: TwinneEmulator
) -> None:
    """A posted form, links and window.open to logout and login: the victim stays signed in."""
    browser = await chromium(site)
    page = await browser.new_page()
    assert (await _open(page, site("/dashboard"), "dashboard:")).startswith("dashboard:user1")
    await browser.cookies_set()
    before = await browser.site_cookies()
    emu.reset_stats()

    post = evil.page(
        f'<form id="f" method="post" action="{html.escape(site(LOGOUT))}"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )
    await page.goto(post)
    await page.wait_for_url(site(LOGOUT))
    assert "Log out" in await _text(page)  # our page, with the button
    for text in await _visit_from_evil(browser, evil, site(LOGOUT)):
        assert text.startswith("Log out")
    for text in await _visit_from_evil(browser, evil, site(f"{LOGIN}?next=/")):
        assert "Continue with Twinne" in text

    assert await browser.cookies_set() == []
    assert await browser.site_cookies() == before
    await _signed_in_as(browser, "user1")
    assert emu.count() == 0

    # The button on our own page does log out.
    await page.goto(site(LOGOUT))
    await page.click("#logout")
    await page.wait_for_url(site("/"))
    await _signed_in_as(browser, "anonymous")


async def test_a_cross_site_logout_post_without_a_session_sets_no_cookie(
    chromium: BrowserFactory, site: Site, evil: Evil
) -> None:
    """A visitor with no session, sent to post the logout by another site: no Set-Cookie."""
    browser = await chromium(site)
    page = await browser.new_page()
    await page.goto(
        evil.page(
            f'<form id="f" method="post" action="{html.escape(site(LOGOUT))}"></form>'
            '<script>document.getElementById("f").submit()</script>'
        )
    )
    await page.wait_for_url(site(LOGOUT))
    assert await browser.cookies_set() == []
    assert await browser.site_cookies() == []


# -- row 3: tabs after the hour -----------------------------------------------------------


@pytest.mark.parametrize("tabs", [2, 10])
async def test_tabs_reloading_after_the_hour_all_land_on_their_page(
    chromium: BrowserFactory, site: Site, emu: TwinneEmulator, tabs: int
) -> None:
    """N tabs on N pages reload at once after expiry: each shows its own page, no error."""
    browser = await chromium(site)
    pages = [await browser.new_page() for _ in range(tabs)]
    for i, page in enumerate(pages):
        assert (await _open(page, site(f"/dashboard?tab={i}"), "dashboard:")).startswith(
            "dashboard:user1"
        )
    assert emu.count("authorize") == 1
    emu.advance(3601)
    await asyncio.gather(*(page.reload() for page in pages))
    for i, page in enumerate(pages):
        await page.wait_for_function(
            "() => document.body && document.body.innerText.startsWith('dashboard:')"
        )
        assert page.url == site(f"/dashboard?tab={i}")
        assert await _text(page) == "dashboard:user1:Ada Lovelace"
    assert emu.count("authorize") == 2  # one re-login for all the tabs
