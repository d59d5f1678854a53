"""``python -m benchmarks``: run the suite and write ``benchmarks/results/latest.*``.

Usage::

    python -m benchmarks                 # the full run (about 5 minutes on 2 cores)
    python -m benchmarks --quick         # fewer rounds, shorter slices (about 2 minutes)
    python -m benchmarks --only client,bulk --out /tmp/bench
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._env import REPO_ROOT
from .report import markdown
from .runner import SUITES, Settings, run_all

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run, print the Markdown table.

    Returns 2 when a benchmark failed (the others still ran and were written),
    1 with ``--strict`` when a target is missed, else 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="aiotwinne's cost next to raw aiohttp and httpx, as ratios in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter slices")
    parser.add_argument(
        "--only",
        default=",".join(SUITES),
        help=f"comma-separated benchmarks to run (default: all of {','.join(SUITES)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results",
        help="where latest.json, latest.md and latest.png go",
    )
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load tool for the upstream ceilings and benchmark 4 "
        "(auto: wrk if installed, else the python stand-in)",
    )
    parser.add_argument(
        "--note",
        help="a remark kept with the environment in the results (e.g. the machine was shared)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a target is missed (default: report only)",
    )
    args = parser.parse_args(argv)
    suites = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    settings = (Settings.quick if args.quick else Settings)(suites=suites, load_tool=args.load)
    results = run_all(settings, args.out, note=args.note)
    print(markdown(results))
    if results.get("errors"):
        return 2
    missed = [t["name"] for t in results["targets"] if t["met"] is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
