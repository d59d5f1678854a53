"""A TransportError carries no aiohttp error (its text holds the URL) under any asyncio Task."""

from __future__ import annotations

import asyncio

import pytest

from aiotwinne import TransportError, TwinneClient
from aiotwinne.testing import TwinneEmulator


async def test_no_aiohttp_error_behind_a_transport_error_under_the_python_task() -> None:
    """The pure-Python Task wakes a coroutine inside an ``except``: nothing may chain to it."""
    emu = TwinneEmulator()
    await emu.start()
    app, user = emu.add_app(), emu.add_user()

    async def exchange_on_a_dead_pooled_connection() -> TransportError:
        async with TwinneClient(app.app_id, app.secret, base_url=emu.base_url) as client:
            await client.exchange(emu.authorize(user, app))  # leaves a pooled connection
            await emu.stop()
            with pytest.raises(TransportError) as caught:
                await client.exchange(emu.authorize(user, app))
            return caught.value

    python_task = asyncio.tasks._PyTask  # type: ignore[attr-defined]
    error = await python_task(exchange_on_a_dead_pooled_connection())
    assert error.__cause__ is None
    assert error.__context__ is None
