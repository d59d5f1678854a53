"""The upstream "Twinne" the benchmarks talk to, run in a process of its own.

Two kinds:

* ``static``: a minimal HTTP/1.1 server (a bare :class:`asyncio.Protocol`) that
  answers every request with one recorded answer of the emulator's fast mode,
  byte for byte (status line, headers, JSON body). It does no routing and no
  lookups, so its ceiling sits far above what one Python client can send: the
  throughput benchmarks measure the client, not the server.
* ``emulator``: :class:`aiotwinne.testing.TwinneEmulator` in fast mode, for the
  benchmarks that need real behaviour (a login flow, a new token, counting the
  upstream calls).

Either runs in a child process (``python -m benchmarks._upstream --kind K``) on
uvloop where available, so it never shares a core's event loop with the client
being measured. The parent drives it through :class:`UpstreamProcess`: one JSON
line on stdout says it is ready, then JSON commands on stdin are answered one
line each (``stats``, ``reset``, ``token``, ``app``, ``browser``); it exits
when its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

import aiohttp

from aiotwinne.testing import TwinneEmulator

from ._child import ChildProcess, serve_commands
from ._env import have_uvloop

__all__ = ["StaticReplayServer", "UpstreamProcess", "record_answer"]

_APP_ID: Final = "100000000000001"
_APP_SECRET: Final = "0123456789abcdef0123456789abcdef"
_HEADERS_KEPT: Final = ("Content-Type", "Content-Length", "Date", "Server")
_END_OF_HEAD: Final = b"\r\n\r\n"


async def record_answer() -> bytes:
    """One complete HTTP answer of the emulator's fast mode to a valid user-info call.

    A throwaway emulator is started, asked once, and stopped. The answer keeps
    the emulator's status line, headers and body, so a replay costs the client
    exactly what the emulator's answer costs it.
    """
    async with TwinneEmulator(fast=True) as emulator:
        app = emulator.add_app(app_id=_APP_ID, secret=_APP_SECRET)
        (user,) = emulator.add_users(1)
        token = emulator.issue_token(user, app)
        url = f"{emulator.base_url}/api/get_user_info?access_token={token}"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            body = await resp.read()
            head = [f"HTTP/1.1 {resp.status} {resp.reason}"]
            head += [f"{k}: {resp.headers[k]}" for k in _HEADERS_KEPT if k in resp.headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class StaticReplayServer(asyncio.Protocol):
    """Answers each request head it receives with the same recorded answer.

    Requests are GETs without a body, so a request ends at its blank line; keep-
    alive and pipelining work because each complete head gets one answer.
    """

    answer: bytes = b""
    requests: int = 0

    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to answer on."""
        # uvloop's transports do not subclass asyncio's, so no isinstance check.
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        """Answer every complete request head in *data* (plus what came before)."""
        buffer = self._pending + data
        complete = buffer.count(_END_OF_HEAD)
        if complete and self._transport is not None:
            StaticReplayServer.requests += complete
            self._transport.write(self.answer * complete)
            buffer = buffer[buffer.rfind(_END_OF_HEAD) + len(_END_OF_HEAD) :]
        self._pending = buffer


_Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def _serve_static() -> tuple[dict[str, Any], _Handler, Callable[[], Awaitable[None]]]:
    StaticReplayServer.answer = await record_answer()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StaticReplayServer, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    ready = {
        "kind": "static",
        "base_url": f"http://127.0.0.1:{port}",
        "app_id": _APP_ID,
        "app_secret": _APP_SECRET,
        "tokens": [f"{i:032x}" for i in range(1, 65)],
        "answer_bytes": len(StaticReplayServer.answer),
        # The JSON body alone, for the stub-session measurement of the client's own cost.
        "answer_body": StaticReplayServer.answer.partition(_END_OF_HEAD)[2].decode("utf-8"),
    }

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        if request["cmd"] == "stats":
            return {"requests": StaticReplayServer.requests}
        if request["cmd"] == "reset":
            StaticReplayServer.requests = 0
            return {}
        raise ValueError(f"the static upstream has no command {request['cmd']!r}")

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return ready, handle, close


async def _serve_emulator() -> tuple[dict[str, Any], _Handler, Callable[[], Awaitable[None]]]:
    emulator = TwinneEmulator(fast=True)
    app = emulator.add_app(app_id=_APP_ID, secret=_APP_SECRET)
    await emulator.start()
    ready = {
        "kind": "emulator",
        "base_url": emulator.base_url,
        "app_id": app.app_id,
        "app_secret": app.secret,
        "tokens": emulator.issue_tokens(64),
    }

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        command = request["cmd"]
        if command == "stats":
            return {
                "requests": emulator.count("user_info"),
                "exchanges": emulator.count("authorize"),
                "peak_concurrency": emulator.peak_concurrency,
            }
        if command == "reset":
            emulator.reset_stats()
            return {}
        if command == "token":
            (token,) = emulator.issue_tokens(1)
            return {"token": token}
        if command == "app":
            new = emulator.add_app(name="Benchmark site", redirect_url=request["redirect_url"])
            return {"app_id": new.app_id, "app_secret": new.secret}
        if command == "browser":
            # A user signed in at Twinne who already approved the app: the login
            # link then redirects straight back with an auth_key.
            target = next(a for a in emulator.apps if a.app_id == request["app_id"])
            user = emulator.add_user()
            emulator.approve(user, target)
            return {"cookies": emulator.sign_in(user)}
        raise ValueError(f"the emulator upstream has no command {command!r}")

    return ready, handle, emulator.close


async def _main(kind: str) -> None:
    serve = _serve_static if kind == "static" else _serve_emulator
    ready, handle, close = await serve()
    ready["loop"] = type(asyncio.get_running_loop()).__module__.split(".")[0]
    try:
        await serve_commands(ready, handle)
    finally:
        await close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("static", "emulator"), default="static")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    if args.loop == "uvloop" and have_uvloop():
        import uvloop

        uvloop.run(_main(args.kind))
    else:
        asyncio.run(_main(args.kind))


class UpstreamProcess(ChildProcess):
    """An upstream in a child process, driven from the parent.

    Use as a context manager, or start several children with
    :func:`~benchmarks._child.start_together`. Once ready:

    Attributes:
        kind: ``"static"`` or ``"emulator"``.
        base_url: Where it listens.
        app_id: The app's id (any works with ``static``).
        app_secret: The app's secret.
        tokens: Valid access tokens (any string works with ``static``).
        loop: The event loop it runs on.
    """

    def __init__(self, kind: str = "static") -> None:
        super().__init__(f"the {kind} upstream", "benchmarks._upstream", ["--kind", kind])
        self.kind = kind

    @property
    def base_url(self) -> str:
        """Where it listens."""
        return str(self.info["base_url"])

    @property
    def app_id(self) -> str:
        """The app's id."""
        return str(self.info["app_id"])

    @property
    def app_secret(self) -> str:
        """The app's secret."""
        return str(self.info["app_secret"])

    @property
    def tokens(self) -> list[str]:
        """Valid access tokens."""
        return list(self.info["tokens"])

    @property
    def loop(self) -> str:
        """The event loop it runs on."""
        return str(self.info["loop"])

    def stats(self) -> dict[str, Any]:
        """Requests the upstream answered since it started or was last reset."""
        return self.command("stats")


if __name__ == "__main__":
    main()
