"""The callback's page when the browser sent no session cookie: it names the likely causes.

Over real sockets: a site on 127.0.0.1 and aiohttp's cookie jar, which (like a
browser) keeps cookies per host and never sends a ``Secure`` cookie over plain
http.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import aiohttp_session
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from aiotwinne import TwinneClient
from aiotwinne.testing import TwinneEmulator
from aiotwinne.web import (
    DEFAULT_CALLBACK_PATH,
    DEFAULT_LOGIN_PATH,
    DEFAULT_TEXTS,
    cookie_storage,
    setup,
)

TYPED = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
FROM_TWINNE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
SiteFactory = Callable[[bool], Awaitable[int]]


@pytest.fixture
async def emu() -> AsyncIterator[TwinneEmulator]:
    """An emulator with one app and one user."""
    async with TwinneEmulator() as emulator:
        emulator.add_app()
        emulator.add_user()
        yield emulator


@pytest.fixture
async def serve(emu: TwinneEmulator) -> AsyncIterator[SiteFactory]:
    """Serve a site on http://127.0.0.1 whose session cookie is Secure or not; gives its port."""
    runners: list[web.AppRunner] = []

    async def start(secure: bool) -> int:
        app = web.Application()
        aiohttp_session.setup(app, cookie_storage(Fernet.generate_key(), secure=secure))
        client = TwinneClient(
            emu.default_app.app_id, emu.default_app.secret, base_url=emu.base_url
        )
        # secure_cookies=False: this site is plain http on purpose (setup() checks it).
        setup(app, client, secure_cookies=secure, clock=emu.now)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        port: int = runner.addresses[0][1]
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


async def _login_then_callback(
    emu: TwinneEmulator, start: str, back: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """Start a login at *start* (a typed URL), then come back to the callback on *back*."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(
            f"{start}{DEFAULT_LOGIN_PATH}?next=/", headers=TYPED, allow_redirects=False
        ) as answer:
            assert answer.status == 302
            assert "Set-Cookie" in answer.headers
        key = emu.authorize(emu.default_user, emu.default_app)
        async with browser.get(
            f"{back}{DEFAULT_CALLBACK_PATH}?auth_key={key}",
            headers={**FROM_TWINNE, **(headers or {})},
            allow_redirects=False,
        ) as answer:
            return answer.status, await answer.text()


async def test_a_secure_cookie_over_plain_http_is_named(
    emu: TwinneEmulator, serve: SiteFactory
) -> None:
    """Secure cookie, plain http: the page says so, not "not started from this browser"."""
    site = f"http://127.0.0.1:{await serve(True)}"
    status, text = await _login_then_callback(emu, site, site)
    assert status == 400
    assert "a Secure cookie is never sent over plain http" in text
    assert "localhost and 127.0.0.1 are different sites" in text
    assert "not started from this browser" not in text
    assert emu.count("authorize") == 0


async def test_the_same_page_in_french(emu: TwinneEmulator, serve: SiteFactory) -> None:
    """The explanation is translated like every other text."""
    site = f"http://127.0.0.1:{await serve(True)}"
    _, text = await _login_then_callback(emu, site, site, {"Accept-Language": "fr"})
    assert "un cookie Secure n&#x27;est jamais envoyé en http simple" in text


async def test_another_host_than_the_login_started_on_is_named(
    emu: TwinneEmulator, serve: SiteFactory
) -> None:
    """Login on localhost, callback on 127.0.0.1: no cookie came, the page says why."""
    port = await serve(False)
    status, text = await _login_then_callback(
        emu, f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    )
    assert status == 400
    assert "not started from this browser" in text
    assert "sent no session cookie" in text
    assert "localhost and 127.0.0.1 are different sites" in text
    assert "Secure" not in text


async def test_a_session_without_this_login_gets_the_plain_refusal(
    emu: TwinneEmulator, serve: SiteFactory
) -> None:
    """A cookie came but its pending login expired: no word about cookies."""
    port = await serve(False)
    site = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(
            f"{site}{DEFAULT_LOGIN_PATH}?next=/", headers=TYPED, allow_redirects=False
        ) as answer:
            assert answer.status == 302
        emu.advance(3600)  # past pending_ttl
        key = emu.authorize(emu.default_user, emu.default_app)
        async with browser.get(
            f"{site}{DEFAULT_CALLBACK_PATH}?auth_key={key}",
            headers={**FROM_TWINNE, "Accept": "application/json"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 400
            body = await answer.json()
    assert body == {
        "error": "no_pending_login",
        "message": DEFAULT_TEXTS["en"]["error.no_pending_login.detail"],
        "login_url": f"{DEFAULT_LOGIN_PATH}?next=/",
    }


async def test_json_callers_keep_the_code(emu: TwinneEmulator, serve: SiteFactory) -> None:
    """A JSON caller with no cookie gets the same code and the explanation as its message."""
    site = f"http://127.0.0.1:{await serve(True)}"
    status, text = await _login_then_callback(emu, site, site, {"Accept": "application/json"})
    assert status == 400
    assert '"error": "no_pending_login"' in text
    assert "never sent over plain http" in text
