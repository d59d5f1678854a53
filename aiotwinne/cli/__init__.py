"""The ``aiotwinne`` command line (also ``python -m aiotwinne``).

Commands::

    aiotwinne login-url                  print the "Log in With Twinne" link
    aiotwinne exchange [-]               exchange an auth_key; print the token as JSON
    aiotwinne me [-]                     print the token's user as JSON
    aiotwinne profiles [FILE|-]          one token a line in, JSON Lines out
    aiotwinne emulator                   run the Twinne emulator for a person
    aiotwinne demo [--serve]             the whole story on the emulator

Configuration comes from flags or the environment: ``--app-id`` /
``TWINNE_APP_ID``, ``--base-url`` / ``TWINNE_BASE_URL`` (default
``https://twinne.eu``), and the app secret from ``TWINNE_APP_SECRET`` or
``--app-secret-file PATH``. There is deliberately no flag that takes the
secret itself: command lines are visible to every user of the machine
(``ps``) and end up in shell histories. The secret is never printed. For the
same reason ``exchange`` and ``me`` read the auth_key and the token from
``TWINNE_AUTH_KEY`` / ``TWINNE_ACCESS_TOKEN`` or standard input; one given on
the command line still works, with a warning.

Exit statuses:

* ``0`` (:data:`EXIT_OK`): everything succeeded.
* ``1`` (:data:`EXIT_FAILED`): Twinne answered but refused (an expired or
  unknown token, a spent auth_key, a wrong secret), or some ``profiles``
  lines failed.
* ``2`` (:data:`EXIT_USAGE`): a usage, input or output error: a bad flag,
  missing credentials, an unusable base URL, an unreadable file, an output
  that cannot be written (a full disk, a directory), a busy port.
* ``3`` (:data:`EXIT_UNREACHABLE`): Twinne could not be reached or did not
  answer like Twinne (after the client's retries: a connection error, a
  timeout, a non-2xx status, a page that is not Twinne's API); for
  ``profiles``, no line got an answer at all. The demo's own browser losing
  its connection to the emulator or the site exits ``3`` too.
* ``130`` (:data:`EXIT_INTERRUPTED`): stopped with Ctrl-C (``emulator`` and
  ``demo --serve``, which run until stopped, exit ``0``).

Every error is one line on stderr, never a traceback, and carries no secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import html
import importlib.util
import inspect
import json
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TextIO
from urllib.parse import urljoin

import aiohttp
import attrs
from yarl import URL

from . import _protocol
from ._redact import fingerprint, redact_text, redact_url
from .client import TwinneClient
from .errors import (
    APIError,
    HTTPStatusError,
    InvalidTokenError,
    MalformedTokenError,
    ProtocolError,
    TokenExpiredError,
    TransportError,
    TwinneError,
    UserNotFoundError,
)
from .models import AccessToken, ProfileResult, UserInfo, user_info_to_wire

if TYPE_CHECKING:
    from aiohttp import web

    from .testing import EmulatedApp, TwinneEmulator

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "main",
    "user_to_json",
]

#: Everything succeeded.
EXIT_OK: Final = 0
#: Twinne refused, or some ``profiles`` lines failed.
EXIT_FAILED: Final = 1
#: A usage or input error.
EXIT_USAGE: Final = 2
#: Twinne could not be reached, or did not answer like Twinne.
EXIT_UNREACHABLE: Final = 3
#: Stopped with Ctrl-C.
EXIT_INTERRUPTED: Final = 130

_PROG: Final = "aiotwinne"
_ENV_APP_ID: Final = "TWINNE_APP_ID"
_ENV_SECRET: Final = "TWINNE_APP_SECRET"  # noqa: S105 - the variable's name, not a secret
_ENV_BASE_URL: Final = "TWINNE_BASE_URL"
_ENV_AUTH_KEY: Final = "TWINNE_AUTH_KEY"
_ENV_TOKEN: Final = "TWINNE_ACCESS_TOKEN"  # noqa: S105 - the variable's name, not a secret
_READ_CHUNK: Final = 64 * 1024
#: A line longer than this is not a token; it is reported, not sent.
_MAX_LINE: Final = 4096
#: Marks a line refused by the CLI itself. NUL is a control character, so the
#: client refuses such an item before sending it, and bulk still gives it its
#: own result at its own line number.
_REFUSED: Final = "\x00"

#: No answer from Twinne's API: it could not be reached (TransportError), or
#: what answered did not answer like Twinne (a non-2xx status from a proxy or a
#: crashed PHP, an HTML page, malformed JSON): exit 3. A refusal in Twinne's own
#: words (an APIError) is exit 1.
_NOT_ANSWERED_BY_TWINNE: Final = (TransportError, HTTPStatusError, ProtocolError)


class _UsageError(Exception):
    """A mistake in how the command was called, or input it cannot use: exit 2."""


class _Stopped(Exception):
    """A command that serves until Ctrl-C was stopped: exit 0."""


# -- entry point ---------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiotwinne`` command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see the module's documentation).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(verbose=args.verbose)
    return _flush_stdout(_run(args))


def _run(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes one line on stderr and an exit status."""
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.command
    try:
        return asyncio.run(command(args))
    except _UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except TwinneError as exc:
        _error(redact_text(str(exc)))
        return EXIT_UNREACHABLE if isinstance(exc, _NOT_ANSWERED_BY_TWINNE) else EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (``aiotwinne profiles | head``): stop quietly.
        _discard_stdout()
        return EXIT_FAILED
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        # Outside the client, which turns these into TwinneError: the demo's
        # browser. (Before OSError: both can be OSErrors too.)
        _error(redact_text(_network_error(exc)))
        return EXIT_UNREACHABLE
    except OSError as exc:
        # Reading the input and writing --out say which file failed; this is
        # whatever else the system refused (stdout written without a buffer).
        _error(f"input/output error: {_reason(exc)}")
        try:
            sys.stdout.flush()
        except OSError:
            _discard_stdout()  # stdout is what failed: reported above, not again
        return EXIT_USAGE
    except KeyboardInterrupt:
        if getattr(args, "serves", False):
            print("stopped", file=sys.stderr)
            return EXIT_OK
        _error("interrupted")
        return EXIT_INTERRUPTED


def _flush_stdout(status: int) -> int:
    """Write out what stdout still buffers now, so that a failure is one line and a status.

    Left to the interpreter's exit, a full disk or a reader gone away would
    print Python's "Exception ignored" message instead, and exit 0 or 120.
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_FAILED
    except OSError as exc:
        _discard_stdout()
        _error(f"cannot write the output: {_reason(exc)}")
        return EXIT_USAGE
    return status


def _discard_stdout() -> None:
    """Point stdout's descriptor at the null device: what it buffers cannot be written."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a capture), or closed
        return
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def _network_error(exc: BaseException) -> str:
    """One line for a connection error (aiohttp's messages may hold a URL: redact it)."""
    kind = type(exc).__name__
    detail = str(exc)
    return f"network error ({kind}): {detail}" if detail else f"network error ({kind})"


def _configure_logging(*, verbose: bool) -> None:
    """Quiet by default (errors are reported as one line each); ``-v`` shows retries.

    Without this, Python's last-resort handler would print stamina's bare
    ``stamina.retry_scheduled`` warnings. Every record the library writes is
    redacted; the format prints only the message, never a record's extras.
    """
    logging.basicConfig(
        format=f"{_PROG}: %(name)s: %(message)s",
        level=logging.WARNING if verbose else logging.ERROR,
        stream=sys.stderr,
    )
    if verbose:
        logging.getLogger("aiotwinne").setLevel(logging.DEBUG)


def _error(message: str) -> None:
    print(f"{_PROG}: error: {message}", file=sys.stderr)


# -- the parser ----------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log retries and the library's debug output"
    )
    connection = argparse.ArgumentParser(add_help=False, parents=[common])
    group = connection.add_argument_group("Twinne connection")
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the Sngine site (env {_ENV_BASE_URL}; default {_protocol.DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain http:// base URL to a non-loopback host (the secret travels in clear)",
    )
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="per-request timeout (default 10)",
    )
    app = argparse.ArgumentParser(add_help=False)
    group = app.add_argument_group("app credentials")
    group.add_argument("--app-id", metavar="ID", help=f"the app's id (env {_ENV_APP_ID})")
    group.add_argument(
        "--app-secret-file",
        metavar="PATH",
        type=Path,
        help=f"a file whose first line is the app secret (default: env {_ENV_SECRET}); "
        "there is no flag for the secret itself, as command lines are visible in ps",
    )

    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Command line for Twinne's 'Log in With' API, and its emulator.",
        epilog="Exit status: 0 success; 1 Twinne refused or some items failed; 2 usage, "
        "input or output error; 3 Twinne unreachable or not answering like Twinne; "
        "130 interrupted.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    cmd = commands.add_parser(
        "login-url",
        parents=[connection, app],
        help="print the login link",
        description="Print the link that starts a login (needs only the app id).",
    )
    cmd.set_defaults(command=_login_url)

    cmd = commands.add_parser(
        "exchange",
        parents=[connection, app],
        help="exchange an auth_key for an access token",
        description="Exchange a single-use auth_key (from the callback's ?auth_key=) for an "
        "access token, and print it as JSON on stdout: access_token (the token itself: "
        "printing it is this command's purpose), its fingerprint, issued_at and expires_at. "
        "The token never appears in errors.",
    )
    cmd.add_argument(
        "auth_key",
        metavar="-",
        nargs="?",
        help=f"read the auth_key from stdin (the default when {_ENV_AUTH_KEY} is unset); "
        "a key given here is visible to other users (ps) and is warned about",
    )
    cmd.set_defaults(command=_exchange)

    cmd = commands.add_parser(
        "me",
        parents=[connection, app],
        help="print the user an access token belongs to",
        description="Print the profile behind an access token as JSON: the library's "
        "model (typed values: numbers, booleans, ISO dates; unknown keys under 'extra'), "
        "or with --wire exactly Twinne's field names and strings. No app credentials needed.",
    )
    cmd.add_argument(
        "token",
        metavar="-",
        nargs="?",
        help=f"read the token from stdin (the default when {_ENV_TOKEN} is unset); "
        "a token given here is visible to other users (ps) and is warned about",
    )
    cmd.add_argument("--wire", action="store_true", help="print Twinne's wire form instead")
    cmd.set_defaults(command=_me)

    cmd = commands.add_parser(
        "profiles",
        parents=[connection, app],
        help="fetch many profiles: one token a line in, JSON Lines out",
        description="Read one access token per line and write one JSON object per line: "
        '{"line": N, "status": ..., "token": FINGERPRINT, "user": {...}} on success, '
        '"error" and "message" otherwise. status is one of ok, expired, invalid, not_found, '
        "refused (Twinne's own refusal, e.g. the feature switched off), failed, blank, "
        "malformed. Tokens themselves are never written, only fingerprints. "
        "A progress bar (when stderr is a terminal) and a summary go to stderr. "
        "Exit 0 if every line succeeded, 1 if some failed, 3 if none got an answer from Twinne.",
    )
    cmd.add_argument(
        "file", metavar="FILE", nargs="?", default="-", help="the tokens (default: - for stdin)"
    )
    cmd.add_argument(
        "--concurrency",
        type=_positive_int,
        default=32,
        metavar="N",
        help="requests in flight at once (default 32)",
    )
    cmd.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="at most R requests started per second (default: no limit)",
    )
    cmd.add_argument("--out", metavar="FILE", help="write the JSON Lines here (default: stdout)")
    cmd.add_argument(
        "--unordered",
        action="store_true",
        help="write results as they complete instead of in input order",
    )
    cmd.set_defaults(command=_profiles)

    cmd = commands.add_parser(
        "emulator",
        parents=[common],
        help="run the Twinne emulator",
        description="Run a local Twinne emulator with one app and some users, until Ctrl-C. "
        "It prints the app's credentials, secret included: it is a local fake, and you need "
        "them to point a site at it.",
    )
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    cmd.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0: any)")
    cmd.add_argument(
        "--users", type=_positive_int, default=10, metavar="N", help="users to create (10)"
    )
    cmd.add_argument(
        "--redirect-url",
        metavar="URL",
        default="/callback",
        help="the app's registered redirect URL (default: the emulator's own /callback page)",
    )
    cmd.add_argument(
        "--sngine",
        choices=_SNGINE_VERSIONS,
        default=_SNGINE_VERSIONS[-1],
        help="the Sngine version to behave as (default: the newest, %(default)s)",
    )
    cmd.set_defaults(command=_emulator, serves=True)

    cmd = commands.add_parser(
        "demo",
        parents=[common],
        help="the whole story on the emulator: login, re-login, bulk",
        description="Start the emulator and the example site (examples/webapp.py, from a "
        "source checkout) on loopback, then walk through a login, a guarded page, the "
        "token expiring and a silent re-login, and a bulk fetch. With --serve, both "
        "stay up afterwards for you to click through in a browser, until Ctrl-C.",
    )
    cmd.add_argument("--serve", action="store_true", help="keep both running afterwards")
    cmd.add_argument(
        "--port", type=_port, help="the site's port (default: 8080 with --serve, else any)"
    )
    cmd.add_argument(
        "--twinne-port",
        type=_port,
        help="the emulator's port (default: 8081 with --serve, else any)",
    )
    cmd.add_argument(
        "--count",
        type=_positive_int,
        default=3000,
        metavar="N",
        help="tokens in the bulk fetch (3000)",
    )
    cmd.set_defaults(command=_demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


# -- configuration --------------------------------------------------------------


@attrs.frozen(repr=False)
class _Config:
    base_url: str
    app_id: str | None
    app_secret: str | None


def _config(args: argparse.Namespace) -> _Config:
    """Flags first, then the environment; the secret only from a file or the environment."""
    base_url = args.base_url or os.environ.get(_ENV_BASE_URL) or _protocol.DEFAULT_BASE_URL
    app_id = args.app_id or os.environ.get(_ENV_APP_ID) or None
    secret: str | None
    if args.app_secret_file is not None:
        path: Path = args.app_secret_file
        try:
            secret = path.read_text(encoding="utf-8").partition("\n")[0].strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _UsageError(f"cannot read --app-secret-file {path}: {_reason(exc)}") from None
        if not secret:
            raise _UsageError(f"--app-secret-file {path} is empty")
    else:
        secret = os.environ.get(_ENV_SECRET) or None
    return _Config(base_url=base_url, app_id=app_id, app_secret=secret)


def _client(args: argparse.Namespace, *, needs_id: bool, needs_secret: bool) -> TwinneClient:
    """A client from the configuration; refuses missing or unusable settings (exit 2)."""
    config = _config(args)
    if needs_id and config.app_id is None:
        raise _UsageError(f"no app id: pass --app-id or set {_ENV_APP_ID}")
    if needs_secret and config.app_secret is None:
        raise _UsageError(f"no app secret: set {_ENV_SECRET} or pass --app-secret-file PATH")
    try:
        # get_user_info needs neither credential; the client still wants both.
        return TwinneClient(
            config.app_id or "0",
            config.app_secret or "unused",
            base_url=config.base_url,
            timeout=args.timeout,
            allow_insecure=args.allow_insecure,
        )
    except (ValueError, TypeError) as exc:
        # check_identifier's and check_base_url's messages never repeat a secret.
        raise _UsageError(str(exc)) from None


def _secret_input(value: str | None, name: str, variable: str) -> str:
    """A secret from the environment or stdin; one given on argv is used, with a warning.

    Command lines are visible to every user of the machine (``ps``) and stay in
    shell histories, so the argument is only the explicit ``-`` for stdin.
    """
    if value is None:
        value = os.environ.get(variable) or "-"
    elif value != "-":
        print(
            f"{_PROG}: warning: the {name} on the command line is visible to other users "
            f"of this machine (ps) and in shell history; set {variable} or pass - and "
            "write it to stdin instead",
            file=sys.stderr,
        )
    if value != "-":
        return value
    try:
        line = sys.stdin.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read the {name} from stdin: {_reason(exc)}") from None
    if not line:
        raise _UsageError(f"no {name} on stdin")
    return line


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out or sys.stdout)


# -- login-url, exchange, me ----------------------------------------------------


async def _login_url(args: argparse.Namespace) -> int:
    async with _client(args, needs_id=True, needs_secret=False) as client:
        print(client.login_url())
    return EXIT_OK


async def _exchange(args: argparse.Namespace) -> int:
    async with _client(args, needs_id=True, needs_secret=True) as client:
        auth_key = _secret_input(args.auth_key, "auth_key", _ENV_AUTH_KEY)
        try:
            token = await client.exchange(auth_key)
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
    _print_json(_token_json(token))
    return EXIT_OK


async def _me(args: argparse.Namespace) -> int:
    async with _client(args, needs_id=False, needs_secret=False) as client:
        token = _secret_input(args.token, "token", _ENV_TOKEN)
        try:
            user = await client.get_user_info(token)
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
    _print_json(user_info_to_wire(user) if args.wire else user_to_json(user))
    return EXIT_OK


def _token_json(token: AccessToken) -> dict[str, Any]:
    return {
        "access_token": token.value,
        "fingerprint": token.fingerprint,
        "issued_at": token.issued_at.isoformat(),
        "expires_at": token.expires_at.isoformat(),
    }


_USER_FIELDS: Final = tuple(field.name for field in attrs.fields(UserInfo))


def user_to_json(user: UserInfo) -> dict[str, Any]:
    """A :class:`~aiotwinne.UserInfo` as plain JSON values, as the CLI prints it.

    Field names are the model's (``id``, ``username``, ``first_name``...);
    dates and times are ISO 8601 text, ``extra`` holds the keys Twinne sent
    that the model does not map, as sent.
    """
    out: dict[str, Any] = {}
    for name in _USER_FIELDS:
        value = getattr(user, name)
        if isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        elif name == "extra":
            value = dict(value)
        out[name] = value
    return out


# -- profiles ------------------------------------------------------------------


async def _profiles(args: argparse.Namespace) -> int:
    client = _client(args, needs_id=False, needs_secret=False)
    name = "stdin" if args.file == "-" else args.file
    try:
        source: BinaryIO = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115, ASYNC230 - closed below; opening is instant
    except OSError as exc:
        await client.close()
        raise _UsageError(f"cannot read {name}: {_reason(exc)}") from None
    try:
        out = _Output(args.out)
    except _UsageError:
        if source is not sys.stdin.buffer:
            source.close()
        await client.close()
        raise
    tally = _Tally()
    try:
        async with client:
            bar = _progress_bar(total=None, unit="line")
            results = client.fetch_profiles(
                _read_lines(source),
                concurrency=args.concurrency,
                ordered=not args.unordered,
                rate=args.rate,
            )
            try:
                async with contextlib.aclosing(results):
                    async for result in results:
                        status = tally.add(result)
                        out.write_line(
                            json.dumps(_result_json(result, status), ensure_ascii=False)
                        )
                        if bar is not None:
                            bar.update()
            finally:
                if bar is not None:
                    bar.close()
    except _InputError as exc:
        raise _UsageError(f"cannot read {name}: {_reason(exc.__cause__ or exc)}") from None
    finally:
        try:
            out.close()
        finally:
            if source is not sys.stdin.buffer:
                source.close()
    print(f"{_PROG}: {tally.summary()}", file=sys.stderr)
    return tally.exit_status()


class _Output:
    """Where ``profiles`` writes: ``--out FILE`` or stdout.

    A write that fails (a full disk, a file system gone read-only) is a
    :class:`_UsageError` naming the file: one line, exit 2. A reader gone
    away from stdout stays a ``BrokenPipeError``, which ends quietly.
    """

    def __init__(self, path: str | None) -> None:
        self.name = "the output" if path is None else path
        self.stream: TextIO = sys.stdout
        if path is not None:
            with self._errors():
                self.stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write_line(self, text: str) -> None:
        with self._errors():
            self.stream.write(text)
            self.stream.write("\n")

    def close(self) -> None:
        """Close the file (stdout is only flushed); a file is closed even if its flush fails."""
        with self._errors():
            if self.stream is sys.stdout:
                self.stream.flush()
            else:
                self.stream.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            raise
        except OSError as exc:
            if self.stream is sys.stdout:
                _discard_stdout()  # reported once, here: not again when main() flushes
            raise _UsageError(f"cannot write {self.name}: {_reason(exc)}") from None


class _InputError(Exception):
    """Reading the input failed (raised through the bulk fetch, which propagates it)."""


async def _read_lines(stream: BinaryIO) -> AsyncIterator[str]:
    """The stream's lines, decoded and stripped, read by a daemon thread in chunks.

    A thread, not the loop's default executor: a read blocked on a terminal
    must not keep the process alive after Ctrl-C (``asyncio.run`` waits for
    the default executor's threads, never for a daemon thread).
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=4)

    def pump() -> None:
        try:
            while True:
                try:
                    chunk: bytes | BaseException = stream.read1(_READ_CHUNK)  # type: ignore[attr-defined]
                except Exception as exc:  # handed to the loop, raised there
                    chunk = exc
                put = chunks.put(chunk)
                try:
                    asyncio.run_coroutine_threadsafe(put, loop).result()
                except Exception:
                    if inspect.getcoroutinestate(put) == inspect.CORO_CREATED:
                        # The loop closed first (the run ended early): no
                        # "coroutine was never awaited" warning on stderr.
                        put.close()
                    raise
                if not isinstance(chunk, bytes) or not chunk:
                    return
        except Exception:  # noqa: S110 - the loop is gone: nobody is waiting
            pass

    threading.Thread(target=pump, name="aiotwinne-reader", daemon=True).start()
    tail = b""
    first = True
    while True:
        chunk = await chunks.get()
        if isinstance(chunk, BaseException):
            raise _InputError() from chunk
        if not chunk:
            break
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for raw in lines:
            yield _decode_line(raw, first)
            first = False
        if len(tail) > _MAX_LINE:
            # Keep counting lines correctly, without holding a huge one.
            tail = tail[: _MAX_LINE + 1]
    if tail:
        yield _decode_line(tail, first)


def _decode_line(raw: bytes, first: bool) -> str:
    if len(raw) > _MAX_LINE:
        return f"{_REFUSED}line longer than {_MAX_LINE} bytes"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{_REFUSED}line is not UTF-8 text"
    if first:
        text = text.removeprefix("\ufeff")
    return text.strip()


@attrs.define
class _Tally:
    """Counts outcomes, for the summary and the exit status."""

    counts: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(
            (
                "ok",
                "expired",
                "invalid",
                "not_found",
                "refused",
                "failed",
                "blank",
                "malformed",
            ),
            0,
        )
    )
    started: float = attrs.field(factory=time.perf_counter)

    def add(self, result: ProfileResult) -> str:
        """Count *result* and return its status."""
        status = _status(result)
        self.counts[status] += 1
        return status

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def answered(self) -> int:
        """Lines that got an answer from Twinne (good or bad)."""
        c = self.counts
        return c["ok"] + c["expired"] + c["invalid"] + c["not_found"] + c["refused"]

    def summary(self, noun: str = "lines") -> str:
        """One line: the outcomes and the speed."""
        c = self.counts
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return (
            f"{self.total} {noun} in {elapsed:.1f}s ({self.total / elapsed:,.0f} profiles/s): "
            f"{c['ok']} ok, {c['expired']} expired, {c['invalid']} invalid, "
            f"{c['not_found']} not found, {c['refused']} refused, {c['failed']} failed, "
            f"{c['blank'] + c['malformed']} blank or malformed"
        )

    def exit_status(self) -> int:
        if self.counts["ok"] == self.total:
            return EXIT_OK
        if self.counts["failed"] and not self.answered:
            return EXIT_UNREACHABLE
        return EXIT_FAILED


def _status(result: ProfileResult) -> str:
    error = result.error
    if error is None:
        return "ok"
    if isinstance(error, TokenExpiredError):
        return "expired"
    if isinstance(error, MalformedTokenError):  # refused before sending
        return "blank" if result.token == "" else "malformed"
    if isinstance(error, InvalidTokenError):
        return "invalid"
    if isinstance(error, UserNotFoundError):
        return "not_found"
    if isinstance(error, APIError):
        # Twinne answered in its own words (the feature switched off, the app
        # gone): a refusal, exit 1 as for ``me``, not "unreachable".
        return "refused"
    return "failed"


def _result_json(result: ProfileResult, status: str) -> dict[str, Any]:
    token = result.token
    value = token.value if isinstance(token, AccessToken) else token
    line: dict[str, Any] = {
        "line": result.index + 1,
        "status": status,
        "token": None if status in ("blank", "malformed") else fingerprint(value),
    }
    if result.user is not None:
        line["user"] = user_to_json(result.user)
    else:
        error = result.error
        line["error"] = type(error).__name__
        if status == "blank":
            line["message"] = "blank line"
        elif isinstance(value, str) and value.startswith(_REFUSED):
            line["message"] = value[1:]
        else:
            line["message"] = redact_text(str(error), (value,))
    return line


def _progress_bar(total: int | None, unit: str) -> Any:
    """A tqdm bar on stderr when it is a terminal (and tqdm, the ``cli`` extra, is installed)."""
    if not sys.stderr.isatty():
        return None
    try:
        # tqdm ships no type information; types-tqdm is not worth a dependency.
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


# -- emulator ------------------------------------------------------------------

# aiotwinne.testing.SNGINE_VERSIONS, spelled here so that building the parser
# does not load the emulator (a test checks they agree).
_SNGINE_VERSIONS: Final = ("2", "3", "4")


async def _emulator(args: argparse.Namespace) -> int:
    testing = _import_testing()

    def announce(emu: TwinneEmulator) -> None:
        app = emu.default_app
        last = f", …, user{args.users}" if args.users > 1 else ""
        print(
            f"Twinne emulator running at {emu.base_url} (Sngine {emu.sngine}.x)\n"
            "  (a local fake: its app secret is printed on purpose, to point a site at it)\n"
            f"  app id        {app.app_id}\n"
            f"  app secret    {app.secret}\n"
            f"  redirect URL  {urljoin(emu.base_url, app.redirect_url)}\n"
            f"  login link    {emu.login_url(app)}\n"
            f"  sign in at    {emu.login_page_url} as user1{last} (no password)\n"
            "\n"
            f"  export {_ENV_BASE_URL}={emu.base_url} {_ENV_APP_ID}={app.app_id} "
            f"{_ENV_SECRET}={app.secret}\n"
            "\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )

    try:
        await testing.run_emulator(
            host=args.host,
            port=args.port,
            users=args.users,
            redirect_url=args.redirect_url,
            on_ready=announce,
            sngine=args.sngine,
        )
    except OSError as exc:
        raise _UsageError(f"cannot listen on {args.host}:{args.port}: {_reason(exc)}") from None
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    return EXIT_OK  # pragma: no cover - runs until Ctrl-C


def _import_testing() -> ModuleType:
    try:
        from . import testing
    except ImportError as exc:  # pragma: no cover - the emulator needs only aiohttp
        raise _UsageError(f"the emulator cannot be loaded: {exc}") from None
    return testing


# -- demo ----------------------------------------------------------------------

_NAVIGATE: Final = {
    # What a browser sends for a top-level navigation: the site then redirects
    # to a login instead of answering 401 JSON.
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}
_WEBAPP: Final = Path(__file__).resolve().parent.parent / "examples" / "webapp.py"


class _DemoError(Exception):
    """The story did not go as written: exit 1 with the step that failed."""


class _RecordingClient(TwinneClient):
    """The site's client, remembering the last token it obtained so the demo can show it."""

    last_token: AccessToken | None = None

    async def exchange(self, auth_key: str) -> AccessToken:
        """Exchange as usual, and remember the token."""
        token = await super().exchange(auth_key)
        self.last_token = token
        return token


def _load_webapp() -> ModuleType:
    if not _WEBAPP.is_file():
        raise _UsageError(
            f"the demo needs examples/webapp.py from a source checkout of aiotwinne "
            f"(not found at {_WEBAPP})"
        )
    spec = importlib.util.spec_from_file_location("aiotwinne_demo_webapp", _WEBAPP)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has one
        raise _UsageError(f"cannot load {_WEBAPP}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise _UsageError(
            f"the demo site needs the 'web' extra (pip install 'aiotwinne[web,cli]'): {exc}"
        ) from None
    return module


async def _demo(args: argparse.Namespace) -> int:
    webapp = _load_webapp()
    testing = _import_testing()
    site_port = args.port if args.port is not None else (8080 if args.serve else 0)
    twinne_port = args.twinne_port if args.twinne_port is not None else (8081 if args.serve else 0)
    if args.serve:
        args.serves = True
    started = time.perf_counter()

    emu: TwinneEmulator = testing.TwinneEmulator(port=twinne_port)
    try:
        await emu.start()
    except OSError as exc:
        raise _UsageError(f"cannot listen on 127.0.0.1:{twinne_port}: {_reason(exc)}") from None
    try:
        app = emu.add_app(name="Demo Shop", redirect_url="/callback")
        emu.add_user(user_name="ada", user_firstname="Ada", user_lastname="Lovelace")
        client = _RecordingClient(app.app_id, app.secret, base_url=emu.base_url)
        site_app = webapp.create_app(client, secure_cookies=False, clock=emu.now)
        runner = await _start_site(site_app, site_port)
        try:
            site = f"http://127.0.0.1:{runner.addresses[0][1]}"
            app.redirect_url = site + "/auth/twinne/callback"
            story = _Story(emu, app, client, site)
            await story.tell(args.count)
            print(f"\nThe whole story took {time.perf_counter() - started:.1f}s.")
            if args.serve:
                _announce_serving(emu, site)
                await asyncio.Event().wait()
            else:
                print("Run `aiotwinne demo --serve` to click through it in a browser.")
        finally:
            await runner.cleanup()
    except _DemoError as exc:
        _error(f"the demo went wrong: {exc}")
        return EXIT_FAILED
    finally:
        await emu.close()
    return EXIT_OK


async def _start_site(app: web.Application, port: int) -> web.AppRunner:
    from aiohttp import web

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise _UsageError(f"cannot listen on 127.0.0.1:{port}: {_reason(exc)}") from None
    return runner


def _announce_serving(emu: TwinneEmulator, site: str) -> None:
    print(
        "\nBoth keep running, for you to click through in a browser:\n"
        f"  the site      {site}/   <- open this\n"
        f"  Twinne        {emu.base_url}/   (sign in as ada, or user2 and on; no password)\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )


@attrs.define
class _Hop:
    method: str
    url: str
    status: int
    location: str | None
    body: str


class _Story:
    """Walks a browser through the site and the emulator, printing each step."""

    def __init__(
        self, emu: TwinneEmulator, app: EmulatedApp, client: _RecordingClient, site: str
    ) -> None:
        self.emu = emu
        self.app = app
        self.client = client
        self.site = site
        self.twinne = emu.base_url
        self.step = 0

    async def tell(self, count: int) -> None:
        print(
            "aiotwinne demo: the whole 'Log in With Twinne' story, on loopback\n"
            f"  Twinne (the emulator)          {self.twinne}\n"
            f"  the site (examples/webapp.py)  {self.site}"
        )
        jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1, as a browser does
        async with aiohttp.ClientSession(cookie_jar=jar, headers=_NAVIGATE) as browser:
            await self._first_login(browser)
            await self._guarded_page(browser)
            await self._relogin(browser)
        await self._bulk(count)

    # the steps --------------------------------------------------------------

    async def _first_login(self, browser: aiohttp.ClientSession) -> None:
        self._title("A visitor opens a guarded page, /profile, without being logged in")
        hops = await self._navigate(browser, "GET", self.site + "/profile")
        self._expect(hops, "Sign in", "Twinne's sign-in page")
        print(f"  The login link the site sent the browser to: {self.client.login_url()}")

        self._title("On Twinne she signs in as 'ada', and Twinne asks her to approve the app")
        hops = await self._navigate(
            browser,
            "POST",
            self.twinne + "/login",
            data={"username": "ada", "next": f"/api/oauth?app_id={self.app.app_id}"},
        )
        page = self._expect(hops, "Approve", "the approval page")
        csrf = _hidden_field(page, "csrf")

        self._title("She clicks Approve: Twinne sends her to the callback with an auth_key")
        hops = await self._navigate(
            browser,
            "POST",
            f"{self.twinne}/api/oauth?app_id={self.app.app_id}",
            data={"csrf": csrf, "action": "approve"},
        )
        page = self._expect(hops, 'id="name"', "the profile page")
        print(f"  Signed in: the site shows {_element_text(page, 'name')!r}")

        self._title("The callback exchanged the single-use auth_key for an access token")
        token = self.client.last_token
        if token is None:
            raise _DemoError("the site never exchanged an auth_key")
        print(
            f"  token {token.fingerprint} (a fingerprint: the token itself is a secret), "
            f"valid {token.expires_in / 60:.0f} minutes, "
            f"until {token.expires_at:%H:%M:%S} UTC"
        )

        self._title("The profile Twinne returns for that token")
        user = await self.client.get_user_info(token)
        for key, value in (
            ("id", user.id),
            ("username", user.username),
            ("name", user.full_name),
            ("email", user.email),
            ("picture", user.picture_url),
            ("registered", user.registered),
        ):
            print(f"  {key:<11}{value}")

    async def _guarded_page(self, browser: aiohttp.ClientSession) -> None:
        self._title("A guarded page is served straight from the session: no round trip")
        hops = await self._navigate(browser, "GET", self.site + "/profile")
        if len(hops) != 1:
            raise _DemoError("the guarded page redirected although the session is fresh")
        self._expect(hops, 'id="name"', "the profile page")

    async def _relogin(self, browser: aiohttp.ClientSession) -> None:
        self._title("An hour passes (the emulator's clock moves 3601 s): the token expires")
        before = self.client.last_token
        self.emu.advance(3601)
        print(
            "  Twinne has no refresh token, so the next page view goes through Twinne\n"
            "  and back; she approved before, so no page is shown, only redirects:"
        )
        hops = await self._navigate(browser, "GET", self.site + "/profile")
        self._expect(hops, 'id="name"', "the profile page")
        after = self.client.last_token
        if after is None or before is None or after.value == before.value:
            raise _DemoError("the silent re-login did not obtain a new token")
        print(
            f"  Silent re-login: {len(hops) - 1} redirects, new token {after.fingerprint} "
            f"(was {before.fingerprint})"
        )

    async def _bulk(self, count: int) -> None:
        emu, app = self.emu, self.app
        expired, deleted, unknown = (
            max(1, count // 150),
            max(1, count // 300),
            max(1, count // 300),
        )
        good = max(0, count - expired - deleted - unknown)
        self._title(f"Bulk: fetch {count:,} profiles at once, 32 requests at a time")
        old = emu.add_users(expired)
        tokens = [emu.issue_token(user, app) for user in old]
        emu.advance(3601)  # these are now expired
        tokens += emu.issue_tokens(good, app)
        gone = emu.add_users(deleted)
        tokens += [emu.issue_token(user, app) for user in gone]
        for user in gone:
            emu.delete_user(user)
        tokens += [f"{n:032x}" for n in range(1, unknown + 1)]  # never issued
        # Spread the bad ones through the good ones, deterministically.
        tokens.sort(key=fingerprint)
        print(
            f"  {good:,} valid tokens with {expired} expired, {deleted} of deleted users "
            f"and {unknown} unknown mixed in"
        )
        emu.reset_stats()
        tally = _Tally()
        bar = _progress_bar(total=len(tokens), unit="profile")
        try:
            async with contextlib.aclosing(
                self.client.fetch_profiles(tokens, concurrency=32)
            ) as results:
                async for result in results:
                    tally.add(result)
                    if bar is not None:
                        bar.update()
        finally:
            if bar is not None:
                bar.close()
        print(f"  {tally.summary('tokens')}")
        print(
            f"  Twinne answered {emu.count('user_info'):,} requests: one per token, "
            "and one result per token, in any mix of outcomes"
        )

    # helpers --------------------------------------------------------------------

    def _title(self, text: str) -> None:
        self.step += 1
        print(f"\n{self.step}. {text}")

    async def _navigate(
        self,
        browser: aiohttp.ClientSession,
        method: str,
        url: str,
        data: dict[str, str] | None = None,
    ) -> list[_Hop]:
        """Follow redirects one by one, as a browser does, printing each hop."""
        hops: list[_Hop] = []
        for _ in range(12):
            async with browser.request(method, url, data=data, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                hop = _Hop(method, url, resp.status, location, await resp.text())
            hops.append(hop)
            print(f"  {self._describe(hop)}")
            if location is None or not 300 <= hop.status < 400:
                return hops
            url = str(resp.url.join(URL(location)))
            method, data = "GET", None
        raise _DemoError("too many redirects")

    def _describe(self, hop: _Hop) -> str:
        where = f"{hop.method:<4} {self._short(hop.url)}"
        if hop.location is not None:
            return f"{where}  ->  {hop.status}  {self._short(hop.location)}"
        title = _element_text(hop.body, "", tag="title")
        return f"{where}  ->  {hop.status}" + (f"  page: {title!r}" if title else "")

    def _short(self, url: str) -> str:
        url = redact_url(url)
        for prefix, label in ((self.site, "site"), (self.twinne, "twinne")):
            if url.startswith(prefix):
                return f"[{label}] {url[len(prefix) :] or '/'}"
        return url

    def _expect(self, hops: list[_Hop], marker: str, what: str) -> str:
        last = hops[-1]
        if last.status != 200 or marker not in last.body:
            raise _DemoError(f"expected {what}, got HTTP {last.status} at {self._short(last.url)}")
        return last.body


def _hidden_field(page: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = page.find(marker)
    if start < 0:
        raise _DemoError(f"no {name} field on the approval page")
    start += len(marker)
    return page[start : page.index('"', start)]


def _element_text(page: str, element_id: str, *, tag: str = "") -> str:
    """The text of the element with *element_id* (or of the first *tag*), unescaped."""
    marker = f"<{tag}>" if tag else f'id="{element_id}">'
    start = page.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return html.unescape(page[start : page.index("<", start)])
