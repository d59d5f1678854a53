"""Where a real ``get_user_info`` call spends the time the hand-written code does not.

``python -m benchmarks.breakdown [--rounds N] [--calls N]`` runs, against the
static replay upstream in its own process, on the default event loop and at
concurrency 1, contenders that each add one thing to the hand-written code
giving a dict, interleaved in rotating order; each prints the client
process's CPU µs per call in its best round and its median round:

* ``dict``: raw aiohttp, ``json.loads(await resp.read())`` (the headline's reference);
* ``dict, json twice``: the same decoding the body twice, to calibrate: C code
  (``json.loads``, about 4 µs alone) costs about the same in a real call;
* ``dict, client's session``: the hand-written code on a session built exactly as
  TwinneClient builds its own (the pool that notes waiting, the ``User-Agent``);
* ``+ model``: the hand-written code building the ``UserInfo``;
* ``aiotwinne``: ``TwinneClient.get_user_info``.

It is the profile behind target 1 (see ``benchmarks/README.md``): Python code
run between two network round trips costs two to three times what it costs
in a tight loop (its bytecode and data are no longer in the CPU's caches),
while C code costs about the same, so the model's 5 µs alone weigh about
15 µs in a real call.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from typing import Any, Final

import aiohttp

from aiotwinne import TwinneClient
from aiotwinne._session import Transport, open_session
from aiotwinne.models import user_info_from_wire

from ._child import start_together
from ._upstream import UpstreamProcess

__all__ = ["CONTENDERS", "contenders", "main", "measure", "unique_tokens"]

#: The contenders' names, in the order contenders() gives them.
CONTENDERS: Final = ("dict", "dict, json twice", "dict, client's session", "+ model", "aiotwinne")

Call = Callable[[str], Awaitable[object]]


async def contenders(stack: AsyncExitStack, upstream: dict[str, Any]) -> dict[str, Call]:
    """The breakdown's contenders, each a ``call(token)``, their sessions closed with *stack*."""
    base_url = upstream["base_url"]
    endpoint = f"{base_url}/api/get_user_info?access_token="
    timeout = aiohttp.ClientTimeout(total=10)
    plain = await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), timeout=timeout)
    )
    # Exactly the session TwinneClient opens for itself (the defaults).
    transport = Transport.build(
        proxy=None,
        ssl=True,
        trust_env=False,
        user_agent=None,
        trace_configs=None,
        borrowed=False,
    )
    owned = open_session(transport, limit=100, limit_per_host=0, timeout=timeout)
    stack.push_async_callback(owned.close)
    twinne = await stack.enter_async_context(
        TwinneClient(upstream["app_id"], upstream["app_secret"], base_url=base_url)
    )

    def by_hand(
        session: aiohttp.ClientSession, *, model: bool = False, twice: bool = False
    ) -> Call:
        async def call(token: str) -> object:
            async with session.get(endpoint + token) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                body = await resp.read()
            if twice:
                json.loads(body)
            data = json.loads(body)
            return user_info_from_wire(data["user_info"], base_url=base_url) if model else data

        return call

    calls = (
        by_hand(plain),
        by_hand(plain, twice=True),
        by_hand(owned),
        by_hand(plain, model=True),
        twinne.get_user_info,
    )
    return dict(zip(CONTENDERS, calls, strict=True))


def unique_tokens() -> Callable[[], str]:
    """Tokens never seen before, as in benchmarks.client_overhead."""
    counter = itertools.count(1)
    return lambda: f"{next(counter):032x}"


async def measure(upstream: dict[str, Any], *, rounds: int, calls: int) -> dict[str, Any]:
    """Each contender's CPU µs per call: best and median of *rounds* rounds of *calls* calls."""
    async with AsyncExitStack() as stack:
        calls_by_name = await contenders(stack, upstream)
        tokens = unique_tokens()
        for call in calls_by_name.values():  # connections and caches warm
            for _ in range(min(calls, 200)):
                await call(tokens())
        names = list(calls_by_name)
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for number in range(rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.process_time()
                for _ in range(calls):
                    await calls_by_name[name](tokens())
                cpu[name].append((time.process_time() - started) / calls * 1e6)
    return {
        name: {"best": round(min(v), 1), "median": round(statistics.median(v), 1)}
        for name, v in cpu.items()
    }


def main(argv: list[str] | None = None) -> None:
    """Run the breakdown and print one line per contender."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    static = UpstreamProcess("static")
    with ExitStack() as stack:
        start_together(stack, static)
        result = asyncio.run(measure(static.info, rounds=args.rounds, calls=args.calls))
    reference = result["dict"]["best"]
    print(f"CPU µs per call, concurrency 1, best (median) of {args.rounds} rounds:")
    for name, figures in result.items():
        added = figures["best"] - reference
        print(f"  {name:24s} {figures['best']:6.1f} ({figures['median']:6.1f})  {added:+6.1f}")


if __name__ == "__main__":
    main()
