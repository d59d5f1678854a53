"""The emulator's browser side: /api/oauth, the login form and the consent page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import aiohttp

from aiotwinne.testing import SESSION_COOKIE, TwinneEmulator

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]

# read_form (conftest) returns a Form: .action, .fields, .buttons, .submit(button, **values).


async def _sign_in(
    browser: aiohttp.ClientSession,
    emu: TwinneEmulator,
    read_form: Callable[[str], Any],
    username: str,
    start: str,
) -> aiohttp.ClientResponse:
    """Open *start* (the sign-in page, at that same URL), sign in, and return the page after it."""
    async with browser.get(start, allow_redirects=False) as page:
        assert page.status == 200
        form = read_form(await page.text())
    async with browser.post(
        urljoin(emu.base_url, form.action), data=form.submit(username=username)
    ) as after:
        await after.read()
        return after


async def test_login_then_approve_redirects_with_auth_key(
    twinne_emulator: TwinneEmulator,
    browser: aiohttp.ClientSession,
    read_form: Callable[[str], Any],
) -> None:
    """Login link → login form → consent page → 302 to the redirect URL with a working key."""
    emu = twinne_emulator
    app = emu.add_app(name="Shop", redirect_url="https://shop.example/cb")
    user = emu.add_user(user_name="jdoe")
    consent = await _sign_in(browser, emu, read_form, "jdoe", emu.login_url(app))
    assert consent.url.path == "/api/oauth"
    html = await consent.text()
    assert "Log in With Twinne" in html
    assert "Shop" in html
    form = read_form(html)
    assert set(form.buttons) == {"Approve", "Cancel"}
    async with browser.post(
        urljoin(emu.base_url, form.action), data=form.submit("Approve"), allow_redirects=False
    ) as answer:
        assert answer.status == 302
        location = answer.headers["Location"]
    assert location.startswith("https://shop.example/cb?auth_key=")
    auth_key = location.rsplit("=", 1)[1]
    assert len(auth_key) == 32
    assert auth_key == auth_key.lower()
    assert emu.is_approved(user, app)


async def test_approved_user_bounces_straight_back(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A user who approved before gets a 302 with a new key and no page at all."""
    emu = twinne_emulator
    app, user = emu.default_app, emu.default_user
    emu.approve(user, app)
    browser.cookie_jar.update_cookies(emu.sign_in(user))
    async with browser.get(emu.login_url(app), allow_redirects=False) as first:
        assert first.status == 302
        key1 = first.headers["Location"].split("?auth_key=")[1]
    async with browser.get(emu.login_url(app), allow_redirects=False) as second:
        key2 = second.headers["Location"].split("?auth_key=")[1]
    assert key1 != key2


async def test_auth_key_appended_after_existing_query(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """``?auth_key=`` is appended as plain text even when the URL already has a ``?``."""
    emu = twinne_emulator
    app = emu.add_app(redirect_url="http://127.0.0.1:9/cb?x=1")
    user = emu.default_user
    emu.approve(user, app)
    browser.cookie_jar.update_cookies(emu.sign_in(user))
    async with browser.get(emu.login_url(app), allow_redirects=False) as answer:
        location = answer.headers["Location"]
    prefix = "http://127.0.0.1:9/cb?x=1?auth_key="
    assert location.startswith(prefix)
    assert len(location) == len(prefix) + 32


async def test_default_redirect_lands_on_emulator_callback(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """The default redirect URL ``/callback`` is the emulator's page, which hides the key."""
    emu = twinne_emulator
    emu.approve(emu.default_user, emu.default_app)
    browser.cookie_jar.update_cookies(emu.sign_in(emu.default_user))
    async with browser.get(emu.login_url(emu.default_app)) as page:
        assert page.url.path == "/callback"
        key = page.url.query["auth_key"]
        html = await page.text()
    assert "An auth_key arrived" in html
    assert key not in html


async def test_cancel_does_not_approve(
    twinne_emulator: TwinneEmulator,
    browser: aiohttp.ClientSession,
    read_form: Callable[[str], Any],
) -> None:
    """Cancel on the consent page shows a page, no redirect and no approval."""
    emu = twinne_emulator
    browser.cookie_jar.update_cookies(emu.sign_in(emu.default_user))
    async with browser.get(emu.login_url(emu.default_app)) as page:
        form = read_form(await page.text())
    async with browser.post(
        urljoin(emu.base_url, form.action), data=form.submit("Cancel"), allow_redirects=False
    ) as answer:
        assert answer.status == 200
        assert "Login cancelled" in await answer.text()
    assert not emu.is_approved(emu.default_user, emu.default_app)


async def test_consent_post_without_csrf_is_refused(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """An approval posted without the page's CSRF field is refused with 400."""
    emu = twinne_emulator
    browser.cookie_jar.update_cookies(emu.sign_in(emu.default_user))
    async with browser.post(
        emu.login_url(emu.default_app), data={"action": "approve"}, allow_redirects=False
    ) as answer:
        assert answer.status == 400
    assert not emu.is_approved(emu.default_user, emu.default_app)


async def test_unknown_username_shows_the_form_again(
    twinne_emulator: TwinneEmulator,
    browser: aiohttp.ClientSession,
    read_form: Callable[[str], Any],
) -> None:
    """An unknown username is answered with the login form and an error, no cookie."""
    emu = twinne_emulator
    after = await _sign_in(browser, emu, read_form, "nobody", emu.login_url(emu.default_app))
    assert after.url.path == "/login"
    # The form shown again still leads back to the login link.
    next_url = read_form(await after.text()).fields["next"]
    assert next_url == f"/api/oauth?app_id={emu.default_app.app_id}"
    assert "No Twinne user has that username." in await after.text()
    assert not any(c.key == SESSION_COOKIE for c in browser.cookie_jar)


async def test_login_next_is_never_an_open_redirect(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A ``next`` a browser would follow off-site sends the user to the emulator's home instead."""
    emu = twinne_emulator
    targets = (
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/\t/evil.example/",  # browsers drop the tab: //evil.example/
        "/\n/evil.example/",
        " //evil.example/",  # and strip leading spaces
        "\r\n//evil.example/",
        "/a\\..\\\\evil.example",
    )
    for target in targets:
        async with browser.post(
            emu.login_page_url,
            data={"username": emu.default_user.username, "next": target},
            allow_redirects=False,
        ) as answer:
            assert (answer.status, answer.headers["Location"]) == (302, "/"), repr(target)


async def test_login_next_with_a_line_break_is_answered(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A line break inside a local ``next`` is removed, as a browser would: no dropped answer."""
    emu = twinne_emulator
    for target, location in (
        ("/api/oauth?app_id=1\r\nSet-Cookie: x=1", "/api/oauth?app_id=1Set-Cookie:%20x=1"),
        ("/caf\u00e9", "/caf%C3%A9"),
    ):
        async with browser.post(
            emu.login_page_url,
            data={"username": emu.default_user.username, "next": target},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 302
            assert answer.headers["Location"] == location
            assert "x" not in {cookie.key for cookie in browser.cookie_jar}


async def test_oauth_not_signed_in_shows_the_sign_in_page_in_place(
    twinne_emulator: TwinneEmulator,
    browser: aiohttp.ClientSession,
    read_form: Callable[[str], Any],
) -> None:
    """Not signed in, the login link answers 200 with the sign-in form, whatever the app_id."""
    emu = twinne_emulator
    for query in (f"app_id={emu.default_app.app_id}", "app_id=999", ""):
        url = f"{emu.base_url}/api/oauth" + (f"?{query}" if query else "")
        async with browser.get(url, allow_redirects=False) as answer:
            assert (answer.status, answer.content_type) == (200, "text/html")
            assert "Sign in to Twinne" in await answer.text()
            form = read_form(await answer.text())
        assert form.action == "/login"
        assert form.fields["next"] == "/api/oauth" + (f"?{query}" if query else "")


async def test_unknown_or_disabled_app_gets_an_error_page(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Signed in: an unknown or disabled app is a 200 error page; a missing app_id a 404."""
    emu = twinne_emulator
    disabled = emu.add_app(enabled=False)
    browser.cookie_jar.update_cookies(emu.sign_in(emu.default_user))
    for url in (f"{emu.base_url}/api/oauth?app_id=999", emu.login_url(disabled)):
        async with browser.get(url, allow_redirects=False) as answer:
            assert answer.status == 200
            assert answer.content_type == "text/html"
            assert "doesn&#x27;t exist or has been disabled" in await answer.text()
    for url in (f"{emu.base_url}/api/oauth", f"{emu.base_url}/api/oauth?app_id=%20"):
        async with browser.get(url, allow_redirects=False) as answer:
            assert (answer.status, answer.content_type) == (404, "text/html")
            assert "Page not found" in await answer.text()


async def test_pages_escape_what_they_echo(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """App names and usernames with markup are escaped on every page."""
    emu = twinne_emulator
    app = emu.add_app(name='<script>alert("app")</script>')
    user = emu.add_user(user_name="<b>bold</b>")
    browser.cookie_jar.update_cookies(emu.sign_in(user))
    async with browser.get(emu.login_url(app)) as page:
        html = await page.text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;app&quot;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    async with browser.get(f"{emu.base_url}/login?next=/%22%3E%3Cscript%3E") as page:
        assert '"><script>' not in await page.text()


async def test_logout_forgets_the_session(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """After signing out, the login link leads to the login form again."""
    emu = twinne_emulator
    browser.cookie_jar.update_cookies(emu.sign_in(emu.default_user))
    async with browser.get(f"{emu.base_url}/") as home:
        assert emu.default_user.username in await home.text()
    async with browser.post(f"{emu.base_url}/logout") as after:
        assert "Not signed in" in await after.text()
    async with browser.get(emu.login_url(emu.default_app), allow_redirects=False) as answer:
        assert answer.status == 200
        assert "Sign in to Twinne" in await answer.text()


async def test_deleted_user_session_must_sign_in_again(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A session whose user was deleted counts as signed out."""
    emu = twinne_emulator
    browser.cookie_jar.update_cookies(emu.sign_in(emu.default_user))
    emu.delete_user(emu.default_user)
    async with browser.get(emu.login_url(emu.default_app), allow_redirects=False) as answer:
        assert answer.status == 200
        assert "Sign in to Twinne" in await answer.text()


async def test_feature_disabled_oauth_shows_error_page(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """With the apps feature off, the login link shows the admin's message as a page."""
    emu = twinne_emulator
    browser.cookie_jar.update_cookies(emu.sign_in(emu.default_user))
    emu.set_feature_enabled(False)
    async with browser.get(emu.login_url(emu.default_app), allow_redirects=False) as answer:
        assert answer.status == 200
        assert "This feature has been disabled by the admin" in await answer.text()
