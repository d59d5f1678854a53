"""HTTP load from a separate process: wrk where installed, else an aiohttp generator.

Both keep *connections* keep-alive connections busy for *seconds* and report
requests per second. wrk (C, one thread) is preferred: it costs a small part of
a core. The fallback (``python -m benchmarks._load``) is a plain aiohttp client
on uvloop in its own process; it needs about as much CPU per request as a
small aiohttp server, so against fast servers it is the limit, and results
then say ``load_limited`` is possible (``tool`` names which one ran).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import subprocess
import sys
import time
from typing import Final, TypedDict

from ._env import REPO_ROOT, child_env, have_uvloop

__all__ = ["LoadResult", "run_load", "wrk_path"]

_RPS: Final = re.compile(r"Requests/sec:\s+([\d.]+)")
_TOTAL: Final = re.compile(r"(\d+) requests in ([\d.]+)(\w+)")
_NON_2XX: Final = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
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
        tool: ``"wrk"``, ``"aiohttp"`` or ``"auto"`` (wrk when installed).

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


async def _generate(
    url: str, seconds: float, connections: int, headers: dict[str, str]
) -> LoadResult:
    import aiohttp

    counts = {"requests": 0, "bad_status": 0, "errors": 0}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker(deadline: float) -> None:
            # Always one request: with a deadline in the past, this opens a connection.
            first = True
            while first or time.perf_counter() < deadline:
                first = False
                try:
                    async with session.get(url, allow_redirects=False) as resp:
                        await resp.read()
                        counts["requests"] += 1
                        if not 200 <= resp.status < 300:
                            counts["bad_status"] += 1
                except aiohttp.ClientError:
                    counts["errors"] += 1

        # Open the connections before the clock starts, as wrk does.
        await asyncio.gather(*(worker(0.0) for _ in range(connections)))
        counts.update(requests=0, bad_status=0, errors=0)
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds) for _ in range(connections)))
        elapsed = time.perf_counter() - start
    return {
        "tool": "aiohttp",
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
