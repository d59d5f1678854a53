"""The sites the middleware benchmarks load, each served by a child process.

Every variant answers ``GET /page`` with the same tiny handler; they differ in
what runs before it:

* ``bare``: nothing (plain aiohttp).
* ``session``: aiohttp-session with aiotwinne's encrypted-cookie storage
  (:func:`aiotwinne.web.cookie_storage`, which decrypts each cookie value
  once); the handler loads the session, as any page of a site with logins does.
* ``session-plain``: the same with aiohttp-session's own
  ``EncryptedCookieStorage`` (same key and cookie), which decrypts every
  request: what the cached storage saves.
* ``guarded``: the same storage plus ``aiotwinne.web.setup()``, and the handler
  behind ``@login_required``.
* ``bearer``: ``aiotwinne.web.setup()`` with ``/api/`` under Bearer
  authentication; ``GET /api/me`` answers the token's user id. Foreign tokens
  are accepted: the benchmark's tokens come straight from the emulator, not
  through the site's login, and it measures the upstream check and its cache.

``python -m benchmarks._webapps --variant V ...`` serves one and prints
``{"port": P}`` once listening, then runs until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Final

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from aiotwinne import TwinneClient
from aiotwinne.web import cookie_storage, get_user, login_required, setup

from ._child import ChildProcess, serve_commands
from ._env import have_uvloop

__all__ = ["VARIANTS", "WebAppProcess", "build_app", "free_port"]

VARIANTS: Final = ("bare", "session", "session-plain", "guarded", "bearer")
#: The body every page answers, so responses are the same size everywhere.
PAGE: Final = "ok"


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE)


async def _session_page(request: web.Request) -> web.Response:
    await aiohttp_session.get_session(request)
    return web.Response(text=PAGE)


async def _api_me(request: web.Request) -> web.Response:
    user = await get_user(request)
    return web.json_response({"id": user.id if user else None})


def build_app(
    variant: str, *, base_url: str, app_id: str, app_secret: str, session_key: str
) -> web.Application:
    """One benchmark site (see the module docstring for the variants)."""
    app = web.Application()
    if variant == "bare":
        app.router.add_get("/page", _page)
        return app
    # http://127.0.0.1: no Secure flag, or the load tool's cookie would not be sent back.
    storage = cookie_storage(session_key, secure=False)
    if variant == "session-plain":
        # aiohttp-session's storage as shipped, with exactly the same settings.
        plain = EncryptedCookieStorage(
            Fernet(session_key), cookie_name=storage.cookie_name, **storage.cookie_params
        )
        aiohttp_session.setup(app, plain)
        app.router.add_get("/page", _session_page)
        return app
    aiohttp_session.setup(app, storage)
    if variant == "session":
        app.router.add_get("/page", _session_page)
        return app
    client = TwinneClient(app_id, app_secret, base_url=base_url)
    if variant == "guarded":
        setup(app, client, secure_cookies=False)
        app.router.add_get("/page", login_required(_page))
    elif variant == "bearer":
        setup(
            app,
            client,
            secure_cookies=False,
            bearer_prefixes=("/api/",),
            bearer_accept_foreign_tokens=True,
        )
        app.router.add_get("/api/me", _api_me)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return app


def free_port() -> int:
    """A port nobody listens on right now (the site is told it before it starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=2048)
        await site.start()
        await serve_commands({"port": port})
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Entry point of a site's child process."""
    parser = argparse.ArgumentParser(description="serve one benchmark site")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--app-secret", required=True)
    parser.add_argument("--session-key", required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    app = build_app(
        args.variant,
        base_url=args.base_url,
        app_id=args.app_id,
        app_secret=args.app_secret,
        session_key=args.session_key,
    )
    job = _serve(app, args.port)
    if args.loop == "uvloop" and have_uvloop():
        import uvloop

        uvloop.run(job)
    else:
        asyncio.run(job)


class WebAppProcess(ChildProcess):
    """One benchmark site in a child process (see :class:`~benchmarks._child.ChildProcess`)."""

    def __init__(
        self,
        variant: str,
        *,
        port: int,
        base_url: str,
        app_id: str,
        app_secret: str,
        session_key: str,
        loop: str = "uvloop",
    ) -> None:
        values = {
            "variant": variant,
            "port": str(port),
            "base-url": base_url,
            "app-id": app_id,
            "app-secret": app_secret,
            # A Fernet key may start with "-": only the --name=value form is safe.
            "session-key": session_key,
            "loop": loop,
        }
        args = [f"--{name}={value}" for name, value in values.items()]
        super().__init__(f"the {variant} site", "benchmarks._webapps", args)
        self.variant = variant
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


if __name__ == "__main__":
    main()
