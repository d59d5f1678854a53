"""Run the test suite on every CPython 3.10-3.13 on this machine, and once on the floors.

``make matrix`` calls this; ``make test`` stays the one-Python gate (lint, types,
coverage). Here each run is just the tests, in its own virtualenv under
``.venv-matrix/<run>`` (made on first use, remade when pyproject.toml changes):

- ``py3.10`` ... ``py3.13``: that CPython with the newest release of every dependency;
- ``floors``: the oldest of those CPythons with every ``>=`` bound in pyproject.toml
  (runtime, extras and test tools) pinned to exactly that version through a pip
  constraints file; what the pins leave open resolves to the newest.

Runs go ``--jobs`` at a time, each logging to ``.venv-matrix/<run>.log``. A CPython
that is not here is reported as missing, and counts as a failure with ``--strict``
(what CI passes). The exit status is 1 when any run failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest and mypy bring tomli on 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

ROOT = Path(__file__).resolve().parent.parent
MINORS = (10, 11, 12, 13)
# What `make test`'s .venv installs (the benchmark smoke test needs bench).
EXTRAS = "test,bench"
# "name>=1.2", "name[extra]>=1.2,<2; marker": the name, the floor, the marker.
_FLOOR = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)[^;]*(;.*)?$")
# pytest's closing line: "790 passed, 4 failed, 2 skipped in 89.75s (0:01:29)".
_SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s")
_COUNT = re.compile(r"(\d+) (\w+)")
_IN_MAKE_TEST = "run by make test"


@dataclass
class Run:
    """One virtualenv and one pytest session; the fields after ``floors`` are results."""

    name: str
    minor: int
    floors: bool
    python: str | None = None
    version: str = "-"
    aiohttp: str = "-"
    status: str = "not run"
    counts: dict[str, int] = field(default_factory=dict)
    install_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def venv(self) -> Path:
        return ROOT / ".venv-matrix" / self.name

    @property
    def log(self) -> Path:
        return ROOT / ".venv-matrix" / f"{self.name}.log"


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Every process this script starts: interpreters it found and fixed arguments."""
    return subprocess.run(argv, cwd=ROOT, text=True, check=False, **kwargs)  # noqa: S603 - no shell, no outside input


def _output(argv: list[str]) -> str:
    return _run(argv, capture_output=True).stdout.strip()


def find_python(minor: int) -> str | None:
    """``python3.N`` from PATH if it runs (a pyenv shim may not), else pyenv's own copy."""
    on_path = shutil.which(f"python3.{minor}")
    candidates = [on_path] if on_path else []
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = pyenv.glob(f"versions/3.{minor}.*/bin/python3.{minor}")
    candidates += sorted((str(p) for p in found), key=_patch_level, reverse=True)
    probe = f"import sys; sys.exit(sys.version_info[:2] != (3, {minor}))"
    for candidate in candidates:
        if _run([candidate, "-c", probe], capture_output=True).returncode == 0:
            return candidate
    return None


def _patch_level(path: str) -> int:
    match = re.search(r"/3\.\d+\.(\d+)/", path)
    return int(match.group(1)) if match else -1


def floor_constraints() -> str:
    """``name==floor`` for every ``>=`` bound in pyproject.toml, as a pip constraints file."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = _FLOOR.match(requirement)
        if match and match.group(1) != project["name"]:
            name, floor, marker = match.groups()
            pins[name.lower()] = f"{name}=={floor}{marker or ''}"
    return "".join(f"{pins[name]}\n" for name in sorted(pins))


def install(run: Run, log: TextIO) -> None:
    """(Re)make the run's virtualenv unless this pyproject.toml made it already."""
    assert run.python is not None
    constraints = floor_constraints() if run.floors else ""
    key = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + run.python.encode() + constraints.encode()
    ).hexdigest()
    stamp = run.venv / ".installed"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == key:
        print(f"{run.venv} is up to date", file=log, flush=True)
        return
    shutil.rmtree(run.venv, ignore_errors=True)
    _call([run.python, "-m", "venv", str(run.venv)], log)
    pip = [str(run.venv / "bin" / "python"), "-m", "pip", "install"]
    _call([*pip, "--quiet", "--upgrade", "pip"], log)
    if run.floors:
        (run.venv / "constraints.txt").write_text(constraints, encoding="utf-8")
        print(f"the floors, pinned:\n{constraints}", file=log, flush=True)
        pip += ["--constraint", str(run.venv / "constraints.txt")]
    _call([*pip, "--editable", f".[{EXTRAS}]"], log)
    stamp.write_text(key, encoding="utf-8")


def _call(argv: list[str], log: TextIO) -> None:
    print("$", " ".join(argv), file=log, flush=True)
    _run(argv, stdout=log, stderr=subprocess.STDOUT).check_returncode()


def execute(run: Run, pytest_args: list[str], timeout: float) -> Run:
    """Install, then run the tests; never raises, the outcome goes into ``run``."""
    start = time.monotonic()
    print(f"matrix: {run.name} started ({run.python})", flush=True)
    python = str(run.venv / "bin" / "python")
    with run.log.open("w", encoding="utf-8") as log:
        try:
            install(run, log)
            run.install_seconds = time.monotonic() - start
        except subprocess.CalledProcessError:
            run.status = "install failed"
        else:
            freeze = _output([python, "-m", "pip", "freeze"])
            print(f"installed:\n{freeze}", file=log, flush=True)
            pins = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
            run.aiohttp = pins.get("aiohttp", "?")
            run.version = _output(
                [python, "-c", "import platform; print(platform.python_version())"]
            )
            argv = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error"]
            argv += pytest_args
            print("$", " ".join(argv), file=log, flush=True)
            try:
                code = _run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                run.status = f"timed out ({timeout:.0f} s)"
            else:
                run.status = "passed" if code == 0 else f"FAILED (pytest exit {code})"
    run.counts = _counts(run.log)
    run.seconds = time.monotonic() - start
    print(f"matrix: {run.name} {run.status} in {run.seconds:.0f} s", flush=True)
    return run


def _counts(log: Path) -> dict[str, int]:
    for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
        match = _SUMMARY.match(line)
        if match:
            return {word: int(number) for number, word in _COUNT.findall(match.group(1))}
    return {}


def report(runs: list[Run], strict: bool, seconds: float) -> bool:
    """Print the table (and the end of each failed run's log); True when all is well."""
    ok = True
    rows = [("run", "python", "deps", "result", "tests", "seconds", "of which install")]
    for run in runs:
        deps = f"{'floors' if run.floors else 'newest'} (aiohttp {run.aiohttp})"
        tests = ", ".join(f"{n} {word}" for word, n in run.counts.items()) or "-"
        took = (f"{run.seconds:.0f}", f"{run.install_seconds:.0f}")
        rows.append((run.name, run.version, deps, run.status, tests, *took))
        if run.status not in ("passed", _IN_MAKE_TEST) and (strict or run.status != "missing"):
            ok = False
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    failed = [run for run in runs if run.status not in ("passed", "missing", _IN_MAKE_TEST)]
    for run in failed:
        tail = run.log.read_text(encoding="utf-8", errors="replace").splitlines()[-60:]
        print(f"\n---- {run.name}: the end of {run.log.relative_to(ROOT)} ----")
        print("\n".join(tail))
    print()
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    missing = [run.name for run in runs if run.status == "missing"]
    if missing:
        effect = "a failure (--strict)" if strict else "reported, not run"
        print(f"not on this machine: {', '.join(missing)}: {effect}")
    print(f"logs: .venv-matrix/<run>.log; {seconds:.0f} s in all")
    passed = sum(run.counts.get("passed", 0) for run in runs)
    broken = sum(run.counts.get("failed", 0) + run.counts.get("errors", 0) for run in runs)
    print(f"matrix: {passed} passed, {broken} failed")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("runs", nargs="*", help="py3.10 ... py3.13, floors (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default: 2)")
    parser.add_argument("--strict", action="store_true", help="a missing CPython fails")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, one string")
    parser.add_argument(
        "--skip-main",
        action="store_true",
        help="leave out the newest-dependency run on the CPython running this script: "
        "`make test`'s .venv, which in CI has just run these tests on the same releases",
    )
    args = parser.parse_args()

    found = {minor: find_python(minor) for minor in MINORS}
    oldest = next((minor for minor in MINORS if found[minor]), MINORS[0])
    runs = [Run("floors", oldest, floors=True)]
    runs += [Run(f"py3.{minor}", minor, floors=False) for minor in MINORS]
    if args.runs:
        unknown = set(args.runs) - {run.name for run in runs}
        if unknown:
            parser.error(f"no such run: {', '.join(sorted(unknown))}")
        runs = [run for run in runs if run.name in args.runs]
    main_minor = sys.version_info[1] if sys.version_info[0] == 3 else None
    for run in runs:
        run.python = found[run.minor]
        if run.python is None:
            run.status = "missing"
        elif args.skip_main and not run.floors and run.minor == main_minor:
            run.python, run.status = None, _IN_MAKE_TEST
            run.version, run.aiohttp = platform.python_version(), metadata.version("aiohttp")
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a script: the tests send Ctrl-C to their children,
        # which would inherit the ignoring too.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    (ROOT / ".venv-matrix").mkdir(exist_ok=True)
    start = time.monotonic()
    todo = [run for run in runs if run.python]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda run: execute(run, args.pytest_args.split(), args.timeout), todo))
    return 0 if report(runs, args.strict, time.monotonic() - start) else 1


if __name__ == "__main__":
    sys.exit(main())
