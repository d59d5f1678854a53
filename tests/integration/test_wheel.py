"""SLOW (about 15 s here, a minute or more on a cold pip cache): the installed wheel works.

Issue 13's proof that ``pip install 'aiotwinne[web,cli]'`` then ``aiotwinne
demo`` works for a new user: build the wheel from this checkout, install it
with the ``web`` and ``cli`` extras into a fresh virtualenv (dependencies from
the package index, as a user gets them), and run the console script from a
directory outside the checkout, so nothing can be imported from the source
tree. It runs in the normal suite and in CI on purpose; it needs the package
index (hatchling to build, aiohttp and the rest to install).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 600  # seconds; a cold pip cache downloads cryptography and aiohttp


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one step; a failure shows what it printed."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and scripts, no shell
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{args[:4]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def outside_env() -> dict[str, str]:
    """This environment without anything that points Python at the checkout or at Twinne."""
    dropped = (
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "VIRTUAL_ENV",
        "COVERAGE_PROCESS_START",
    )
    return {
        name: value
        for name, value in os.environ.items()
        if name not in dropped and not name.startswith("TWINNE_")
    }


def test_the_installed_wheel_runs_the_demo_from_outside_the_checkout(tmp_path: Path) -> None:
    """Build, install with [web,cli] in a fresh venv, run `aiotwinne demo` elsewhere: exit 0."""
    env = outside_env()
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()

    build = (sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, CHECKOUT)
    run(*build, cwd=tmp_path, env=env)
    (wheel,) = dist.glob("aiotwinne-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "aiotwinne/cli/__init__.py",
        "aiotwinne/cli/_demo.py",
        "aiotwinne/cli/_site.py",
    } <= names
    assert not any(name.startswith(("examples/", "tests/")) for name in names)

    run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", f"{wheel}[web,cli]", cwd=tmp_path, env=env)

    where_from = "import aiotwinne.cli._site as m; print(m.__file__)"
    where = run(python, "-c", where_from, cwd=elsewhere, env=env)
    installed = Path(where.stdout.strip())
    assert installed.is_relative_to(venv), installed
    assert not installed.is_relative_to(CHECKOUT)

    demo = run(venv / "bin" / "aiotwinne", "demo", "--count", "300", cwd=elsewhere, env=env)
    story = demo.stdout
    for marker in (
        "Sign in to Twinne",
        "Signed in: the site shows 'Ada Lovelace'",
        "served straight from the session",
        "Silent re-login: 3 redirects",
        "300 tokens",
        "0 failed",
    ):
        assert marker in story, marker
    last_lines = story.strip().splitlines()[-2:]
    assert last_lines[0].startswith("The whole story took ")
    assert last_lines[1] == "Run `aiotwinne demo --serve` to click through it in a browser."
    assert demo.stderr == ""

    # `python -m aiotwinne` is the same command.
    link = run(python, "-m", "aiotwinne", "login-url", "--app-id", "7", cwd=elsewhere, env=env)
    assert link.stdout.strip() == "https://twinne.eu/api/oauth?app_id=7"
