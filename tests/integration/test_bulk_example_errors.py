"""examples/bulk_profiles.py on messy input: one line on stderr, never a traceback."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from pathlib import Path

import pytest

from aiotwinne.testing import TwinneEmulator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bulk_profiles.py"


async def run_example(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    """Run the example as a user would; return (status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert b"Traceback" not in err
    return process.returncode or 0, out.decode(), err.decode()


def without_twinne() -> dict[str, str]:
    """This environment without TWINNE_* variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TWINNE_")}


async def test_non_utf8_lines_are_reported_in_their_rows() -> None:
    """A line that is not UTF-8 is a malformed row; the lines around it are fetched."""
    async with TwinneEmulator() as emu:
        app = emu.add_app()
        good = emu.issue_tokens(2, app)
        env = {
            **without_twinne(),
            "TWINNE_BASE_URL": emu.base_url,
            "TWINNE_APP_ID": app.app_id,
            "TWINNE_APP_SECRET": app.secret,
        }
        stdin = (
            b"\xef\xbb\xbf" + good[0].encode() + b"\n\xff\xfe latin-1 \xe9\n" + good[1].encode()
        )
        status, out, err = await run_example(env=env, stdin=stdin)
    assert status == 1, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted((row["line"], row["outcome"]) for row in rows) == [
        ("1", "ok"),
        ("2", "malformed: the line is not UTF-8 text"),
        ("3", "ok"),
    ]
    assert err == ""


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({}, [], "set TWINNE_APP_ID and TWINNE_APP_SECRET (aiotwinne emulator prints them)"),
        ({"TWINNE_APP_ID": "1"}, [], "set TWINNE_APP_ID and TWINNE_APP_SECRET"),
        (
            {"TWINNE_APP_ID": "1", "TWINNE_APP_SECRET": "s" * 32},
            ["/no/such/file"],
            "cannot read /no/such/file: No such file or directory",
        ),
        (
            {"TWINNE_APP_ID": "1", "TWINNE_APP_SECRET": "s" * 32, "TWINNE_BASE_URL": "ftp://x"},
            [],
            "base_url must be an absolute http(s) URL",
        ),
    ],
    ids=["no app id", "no secret", "no such file", "bad base URL"],
)
async def test_a_usage_error_is_one_line_and_exit_2(
    env: dict[str, str], args: list[str], message: str
) -> None:
    """Missing variables, an unreadable file or a bad base URL: one line, exit 2."""
    status, out, err = await run_example(*args, env={**without_twinne(), **env})
    assert status == 2
    (line,) = err.splitlines()
    assert line.startswith("bulk_profiles.py: error: ")
    assert message in line
    assert "s" * 32 not in err
    assert out == ""
