"""The emulator as a server: one port across restarts, keep-alive, stats, fast mode, no leaks."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from aiotwinne import HTTPStatusError, TwinneClient
from aiotwinne.cli import _emulator, _parser
from aiotwinne.testing import SNGINE_VERSIONS, EmulatorFactory, TwinneEmulator, run_emulator

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]


async def test_restart_comes_back_on_the_same_port_with_its_state(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """stop() refuses connections; start() listens on the same port with every token intact."""
    emu = twinne_emulator
    token = emu.issue_token(emu.default_user, emu.default_app)
    base_url = emu.base_url
    await twinne_client.get_user_info(token)
    await emu.stop()
    assert not emu.running
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"{base_url}/")
    await emu.start()
    assert emu.base_url == base_url
    assert (await twinne_client.get_user_info(token)).id == emu.default_user.id


async def test_explicit_start_and_close() -> None:
    """Without ``async with``: start(), a request, close(); start() while running fails."""
    emu = TwinneEmulator()
    with pytest.raises(RuntimeError, match="start it first"):
        _ = emu.base_url
    await emu.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            await emu.start()
        async with aiohttp.ClientSession() as session, session.get(emu.login_page_url) as page:
            assert page.status == 200
    finally:
        await emu.close()
    await emu.close()  # closing twice is harmless


async def test_idle_keep_alive_is_closed_after_the_timeout(
    twinne_emulator_factory: EmulatorFactory,
) -> None:
    """With ``keepalive_timeout`` the server closes an idle keep-alive connection itself."""
    emu = await twinne_emulator_factory(keepalive_timeout=0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        writer.write(b"GET /api/nothing HTTP/1.1\r\nHost: emulator\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        # Idle now: the server hangs up on its own (EOF), well before this guard.
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_peak_concurrency_is_tracked_and_reset(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """Concurrent slow requests raise the peak; reset_stats() clears it and the counts."""
    emu = twinne_emulator
    tokens = emu.issue_tokens(5)
    emu.inject("latency", endpoint="user_info", count=5, delay=0.1)
    await asyncio.gather(*(twinne_client.get_user_info(t) for t in tokens))
    assert emu.peak_concurrency == 5
    assert emu.count() == emu.count("user_info") == 5
    emu.reset_stats()
    assert (emu.peak_concurrency, emu.count(), emu.requests) == (0, 0, [])


async def test_fast_mode_counts_without_recording(
    twinne_emulator_factory: EmulatorFactory,
) -> None:
    """Fast mode keeps counters only, and serves updated users after update_user()."""
    emu = await twinne_emulator_factory(fast=True)
    app = emu.add_app()
    user = emu.add_user(user_firstname="Before")
    token = emu.issue_token(user, app)
    async with TwinneClient(app.app_id, app.secret, base_url=emu.base_url) as client:
        assert (await client.get_user_info(token)).first_name == "Before"
        assert (await client.get_user_info(token)).first_name == "Before"
        emu.update_user(user, user_firstname="After")
        assert (await client.get_user_info(token)).first_name == "After"
        emu.delete_user(user)
        assert emu.count("user_info") == 3
    assert emu.requests == []


async def test_records_mask_secrets(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """Recorded queries and forms show app_id but never the secret, the key or the token."""
    emu = twinne_emulator
    token = await twinne_client.exchange(emu.authorize(emu.default_user, emu.default_app))
    await twinne_client.get_user_info(token)
    exchange, user_info = emu.requests
    assert exchange.endpoint == "authorize"
    assert exchange.path == "/api/authorize"
    assert exchange.method == "POST"
    masked = {"app_id": emu.default_app.app_id, "app_secret": "***", "auth_key": "***"}
    assert exchange.query == masked
    assert exchange.form == masked
    assert user_info.query == {"access_token": "***"}
    assert user_info.form == {}


async def test_nothing_logged_holds_a_secret(
    twinne_emulator: TwinneEmulator,
    twinne_client: TwinneClient,
    browser: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A whole flow, with faults, logs no app_secret, auth_key or token at any level."""
    emu = twinne_emulator
    app, user = emu.default_app, emu.default_user
    caplog.set_level(logging.DEBUG)
    browser.cookie_jar.update_cookies(emu.sign_in(user))
    emu.approve(user, app)
    async with browser.get(emu.login_url(app), allow_redirects=False) as answer:
        key = answer.headers["Location"].split("?auth_key=")[1]
    emu.inject("http_error", endpoint="user_info", status=503)
    emu.inject("drop", endpoint="user_info")
    token = await twinne_client.exchange(key)
    await twinne_client.get_user_info(token)
    emu.inject("http_error", endpoint="user_info", status=500)
    with pytest.raises(HTTPStatusError):
        await twinne_client.get_user_info(token)
    for secret in (app.secret, key, token.value):
        assert secret not in caplog.text
        assert all(secret not in str(record.query) for record in emu.requests)


async def test_run_emulator_serves_until_cancelled() -> None:
    """run_emulator() starts with one app and N users, reports ready, and closes on cancel."""
    ready: asyncio.Queue[TwinneEmulator] = asyncio.Queue()
    task = asyncio.ensure_future(run_emulator(port=0, users=3, on_ready=ready.put_nowait))
    emu = await asyncio.wait_for(ready.get(), timeout=10)
    try:
        assert len(emu.users) == 3
        assert emu.default_app.name == "Demo App"
        async with aiohttp.ClientSession() as session, session.get(emu.login_page_url) as page:
            assert "Sign in to Twinne" in await page.text()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not emu.running


def test_clock_only_moves_forward() -> None:
    """advance() moves the emulator's clock and refuses to go back."""
    emu = TwinneEmulator()
    before = emu.now()
    emu.advance(100)
    assert emu.now() >= before + 100
    with pytest.raises(ValueError, match="forward"):
        emu.advance(-1)


def test_lookups_and_defaults() -> None:
    """default_app/default_user need one of each; get_user finds deleted users too."""
    emu = TwinneEmulator()
    with pytest.raises(LookupError):
        _ = emu.default_app
    with pytest.raises(LookupError):
        _ = emu.default_user
    user = emu.add_user()
    emu.delete_user(user)
    assert emu.get_user(user.id).deleted
    app = emu.add_app(app_id="42")
    with pytest.raises(ValueError, match="already registered"):
        emu.add_app(app_id="42")
    assert emu.apps == (app,)


async def test_run_emulator_takes_the_version() -> None:
    """run_emulator(sngine="3") serves as Sngine 3.x, as ``aiotwinne emulator --sngine 3`` does."""
    ready: asyncio.Queue[TwinneEmulator] = asyncio.Queue()
    task = asyncio.ensure_future(
        run_emulator(port=0, users=1, sngine="3", on_ready=ready.put_nowait)
    )
    emu = await asyncio.wait_for(ready.get(), timeout=10)
    silent = asyncio.ensure_future(run_emulator(port=0, users=1))  # no on_ready: still serves
    try:
        assert emu.sngine == "3"
        await asyncio.sleep(0.05)
        assert not silent.done()
    finally:
        for running in (task, silent):
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running


@pytest.mark.parametrize("version", SNGINE_VERSIONS)
def test_cli_offers_every_version(version: str) -> None:
    """``aiotwinne emulator --sngine`` takes exactly SNGINE_VERSIONS, the newest by default."""
    parser = _parser.build_parser()
    assert parser.parse_args(["emulator", "--sngine", version]).sngine == version
    assert parser.parse_args(["emulator"]).sngine == SNGINE_VERSIONS[-1]
    assert _emulator.SNGINE_VERSIONS == SNGINE_VERSIONS
