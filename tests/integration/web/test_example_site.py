"""examples/webapp.py: the demo site works end to end, over HTTP and in a real browser."""

from __future__ import annotations

import importlib.util
import shutil
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
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    Site,
    require_binary,
    start_site,
)

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import EmulatedUser, TwinneEmulator

ExampleFactory = Callable[..., Awaitable[Site]]
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "webapp.py"


def _load_example() -> ModuleType:
    """Load the example from its file path, as the CLI's demo does."""
    spec = importlib.util.spec_from_file_location("aiotwinne_example_webapp", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def example_site_factory(
    emu: TwinneEmulator,
) -> AsyncIterator[ExampleFactory]:
    """``await factory(host, **create_app_options)``: the example site, served on *host*."""
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
        app = module.create_app(client, clock=emu.now, **options)
        site = await start_site(app, emu_app, client, host=host)
        runners.append(site.runner)
        return site

    yield factory
    for runner in reversed(runners):
        await runner.cleanup()


async def test_example_home_profile_and_logout(
    example_site_factory: ExampleFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Home shows the login button; the profile shows name and picture; logout ends it."""
    site = await example_site_factory(secure_cookies=False)
    async with visitor.get(site("/")) as page:
        assert "Log in with Twinne" in await page.text()
    emu.approve(user, site.app)
    async with visitor.get(site("/auth/twinne/login?next=/profile"), headers=NAVIGATE) as page:
        assert page.url.path == "/profile"
        text = await page.text()
    assert "Ada Lovelace" in text
    assert f"{emu.base_url}/content/uploads/photos/2021/03/user1.jpg" in text
    async with visitor.post(site(LOGOUT), headers=SAME_ORIGIN_POST) as page:
        assert "Log in with Twinne" in await page.text()


async def test_example_escapes_names(
    example_site_factory: ExampleFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """A name with markup is shown as text."""
    emu.update_user(user, user_firstname="<b>Ada</b>")
    site = await example_site_factory(secure_cookies=False)
    emu.approve(user, site.app)
    async with visitor.get(site("/profile"), headers=NAVIGATE) as page:
        text = await page.text()
    assert "&lt;b&gt;Ada&lt;/b&gt;" in text
    assert "<b>Ada</b>" not in text


@pytest.mark.browser
async def test_real_browser_logs_in_survives_the_hour_and_logs_out(
    example_site_factory: ExampleFactory, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Chromium logs in on the emulator's pages, re-logs in silently after the hour, logs out."""
    require_binary(CHROMIUM)
    from playwright.async_api import async_playwright

    # The site on localhost and Twinne on 127.0.0.1: different sites, so SameSite=Lax
    # and the cross-site redirect back are the real thing. localhost is a secure
    # context for Chromium, so the default Secure cookie is used as in production.
    site = await example_site_factory(host="localhost")
    profile_dir = tempfile.mkdtemp(prefix="aiotwinne-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile_dir,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
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
                assert await page.text_content("#name") == "Ada Lovelace"
                assert emu.count("authorize") == 1

                emu.advance(3601)
                await page.goto(site("/profile"))
                await page.wait_for_url(site("/profile"))
                assert await page.text_content("#name") == "Ada Lovelace"
                assert emu.count("authorize") == 2

                await page.click("#logout")
                await page.wait_for_url(site("/"))
                assert await page.is_visible("#login")
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)
