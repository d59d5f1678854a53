"""The command line's refusals and edge cases, run in this process through ``main()``.

None of these reaches a working Twinne: each stops at a bad flag, bad input, a
busy port or a missing file, so they run without a server in this process.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiotwinne import cli

NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _no_twinne_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWINNE_APP_ID", "TWINNE_APP_SECRET", "TWINNE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other socket is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line printed on stderr."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("aiotwinne: error: ")
    return line


@pytest.mark.parametrize(
    "argv",
    [
        ["profiles", "--concurrency", "many"],
        ["profiles", "--rate", "0"],
        ["profiles", "--rate", "fast"],
        ["profiles", "--timeout", "inf"],
        ["emulator", "--port", "70000"],
        ["emulator", "--port", "http"],
        ["demo", "--count", "0"],
        [],
    ],
)
def test_bad_flags_exit_2(argv: list[str]) -> None:
    """argparse refuses malformed numbers and ports, and a missing command."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2


def test_login_url_needs_no_secret_and_verbose_is_accepted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """login-url works from the app id alone; -v is a flag of every command."""
    assert cli.main(["login-url", "-v", "--app-id", "42", "--base-url", NOWHERE]) == 0
    assert capsys.readouterr().out.strip() == f"{NOWHERE}/api/oauth?app_id=42"


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["me", "-"], "", "no token on stdin"),
        (["me", "a b"], "", "access_token contains whitespace"),
        (["exchange", "a b", "--app-id", "1"], "", "auth_key contains whitespace"),
    ],
)
def test_unusable_arguments_exit_2_before_any_request(
    argv: list[str],
    stdin: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An empty stdin or a token with spaces is refused locally, in one line."""
    monkeypatch.setenv("TWINNE_APP_SECRET", "s" * 32)
    monkeypatch.setattr("sys.stdin", _Stdin(stdin))
    assert cli.main([*argv, "--base-url", NOWHERE]) == 2
    assert message in error_line(capsys)


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def readline(self) -> str:
        return self.text


def test_an_empty_secret_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--app-secret-file pointing at an empty file exits 2."""
    empty = tmp_path / "secret"
    empty.write_text("\n")
    argv = ["exchange", "KEY", "--app-id", "1", "--app-secret-file", str(empty)]
    assert cli.main(argv) == 2
    assert "is empty" in error_line(capsys)


def test_overlong_and_undecodable_lines_are_reported_not_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A huge line and a non-UTF-8 line are malformed results at their line numbers."""
    source = tmp_path / "tokens"
    source.write_bytes(b"\xef\xbb\xbf\n" + b"x" * 100_000 + b"\n\xc3(\n" + b"y" * 5_000)
    assert cli.main(["profiles", str(source), "--base-url", NOWHERE]) == 1
    captured = capsys.readouterr()
    results = [json.loads(line) for line in captured.out.splitlines()]
    assert [(r["line"], r["status"]) for r in results] == [
        (1, "blank"),  # only a byte-order mark
        (2, "malformed"),
        (3, "malformed"),
        (4, "malformed"),
    ]
    assert results[1]["message"] == "line longer than 4096 bytes"
    assert results[2]["message"] == "line is not UTF-8 text"
    assert "4 lines" in captured.err


def test_a_directory_is_not_a_readable_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path that is not a readable file: exit 2 with the reason."""
    assert cli.main(["profiles", str(tmp_path), "--base-url", NOWHERE]) == 2
    assert "cannot read" in error_line(capsys)


def test_emulator_on_a_busy_port_exits_2(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port in use is a one-line error, not a traceback."""
    assert cli.main(["emulator", "--port", str(busy_port)]) == 2
    assert f"cannot listen on 127.0.0.1:{busy_port}" in error_line(capsys)


def test_demo_on_a_busy_port_exits_2(busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's emulator port in use: one line, exit 2."""
    assert cli.main(["demo", "--twinne-port", str(busy_port)]) == 2
    assert "cannot listen" in error_line(capsys)


def test_demo_without_a_source_checkout_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed from a wheel (no examples/webapp.py), the demo explains in one line."""
    monkeypatch.setattr(cli, "_WEBAPP", tmp_path / "examples" / "webapp.py")
    assert cli.main(["demo"]) == 2
    assert "needs examples/webapp.py from a source checkout" in error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "status", "stderr"),
    [
        (["login-url", "--app-id", "1"], 130, "aiotwinne: error: interrupted\n"),
        (["emulator"], 0, "stopped\n"),
    ],
)
def test_ctrl_c_is_130_or_a_clean_stop_for_servers(
    argv: list[str],
    status: int,
    stderr: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C stops a command with 130; a serving command stops cleanly with 0."""

    def interrupted(coro: Any) -> Any:
        coro.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(asyncio, "run", interrupted)
    assert cli.main(argv) == status
    assert capsys.readouterr().err == stderr
