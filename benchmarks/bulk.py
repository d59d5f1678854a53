"""Benchmark 3: ``fetch_profiles`` over many tokens, its speed and its memory.

Two measurements, both against the static upstream in its own process:

* **Throughput**, in this process: ``client.fetch_profiles(tokens, concurrency=C)``
  over *n* tokens, interleaved round by round with the client-overhead job at
  the same concurrency (C workers pulling from the same kind of input and
  calling ``get_user_info``, no bulk machinery). Their ratio is the bulk
  layer's own cost.
* **Peak RSS**, one child process per input size
  (``python -m benchmarks.bulk --count N``): the tokens come from a generator,
  results are counted and dropped, and the child reports its
  ``ru_maxrss`` (the kernel's high-water mark) next to its RSS before the run.
  If memory is O(concurrency), the peak barely moves between sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Final

import psutil  # type: ignore[import-untyped]  # no stubs in the bench extra

from aiotwinne import TwinneClient

from ._env import REPO_ROOT, child_env
from ._loops import available_loops, run_on
from ._stats import Sample, Timer, compare, interleave

__all__ = ["lazy_tokens", "measure_rss", "run", "run_throughput"]

_POOL_LIMIT: Final = 100
_KIB: Final = 1024


def lazy_tokens(count: int) -> Iterator[str]:
    """*count* distinct 32-hex tokens, made one at a time (never a list)."""
    return (f"{i:032x}" for i in range(1, count + 1))


async def bulk_rate(client: TwinneClient, count: int, concurrency: int) -> tuple[Sample, int]:
    """Profiles per second (and CPU per profile) of one ``fetch_profiles`` run; successes."""
    ok = 0
    with Timer() as timer:
        results = client.fetch_profiles(lazy_tokens(count), concurrency=concurrency)
        async with contextlib.aclosing(results):
            async for result in results:
                ok += result.ok
    return timer.sample(count), ok


async def reference_rate(client: TwinneClient, count: int, concurrency: int) -> Sample:
    """The client-overhead job on the same input: workers calling ``get_user_info``."""
    tokens = lazy_tokens(count)

    async def worker() -> None:
        for token in tokens:  # a shared generator: each token goes to one worker
            await client.get_user_info(token)

    with Timer() as timer:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timer.sample(count)


async def run_throughput(
    upstream: dict[str, Any], *, count: int, concurrency: int, rounds: int
) -> dict[str, Any]:
    """Bulk against the plain client loop, interleaved, on the running loop."""
    async with TwinneClient(
        upstream["app_id"],
        upstream["app_secret"],
        base_url=upstream["base_url"],
        limit=_POOL_LIMIT,
    ) as client:
        failures = 0

        async def bulk() -> Sample:
            nonlocal failures
            sample, ok = await bulk_rate(client, count, concurrency)
            failures += count - ok
            return sample

        async def reference() -> Sample:
            return await reference_rate(client, count, concurrency)

        await reference_rate(client, min(count, 2000), concurrency)  # warm the pool
        samples = await interleave({"fetch_profiles": bulk, "get_user_info": reference}, rounds)
    if failures:
        raise RuntimeError(f"{failures} profiles failed during the bulk benchmark")
    return {"count": count, "concurrency": concurrency, **compare(samples, "fetch_profiles")}


def measure_rss(base_url: str, count: int, concurrency: int, loop: str) -> dict[str, Any]:
    """Run one bulk fetch of *count* tokens in a fresh child process; its figures."""
    done = subprocess.run(  # noqa: S603 - our own module, no shell
        [
            sys.executable,
            "-m",
            "benchmarks.bulk",
            "--base-url",
            base_url,
            "--count",
            str(count),
            "--concurrency",
            str(concurrency),
            "--loop",
            loop,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env=child_env(),
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(
    upstream: dict[str, Any],
    *,
    sizes: tuple[int, int],
    throughput_count: int,
    concurrency: int,
    rounds: int,
) -> dict[str, Any]:
    """Benchmark 3: throughput ratio (default loop) and peak RSS at each of *sizes*."""
    throughput = run_on(
        asyncio.new_event_loop,
        run_throughput(upstream, count=throughput_count, concurrency=concurrency, rounds=rounds),
    )
    memory = [measure_rss(upstream["base_url"], n, concurrency, "asyncio") for n in sizes]
    small, large = memory
    return {
        "throughput": throughput,
        "memory": memory,
        # The brief's figure: the children's peak RSS, larger input minus smaller.
        "rss_growth_mib": round((large["maxrss_kib"] - small["maxrss_kib"]) / _KIB, 2),
        # The same for the peak sampled during the fetch only (imports left out).
        "rss_growth_during_mib": round(
            (large["rss_peak_during_kib"] - small["rss_peak_during_kib"]) / _KIB, 2
        ),
    }


async def _sample_rss(peak: list[int], every: float) -> None:
    process = psutil.Process()
    while True:
        peak[0] = max(peak[0], process.memory_info().rss)
        await asyncio.sleep(every)


async def _child(base_url: str, count: int, concurrency: int) -> dict[str, Any]:
    async with TwinneClient("1", "bench", base_url=base_url, limit=_POOL_LIMIT) as client:
        # The session, the pool and the code paths exist before the baseline is taken.
        await reference_rate(client, min(count, 1000), concurrency)
        rss_before = psutil.Process().memory_info().rss
        peak = [rss_before]
        sampler = asyncio.ensure_future(_sample_rss(peak, 0.02))
        try:
            sample, ok = await bulk_rate(client, count, concurrency)
        finally:
            sampler.cancel()
    return {
        "count": count,
        "ok": ok,
        "concurrency": concurrency,
        "profiles_per_second": round(sample.rate, 1),
        "cpu_us_per_profile": round(sample.cpu_us, 1),
        "rss_before_kib": rss_before // _KIB,
        "rss_peak_during_kib": peak[0] // _KIB,
        # The kernel's high-water mark over the child's life, imports included.
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point of the RSS child: one bulk fetch, one JSON line of figures."""
    parser = argparse.ArgumentParser(description="one bulk fetch, measured (a child process)")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--loop", default="asyncio")
    args = parser.parse_args(argv)
    factory = available_loops((args.loop,))[args.loop]
    result = run_on(factory, _child(args.base_url, args.count, args.concurrency))
    result["loop"] = args.loop
    print(json.dumps(result))


if __name__ == "__main__":
    main()
