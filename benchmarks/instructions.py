"""CPU instructions per ``get_user_info`` call, counted by valgrind: the breakdown without noise.

``python -m benchmarks.instructions [--calls N] [--out DIR]`` runs each of
:mod:`benchmarks.breakdown`'s contenders (raw aiohttp giving a dict, the same
decoding twice, the client's own session, the model, aiotwinne) in a child
process under ``valgrind --tool=callgrind``, against the static replay
upstream in its own process (not counted), on the default event loop at
concurrency 1. Each contender runs twice, with *N* and with *3N* calls: the
difference divided by *2N* is what one call costs the client process in
user-space instructions, interpreter start-up and warm-up taken out.

Wall-clock and CPU-time figures on a shared 2-core machine move by 10 % from
one run to the next; instruction counts repeat to about 0.5 % (a few
thousand per call: how often the event loop wakes still depends on timing)
whatever else the machine does. They are a profile, not a speed: a
real call's Python code also waits on caches the count does not see (see
``benchmarks/README.md``), so the time ratios of benchmark 1 are the verdict
and these counts say where the difference comes from.

The result is printed and written to ``instructions.json`` and
``instructions.md`` in *DIR* (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any, Final

from ._child import start_together
from ._env import REPO_ROOT, child_env
from ._upstream import UpstreamProcess
from .breakdown import CONTENDERS, contenders, unique_tokens

__all__ = [
    "CONTENDERS",
    "count_calls",
    "main",
    "markdown",
    "measure",
    "parse_collected",
    "report",
    "run_calls",
]

#: The breakdown's contenders, in its order; "dict" is the reference.
_COLLECTED: Final = re.compile(r"^==\d+== Collected : (\d+)\s*$", re.MULTILINE)


def parse_collected(report: str) -> int:
    """The total instruction count in callgrind's report (its standard error).

    Raises:
        RuntimeError: The report has no ``Collected`` line (valgrind failed).
    """
    found = _COLLECTED.search(report)
    if found is None:
        tail = report.strip().splitlines()[-5:]
        raise RuntimeError("callgrind reported no instruction count: " + " | ".join(tail))
    return int(found.group(1))


async def run_calls(upstream: dict[str, Any], name: str, calls: int) -> None:
    """Make *calls* calls with contender *name* (what the counted child does)."""
    async with AsyncExitStack() as stack:
        call = (await contenders(stack, upstream))[name]
        tokens = unique_tokens()
        for _ in range(calls):
            await call(tokens())


def count_calls(upstream: dict[str, Any], name: str, calls: int, *, valgrind: str) -> int:
    """Instructions a child making *calls* calls with *name* executes, start-up included."""
    command = [
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        name,
        "--calls",
        str(calls),
        "--upstream",
        json.dumps({k: upstream[k] for k in ("base_url", "app_id", "app_secret")}),
    ]
    # One hash seed for every child: str hashes decide dict and set layouts, so a
    # random seed per child would move the count once more.
    env = {**child_env(), "PYTHONHASHSEED": "0"}
    done = subprocess.run(  # noqa: S603 - valgrind and our own module, no shell
        command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the counted child for {name!r} failed: {done.stderr[-500:]}")
    return parse_collected(done.stderr)


def measure(
    upstream: dict[str, Any], *, calls: int, valgrind: str, workers: int = 2
) -> dict[str, int]:
    """Each contender's instructions per call: (count at 3N - count at N) / 2N."""
    jobs = [(name, n) for name in CONTENDERS for n in (calls, 3 * calls)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        counts = list(pool.map(lambda job: count_calls(upstream, *job, valgrind=valgrind), jobs))
    totals = dict(zip(jobs, counts, strict=True))
    return {
        name: round((totals[name, 3 * calls] - totals[name, calls]) / (2 * calls))
        for name in CONTENDERS
    }


def report(per_call: dict[str, int], *, calls: int) -> dict[str, Any]:
    """The figures as recorded: per call, added to the dict, and the dict's share."""
    reference = per_call["dict"]
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": f"python -m benchmarks.instructions --calls {calls}",
        "python": sys.version.split()[0],
        "calls": calls,
        "instructions_per_call": per_call,
        "added_to_dict": {name: count - reference for name, count in per_call.items()},
        "dict_over_aiotwinne": round(reference / per_call["aiotwinne"], 4),
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown table."""
    lines = [
        "# Instructions per get_user_info call (valgrind)",
        "",
        f"`{result['command']}` on {result['date']}, CPython {result['python']}: each "
        "contender of `python -m benchmarks.breakdown` in its own child under "
        "`valgrind --tool=callgrind` (asyncio, concurrency 1, the static replay upstream "
        "not counted); user-space instructions per call, start-up taken out.",
        "",
        "| contender | instructions per call | added to the dict |",
        "|---|--:|--:|",
    ]
    for name, count in result["instructions_per_call"].items():
        lines.append(f"| {name} | {count:,} | {result['added_to_dict'][name]:+,} |")
    lines += [
        "",
        f"dict / aiotwinne: **{result['dict_over_aiotwinne']:.3f}** (instructions; "
        "benchmark 1's time ratios are the verdict).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Count, print, and write ``instructions.json`` and ``instructions.md``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.child is not None:
        if args.upstream is None:
            parser.error("--child needs --upstream")
        asyncio.run(run_calls(json.loads(args.upstream), args.child, args.calls))
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        parser.exit(2, "valgrind is not installed (Debian: apt-get install valgrind)\n")
    static = UpstreamProcess("static")
    with ExitStack() as stack:
        start_together(stack, static)
        per_call = measure(static.info, calls=args.calls, valgrind=valgrind)
    result = report(per_call, calls=args.calls)
    text = markdown(result)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "instructions.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "instructions.md").write_text(text)


if __name__ == "__main__":
    main()
