"""Every Python block of README.md runs, so the docs cannot drift from the code.

How the blocks run (README.md says so next to its first Python block):

* A block runs as a module (``__name__`` is ``"__readme__"``, so a server's
  ``if __name__ == "__main__":`` builds the app without serving it), in a
  fresh namespace that holds :func:`givens`: ``APP_ID``, ``APP_SECRET``,
  ``AUTH_KEY`` and the other names a block leaves to the reader, backed by a
  real emulator on loopback. ``TwinneClient``'s default base URL points at that
  emulator while the blocks run: the blocks talk to "Twinne" as written.
* A block whose first line is ``# conftest.py``, ``# test_*.py`` or (a TOML
  block) ``# pyproject.toml`` is a file of that name: they are written to an
  empty directory together and run with ``python -m pytest`` there, as a
  reader would; they must pass, with no warning.
* ``<!-- not run: REASON -->`` on the line before a block skips it, visibly;
  the reason is required. Any other block that fails fails this test.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp_session
import attrs
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from aiotwinne import TwinneClient
from aiotwinne.testing import TwinneEmulator
from aiotwinne.web import DEFAULT_CALLBACK_PATH, cookie_storage

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(python|toml)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_NOT_RUN = re.compile(r"<!--\s*not run:(.*?)-->\s*$")
_FILE = re.compile(r"#\s*((?:conftest|test_\w+)\.py|pyproject\.toml)\s*$")


@attrs.frozen
class Block:
    """One ```python block of the README."""

    line: int  # of its first code line, for messages
    code: str
    not_run: str | None  # the reason given in <!-- not run: ... -->
    filename: str | None  # "conftest.py", "test_login.py": a file for pytest


def read_blocks(text: str) -> list[Block]:
    """The README's Python blocks, each with its marker or file name."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _NOT_RUN.search(before)
        reason = marker[1].strip() if marker else None
        if marker and not reason:
            raise AssertionError(f"README.md: a '<!-- not run: -->' without a reason: {before}")
        code = match[2]
        named = _FILE.match(code.split("\n", 1)[0])
        if match[1] == "toml" and not named:
            continue  # a TOML block is run only as a file of the pytest example
        blocks.append(
            Block(
                line=text.count("\n", 0, match.start(2)) + 1,
                code=code,
                not_run=reason,
                filename=named[1] if named else None,
            )
        )
    return blocks


BLOCKS = read_blocks(README.read_text(encoding="utf-8"))
MODULES = [b for b in BLOCKS if b.not_run is None and b.filename is None]
PYTEST_FILES = [b for b in BLOCKS if b.not_run is None and b.filename is not None]


@pytest.fixture(scope="module")
def emulator() -> Iterator[TwinneEmulator]:
    """An emulator serving from its own thread: the blocks run their own asyncio.run()."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="readme-emulator", daemon=True)
    thread.start()
    emu = TwinneEmulator()
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result(timeout=30)
    emu.add_app(name="README")
    emu.add_user(user_name="jdoe", user_firstname="Jane", user_lastname="Doe")
    try:
        yield emu
    finally:
        asyncio.run_coroutine_threadsafe(emu.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture
def twinne_default(emulator: TwinneEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """TwinneClient(APP_ID, APP_SECRET), as the blocks write it, talks to the emulator."""
    defaults = dict(TwinneClient.__init__.__kwdefaults__ or {})
    defaults["base_url"] = emulator.base_url
    monkeypatch.setattr(TwinneClient.__init__, "__kwdefaults__", defaults)


class _Accounts:
    """``db`` in "Your own users": an account per Twinne user, in memory."""

    def __init__(self) -> None:
        self.accounts: dict[int, types.SimpleNamespace] = {}

    async def upsert_account(self, *, twinne_id: int, name: str) -> types.SimpleNamespace:
        account = self.accounts.setdefault(
            twinne_id,
            types.SimpleNamespace(id=len(self.accounts) + 1, suspended=False, role="member"),
        )
        account.name = name
        return account

    async def orders(self, account_id: int) -> list[dict[str, Any]]:
        return [{"account": account_id, "order": 1}]


def givens(emu: TwinneEmulator) -> dict[str, Any]:
    """The names a README block leaves to the reader, each a working value."""
    app = emu.default_app
    site = web.Application()
    aiohttp_session.setup(site, cookie_storage(Fernet.generate_key()))
    saved: list[tuple[int, object]] = []
    return {
        "APP_ID": app.app_id,
        "APP_SECRET": app.secret,
        "AUTH_KEY": emu.authorize(emu.default_user, app),
        "FERNET_KEY": Fernet.generate_key(),
        "tokens": [*emu.issue_tokens(2, app), "0" * 32],
        "save": lambda index, user: saved.append((index, user)),
        "report": lambda index, error: saved.append((index, error)),
        "my_ssl_context": ssl.create_default_context(),
        "otel_trace_config": aiohttp.TraceConfig(),
        "app": site,
        "twinne": TwinneClient(app.app_id, app.secret, base_url=emu.base_url),
        "db": _Accounts(),
    }


def run_block(block: Block, emu: TwinneEmulator) -> dict[str, Any]:
    """Run *block* as a module; return its namespace."""
    namespace = {"__name__": "__readme__", **givens(emu)}
    exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)  # noqa: S102 - our README
    return namespace


def test_the_readme_has_python_blocks_to_run() -> None:
    """The parser finds the blocks (a broken fence would silently test nothing)."""
    assert len(MODULES) >= 6
    assert {b.filename for b in PYTEST_FILES} == {"pyproject.toml", "conftest.py", "test_login.py"}


@pytest.mark.usefixtures("twinne_default")
@pytest.mark.parametrize("block", MODULES, ids=[f"line {b.line}" for b in MODULES])
def test_a_readme_block_runs_as_written(block: Block, emulator: TwinneEmulator) -> None:
    """The block runs without an error, against the emulator."""
    run_block(block, emulator)


def test_the_pytest_example_passes_as_shown(tmp_path: Path) -> None:
    """pyproject.toml, conftest.py and test_login.py, as shown, pass without a warning."""
    for block in PYTEST_FILES:
        assert block.filename is not None
        (tmp_path / block.filename).write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^1 passed in ", done.stdout, re.MULTILINE), done.stdout
    assert "warning" not in done.stdout.lower(), done.stdout


# aiohttp-session 2.12's string request keys warn on aiohttp 3.14 (see pyproject.toml),
# and -W error on the command line outranks the ini setting.
@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning:aiohttp_session")
@pytest.mark.usefixtures("twinne_default")
def test_the_site_example_on_plain_http_names_its_secure_cookie(
    emulator: TwinneEmulator,
) -> None:
    """Served as written on http://127.0.0.1, the callback's page says why no login came back."""
    (block,) = [b for b in MODULES if "async def dashboard" in b.code]
    site = run_block(block, emulator)["app"]

    async def visit() -> tuple[int, str]:
        runner = web.AppRunner(site, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            jar = aiohttp.CookieJar(unsafe=True)  # a browser's jar: never Secure over http
            async with aiohttp.ClientSession(cookie_jar=jar) as browser:
                typed = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}
                async with browser.get(
                    f"{base}/dashboard", headers=typed, allow_redirects=False
                ) as page:
                    assert page.status == 302  # to Twinne, with a Secure session cookie
                key = emulator.authorize(emulator.default_user, emulator.default_app)
                async with browser.get(
                    f"{base}{DEFAULT_CALLBACK_PATH}?auth_key={key}",
                    headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
                ) as page:
                    return page.status, await page.text()
        finally:
            await runner.cleanup()

    status, text = asyncio.run(visit())
    assert status == 400
    assert "a Secure cookie is never sent over plain http" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\nx = 1\n```\n", [(None, None)]),
        ("<!-- not run: a signature -->\n```python\ndef f(\n```\n", [("a signature", None)]),
        ("```python\n# conftest.py\nx = 1\n```\n", [(None, "conftest.py")]),
        ("```toml\n# pyproject.toml\n[x]\n```\n", [(None, "pyproject.toml")]),
        ("```toml\n[x]\n```\n```sh\nmake\n```\n", []),
    ],
    ids=["plain", "not run", "a file", "a TOML file", "other TOML and sh"],
)
def test_the_markers(text: str, expected: list[tuple[str | None, str | None]]) -> None:
    """The parser reads the not-run marker and file names, and ignores other languages."""
    assert [(b.not_run, b.filename) for b in read_blocks(text)] == expected


def test_a_not_run_marker_needs_a_reason() -> None:
    """'<!-- not run: -->' with no reason is refused."""
    with pytest.raises(AssertionError, match="without a reason"):
        read_blocks("<!-- not run: -->\n```python\nx\n```\n")


def test_an_unmarked_block_that_fails_fails(emulator: TwinneEmulator) -> None:
    """The harness itself: a block that does not run raises, with its README line."""
    (block,) = read_blocks("text\n\n```python\nasync with open('x'):\n    pass\n```\n")
    with pytest.raises(SyntaxError, match=r"README\.md:4"):
        run_block(block, emulator)
