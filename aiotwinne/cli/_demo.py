"""``demo``: the whole "Log in With Twinne" story on loopback, told step by step.

It starts the emulator and the demo site (:mod:`._site`, the site
``examples/webapp.py`` serves) on 127.0.0.1, then a scripted browser
(:mod:`._browser`) opens a guarded page, signs in on Twinne and approves the
app, is served from the session, lives through the token's hour and a silent
re-login, and finally the client fetches a few thousand profiles at once.
Every hop is printed, secrets redacted (tokens are shown as fingerprints).
With ``--serve`` both stay up for a person to click through, until Ctrl-C.

Everything it needs is in the package (the ``web`` and ``cli`` extras), so it
runs from an installed wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import time
from types import ModuleType
from typing import TYPE_CHECKING

import aiohttp

from .._redact import fingerprint, redact_url
from ..client import TwinneClient
from ..models import AccessToken
from ._browser import Browser, BrowserError, Hop
from ._common import EXIT_FAILED, EXIT_OK, UsageError, error, progress_bar, reason
from ._emulator import import_testing
from ._profiles import Tally

if TYPE_CHECKING:
    from aiohttp import web

    from ..testing import EmulatedApp, TwinneEmulator

__all__ = ["Story", "demo"]


class _DemoError(Exception):
    """The story did not go as written: exit 1 with the step that failed."""


class _RecordingClient(TwinneClient):
    """The site's client, remembering the last token it obtained so the demo can show it."""

    last_token: AccessToken | None = None

    async def exchange(self, auth_key: str) -> AccessToken:
        """Exchange as usual, and remember the token."""
        token = await super().exchange(auth_key)
        self.last_token = token
        return token


def _load_site() -> ModuleType:
    """The demo site, which needs the ``web`` extra: a missing extra is a usage error."""
    try:
        from . import _site
    except ImportError as exc:
        raise UsageError(
            f"the demo site needs the 'web' extra (pip install 'aiotwinne[web,cli]'): {exc}"
        ) from None
    return _site


async def demo(args: argparse.Namespace) -> int:
    """``aiotwinne demo``: tell the story; with ``--serve``, keep serving until Ctrl-C."""
    site_module = _load_site()
    testing = import_testing()
    site_port = args.port if args.port is not None else (8080 if args.serve else 0)
    twinne_port = args.twinne_port if args.twinne_port is not None else (8081 if args.serve else 0)
    if args.serve:
        args.serves = True
    started = time.perf_counter()

    emu: TwinneEmulator = testing.TwinneEmulator(port=twinne_port)
    try:
        await emu.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{twinne_port}: {reason(exc)}") from None
    try:
        app = emu.add_app(name="Demo Shop", redirect_url="/callback")
        emu.add_user(user_name="ada", user_firstname="Ada", user_lastname="Lovelace")
        client = _RecordingClient(app.app_id, app.secret, base_url=emu.base_url)
        site_app = site_module.create_app(client, secure_cookies=False, clock=emu.now)
        runner = await _start_site(site_app, site_port)
        try:
            site = f"http://127.0.0.1:{runner.addresses[0][1]}"
            app.redirect_url = site + "/auth/twinne/callback"
            story = Story(emu, app, client, site)
            await story.tell(args.count)
            print(f"\nThe whole story took {time.perf_counter() - started:.1f}s.")
            if args.serve:
                _announce_serving(emu, site)
                await asyncio.Event().wait()
            else:
                print("Run `aiotwinne demo --serve` to click through it in a browser.")
        finally:
            await runner.cleanup()
    except (_DemoError, BrowserError) as exc:
        error(f"the demo went wrong: {exc}")
        return EXIT_FAILED
    finally:
        await emu.close()
    return EXIT_OK


async def _start_site(app: web.Application, port: int) -> web.AppRunner:
    from aiohttp import web

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {reason(exc)}") from None
    return runner


def _announce_serving(emu: TwinneEmulator, site: str) -> None:
    print(
        "\nBoth keep running, for you to click through in a browser:\n"
        f"  the site      {site}/   <- open this\n"
        f"  Twinne        {emu.base_url}/   (sign in as ada, or user2 and on; no password)\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )


class Story:
    """Walks a browser through the site and the emulator, printing each step.

    Args:
        emu: The running emulator.
        app: The site's app on it.
        client: The site's client.
        site: The site's address.
    """

    def __init__(
        self, emu: TwinneEmulator, app: EmulatedApp, client: _RecordingClient, site: str
    ) -> None:
        self.emu = emu
        self.app = app
        self.client = client
        self.site = site
        self.twinne = emu.base_url
        self.step = 0

    async def tell(self, count: int) -> None:
        """The whole story: a login, a page from the session, a re-login, a bulk fetch."""
        print(
            "aiotwinne demo: the whole 'Log in With Twinne' story, on loopback\n"
            f"  Twinne (the emulator)          {self.twinne}\n"
            f"  the site (examples/webapp.py)  {self.site}"
        )
        jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1, as a browser does
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            browser = Browser(session, on_hop=lambda hop: print(f"  {self._describe(hop)}"))
            await self._first_login(browser)
            await self._guarded_page(browser)
            await self._relogin(browser)
        await self._bulk(count)

    # the steps --------------------------------------------------------------

    async def _first_login(self, browser: Browser) -> None:
        self._title("A visitor opens a guarded page, /profile, without being logged in")
        hops = await browser.open(self.site + "/profile")
        self._expect(hops, "Sign in", "Twinne's sign-in page")
        print(f"  The login link the site sent the browser to: {self.client.login_url()}")

        self._title("On Twinne she signs in as 'ada', and Twinne asks her to approve the app")
        hops = await browser.submit({"username": "ada"})
        self._expect(hops, "Approve", "the approval page")

        self._title("She clicks Approve: Twinne sends her to the callback with an auth_key")
        hops = await browser.submit({"action": "approve"})
        page = self._expect(hops, 'id="name"', "the profile page")
        print(f"  Signed in: the site shows {_element_text(page, 'name')!r}")

        self._title("The callback exchanged the single-use auth_key for an access token")
        token = self.client.last_token
        if token is None:
            raise _DemoError("the site never exchanged an auth_key")
        print(
            f"  token {token.fingerprint} (a fingerprint: the token itself is a secret), "
            f"valid {token.expires_in / 60:.0f} minutes, "
            f"until {token.expires_at:%H:%M:%S} UTC"
        )

        self._title("The profile Twinne returns for that token")
        user = await self.client.get_user_info(token)
        for key, value in (
            ("id", user.id),
            ("username", user.username),
            ("name", user.full_name),
            ("email", user.email),
            ("picture", user.picture_url),
            ("registered", user.registered),
        ):
            print(f"  {key:<11}{value}")

    async def _guarded_page(self, browser: Browser) -> None:
        self._title("A guarded page is served straight from the session: no round trip")
        hops = await browser.click("/profile")
        if len(hops) != 1:
            raise _DemoError("the guarded page redirected although the session is fresh")
        self._expect(hops, 'id="name"', "the profile page")

    async def _relogin(self, browser: Browser) -> None:
        self._title("An hour passes (the emulator's clock moves 3601 s): the token expires")
        before = self.client.last_token
        self.emu.advance(3601)
        print(
            "  Twinne has no refresh token, so the next page view goes through Twinne\n"
            "  and back; she approved before, so no page is shown, only redirects:"
        )
        hops = await browser.click("/profile")
        self._expect(hops, 'id="name"', "the profile page")
        after = self.client.last_token
        if after is None or before is None or after.value == before.value:
            raise _DemoError("the silent re-login did not obtain a new token")
        print(
            f"  Silent re-login: {len(hops) - 1} redirects, new token {after.fingerprint} "
            f"(was {before.fingerprint})"
        )

    async def _bulk(self, count: int) -> None:
        emu, app = self.emu, self.app
        expired, deleted, unknown = (
            max(1, count // 150),
            max(1, count // 300),
            max(1, count // 300),
        )
        good = max(0, count - expired - deleted - unknown)
        self._title(f"Bulk: fetch {count:,} profiles at once, 32 requests at a time")
        old = emu.add_users(expired)
        tokens = [emu.issue_token(user, app) for user in old]
        emu.advance(3601)  # these are now expired
        tokens += emu.issue_tokens(good, app)
        gone = emu.add_users(deleted)
        tokens += [emu.issue_token(user, app) for user in gone]
        for user in gone:
            emu.delete_user(user)
        tokens += [f"{n:032x}" for n in range(1, unknown + 1)]  # never issued
        # Spread the bad ones through the good ones, deterministically.
        tokens.sort(key=fingerprint)
        print(
            f"  {good:,} valid tokens with {expired} expired, {deleted} of deleted users "
            f"and {unknown} unknown mixed in"
        )
        emu.reset_stats()
        tally = Tally()
        bar = progress_bar(total=len(tokens), noun="profile")
        try:
            async with contextlib.aclosing(
                self.client.fetch_profiles(tokens, concurrency=32)
            ) as results:
                async for result in results:
                    tally.add(result)
                    if bar is not None:
                        bar.update()
        finally:
            if bar is not None:
                bar.close()
        print(f"  {tally.summary('token')}")
        print(
            f"  Twinne answered {emu.count('user_info'):,} requests: one per token, "
            "and one result per token, in any mix of outcomes"
        )

    # helpers --------------------------------------------------------------------

    def _title(self, text: str) -> None:
        self.step += 1
        print(f"\n{self.step}. {text}")

    def _describe(self, hop: Hop) -> str:
        where = f"{hop.method:<4} {self._short(hop.url)}"
        if hop.location is not None:
            return f"{where}  ->  {hop.status}  {self._short(hop.location)}"
        title = _element_text(hop.body, "", tag="title")
        return f"{where}  ->  {hop.status}" + (f"  page: {title!r}" if title else "")

    def _short(self, url: str) -> str:
        url = redact_url(url)
        for prefix, label in ((self.site, "site"), (self.twinne, "twinne")):
            if url.startswith(prefix):
                return f"[{label}] {url[len(prefix) :] or '/'}"
        return url

    def _expect(self, hops: list[Hop], marker: str, what: str) -> str:
        last = hops[-1]
        if last.status != 200 or marker not in last.body:
            raise _DemoError(f"expected {what}, got HTTP {last.status} at {self._short(last.url)}")
        return last.body


def _element_text(page: str, element_id: str, *, tag: str = "") -> str:
    """The text of the element with *element_id* (or of the first *tag*), unescaped."""
    marker = f"<{tag}>" if tag else f'id="{element_id}">'
    start = page.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return html.unescape(page[start : page.index("<", start)])
