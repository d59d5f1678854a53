"""Benchmark 5: a burst of Bearer requests with one new token makes one upstream call.

A site with ``/api/`` under Bearer authentication (:mod:`benchmarks._webapps`,
variant ``bearer``) runs in a child process, against the emulator in another.
This process opens *requests* keep-alive connections to it, then, once per
round, asks the emulator for a token nobody has used and sends *requests*
requests carrying it, all at once ("cold"): the emulator's count of user-info
calls says how many reached Twinne. The same burst is sent again right after
("warm": the answer is cached), and the added latency is cold minus warm, per
percentile. The latency of one direct ``get_user_info`` call is reported next
to it: coalescing should add about one upstream round trip, once.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, Final

import aiohttp
from cryptography.fernet import Fernet

from aiotwinne import TwinneClient

from ._loops import run_on
from ._stats import summarize
from ._upstream import UpstreamProcess
from ._webapps import WebAppProcess, free_port

__all__ = ["burst", "percentiles", "run"]

_PATH: Final = "/api/me"
_QUANTILES: Final = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "max": 1.0}


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of *latencies* (seconds), in milliseconds."""
    ordered = sorted(latencies)
    last = len(ordered) - 1
    return {
        name: round(ordered[min(last, round(q * last))] * 1000, 3)
        for name, q in _QUANTILES.items()
    }


async def burst(
    session: aiohttp.ClientSession, url: str, token: str, requests: int
) -> tuple[list[float], set[object]]:
    """Send *requests* requests with *token* at once; their latencies and the user ids seen.

    Raises:
        RuntimeError: A request was not answered with 200.
    """
    headers = {"Authorization": f"Bearer {token}"}
    start = asyncio.Event()

    async def one() -> tuple[float, object]:
        await start.wait()
        sent = time.perf_counter()
        async with session.get(url, headers=headers) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {body}")
        return time.perf_counter() - sent, body["id"]

    tasks = [asyncio.ensure_future(one()) for _ in range(requests)]
    await asyncio.sleep(0)  # every task is waiting at the start line
    start.set()
    done = await asyncio.gather(*tasks)
    return [latency for latency, _ in done], {user for _, user in done}


async def _direct_latency(upstream: UpstreamProcess, calls: int) -> float:
    """The median latency of one ``get_user_info`` call, straight to the upstream."""
    async with TwinneClient(
        upstream.app_id, upstream.app_secret, base_url=upstream.base_url
    ) as client:
        await client.get_user_info(upstream.tokens[0])
        latencies = []
        for _ in range(calls):
            sent = time.perf_counter()
            await client.get_user_info(upstream.tokens[0])
            latencies.append(time.perf_counter() - sent)
    return statistics.median(latencies) * 1000


async def _new_token(upstream: UpstreamProcess) -> str:
    token: str = (await asyncio.to_thread(upstream.command, "token"))["token"]
    return token


async def _upstream_calls(upstream: UpstreamProcess) -> int:
    calls: int = (await asyncio.to_thread(upstream.stats))["requests"]
    return calls


async def _bursts(
    session: aiohttp.ClientSession, url: str, upstream: UpstreamProcess, requests: int, rounds: int
) -> list[dict[str, Any]]:
    """Cold and warm bursts, in alternating order; the warm one uses a token already cached."""
    cached = upstream.tokens[0]
    # Opens the connections and caches this token: later bursts only reuse them.
    await burst(session, url, cached, requests)
    rows = []
    for number in range(rounds):
        token = await _new_token(upstream)
        if number % 2:
            warm, _ = await burst(session, url, cached, requests)
        before = await _upstream_calls(upstream)
        cold, users = await burst(session, url, token, requests)
        calls = await _upstream_calls(upstream) - before
        if number % 2 == 0:
            warm, _ = await burst(session, url, cached, requests)
        if len(users) != 1:
            raise RuntimeError(f"one token, several users: {users}")
        rows.append(
            {"upstream_calls": calls, "cold_ms": percentiles(cold), "warm_ms": percentiles(warm)}
        )
        cached = token
    return rows


async def _singles(
    session: aiohttp.ClientSession, url: str, upstream: UpstreamProcess, rounds: int
) -> tuple[list[float], list[float]]:
    """One request with a new token, then one with the same (now cached) token, *rounds* times."""
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(rounds):
        token = await _new_token(upstream)
        for latencies in (cold, warm):
            (latency,), _ = await burst(session, url, token, 1)
            latencies.append(latency)
    return cold, warm


async def _run(site: str, upstream: UpstreamProcess, requests: int, rounds: int) -> dict[str, Any]:
    url = site + _PATH
    connector = aiohttp.TCPConnector(limit=0)  # one connection per concurrent request
    async with aiohttp.ClientSession(connector=connector) as session:
        rows = await _bursts(session, url, upstream, requests, rounds)
        single_cold, single_warm = await _singles(session, url, upstream, 10 * rounds)
    direct = await _direct_latency(upstream, 50)
    return {
        "requests": requests,
        "rounds": rounds,
        "upstream_calls": [row["upstream_calls"] for row in rows],
        "bursts": rows,
        # Per percentile: the cold burst's minus the warm burst's, over the rounds.
        "burst_added_ms": {
            name: summarize([row["cold_ms"][name] - row["warm_ms"][name] for row in rows])
            for name in _QUANTILES
        },
        # One request alone: with a new token minus with a cached one (medians).
        "single_added_ms": round(
            (statistics.median(single_cold) - statistics.median(single_warm)) * 1000, 3
        ),
        "single_cold_ms": percentiles(single_cold),
        "single_warm_ms": percentiles(single_warm),
        "direct_call_ms": round(direct, 3),
    }


def run(emulator: UpstreamProcess, *, requests: int = 1000, rounds: int = 5) -> dict[str, Any]:
    """Benchmark 5 against the emulator upstream (its default app and tokens)."""
    with WebAppProcess(
        "bearer",
        port=free_port(),
        base_url=emulator.base_url,
        app_id=emulator.app_id,
        app_secret=emulator.app_secret,
        session_key=Fernet.generate_key().decode(),
    ) as site:
        return run_on(asyncio.new_event_loop, _run(site.url, emulator, requests, rounds))
