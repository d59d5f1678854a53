"""examples/own_users.py: a site's own accounts (sqlite3) and its jinja2 pages, end to end.

Over HTTP with a cookie-keeping client, and in real Chromium: on_login creates
the account row, the profile shows the site's own account id, a suspended
account is refused on the site's template, logout notes the time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from aiohttp import web
from websupport import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CROSS_SITE,
    LOGIN,
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    Site,
    follow,
    require_binary,
    start_site,
)

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import EmulatedUser, TwinneEmulator

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "own_users.py"
ExampleFactory = Callable[..., Awaitable[Site]]


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aiotwinne_example_own_users", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """The example's sqlite3 file, in the test's own folder."""
    return tmp_path / "accounts.db"


@pytest.fixture
async def example_factory(emu: TwinneEmulator, database: Path) -> AsyncIterator[ExampleFactory]:
    """``await factory(host, **create_app_options)``: the example served on *host*."""
    module = _load_example()
    runners: list[web.AppRunner] = []

    async def factory(host: str = "127.0.0.1", **options: object) -> Site:
        emu_app = emu.add_app(name="Example Site")
        client = TwinneClient(
            emu_app.app_id,
            emu_app.secret,
            base_url=emu.base_url,
            retry=RetryPolicy.no_wait(attempts=2),
        )
        app = module.create_app(client, database=database, clock=emu.now, **options)
        site = await start_site(app, emu_app, client, host=host)
        runners.append(site.runner)
        return site

    yield factory
    for runner in reversed(runners):
        await runner.cleanup()


def _sql(database: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        return [tuple(row) for row in db.execute(statement, args).fetchall()]


def _accounts(database: Path) -> list[tuple[int, int, str, int, float | None]]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute(
            "SELECT id, twinne_id, name, logins, last_logout FROM accounts ORDER BY id"
        ).fetchall()
    return [tuple(row) for row in rows]


async def test_each_twinne_user_gets_one_account_of_the_sites_own(
    example_factory: ExampleFactory,
    visitor_factory: Callable[[], aiohttp.ClientSession],
    emu: TwinneEmulator,
    database: Path,
) -> None:
    """First logins create rows 1 and 2; the profile shows the site's id; a re-login reuses it."""
    site = await example_factory(secure_cookies=False)
    ada = emu.users[0]
    bob = emu.add_user(user_name="bob", user_firstname="Bob", user_lastname="Stone")
    # An existing account with another id, so the site's id differs from Twinne's.
    _sql(database, "INSERT INTO accounts (twinne_id, name) VALUES (999, 'someone else')")
    pages: dict[int, str] = {}
    for user in (bob, ada):
        visitor = visitor_factory()
        visitor.cookie_jar.update_cookies(emu.sign_in(user))
        emu.approve(user, site.app)
        hops = await follow(visitor, site(f"{LOGIN}?next=/profile"), headers=NAVIGATE)
        assert hops[-1].status == 200, hops[-1].text
        pages[user.id] = hops[-1].text
    assert 'Account <span id="account">2</span>' in pages[bob.id]
    assert 'Account <span id="account">3</span>' in pages[ada.id]
    assert 'id="role">member<' in pages[ada.id]
    assert [row[:4] for row in _accounts(database)] == [
        (1, 999, "someone else", 0),
        (2, bob.id, "Bob Stone", 1),
        (3, ada.id, "Ada Lovelace", 1),
    ]
    # After the hour, Ada's silent re-login finds her row (a changed name is updated).
    emu.update_user(ada, user_firstname="Augusta")
    emu.advance(3601)
    hops = await follow(visitor, site("/profile"), headers=NAVIGATE)
    assert 'Account <span id="account">3</span>' in hops[-1].text
    assert "Augusta Lovelace" in hops[-1].text
    assert _accounts(database)[2][2:4] == ("Augusta Lovelace", 2)


async def test_a_suspended_account_is_refused_on_the_sites_own_page(
    example_factory: ExampleFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    database: Path,
) -> None:
    """LoginRefused shows the site's message in its template, 403, in the visitor's language."""
    site = await example_factory(secure_cookies=False)
    emu.approve(user, site.app)
    assert (await follow(visitor, site("/profile"), headers=NAVIGATE))[-1].status == 200
    _sql(database, "UPDATE accounts SET suspended = 1 WHERE twinne_id = ?", user.id)
    emu.advance(3601)
    hops = await follow(visitor, site("/profile"), headers={**NAVIGATE, "Accept-Language": "fr"})
    page = hops[-1]
    assert page.status == 403
    assert 'class="example-site"' in page.text
    assert '<html lang="fr">' in page.text
    assert "Vous ne pouvez pas vous connecter ici" in page.text
    assert "This account is suspended. Contact us to restore it." in page.text


async def test_aiotwinnes_pages_use_the_sites_template(
    example_factory: ExampleFactory, visitor: aiohttp.ClientSession
) -> None:
    """The continue page and the logout button are the site's template, our headers on them."""
    site = await example_factory(secure_cookies=False)
    async with visitor.get(site(LOGIN), headers=CROSS_SITE) as page:
        text = await page.text()
        assert 'class="example-site"' in text
        assert 'id="continue"' in text
        assert page.headers["X-Frame-Options"] == "DENY"
        assert "Set-Cookie" not in page.headers
    async with visitor.get(site(LOGOUT), headers={"Accept-Language": "fr"}) as page:
        text = await page.text()
        assert 'class="example-site"' in text
        assert "Se déconnecter</button>" in text


async def test_logout_is_noted_in_the_account(
    example_factory: ExampleFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    database: Path,
) -> None:
    """on_logout writes the logout time into the signed-in account."""
    site = await example_factory(secure_cookies=False)
    emu.approve(user, site.app)
    assert (await follow(visitor, site("/profile"), headers=NAVIGATE))[-1].status == 200
    assert _accounts(database)[0][4] is None
    async with visitor.post(site(LOGOUT), headers=SAME_ORIGIN_POST) as page:
        assert 'id="login"' in await page.text()
    assert _accounts(database)[0][4] is not None


@pytest.mark.browser
async def test_real_browser_signs_in_and_sees_the_sites_own_account_id(
    example_factory: ExampleFactory, emu: TwinneEmulator, user: EmulatedUser, database: Path
) -> None:
    """Chromium logs in on the emulator's pages; on_login's row id shows on the profile."""
    require_binary(CHROMIUM)
    from playwright.async_api import async_playwright

    # The site on localhost, Twinne on 127.0.0.1: the cross-site return is the real thing.
    site = await example_factory(host="localhost")
    for twinne_id in (901, 902, 903):
        _sql(database, "INSERT INTO accounts (twinne_id, name) VALUES (?, 'other')", twinne_id)
    profile_dir = tempfile.mkdtemp(prefix="aiotwinne-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile_dir,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                locale="fr-FR",
            )
            try:
                page = await context.new_page()
                page.set_default_timeout(10_000)
                await page.goto(site("/"))
                await page.click("#login")
                await page.fill("input[name=username]", user.username)
                await page.click("button[type=submit]")
                await page.click("button[value=approve]")
                await page.wait_for_url(site("/profile"))
                assert await page.text_content("#account") == "4"
                assert await page.text_content("#name") == "Ada Lovelace"
                assert _accounts(database)[3][:4] == (4, user.id, "Ada Lovelace", 1)

                # aiotwinne's own logout page, in the site's template and the browser's French.
                await page.goto(site(LOGOUT))
                assert await page.text_content("#logout") == "Se déconnecter"
                await page.click("#logout")
                await page.wait_for_url(site("/"))
                assert await page.is_visible("#login")
                assert _accounts(database)[3][4] is not None
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)
