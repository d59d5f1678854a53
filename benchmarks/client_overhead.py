"""Benchmarks 1-3: ``get_user_info`` next to what a user writes by hand, and its parts.

The headline contender is what a user who skips aiotwinne writes with raw
aiohttp: ``session.get(url)``, a status check and ``json.loads(await
resp.read())``, which gives a **dict**. TwinneClient does more per call (a
typed :class:`~aiotwinne.UserInfo`, retries, a deadline, error mapping), so
the breakdown runs two more contenders in the same rounds:

* ``aiohttp+model``: the same hand-written code plus the same
  :func:`aiotwinne.models.user_info_from_wire` the client uses, so
  TwinneClient against it is the client layer alone, and it against
  ``aiohttp`` is the model's share of a real call;
* ``httpx``: ``httpx.AsyncClient`` with the model, for reference.

All share one connection limit (:data:`POOL_LIMIT`, TwinneClient's default).
For each event loop and concurrency the contenders run interleaved, one time
slice each per round, in an order rotating every round. Two measurements with
the network taken out complete it: :func:`stub_overhead` (the client layer's
own cost per call, on a stub session) and :func:`model_cost` (the model alone,
in a tight loop).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import timeit
from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import AsyncExitStack
from typing import Any, Final, cast

import aiohttp
import httpx
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiotwinne import TwinneClient, UserInfo
from aiotwinne.models import user_info_from_wire

from . import breakdown
from ._loops import LoopFactory, run_on
from ._stats import Sample, Timer, compare, interleave, ratio_summary

__all__ = [
    "CONTENDERS",
    "HEADLINE",
    "POOL_LIMIT",
    "measure_point",
    "model_cost",
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
CONTENDERS: Final = ("aiotwinne", "aiohttp", "aiohttp+model", "httpx")
#: The headline ratio: TwinneClient against raw aiohttp giving a dict.
HEADLINE: Final = "aiotwinne/aiohttp"

Call = Callable[[str], Awaitable[object]]

Tokens = Callable[[], str]


async def open_contenders(
    stack: AsyncExitStack, base_url: str, app_id: str, app_secret: str
) -> dict[str, Call]:
    """The four ways of fetching a profile (see the module docstring), each with its own pool."""
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

    async def with_aiohttp(token: str) -> dict[str, Any]:
        # What a careful user writes by hand without aiotwinne: check the status, decode.
        async with session.get(endpoint + token) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            data: dict[str, Any] = json.loads(await resp.read())
        return data

    async def with_aiohttp_model(token: str) -> UserInfo:
        # The same, and the same model the client builds.
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

    return {
        "aiotwinne": twinne.get_user_info,
        "aiohttp": with_aiohttp,
        "aiohttp+model": with_aiohttp_model,
        "httpx": with_httpx,
    }


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
    point: dict[str, Any] = {"concurrency": concurrency, **compare(samples, "aiotwinne")}
    # The breakdown's other step: what the model costs the hand-written code.
    rates = {name: [s.rate for s in values] for name, values in samples.items()}
    point["ratios"]["aiohttp+model/aiohttp"] = ratio_summary(
        rates["aiohttp+model"], rates["aiohttp"]
    )
    return point


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
        # A sanity check that all of them really fetch the same profile.
        answers = {name: await call(tokens()) for name, call in calls.items()}
        if len({_user_id(answer) for answer in answers.values()}) != 1:
            raise RuntimeError(f"the contenders disagree: {answers}")
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


def _user_id(answer: object) -> int:
    """The user id in a contender's answer: a UserInfo, or the hand-written code's dict."""
    if isinstance(answer, UserInfo):
        return answer.id
    if isinstance(answer, dict):
        return int(answer["user_info"]["user_id"])
    raise TypeError(f"unexpected answer {type(answer).__name__}")


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

    def release(self) -> None:
        return None


class _StubRequest:
    """What ``session.get()`` gives, like aiohttp's: awaited, or entered with ``async with``."""

    __slots__ = ("_response",)

    def __init__(self, response: _StubResponse) -> None:
        self._response = response

    async def _answer(self) -> _StubResponse:
        return self._response

    def __await__(self) -> Generator[Any, None, _StubResponse]:
        return self._answer().__await__()

    async def __aenter__(self) -> _StubResponse:
        return await self._answer()

    async def __aexit__(self, *_: object) -> None:
        self._response.release()


class _StubSession:
    """A session whose every GET is answered from memory: no socket, no event-loop round."""

    closed = False

    def __init__(self, body: bytes) -> None:
        self._response = _StubResponse(body)

    def get(self, url: str | URL, **_: object) -> _StubRequest:
        # What aiohttp does first with the URL (ClientSession._build_url): parse a
        # string; take a yarl.URL (the client passes a pre-encoded one) as it is.
        if not isinstance(url, URL):
            URL(url)
        return _StubRequest(self._response)

    def request(self, method: str, url: str | URL, **_: object) -> _StubRequest:
        # The client sends every call through ClientSession.request (GET, or the
        # exchange's POST); aiohttp's get() is request("GET", ...) too.
        return self.get(url)

    async def close(self) -> None:
        return None


async def stub_overhead(body: bytes, *, calls: int, rounds: int) -> dict[str, Any]:
    """The client layer's own CPU cost per call, with the network taken out.

    ``TwinneClient.get_user_info`` (on a borrowed stub session) and the two
    hand-written contenders (on the same stub: ``aiohttp`` giving the dict,
    ``aiohttp+model`` building the same UserInfo) run *calls* times per round,
    interleaved. What remains is Python work only (the stub parses a URL
    string as aiohttp would), so the best of many short rounds is stable to a
    fraction of a microsecond. The client layer (target 3) is aiotwinne minus
    ``aiohttp+model``; the model in context is ``aiohttp+model`` minus
    ``aiohttp``.
    """
    base_url = "http://127.0.0.1:1"
    session = cast(aiohttp.ClientSession, _StubSession(body))
    twinne = TwinneClient("1", "bench", base_url=base_url, session=session)
    endpoint = f"{base_url}/api/get_user_info?access_token="

    async def by_hand(token: str) -> dict[str, Any]:  # the benchmark's aiohttp contender
        async with session.get(endpoint + token) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            data: dict[str, Any] = json.loads(await resp.read())
        return data

    async def by_hand_model(token: str) -> UserInfo:  # and its aiohttp+model one, verbatim
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
        {
            "aiotwinne": timed(twinne.get_user_info),
            "aiohttp": timed(by_hand),
            "aiohttp+model": timed(by_hand_model),
        },
        rounds,
    )
    best = {name: min(s.cpu_us for s in values) for name, values in samples.items()}
    return {
        "calls": calls,
        "rounds": rounds,
        "cpu_us_per_call_best": {name: round(value, 2) for name, value in best.items()},
        # Target 3: what the client adds to the same job done by hand.
        "added_us_per_call": round(best["aiotwinne"] - best["aiohttp+model"], 2),
        "model_us_per_call": round(best["aiohttp+model"] - best["aiohttp"], 2),
        "added_over_dict_us_per_call": round(best["aiotwinne"] - best["aiohttp"], 2),
    }


def model_cost(body: bytes, *, number: int, repeat: int) -> dict[str, Any]:
    """The model alone (target 2): ``user_info_from_wire`` on the recorded answer.

    Timed as :mod:`timeit` does (the best of *repeat* runs of *number* calls,
    garbage collection off), next to ``json.loads`` of the same body for
    scale. The same wire dict is converted each time: the conversion reads it
    and builds a new UserInfo, it caches nothing.
    """
    base_url = "http://127.0.0.1:1"
    wire = json.loads(body)["user_info"]

    def best(job: Callable[[], object]) -> float:
        runs = timeit.repeat(job, number=number, repeat=repeat)
        return round(min(runs) / number * 1e6, 3)

    return {
        "number": number,
        "repeat": repeat,
        "answer_bytes": len(body),
        "user_info_from_wire_us": best(lambda: user_info_from_wire(wire, base_url=base_url)),
        "json_loads_us": best(lambda: json.loads(body)),
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
    model_number: int = 20_000,
    model_repeat: int = 15,
    breakdown_rounds: int = 15,
    breakdown_calls: int = 2_000,
) -> dict[str, Any]:
    """Benchmarks 1-3 on every event loop in *loops* (name to loop factory).

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
        "model": model_cost(body, number=model_number, repeat=model_repeat),
        # Where a real call's extra time goes (see benchmarks.breakdown).
        "breakdown": {
            "loop": "asyncio",
            "concurrency": 1,
            "rounds": breakdown_rounds,
            "calls": breakdown_calls,
            "cpu_us_per_call": run_on(
                asyncio.new_event_loop,
                breakdown.measure(upstream, rounds=breakdown_rounds, calls=breakdown_calls),
            ),
        },
    }
