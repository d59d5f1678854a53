"""Medians, spreads and the interleaved runner that makes ratios noise-tolerant."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple, TypedDict

__all__ = [
    "Sample",
    "Summary",
    "Timer",
    "compare",
    "interleave",
    "interleave_sync",
    "ratio_summary",
    "summarize",
]


class Summary(TypedDict):
    """One figure: its median over the rounds, the extremes, and every sample."""

    median: float
    min: float
    max: float
    samples: list[float]


class Sample(NamedTuple):
    """One timed run: operations per wall-clock second, and CPU microseconds per operation.

    The client benchmarks keep one core busy, so CPU time per operation is the
    cost itself; it is less disturbed than the wall-clock rate by other
    processes, which delay the client without charging it CPU time.
    """

    rate: float
    cpu_us: float


class Timer:
    """Wall-clock and CPU time of this process across a ``with`` block."""

    def __enter__(self) -> Timer:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    def sample(self, operations: int) -> Sample:
        """The :class:`Sample` for *operations* done inside the block."""
        if not operations:
            raise RuntimeError("nothing was done in the timed block")
        return Sample(operations / self.wall, self.cpu / operations * 1e6)


def summarize(samples: Sequence[float]) -> Summary:
    """The median and the min-max spread of *samples* (rounded for the record)."""
    if not samples:
        raise ValueError("no samples")
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
        "samples": [round(s, 4) for s in samples],
    }


def ratio_summary(numerator: Sequence[float], denominator: Sequence[float]) -> Summary:
    """Per-round ratios (round *i* against round *i*), summarised.

    Both contenders ran back to back within each round, so a slow moment of the
    machine hits both and cancels in that round's ratio.
    """
    if len(numerator) != len(denominator):
        raise ValueError("the two series need the same number of rounds")
    pairs = zip(numerator, denominator, strict=True)
    return summarize([n / d if d else float("nan") for n, d in pairs])


async def interleave(
    contenders: Mapping[str, Callable[[], Awaitable[Sample]]], rounds: int
) -> dict[str, list[Sample]]:
    """Run each contender once per round, in an order that rotates every round.

    Args:
        contenders: Name to a measurement (one sample per call).
        rounds: How many samples each contender gets.

    Returns:
        Name to its samples, in round order.
    """
    names = list(contenders)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for number in range(rounds):
        # Rotating the order keeps "always runs right after X" from biasing one side.
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(await contenders[name]())
    return samples


def interleave_sync(
    contenders: Mapping[str, Callable[[], Sample]], rounds: int
) -> dict[str, list[Sample]]:
    """:func:`interleave` for measurements that block (e.g. a load tool run)."""
    names = list(contenders)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
    return samples


def compare(samples: Mapping[str, Sequence[Sample]], ours: str) -> dict[str, object]:
    """Rates, CPU costs and per-round ratios of *ours* against every other contender.

    ``ratios["ours/other"]`` is throughput over throughput (above 1: ours is
    faster); ``cpu_ratios["ours/other"]`` is the other's CPU time per
    operation over ours, so it reads the same way. ``cpu_best_ratios`` divides
    the best (lowest) CPU cost of each over all rounds: noise only ever adds
    time, so the best round is the closest to the intrinsic cost (timeit's
    reasoning).
    """
    rates = {name: [s.rate for s in values] for name, values in samples.items()}
    cpu = {name: [s.cpu_us for s in values] for name, values in samples.items()}
    others = [name for name in samples if name != ours]
    return {
        "per_second": {name: summarize(values) for name, values in rates.items()},
        "cpu_us_per_op": {name: summarize(values) for name, values in cpu.items()},
        "ratios": {f"{ours}/{o}": ratio_summary(rates[ours], rates[o]) for o in others},
        "cpu_ratios": {f"{ours}/{o}": ratio_summary(cpu[o], cpu[ours]) for o in others},
        "cpu_best_ratios": {f"{ours}/{o}": round(min(cpu[o]) / min(cpu[ours]), 4) for o in others},
    }
