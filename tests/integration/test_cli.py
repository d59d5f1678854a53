"""The ``aiotwinne`` command line, run as a real subprocess against an emulator in this loop."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from aiotwinne._redact import fingerprint
from aiotwinne.testing import EmulatedApp, EmulatedUser, TwinneEmulator

CONSOLE_SCRIPT = Path(sys.executable).with_name("aiotwinne")
HEX32 = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


@attrs.frozen
class Run:
    """What one run of the command printed, and how it ended."""

    status: int
    out: str
    err: str


@pytest.fixture
async def emu() -> AsyncIterator[TwinneEmulator]:
    """A running emulator with one app and one user."""
    async with TwinneEmulator() as emulator:
        emulator.add_app(name="CLI")
        emulator.add_user(user_name="ada", user_firstname="Ada", user_lastname="Lovelace")
        yield emulator


@pytest.fixture
def app(emu: TwinneEmulator) -> EmulatedApp:
    """The emulator's app."""
    return emu.default_app


@pytest.fixture
def user(emu: TwinneEmulator) -> EmulatedUser:
    """The emulator's user."""
    return emu.default_user


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any TWINNE_* setting, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINNE_")}
    env.update(extra)
    return env


def env_for(emu: TwinneEmulator, app: EmulatedApp) -> dict[str, str]:
    """The environment that points the command at the emulator's app."""
    return clean_env(
        TWINNE_BASE_URL=emu.base_url, TWINNE_APP_ID=app.app_id, TWINNE_APP_SECRET=app.secret
    )


async def aiotwinne(
    *args: str,
    env: dict[str, str],
    stdin: bytes = b"",
    secrets: Sequence[str] = (),
    program: Sequence[str] = (sys.executable, "-m", "aiotwinne"),
) -> Run:
    """Run the command (this loop keeps serving the emulator) and check no secret leaked."""
    process = await asyncio.create_subprocess_exec(
        *program,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    run = Run(process.returncode or 0, out.decode(), err.decode())
    for secret in (*secrets, env.get("TWINNE_APP_SECRET", "")):
        if secret:
            assert secret not in run.out
            assert secret not in run.err
    assert "Traceback" not in run.err
    return run


def one_error_line(run: Run) -> str:
    """The single ``aiotwinne: error: ...`` line a failed command prints."""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("aiotwinne: error: ")
    return lines[0]


async def test_login_url_prints_the_link_through_the_console_script(
    emu: TwinneEmulator, app: EmulatedApp
) -> None:
    """The installed console script prints the app's login link."""
    run = await aiotwinne("login-url", env=env_for(emu, app), program=[str(CONSOLE_SCRIPT)])
    assert run.status == 0
    assert run.out.strip() == emu.login_url(app)


async def test_exchange_prints_the_token_once_and_a_spent_key_fails_in_one_line(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """exchange prints the token as JSON; a second exchange of the same key exits 1."""
    key = emu.authorize(user, app)
    env = {**env_for(emu, app), "TWINNE_AUTH_KEY": key}
    run = await aiotwinne("exchange", env=env)
    assert run.status == 0
    assert run.err == ""
    token = json.loads(run.out)
    assert set(token) == {"access_token", "fingerprint", "issued_at", "expires_at"}
    assert HEX32.fullmatch(token["access_token"])

    again = await aiotwinne("exchange", env=env, secrets=[key])
    assert again.status == 1
    assert "invalid auth_key" in one_error_line(again)
    assert again.out == ""


async def test_a_secret_on_the_command_line_works_with_a_warning(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """An auth_key or token typed on argv (visible in ps) is used, and the user is warned."""
    key = emu.authorize(user, app)
    run = await aiotwinne("exchange", key, env=env_for(emu, app), secrets=[key])
    assert run.status == 0, run.err
    (warning,) = run.err.splitlines()
    assert warning.startswith("aiotwinne: warning: the auth_key on the command line is visible")
    assert "TWINNE_AUTH_KEY" in warning
    token = json.loads(run.out)["access_token"]

    me = await aiotwinne("me", token, env=clean_env(TWINNE_BASE_URL=emu.base_url))
    assert me.status == 0
    assert "TWINNE_ACCESS_TOKEN" in me.err
    assert token not in me.err


async def test_exchange_reads_the_secret_from_a_file(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser, tmp_path: Path
) -> None:
    """--app-secret-file replaces TWINNE_APP_SECRET; the key may come from stdin."""
    secret_file = tmp_path / "secret"
    secret_file.write_text(app.secret + "\n")
    env = clean_env(TWINNE_BASE_URL=emu.base_url, TWINNE_APP_ID=app.app_id)
    key = emu.authorize(user, app)
    run = await aiotwinne(
        "exchange", "-", "--app-secret-file", str(secret_file), env=env, stdin=key.encode() + b"\n"
    )
    assert run.status == 0, run.err
    assert app.secret not in run.out
    assert "access_token" in json.loads(run.out)


async def test_me_prints_the_profile_and_an_expired_token_exits_1(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """me prints the model as JSON (or the wire form); an expired token is one error line."""
    token = emu.issue_token(user, app)
    env = clean_env(TWINNE_BASE_URL=emu.base_url)  # no credentials needed
    run = await aiotwinne("me", env={**env, "TWINNE_ACCESS_TOKEN": token})
    assert run.status == 0, run.err
    profile = json.loads(run.out)
    assert profile["username"] == "ada"
    assert profile["id"] == user.id
    assert profile["verified"] in (True, False)

    wire = await aiotwinne("me", "-", "--wire", env=env, stdin=token.encode())
    assert json.loads(wire.out)["user_name"] == "ada"

    emu.advance(3601)
    expired = await aiotwinne("me", env=env, stdin=token.encode(), secrets=[token])
    assert expired.status == 1
    assert "expired access_token" in one_error_line(expired)


async def test_profiles_writes_one_json_line_per_input_line(
    emu: TwinneEmulator, app: EmulatedApp, tmp_path: Path
) -> None:
    """Every kind of line gets its own result at its own line number, tokens as fingerprints."""
    old = emu.add_users(1)
    expired = emu.issue_token(old[0], app)
    emu.advance(3601)
    good = emu.issue_tokens(3, app)
    gone = emu.add_users(1)
    deleted = emu.issue_token(gone[0], app)
    emu.delete_user(gone[0])
    unknown = "0" * 32
    lines = [
        good[0].encode(),
        expired.encode(),
        b"",
        unknown.encode(),
        b"  " + good[1].encode() + b"\r",  # stray spaces and CRLF are tolerated
        b"ab cd",
        b"\xff\xfe not utf-8",
        deleted.encode(),
        good[2].encode(),
    ]
    tokens_file = tmp_path / "tokens.txt"
    tokens_file.write_bytes(b"\n".join(lines) + b"\n")
    all_tokens = [*good, expired, deleted, unknown]

    run = await aiotwinne("profiles", str(tokens_file), env=env_for(emu, app), secrets=all_tokens)
    assert run.status == 1
    results = [json.loads(line) for line in run.out.splitlines()]
    assert [r["line"] for r in results] == list(range(1, 10))
    assert [r["status"] for r in results] == [
        "ok",
        "expired",
        "blank",
        "invalid",
        "ok",
        "malformed",
        "malformed",
        "not_found",
        "ok",
    ]
    assert results[0]["user"]["username"]
    assert results[1]["error"] == "TokenExpiredError"
    assert results[6]["message"] == "line is not UTF-8 text"
    assert results[0]["token"] == fingerprint(good[0])
    assert "9 lines" in run.err
    assert (
        "3 ok, 1 expired, 1 invalid, 1 not found, 0 refused, 0 failed, 3 blank or malformed"
        in run.err
    )
    assert "profiles/s" in run.err


async def test_profiles_from_stdin_all_good_exits_0_and_can_write_to_a_file(
    emu: TwinneEmulator, app: EmulatedApp, tmp_path: Path
) -> None:
    """Tokens on stdin, results in --out, unordered, rate-limited: exit 0 when all succeed."""
    tokens = emu.issue_tokens(200, app)
    out = tmp_path / "profiles.jsonl"
    run = await aiotwinne(
        "profiles",
        "--out",
        str(out),
        "--unordered",
        "--concurrency",
        "8",
        "--rate",
        "100000",
        env=env_for(emu, app),
        stdin="\n".join(tokens).encode(),  # no final newline: the last line still counts
        secrets=tokens,
    )
    assert run.status == 0, run.err
    assert run.out == ""
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["line"] for r in results) == list(range(1, 201))
    assert {r["status"] for r in results} == {"ok"}
    assert "200 ok" in run.err


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_profiles_exits_3_when_twinne_cannot_be_reached(tmp_path: Path) -> None:
    """No line got an answer from Twinne: exit 3, each line marked failed."""
    env = clean_env(TWINNE_BASE_URL=f"http://127.0.0.1:{closed_port()}")
    run = await aiotwinne("profiles", "--timeout", "1", env=env, stdin=b"a\nb\n")
    assert run.status == 3
    assert [json.loads(line)["status"] for line in run.out.splitlines()] == ["failed", "failed"]


async def test_profiles_exits_1_when_twinne_refuses_in_its_own_words(
    emu: TwinneEmulator, app: EmulatedApp, user: EmulatedUser
) -> None:
    """The feature switched off is Twinne's answer: lines are "refused", exit 1 (as for me)."""
    token = emu.issue_token(user, app)
    emu.set_feature_enabled(False)
    env = clean_env(TWINNE_BASE_URL=emu.base_url)
    run = await aiotwinne("profiles", env=env, stdin=token.encode(), secrets=[token])
    assert run.status == 1, run.err
    (line,) = [json.loads(text) for text in run.out.splitlines()]
    assert line["status"] == "refused"
    assert "1 refused" in run.err
    me = await aiotwinne("me", "-", env=env, stdin=token.encode(), secrets=[token])
    assert me.status == 1


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["exchange", "KEY"], {}, "no app id"),
        (["exchange", "KEY"], {"TWINNE_APP_ID": "1"}, "no app secret"),
        (["login-url"], {"TWINNE_APP_ID": "1", "TWINNE_BASE_URL": "ftp://x"}, "base_url"),
        (["login-url", "--app-id", "1 2"], {}, "app_id contains whitespace"),
        (["profiles", "/no/such/file"], {}, "cannot read /no/such/file"),
        (["profiles", "--out", "/no/such/dir/out"], {}, "cannot write /no/such/dir/out"),
        (
            ["exchange", "KEY", "--app-secret-file", "/no/such/secret"],
            {"TWINNE_APP_ID": "1"},
            "cannot read --app-secret-file",
        ),
    ],
)
async def test_bad_input_is_one_line_on_stderr_and_exit_2(
    args: list[str], env: dict[str, str], message: str
) -> None:
    """Missing credentials, a bad URL or an unreadable file: exit 2, one line, no traceback."""
    run = await aiotwinne(*args, env=clean_env(**env))
    assert run.status == 2
    assert message in one_error_line(run)
    assert run.out == ""


async def test_bad_flags_are_usage_errors() -> None:
    """argparse refuses a bad --concurrency with exit 2."""
    run = await aiotwinne("profiles", "--concurrency", "0", env=clean_env())
    assert run.status == 2
    assert "--concurrency" in run.err


async def test_help_shows_no_secret_from_the_environment(app: EmulatedApp) -> None:
    """--help mentions the variables, never their values."""
    run = await aiotwinne(
        "exchange", "--help", env=clean_env(TWINNE_APP_SECRET=app.secret, TWINNE_APP_ID="1")
    )
    assert run.status == 0
    assert "TWINNE_APP_SECRET" in run.out


async def start_serving(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start a serving command and read its stdout up to "Press Ctrl-C to stop."."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiotwinne",
        *args,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    seen = b""
    while b"Press Ctrl-C to stop." not in seen:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line, f"exited early: {seen.decode()}"
        seen += line
    return process, seen.decode()


async def stop_with_ctrl_c(process: asyncio.subprocess.Process) -> Run:
    """Send SIGINT, as Ctrl-C does, and collect the rest."""
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    return Run(process.returncode or 0, out.decode(), err.decode())


async def test_emulator_command_prints_credentials_serves_and_stops_on_ctrl_c() -> None:
    """The emulator prints a working app, answers like Twinne, and Ctrl-C exits 0 cleanly."""
    process, banner = await start_serving("emulator", "--port", "0", "--users", "3")
    fields: dict[str, Any] = dict(
        re.findall(r"^  (app id|app secret|login link)\s+(\S+)$", banner, re.MULTILINE)
    )
    assert HEX32.fullmatch(fields["app secret"])
    assert "printed on purpose" in banner
    base = re.search(r"running at (\S+)", banner)
    assert base is not None
    check = await aiotwinne(
        "me",
        env=clean_env(TWINNE_BASE_URL=base[1], TWINNE_ACCESS_TOKEN="0" * 32),
        secrets=[fields["app secret"]],
    )
    assert "invalid access_token" in one_error_line(check)
    stopped = await stop_with_ctrl_c(process)
    assert stopped.status == 0
    assert "Traceback" not in stopped.err


async def test_demo_tells_the_whole_story() -> None:
    """aiotwinne demo walks login, approval, token, profile, re-login and bulk; exit 0."""
    run = await aiotwinne("demo", "--count", "400", env=clean_env())
    assert run.status == 0, run.err
    story = run.out
    for marker in (
        "[twinne] /api/oauth?app_id=",
        "Sign in to Twinne",
        "Log in With Twinne",
        "/auth/twinne/callback?auth_key=***",
        "Signed in: the site shows 'Ada Lovelace'",
        "token ",
        "username   ada",
        "served straight from the session",
        "Silent re-login: 3 redirects",
        "400 tokens",
        "0 failed",
    ):
        assert marker in story, marker
    assert not HEX32.search(story)  # no auth_key, token or secret in full
    assert run.err == ""


async def test_demo_serve_keeps_running_until_ctrl_c() -> None:
    """demo --serve prints the site's address after the story and stops cleanly on Ctrl-C."""
    process, shown = await start_serving(
        "demo", "--serve", "--port", "0", "--twinne-port", "0", "--count", "50"
    )
    assert "open this" in shown
    stopped = await stop_with_ctrl_c(process)
    assert stopped.status == 0
    assert "Traceback" not in stopped.err
