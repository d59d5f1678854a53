"""Benchmarks 1 and 2: ``get_user_info`` through TwinneClient, raw aiohttp and httpx.

Each contender does the same job per call: one GET of ``/api/get_user_info``,
decoding the JSON answer, and building the :class:`~aiotwinne.UserInfo` with the
same :func:`aiotwinne.models.user_info_from_wire`. What differs is only the code
around it, so the ratio TwinneClient / raw aiohttp is the client's own cost.
All three share one connection limit (:data:`POOL_LIMIT`, TwinneClient's default).

For each event loop and concurrency the contenders run interleaved, one
time slice each per round, in an order rotating every round.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Final, cast

import aiohttp
import httpx
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiotwinne import TwinneClient, UserInfo
from aiotwinne.models import user_info_from_wire

from ._loops import LoopFactory, run_on
from ._stats import Sample, Timer, compare, interleave

__all__ = [
    "CONTENDERS",
    "POOL_LIMIT",
    "measure_point",
    "open_contenders",
    "run",
    "run_loop",
    "stub_overhead",
    "timed_slice",
    "unique_tokens",
]

#: Connections per contender: TwinneClient's default ``limit``, matched by the others.
POOL_LIMIT: Final = 100
#: Contender names, as they appear in the results.
CONTENDERS: Final = ("aiotwinne", "aiohttp", "httpx")

Call = Callable[[str], Awaitable[UserInfo]]
Tokens = Callable[[], str]


async def open_contenders(
    stack: AsyncExitStack, base_url: str, app_id: str, app_secret: str
) -> dict[str, Call]:
    """The three ways of fetching a profile, each with its own pool of POOL_LIMIT."""
    twinne = await stack.enter_async_context(
        TwinneClient(app_id, app_secret, base_url=base_url, limit=POOL_LIMIT)
    )
    session = await stack.enter_async_context(
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_LIMIT),
            timeout=aiohttp.ClientTimeout(total=10),
        )
    )
    client = await stack.enter_async_context(
        httpx.AsyncClient(
            limits=httpx.Limits(max_connections=POOL_LIMIT, max_keepalive_connections=POOL_LIMIT),
            timeout=10.0,
        )
    )
    endpoint = f"{base_url}/api/get_user_info?access_token="

    async def with_aiohttp(token: str) -> UserInfo:
        # What a careful user writes by hand: check the status, decode, build.
        async with session.get(endpoint + token) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            data = json.loads(await resp.read())
        return user_info_from_wire(data["user_info"], base_url=base_url)

    async def with_httpx(token: str) -> UserInfo:
        resp = await client.get(endpoint + token)
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}")
        data = json.loads(resp.content)
        return user_info_from_wire(data["user_info"], base_url=base_url)

    return {"aiotwinne": twinne.get_user_info, "aiohttp": with_aiohttp, "httpx": with_httpx}


def unique_tokens() -> Tokens:
    """A source of tokens never seen before, as in real traffic (one per user).

    The static upstream accepts any token. A small fixed set would let yarl's
    URL cache (128 entries) hand every contender ready-parsed URLs, a saving
    no real client gets.
    """
    counter = itertools.count(1)
    return lambda: f"{next(counter):032x}"


async def timed_slice(call: Call, tokens: Tokens, concurrency: int, seconds: float) -> Sample:
    """Calls per second (and CPU per call) with *concurrency* workers busy for *seconds*.

    Every worker finishes the call it is in when time is up; those calls count,
    and so does the time they take.
    """
    deadline = time.perf_counter() + seconds

    async def worker() -> int:
        done = 0
        while time.perf_counter() < deadline:
            await call(tokens())
            done += 1
        return done

    with Timer() as timer:
        counts = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timer.sample(sum(counts))


async def measure_point(
    calls: dict[str, Call],
    tokens: Tokens,
    *,
    concurrency: int,
    rounds: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """One (loop, concurrency) point: every contender interleaved for *rounds* rounds."""
    for call in calls.values():
        # Opens the pool's connections and warms caches outside the measurement.
        await timed_slice(call, tokens, concurrency, warmup)

    def sample(call: Call) -> Callable[[], Awaitable[Sample]]:
        return lambda: timed_slice(call, tokens, concurrency, seconds)

    samples = await interleave({name: sample(call) for name, call in calls.items()}, rounds)
    return {"concurrency": concurrency, **compare(samples, "aiotwinne")}


async def run_loop(
    upstream: dict[str, Any],
    *,
    concurrencies: Sequence[int],
    rounds: int,
    seconds: float,
    warmup: float,
    upstream_cpu: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """Every concurrency on the running event loop, one set of clients for all."""
    async with AsyncExitStack() as stack:
        calls = await open_contenders(
            stack, upstream["base_url"], upstream["app_id"], upstream["app_secret"]
        )
        tokens = unique_tokens()
        # A sanity check that all three really fetch the same profile.
        users = {name: await call(tokens()) for name, call in calls.items()}
        if len({user.id for user in users.values()}) != 1:
            raise RuntimeError(f"the contenders disagree: {users}")
        points = []
        for concurrency in concurrencies:
            cpu_before = upstream_cpu() if upstream_cpu else 0.0
            started = time.perf_counter()
            point = await measure_point(
                calls,
                tokens,
                concurrency=concurrency,
                rounds=rounds,
                seconds=seconds,
                warmup=warmup,
            )
            if upstream_cpu is not None:
                # Share of one core the upstream used meanwhile: far below 1, it was not the limit.
                busy = (upstream_cpu() - cpu_before) / (time.perf_counter() - started)
                point["upstream_cpu_share"] = round(busy, 3)
            points.append(point)
        return points


class _StubResponse:
    """The parts of :class:`aiohttp.ClientResponse` both contenders read, answering at once."""

    status = 200

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.headers = CIMultiDictProxy(
            CIMultiDict({"Content-Type": "application/json", "Content-Length": str(len(body))})
        )
        self.content_length = len(body)

    async def read(self) -> bytes:
        return self._body

    async def __aenter__(self) -> _StubResponse:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class _StubSession:
    """A session whose every GET is answered from memory: no socket, no event-loop round."""

    closed = False

    def __init__(self, body: bytes) -> None:
        self._response = _StubResponse(body)

    def get(self, url: str | URL, **_: object) -> _StubResponse:
        # What aiohttp does first with the URL (ClientSession._build_url): parse a
        # string; take a yarl.URL (the client passes a pre-encoded one) as it is.
        if not isinstance(url, URL):
            URL(url)
        return self._response

    def request(self, method: str, url: str | URL, **_: object) -> _StubResponse:
        # The client sends every call through ClientSession.request (GET, or the
        # exchange's POST); aiohttp's get() is request("GET", ...) too.
        return self.get(url)

    async def close(self) -> None:
        return None


async def stub_overhead(body: bytes, *, calls: int, rounds: int) -> dict[str, Any]:
    """The client's own CPU cost per call, with the network taken out.

    Both ``TwinneClient.get_user_info`` (on a borrowed stub session) and the
    hand-written aiohttp code (on the same stub) run *calls* times per round,
    interleaved. What remains is Python work only (the stub parses a URL
    string as aiohttp would), so the best of many short rounds is stable to a
    fraction of a microsecond, and the difference is what the client adds to
    every call.
    """
    base_url = "http://127.0.0.1:1"
    session = cast(aiohttp.ClientSession, _StubSession(body))
    twinne = TwinneClient("1", "bench", base_url=base_url, session=session)
    endpoint = f"{base_url}/api/get_user_info?access_token="

    async def by_hand(token: str) -> UserInfo:  # the benchmark's aiohttp contender, verbatim
        async with session.get(endpoint + token) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            data = json.loads(await resp.read())
        return user_info_from_wire(data["user_info"], base_url=base_url)

    tokens = unique_tokens()

    def timed(call: Call) -> Callable[[], Awaitable[Sample]]:
        async def measure() -> Sample:
            with Timer() as timer:
                for _ in range(calls):
                    await call(tokens())
            return timer.sample(calls)

        return measure

    samples = await interleave(
        {"aiotwinne": timed(twinne.get_user_info), "aiohttp": timed(by_hand)}, rounds
    )
    best = {name: min(s.cpu_us for s in values) for name, values in samples.items()}
    return {
        "calls": calls,
        "rounds": rounds,
        "cpu_us_per_call_best": {name: round(value, 2) for name, value in best.items()},
        "added_us_per_call": round(best["aiotwinne"] - best["aiohttp"], 2),
    }


def run(
    upstream: dict[str, Any],
    *,
    loops: dict[str, LoopFactory],
    concurrencies: Sequence[int],
    rounds: int,
    seconds: float,
    warmup: float,
    upstream_cpu: Callable[[], float] | None = None,
    stub_calls: int = 2_000,
    stub_rounds: int = 40,
) -> dict[str, Any]:
    """Benchmarks 1 and 2 on every event loop in *loops* (name to loop factory).

    *upstream_cpu*, if given, returns the upstream process's CPU seconds so far;
    each point then records the share of a core the upstream needed.
    """
    points = []
    for loop_name, factory in loops.items():
        results = run_on(
            factory,
            run_loop(
                upstream,
                concurrencies=concurrencies,
                rounds=rounds,
                seconds=seconds,
                warmup=warmup,
                upstream_cpu=upstream_cpu,
            ),
        )
        points += [{"loop": loop_name, **point} for point in results]
    body = upstream["answer_body"].encode("utf-8")
    stub = run_on(
        asyncio.new_event_loop, stub_overhead(body, calls=stub_calls, rounds=stub_rounds)
    )
    return {
        "pool_limit": POOL_LIMIT,
        "rounds": rounds,
        "slice_seconds": seconds,
        "points": points,
        "stub": stub,
    }
