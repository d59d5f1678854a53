"""What a result depends on: date, interpreter, library versions, CPU, command."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Final

__all__ = ["LIBRARIES", "REPO_ROOT", "child_env", "describe", "have_uvloop", "load_average"]

#: The repository root: benchmarks run as ``python -m benchmarks`` from here.
REPO_ROOT: Final = Path(__file__).resolve().parent.parent

#: Distributions whose versions go into every result file.
LIBRARIES: Final = (
    "aiotwinne",
    "aiohttp",
    "httpx",
    "httpcore",
    "uvloop",
    "yarl",
    "multidict",
    "attrs",
    "cattrs",
    "stamina",
    "aiohttp-session",
    "cryptography",
    # httpx's stack: httpcore retries `import sniffio` on every request when it is missing.
    "anyio",
    "h11",
    "sniffio",
)


def have_uvloop() -> bool:
    """Whether uvloop can be imported (it does not exist on Windows)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    git = shutil.which("git")
    if git is None:
        raise OSError("git is not installed")
    done = subprocess.run(  # noqa: S603 - git with fixed arguments, no shell
        [git, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _git_commit() -> str | None:
    """The repository's commit, with ``+dirty`` when tracked files differ from it."""
    try:
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def describe() -> dict[str, Any]:
    """The environment of this run, for the results' ``meta`` section."""
    argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(argv),
        "git_commit": _git_commit(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "load_average_start": load_average(),
    }


def load_average() -> list[float] | None:
    """The OS's load average over 1, 5 and 15 minutes (how busy the machine was)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:  # not available on this platform
        return None


def child_env() -> dict[str, str]:
    """The environment for benchmark child processes: the repository importable."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    return env
