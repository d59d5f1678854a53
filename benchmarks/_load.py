"""HTTP load from a separate process: wrk where installed, else a Python stand-in.

Both keep *connections* keep-alive connections busy for *seconds* and report
requests per second. wrk (C, one thread) is preferred. The stand-in
(``python -m benchmarks._load``, ``tool: "python"`` in the results) works the
same way on uvloop in its own process: raw sockets, one request written as
soon as the previous answer is complete, only the status line and
``Content-Length`` read. It reaches a good part of wrk's rate, but against the
static upstream it is the limit, so its ceiling figure is then a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import re
import shutil
import subprocess
import sys
import time
from typing import Final, TypedDict, cast
from urllib.parse import urlsplit

from ._env import REPO_ROOT, child_env, have_uvloop

__all__ = ["LoadResult", "run_load", "wrk_path"]

_RPS: Final = re.compile(r"Requests/sec:\s+([\d.]+)")
_TOTAL: Final = re.compile(r"(\d+) requests in ([\d.]+)(\w+)")
_NON_2XX: Final = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_HEAD_END: Final = b"\r\n\r\n"
_CONTENT_LENGTH: Final = re.compile(rb"(?im)^content-length:\s*(\d+)")
_SOCKET_ERRORS: Final = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


class LoadResult(TypedDict):
    """What one load run measured."""

    tool: str
    rps: float
    requests: int
    seconds: float
    bad_status: int
    errors: int


def wrk_path() -> str | None:
    """wrk's path, or ``None`` when it is not installed."""
    return shutil.which("wrk")


def run_load(
    url: str,
    *,
    seconds: float,
    connections: int = 64,
    headers: dict[str, str] | None = None,
    tool: str = "auto",
) -> LoadResult:
    """Load *url* from a separate process and return the rate it sustained.

    Args:
        url: A GET target.
        seconds: How long; wrk rounds this up to whole seconds.
        connections: Keep-alive connections kept busy.
        headers: Extra request headers (e.g. a ``Cookie``).
        tool: ``"wrk"``, ``"python"`` or ``"auto"`` (wrk when installed).

    Raises:
        RuntimeError: The load tool failed, or a response was not a 2xx.
    """
    headers = headers or {}
    wrk = wrk_path()
    if tool == "wrk" or (tool == "auto" and wrk is not None):
        if wrk is None:
            raise RuntimeError("wrk is not installed")
        result = _run_wrk(wrk, url, seconds, connections, headers)
    else:
        result = _run_generator(url, seconds, connections, headers)
    if result["bad_status"] or result["errors"] or not result["requests"]:
        raise RuntimeError(f"load on {url.split('?')[0]} went wrong: {result}")
    return result


def _run_wrk(
    wrk: str, url: str, seconds: float, connections: int, headers: dict[str, str]
) -> LoadResult:
    command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, math.ceil(seconds))}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(  # noqa: S603 - wrk with our own arguments, no shell
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    out = done.stdout
    rps = _RPS.search(out)
    total = _TOTAL.search(out)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}\n{done.stderr}")
    unit = {"ms": 1e-3, "s": 1.0, "m": 60.0}.get(total.group(3), 1.0)
    non_2xx = _NON_2XX.search(out)
    errors = _SOCKET_ERRORS.search(out)
    return {
        "tool": "wrk",
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "seconds": float(total.group(2)) * unit,
        "bad_status": int(non_2xx.group(1)) if non_2xx else 0,
        # Read errors are left out: wrk counts a server's closing of idle
        # connections at the end among them.
        "errors": int(errors[1]) + int(errors[3]) + int(errors[4]) if errors else 0,
    }


def _run_generator(
    url: str, seconds: float, connections: int, headers: dict[str, str]
) -> LoadResult:
    command = [sys.executable, "-m", "benchmarks._load", url]
    command += ["--seconds", str(seconds), "--connections", str(connections)]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(  # noqa: S603 - our own module, no shell
        command,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env=child_env(),
        timeout=seconds + 60,
    )
    result: LoadResult = json.loads(done.stdout)
    return result


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the same GET again as soon as each answer ends.

    Like wrk, it reads only what it must (status line, ``Content-Length``), so
    one core of Python can drive tens of thousands of requests per second.
    """

    def __init__(self, request: bytes, counts: dict[str, int], done: asyncio.Future[None]) -> None:
        self._request = request
        self._counts = counts
        self._done = done
        self._buffer = b""
        self._transport: asyncio.WriteTransport | None = None
        self.stopping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)  # uvloop's are not asyncio's
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        while True:
            head_end = buffer.find(_HEAD_END)
            if head_end < 0:
                break
            head = buffer[:head_end]
            length = _CONTENT_LENGTH.search(head)
            size = head_end + len(_HEAD_END) + (int(length[1]) if length else 0)
            if len(buffer) < size:
                break
            buffer = buffer[size:]
            self._counts["requests"] += 1
            if not head.startswith(b"HTTP/1.1 2"):
                self._counts["bad_status"] += 1
            if self.stopping:
                self._finish()
                return
            if self._transport is not None:
                self._transport.write(self._request)
        self._buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._counts["errors"] += 1
            self._finish()

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)


def _same(protocol: _Connection) -> _Connection:
    return protocol


async def _generate(
    url: str, seconds: float, connections: int, headers: dict[str, str]
) -> LoadResult:
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    path = target.path + (f"?{target.query}" if target.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {target.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()
    counts = {"requests": 0, "bad_status": 0, "errors": 0}
    finished: list[asyncio.Future[None]] = []
    protocols: list[_Connection] = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        protocol = _Connection(request, counts, done)
        await loop.create_connection(functools.partial(_same, protocol), host, port)
        finished.append(done)
        protocols.append(protocol)
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    for protocol in protocols:
        protocol.stopping = True  # each ends after the answer it is waiting for
    await asyncio.wait_for(asyncio.gather(*finished), timeout=30)
    elapsed = time.perf_counter() - start
    return {
        "tool": "python",
        "rps": counts["requests"] / elapsed,
        "requests": counts["requests"],
        "seconds": elapsed,
        "bad_status": counts["bad_status"],
        "errors": counts["errors"],
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point of the fallback load generator: prints one JSON object."""
    parser = argparse.ArgumentParser(description="HTTP load generator (wrk's stand-in)")
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    headers = dict(h.split(": ", 1) for h in args.header)
    job = _generate(args.url, args.seconds, args.connections, headers)
    if have_uvloop():
        import uvloop

        result = uvloop.run(job)
    else:
        result = asyncio.run(job)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
