"""The command line's refusals and edge cases, run in this process through ``main()``.

None of these reaches a working Twinne: each stops at a bad flag, bad input, a
busy port or a missing file, so they run without a server in this process.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiotwinne import cli
from aiotwinne.cli import _browser

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
        (["me"], "a b\n", "access_token contains whitespace"),
        (["exchange", "--app-id", "1"], "a b\n", "auth_key contains whitespace"),
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

    def isatty(self) -> bool:
        return False


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


def test_demo_on_a_busy_site_port_exits_2(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo site's port in use (after the emulator started): one line, exit 2."""
    assert cli.main(["demo", "--port", str(busy_port), "--count", "1"]) == 2
    assert f"cannot listen on 127.0.0.1:{busy_port}" in error_line(capsys)


# The demo's site runs in this process: aiohttp-session 2.12's string request keys
# warn on aiohttp 3.14 (see pyproject.toml), and -W error on the command line
# outranks the ini setting.
@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning:aiohttp_session")
def test_a_story_that_goes_wrong_names_the_step_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A page that lacks what the story needs (here the profile link): exit 1, one line."""

    async def no_link(self: _browser.Browser, href: str) -> list[_browser.Hop]:
        raise _browser.BrowserError(f"no link to {href} on the page")

    monkeypatch.setattr(_browser.Browser, "click", no_link)
    assert cli.main(["demo", "--count", "1"]) == 1
    message = "aiotwinne: error: the demo went wrong: no link to /profile on the page"
    assert error_line(capsys) == message


def test_demo_without_the_web_extra_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed without aiohttp-session (no 'web' extra), the demo explains in one line."""
    monkeypatch.setitem(sys.modules, "aiohttp_session", None)  # what a missing package does
    monkeypatch.delitem(sys.modules, "aiotwinne.cli._site", raising=False)
    monkeypatch.delattr(cli, "_site", raising=False)
    assert cli.main(["demo"]) == 2
    line = error_line(capsys)
    assert "the demo site needs the 'web' extra (pip install 'aiotwinne[web,cli]')" in line
    assert "aiohttp_session" in line


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


def _blank_tokens(tmp_path: Path) -> Path:
    """A token file whose one blank line is answered without a request."""
    source = tmp_path / "tokens"
    source.write_text("\n")
    return source


@pytest.mark.parametrize(
    ("out", "reason"),
    [
        pytest.param(
            "/dev/full",
            "No space left on device",
            marks=pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full"),
        ),
        ("{tmp}", "Is a directory"),
        ("{tmp}/no/such/dir/out.jsonl", "No such file or directory"),
    ],
    ids=["disk full", "a directory", "no such directory"],
)
def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(
    out: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out on a full disk or to a path that is not a writable file: exit 2, no traceback."""
    out = out.format(tmp=tmp_path)
    argv = ["profiles", str(_blank_tokens(tmp_path)), "--out", out, "--base-url", NOWHERE]
    assert cli.main(argv) == 2
    assert error_line(capsys) == f"aiotwinne: error: cannot write {out}: {reason}"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_stdout_on_a_full_disk_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Output buffered for stdout is written before main() returns: a failure is one line."""
    with open("/dev/full", "w", encoding="utf-8") as full:
        monkeypatch.setattr("sys.stdout", full)
        assert cli.main(["login-url", "--app-id", "42", "--base-url", NOWHERE]) == 2
        message = "aiotwinne: error: cannot write the output: No space left on device"
        assert error_line(capsys) == message
    # closing flushed what was buffered into the null device, not onto the full disk


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_unbuffered_stdout_on_a_full_disk_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A print that fails at once (line buffering, PYTHONUNBUFFERED) is reported once."""
    with open("/dev/full", "w", buffering=1, encoding="utf-8") as full:
        monkeypatch.setattr("sys.stdout", full)
        assert cli.main(["login-url", "--app-id", "42", "--base-url", NOWHERE]) == 2
        message = "aiotwinne: error: input/output error: No space left on device"
        assert error_line(capsys) == message


class _GoneReader:
    """A stdout whose reader went away: every write (or only the last flush) fails."""

    def __init__(self, *, on_write: bool) -> None:
        self.on_write = on_write

    def write(self, text: str) -> int:
        if self.on_write:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        return len(text)

    def flush(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


@pytest.mark.parametrize("on_write", [True, False], ids=["while writing", "at the last flush"])
def test_a_reader_gone_away_ends_quietly_with_exit_141(
    on_write: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`aiotwinne profiles | head`: no error line, no traceback, exit 141 (128 + SIGPIPE)."""
    monkeypatch.setattr("sys.stdout", _GoneReader(on_write=on_write))
    assert cli.main(["profiles", str(_blank_tokens(tmp_path)), "--base-url", NOWHERE]) == 141
    assert "error" not in capsys.readouterr().err


class _BrokenStdin:
    def readline(self) -> str:
        raise OSError(errno.EIO, "Input/output error")

    def isatty(self) -> bool:
        return False


def test_a_stdin_that_cannot_be_read_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`me -` with a stdin that fails: exit 2 with the reason."""
    monkeypatch.setattr("sys.stdin", _BrokenStdin())
    assert cli.main(["me", "-", "--base-url", NOWHERE]) == 2
    message = "aiotwinne: error: cannot read the token from stdin: Input/output error"
    assert error_line(capsys) == message


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            aiohttp.ServerDisconnectedError(),
            "network error (ServerDisconnectedError): Server disconnected",
        ),
        (asyncio.TimeoutError(), "network error (TimeoutError)"),
        (
            aiohttp.ClientConnectionError(
                "http://127.0.0.1:1/api/authorize?app_id=1&app_secret=" + "5e" * 16
            ),
            "network error (ClientConnectionError): http://127.0.0.1:1/api/authorize?app_id=1"
            "&app_secret=***",
        ),
    ],
    ids=["disconnected", "timeout", "secret in the message"],
)
def test_a_connection_error_outside_the_client_is_one_redacted_line_and_exit_3(
    error: Exception,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's browser losing its connection: exit 3, one line, no secret, no traceback."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(_browser.Browser, "_navigate", broken)
    assert cli.main(["demo", "--count", "1"]) == 3
    assert error_line(capsys) == f"aiotwinne: error: {message}"
