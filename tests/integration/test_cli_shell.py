"""The command line as the shell tools people know: issue 15's table, row by row.

Every test runs the real command in a subprocess: through pipes, through a
shell (``>&-``, ``| head``), or on a terminal, a pty from the standard library
that is the command's controlling terminal, so that typing Ctrl-C there sends
SIGINT exactly as it does for a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import pty
import re
import signal
import struct
import sys
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from test_cli import Run, aiotwinne, clean_env, env_for, one_error_line, start_serving
from test_cli import app as app  # the shared fixtures
from test_cli import emu as emu
from test_cli import user as user

from aiotwinne import __version__
from aiotwinne._redact import fingerprint
from aiotwinne.testing import EmulatedApp, EmulatedUser, TwinneEmulator

COMMAND = (sys.executable, "-m", "aiotwinne")


class Terminal:
    """A command running on a pty, as its controlling terminal; we type and read the screen."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self.master = master
        self.screen = b""
        self.closed = asyncio.Event()
        self._more = asyncio.Event()
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError as exc:  # EIO: every process closed its side
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
            self.closed.set()
        self.screen += data
        self._more.set()

    async def expect(self, text: str) -> None:
        """Wait until *text* is on the screen."""

        async def seen() -> None:
            while text.encode() not in self.screen:
                self._more.clear()
                await self._more.wait()

        await asyncio.wait_for(seen(), timeout=30)

    def type(self, keys: bytes) -> None:
        """Type *keys* (b"\\x03" is Ctrl-C, b"\\x04" Ctrl-D)."""
        os.write(self.master, keys)

    async def ended(self) -> int:
        """The exit status, once the command ended and the screen is read to the end."""
        status = await asyncio.wait_for(self.process.wait(), timeout=30)
        await asyncio.wait_for(self.closed.wait(), timeout=30)
        return status


def new_pty() -> tuple[int, int]:
    """A pty (master, slave) of 24 rows and 100 columns: a new pty has no size, so no bar."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    return master, slave


def _controlling_terminal() -> None:
    # In the child, after setsid(): make the pty (its stdin) the controlling
    # terminal, so Ctrl-C typed there sends SIGINT to the command.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@contextlib.asynccontextmanager
async def on_terminal(*args: str, env: dict[str, str]) -> AsyncIterator[Terminal]:
    """Run the command with stdin, stdout and stderr on a new pty, its controlling terminal."""
    master, slave = new_pty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm"},
        start_new_session=True,
        preexec_fn=_controlling_terminal,
    )
    os.close(slave)
    terminal = Terminal(process, master)
    try:
        yield terminal
    finally:
        asyncio.get_running_loop().remove_reader(master)
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(master)
        assert b"Traceback" not in terminal.screen, terminal.screen.decode(errors="replace")


async def until(condition: Callable[[], bool]) -> None:
    """Wait (30 s at most) for *condition*: the emulator's counters have no event to await."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - nothing to wait on but the counter
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout=30)


async def shell(script: str, *args: str, env: dict[str, str], stdin: bytes = b"") -> Run:
    """Run a bash *script* whose ``"$@"`` is the command line plus *args*."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        "bash",
        *COMMAND,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    run = Run(process.returncode or 0, out.decode(), err.decode())
    assert "Traceback" not in run.err
    return run


# -- row 1 ------------------------------------------------------------------------


async def test_version_prints_the_version_and_exits_0() -> None:
    """--version prints "aiotwinne X.Y.Z" on stdout."""
    run = await aiotwinne("--version", env=clean_env())
    assert (run.status, run.out, run.err) == (0, f"aiotwinne {__version__}\n", "")


# -- row 2 ------------------------------------------------------------------------


async def test_out_dash_is_stdout(emu: TwinneEmulator, app: EmulatedApp, tmp_path: Path) -> None:
    """profiles --out - writes to stdout, and no file named "-" appears."""
    (token,) = emu.issue_tokens(1, app)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "profiles",
        "--out",
        "-",
        env=clean_env(TWINNE_BASE_URL=emu.base_url),
        cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(token.encode()), timeout=60)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["status"] == "ok"
    assert os.listdir(tmp_path) == []


async def test_app_secret_file_dash_reads_stdin(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """--app-secret-file - reads the secret from stdin (the auth_key then from the environment)."""
    key = emu.authorize(user, app)
    env = clean_env(TWINNE_BASE_URL=emu.base_url, TWINNE_APP_ID=app.app_id, TWINNE_AUTH_KEY=key)
    run = await aiotwinne(
        "exchange", "--app-secret-file", "-", env=env, stdin=app.secret.encode() + b"\n"
    )
    assert run.status == 0, run.err
    assert "access_token" in json.loads(run.out)
    assert app.secret not in run.out


async def test_the_secret_and_the_key_cannot_both_come_from_stdin(app: EmulatedApp) -> None:
    """One stdin cannot hold both: a usage error before anything is read or sent."""
    run = await aiotwinne(
        "exchange", "-", "--app-secret-file", "-", env=clean_env(TWINNE_APP_ID="1")
    )
    assert run.status == 2
    assert "cannot both come from stdin: set TWINNE_AUTH_KEY" in one_error_line(run)


# -- row 3 ------------------------------------------------------------------------


async def test_secrets_come_from_the_environment_without_a_warning(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """TWINNE_AUTH_KEY then TWINNE_ACCESS_TOKEN, as the README shows: no warning, no argv."""
    env = {**env_for(emu, app), "TWINNE_AUTH_KEY": emu.authorize(user, app)}
    exchanged = await aiotwinne("exchange", "--field", "access_token", env=env)
    assert exchanged.status == 0, exchanged.err
    assert exchanged.err == ""
    token = exchanged.out.strip()
    me = await aiotwinne(
        "me",
        "--field",
        "username",
        env=clean_env(TWINNE_BASE_URL=emu.base_url, TWINNE_ACCESS_TOKEN=token),
    )
    assert (me.status, me.out, me.err) == (0, "ada\n", "")


async def test_q_silences_the_argv_warning(
    emu: TwinneEmulator, user: EmulatedUser, app: EmulatedApp
) -> None:
    """-q: the warning about a token on argv is not printed (errors still would be)."""
    token = emu.issue_token(user, app)
    run = await aiotwinne("me", token, "-q", env=clean_env(TWINNE_BASE_URL=emu.base_url))
    assert (run.status, run.err) == (0, "")


# -- row 4 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout",
    [b"\xef\xbb\xbf{secret}\n", b"\n\n  \n{secret}\n", b"\xef\xbb\xbf\r\n{secret}\r\n"],
    ids=["byte-order mark", "blank first lines", "both, CRLF"],
)
async def test_a_secret_file_with_a_bom_or_blank_lines_works(
    layout: bytes, emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser, tmp_path: Path
) -> None:
    """What editors save (a BOM, blank lines, CRLF) around the secret is not part of it."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(layout.replace(b"{secret}", app.secret.encode()))
    env = clean_env(
        TWINNE_BASE_URL=emu.base_url,
        TWINNE_APP_ID=app.app_id,
        TWINNE_AUTH_KEY=emu.authorize(user, app),
    )
    run = await aiotwinne("exchange", "--app-secret-file", str(secret_file), env=env)
    assert run.status == 0, run.err


# -- rows 5 and 11: a terminal ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "waits_for"),
    [(["exchange", "-"], "auth_key"), (["me", "-"], "token"), (["me"], "token")],
)
async def test_waiting_for_a_secret_on_a_terminal_ends_on_the_first_ctrl_c(
    argv: list[str], waits_for: str
) -> None:
    """It says what it reads, does not echo it, and the first Ctrl-C ends it: exit 130."""
    env = clean_env(
        TWINNE_APP_ID="1", TWINNE_APP_SECRET="s" * 32, TWINNE_BASE_URL="http://127.0.0.1:9"
    )
    async with on_terminal(*argv, env=env) as terminal:
        await terminal.expect(f"reading the {waits_for} from standard input")
        terminal.type(b"half-typed")
        terminal.type(b"\x03")
        status = await terminal.ended()
    assert status == 130
    assert b"aiotwinne: error: interrupted" in terminal.screen
    assert b"half-typed" not in terminal.screen  # not echoed


async def test_a_secret_typed_on_a_terminal_is_used_and_not_echoed(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """me reads the token typed on the terminal; the screen never shows it."""
    token = emu.issue_token(user, app)
    async with on_terminal(
        "me", "--field", "username", env=clean_env(TWINNE_BASE_URL=emu.base_url)
    ) as terminal:
        await terminal.expect("reading the token from standard input")
        terminal.type(token.encode() + b"\r")
        await terminal.expect("ada")
        assert await terminal.ended() == 0
    assert token.encode() not in terminal.screen


async def test_profiles_on_a_terminal_says_it_reads_standard_input(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """profiles with no FILE on a terminal says so, then reads lines until Ctrl-D."""
    token = emu.issue_token(user, app)
    async with on_terminal("profiles", env=clean_env(TWINNE_BASE_URL=emu.base_url)) as terminal:
        await terminal.expect("aiotwinne: reading tokens from standard input, one a line")
        terminal.type(token.encode() + b"\r\x04")
        status = await terminal.ended()
    assert status == 0, terminal.screen
    assert fingerprint(token).encode() in terminal.screen
    assert b"1 line in " in terminal.screen


# -- row 6: SIGTERM (and Ctrl-C) in the middle of profiles ----------------------------


@pytest.mark.parametrize(
    ("stop", "status", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "Ctrl-C"],
)
async def test_stopping_profiles_ends_cleanly(
    stop: int, status: int, word: str, emu: TwinneEmulator, app: EmulatedApp
) -> None:
    """SIGTERM ends like Ctrl-C: the summary, the bar cleared, every line written complete."""
    tokens = emu.issue_tokens(40, app)
    master, slave = new_pty()  # stderr: a terminal, so there is a progress bar
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "profiles",
        "--concurrency",
        "4",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=slave,
        env={**clean_env(TWINNE_BASE_URL=emu.base_url), "TERM": "xterm"},
        start_new_session=True,
    )
    os.close(slave)
    terminal = Terminal(process, master)
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(("\n".join(tokens[:4]) + "\n").encode())
        await process.stdin.drain()
        answered = [await asyncio.wait_for(process.stdout.readline(), 30) for _ in range(4)]
        # The rest are held by the emulator when the signal comes.
        emu.inject("latency", endpoint="user_info", delay=60, count=100)
        process.stdin.write(("\n".join(tokens[4:]) + "\n").encode())
        await process.stdin.drain()
        await until(lambda: emu.count("user_info") >= 8)
        await terminal.expect(" lines")  # the bar: "4 lines [00:00, ...]"
        process.send_signal(stop)
        out = b"".join(answered) + await asyncio.wait_for(process.stdout.read(), timeout=30)
        assert await terminal.ended() == status, terminal.screen.decode()
    finally:
        os.close(master)
    screen = terminal.screen.decode()
    assert "Traceback" not in screen
    # The bar is cleared (a carriage return, then the lines start at the margin).
    *_, summary, error, end = screen.replace("\r\n", "\n").split("\n")
    *drawn, cleared, text = summary.split("\r")
    assert " lines [" in drawn[-1]  # the bar: "N lines [00:00, ...]", the unit spaced
    assert cleared.strip() == ""
    assert len(cleared) >= len(drawn[-1])
    assert text.startswith("aiotwinne: stopped after 4 lines in ")
    assert error.strip() == f"aiotwinne: error: {word}"
    assert end == ""
    lines = [json.loads(line) for line in out.decode().splitlines()]  # every line whole
    assert [line["status"] for line in lines] == ["ok"] * 4


# -- row 7: closed streams ---------------------------------------------------------


async def test_a_closed_stdout_is_one_line_and_exit_2() -> None:
    """aiotwinne login-url >&- : "cannot write the output", exit 2, no traceback."""
    run = await shell('"$@" >&-', "login-url", "--app-id", "1", env=clean_env())
    assert run.status == 2
    assert one_error_line(run) == (
        "aiotwinne: error: cannot write the output: standard output is closed"
    )


async def test_a_closed_stderr_keeps_the_exit_status(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """2>&- : output and status as usual; a failure's line is lost, its status is not."""
    env = clean_env(TWINNE_BASE_URL=emu.base_url, TWINNE_ACCESS_TOKEN=emu.issue_token(user, app))
    ok = await shell('"$@" 2>&-', "me", "--field", "username", env=env)
    assert (ok.status, ok.out) == (0, "ada\n")
    refused = await shell('"$@" 2>&-', "me", env={**env, "TWINNE_ACCESS_TOKEN": "0" * 32})
    assert (refused.status, refused.out, refused.err) == (1, "", "")


# -- row 8: a reader that goes away -------------------------------------------------------


async def test_a_reader_that_goes_away_ends_quietly_with_141(
    emu: TwinneEmulator, app: EmulatedApp, tmp_path: Path
) -> None:
    """aiotwinne profiles FILE | head -n 1: one line shown, nothing on stderr, status 141."""
    tokens = tmp_path / "tokens"
    tokens.write_text("\n".join(emu.issue_tokens(3000, app)) + "\n")
    errors = tmp_path / "errors"
    run = await shell(
        f'"$@" 2>{errors} | head -n 1; echo "status ${{PIPESTATUS[0]}}"',
        "profiles",
        str(tokens),
        env=clean_env(TWINNE_BASE_URL=emu.base_url),
    )
    first, status = run.out.splitlines()
    assert json.loads(first)["line"] == 1
    assert status == "status 141"
    assert errors.read_text() == ""


# -- row 9: usage errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["profiles", "--bogus"],
            "aiotwinne: error: unrecognized arguments: --bogus; see 'aiotwinne profiles --help'",
        ),
        (
            ["profiles", "--concurrency", "0"],
            "aiotwinne: error: argument --concurrency: must be at least 1: '0'; "
            "see 'aiotwinne profiles --help'",
        ),
        (
            ["me", "--app-secret-file=x"],
            "aiotwinne: error: unrecognized arguments: --app-secret-file=x; "
            "see 'aiotwinne me --help'",
        ),
        (
            [],
            "aiotwinne: error: the following arguments are required: COMMAND; "
            "see 'aiotwinne --help'",
        ),
        (
            ["frobnicate"],
            # argparse quotes the choices on newer Pythons: the start and end are ours.
            "aiotwinne: error: argument COMMAND: invalid choice: 'frobnicate' (choose from ",
        ),
    ],
)
async def test_a_usage_error_is_one_line_naming_the_command_s_help(
    argv: list[str], line: str
) -> None:
    """One line, the command's own --help named, exit 2."""
    run = await aiotwinne(*argv, env=clean_env())
    assert run.status == 2
    shown = one_error_line(run)
    assert shown.startswith(line)
    command = argv[0] if argv and argv[0] in ("profiles", "me") else None
    assert shown.endswith(f"; see '{' '.join(filter(None, ['aiotwinne', command]))} --help'")
    assert run.out == ""


# -- row 10 ------------------------------------------------------------------------


async def test_a_plain_http_base_url_names_the_flag() -> None:
    """An http:// base URL to another host names --allow-insecure, which then works."""
    env = clean_env(TWINNE_BASE_URL="http://twinne.example", TWINNE_APP_ID="7")
    refused = await aiotwinne("login-url", env=env)
    assert refused.status == 2
    line = one_error_line(refused)
    assert line.endswith("use https://, or pass --allow-insecure")
    assert "allow_insecure=True" not in line
    allowed = await aiotwinne("login-url", "--allow-insecure", env=env)
    assert (allowed.status, allowed.out) == (0, "http://twinne.example/api/oauth?app_id=7\n")


# -- row 12 ------------------------------------------------------------------------


@pytest.mark.parametrize("verbose", [True, False], ids=["-v", "quiet by default"])
async def test_one_clean_line_per_retry_under_v(
    verbose: bool, emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """-v: "aiotwinne: retrying GET ... after attempt N of 4 failed: ..." once per retry."""
    token = emu.issue_token(user, app)
    emu.inject("http_error", status=503, endpoint="user_info", count=2)
    env = clean_env(TWINNE_BASE_URL=emu.base_url, TWINNE_ACCESS_TOKEN=token)
    run = await aiotwinne(
        "me", *(["-v"] if verbose else []), "--field", "id", env=env, secrets=[token]
    )
    assert run.status == 0, run.err
    if not verbose:
        assert run.err == ""
        return
    lines = run.err.splitlines()
    assert len(lines) == 2, run.err
    for number, line in enumerate(lines, start=1):
        assert line.startswith(
            f"aiotwinne: retrying GET {emu.base_url}/api/get_user_info?access_token=*** "
            f"after attempt {number} of 4 failed: "
        )
    assert "stamina" not in run.err


# -- row 13 ------------------------------------------------------------------------


async def test_attempts_sets_the_tries_per_request(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """--attempts 1: a 503 is not retried (exit 3 after one request); --attempts 3 gets through."""
    token = emu.issue_token(user, app)
    env = clean_env(TWINNE_BASE_URL=emu.base_url, TWINNE_ACCESS_TOKEN=token)
    emu.inject("http_error", status=503, endpoint="user_info", count=2)
    once = await aiotwinne("me", "--attempts", "1", env=env, secrets=[token])
    assert once.status == 3
    assert emu.count("user_info") == 1
    emu.reset_stats()
    thrice = await aiotwinne("me", "--attempts", "3", env=env, secrets=[token])
    assert thrice.status == 0, thrice.err
    assert emu.count("user_info") == 2  # the one 503 left, then the answer


async def test_field_prints_one_value_and_a_wrong_name_spends_no_key(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """--field: a string as is, anything else as JSON; exchange checks the name first."""
    key = emu.authorize(user, app)
    env = {**env_for(emu, app), "TWINNE_AUTH_KEY": key}
    wrong = await aiotwinne("exchange", "--field", "token", env=env, secrets=[key])
    assert wrong.status == 2
    assert "invalid choice: 'token'" in one_error_line(wrong)
    assert emu.count("authorize") == 0  # the single-use key is still good
    fingerprint_only = await aiotwinne(
        "exchange", "--field", "fingerprint", env=env, secrets=[key]
    )
    assert fingerprint_only.status == 0, fingerprint_only.err
    assert re.fullmatch(r"[0-9a-f]{8}\n", fingerprint_only.out)
    token = emu.issue_token(user, app)
    me_env = clean_env(TWINNE_BASE_URL=emu.base_url, TWINNE_ACCESS_TOKEN=token)
    user_id = await aiotwinne("me", "--field", "id", env=me_env)
    assert user_id.out == f"{user.id}\n"
    missing = await aiotwinne("me", "--field", "shoe_size", env=me_env)
    assert missing.status == 2
    assert "no field 'shoe_size' in the answer; the fields are id, " in one_error_line(missing)


async def test_q_prints_only_errors(emu: TwinneEmulator, app: EmulatedApp) -> None:
    """profiles -q: the JSON lines, no summary on stderr."""
    (token,) = emu.issue_tokens(1, app)
    run = await aiotwinne(
        "profiles", "-q", env=clean_env(TWINNE_BASE_URL=emu.base_url), stdin=token.encode()
    )
    assert run.status == 0
    assert run.err == ""
    assert json.loads(run.out)["status"] == "ok"


# -- row 14 ------------------------------------------------------------------------


async def test_the_summary_speaks_correct_english() -> None:
    """ "1 line", and no speed when Twinne answered nothing."""
    env = clean_env(TWINNE_BASE_URL="http://127.0.0.1:9")
    run = await aiotwinne("profiles", env=env, stdin=b"\n")
    assert run.status == 1
    assert run.err.startswith("aiotwinne: 1 line in ")
    assert "profiles/s" not in run.err
    assert "lines" not in run.err


@pytest.mark.parametrize(
    ("command", "present", "absent"),
    [
        (
            "me",
            ["--wire", "--field", "--attempts", "--timeout"],
            ["--app-secret-file", "--app-id"],
        ),
        ("profiles", ["--out", "--attempts"], ["--app-secret-file", "--app-id"]),
        (
            "login-url",
            ["--app-id", "--base-url"],
            ["--app-secret-file", "--timeout", "--attempts"],
        ),
        ("exchange", ["--app-id", "--app-secret-file", "--field", "--attempts"], ["--wire"]),
    ],
)
async def test_each_command_lists_only_the_options_it_uses(
    command: str, present: list[str], absent: list[str]
) -> None:
    """me --help has no --app-secret-file; login-url, which sends nothing, no --timeout."""
    run = await aiotwinne(command, "--help", env=clean_env())
    assert run.status == 0
    for option in present:
        assert option in run.out
    for option in absent:
        assert option not in run.out


async def test_sigterm_stops_a_serving_command_cleanly() -> None:
    """The emulator, which runs until stopped, ends on SIGTERM as on Ctrl-C: "stopped", 0."""
    process, _ = await start_serving("emulator", "--port", "0")
    process.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0
    assert err.decode() == "stopped\n"
    assert out == b""  # the banner was read by start_serving; nothing after it
