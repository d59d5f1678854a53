"""run_emulator: what ``aiotwinne emulator`` runs, an emulator for a person until Ctrl-C."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ._emulator import TwinneEmulator

__all__ = ["run_emulator"]


async def run_emulator(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    users: int = 10,
    app_name: str = "Demo App",
    redirect_url: str = "/callback",
    on_ready: Callable[[TwinneEmulator], None] | None = None,
    **options: Any,
) -> None:
    """Run an emulator with one app and *users* users until cancelled.

    This is what ``aiotwinne emulator [--port P] [--users N] [--sngine V]``
    runs. It prints nothing itself: *on_ready* receives the running emulator,
    whose :attr:`~TwinneEmulator.default_app` holds the credentials
    (``app_id``, ``secret``), :meth:`~TwinneEmulator.login_url` the login
    link and :attr:`~TwinneEmulator.login_page_url` the sign-in page
    (usernames ``user1``, ``user2``...).

    Args:
        host: The address to listen on.
        port: The port (``0``: a free one).
        users: How many users to create.
        app_name: The app's name on the consent page.
        redirect_url: The app's registered redirect URL.
        on_ready: Called once listening, e.g. to print the credentials.
        **options: Passed to :class:`TwinneEmulator` (``sngine="3"``...).
    """
    emulator = TwinneEmulator(host=host, port=port, **options)
    emulator.add_app(name=app_name, redirect_url=redirect_url)
    emulator.add_users(users)
    async with emulator:
        if on_ready is not None:
            on_ready(emulator)
        await asyncio.Event().wait()
