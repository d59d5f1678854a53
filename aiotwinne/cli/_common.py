"""What every command shares: exit codes, usage errors, configuration, output.

The credentials rules live here once: the app secret comes only from
``TWINNE_APP_SECRET`` or ``--app-secret-file`` (never a flag: command lines are
visible in ``ps``), and an auth_key or token from the environment or stdin.
So do the rules for what reaches the terminal: one ``aiotwinne: error: ...``
line per failure, redacted, and stdout flushed before the exit status is
decided; notes and warnings that ``-q`` silences; and standard streams that
may be closed (``>&-``) or whose reader went away (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import sys
from typing import IO, Any, Final, TextIO

import attrs

from .. import _protocol
from ..client import RetryPolicy, TwinneClient
from ..errors import HTTPStatusError, ProtocolError, TransportError

__all__ = [
    "ENV_APP_ID",
    "ENV_AUTH_KEY",
    "ENV_BASE_URL",
    "ENV_SECRET",
    "ENV_TOKEN",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_READER_GONE",
    "EXIT_TERMINATED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "NOT_ANSWERED_BY_TWINNE",
    "PROG",
    "ClosedStreamError",
    "Terminated",
    "UsageError",
    "client_from_args",
    "configure_logging",
    "discard_stdout",
    "error",
    "flush_stdout",
    "guard_closed_streams",
    "network_error",
    "note",
    "plural",
    "print_json",
    "progress_bar",
    "reason",
    "secret_input",
    "set_quiet",
]

#: Everything succeeded.
EXIT_OK: Final = 0
#: Twinne refused, or some ``profiles`` lines failed.
EXIT_FAILED: Final = 1
#: A usage or input error.
EXIT_USAGE: Final = 2
#: Twinne could not be reached, or did not answer like Twinne.
EXIT_UNREACHABLE: Final = 3
#: Stopped with Ctrl-C (128 + SIGINT, as the shell reports a process Ctrl-C killed).
EXIT_INTERRUPTED: Final = 130
#: The reader of stdout went away (``| head``): 128 + SIGPIPE, what a shell tool
#: killed by SIGPIPE reports, so ``set -o pipefail`` scripts see it the same way.
EXIT_READER_GONE: Final = 141
#: Stopped with SIGTERM (128 + SIGTERM), after the same clean ending as Ctrl-C.
EXIT_TERMINATED: Final = 143

PROG: Final = "aiotwinne"
ENV_APP_ID: Final = "TWINNE_APP_ID"
ENV_SECRET: Final = "TWINNE_APP_SECRET"  # noqa: S105 - the variable's name, not a secret
ENV_BASE_URL: Final = "TWINNE_BASE_URL"
ENV_AUTH_KEY: Final = "TWINNE_AUTH_KEY"
ENV_TOKEN: Final = "TWINNE_ACCESS_TOKEN"  # noqa: S105 - the variable's name, not a secret

#: No answer from Twinne's API: it could not be reached (TransportError), or
#: what answered did not answer like Twinne (a non-2xx status from a proxy or a
#: crashed PHP, an HTML page, malformed JSON): exit 3. A refusal in Twinne's own
#: words (an APIError) is exit 1.
NOT_ANSWERED_BY_TWINNE: Final = (TransportError, HTTPStatusError, ProtocolError)


class UsageError(Exception):
    """A mistake in how the command was called, or input it cannot use: exit 2."""


class Terminated(BaseException):
    """SIGTERM arrived: end like Ctrl-C (a BaseException, so no ``except Exception`` eats it)."""


class ClosedStreamError(OSError):
    """A write to a standard stream that was closed when the command started (``>&-``)."""


class _ClosedStream:
    """Stands for a standard stream that was closed: writing fails with one clear reason.

    Python sets such a stream to ``None``, and ``print()`` to ``None`` silently
    does nothing, so output would be lost with exit 0.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        raise ClosedStreamError(errno.EBADF, f"{self.name} is closed")

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise ValueError(f"{self.name} is closed")


def guard_closed_streams() -> None:
    """Replace a standard output or error stream closed at start-up by :class:`_ClosedStream`."""
    if sys.stdout is None:
        sys.stdout = _ClosedStream("standard output")
    if sys.stderr is None:
        sys.stderr = _ClosedStream("standard error")


_quiet = False


def set_quiet(quiet: bool) -> None:
    """``-q``: print only errors on stderr (no notes, warnings, progress bar or summary)."""
    global _quiet
    _quiet = quiet


def plural(count: int, noun: str) -> str:
    """``1 line``, ``2 lines``, ``1,000 lines``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


# -- terminal output -------------------------------------------------------------


def error(message: str) -> None:
    """Print the one error line of a failure on stderr (*message* must be redacted).

    A stderr that is closed or whose reader went away loses the line; the exit
    status still tells.
    """
    _to_stderr(f"{PROG}: error: {message}")


def note(message: str) -> None:
    """A note or warning on stderr (``aiotwinne: ...``), unless ``-q``."""
    if not _quiet:
        _to_stderr(f"{PROG}: {message}")


def _to_stderr(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def reason(exc: BaseException) -> str:
    """The short reason of an error: the system's words for an OSError."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def network_error(exc: BaseException) -> str:
    """One line for a connection error (aiohttp's messages may hold a URL: redact it)."""
    kind = type(exc).__name__
    detail = str(exc)
    return f"network error ({kind}): {detail}" if detail else f"network error ({kind})"


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Print *value* as indented JSON, non-ASCII text as is."""
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out or sys.stdout)


def flush_stdout(status: int) -> int:
    """Write out what stdout still buffers now, so that a failure is one line and a status.

    Left to the interpreter's exit, a full disk or a reader gone away would
    print Python's "Exception ignored" message instead, and exit 0 or 120.
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()
        return EXIT_READER_GONE
    except OSError as exc:
        discard_stdout()
        error(f"cannot write the output: {reason(exc)}")
        return EXIT_USAGE
    return status


def discard_stdout() -> None:
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


def configure_logging(*, verbose: bool) -> None:
    """Quiet by default (errors are reported as one line each); ``-v`` shows retries.

    Under ``-v`` each retry is one line, ``aiotwinne: retrying GET ... after
    attempt 1 of 4 failed: ...``, from the library's own DEBUG record; stamina's
    ``stamina.retry_scheduled`` record says the same without the reason, so the
    command line (which owns this process's logging) leaves it out. Every record
    the library writes is redacted; the format prints only the message, never a
    record's extras.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)  # main() called again in one process (tests)
    handler = _Handler(sys.stderr)
    handler.setFormatter(_OneLine())
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose else logging.ERROR)
    logging.getLogger("stamina").setLevel(logging.ERROR)
    logging.getLogger("aiotwinne").setLevel(logging.DEBUG if verbose else logging.NOTSET)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The command line's own handler on the root logger."""


class _OneLine(logging.Formatter):
    """``aiotwinne: message`` (``aiotwinne: aiotwinne.web: message`` from a sub-logger)."""

    def format(self, record: logging.LogRecord) -> str:
        message = " ".join(record.getMessage().split())
        if record.name == PROG:
            return f"{PROG}: {message}"
        return f"{PROG}: {record.name}: {message}"


def progress_bar(total: int | None, noun: str) -> Any:
    """A tqdm bar on stderr when it is a terminal (and tqdm, the ``cli`` extra, is installed).

    None under ``-q``. The bar is cleared when closed (``leave=False``).
    """
    if _quiet or not sys.stderr.isatty():
        return None
    try:
        # tqdm ships no type information; types-tqdm is not worth a dependency.
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    # tqdm writes the unit right after the number ("99line"): the unit carries the space.
    return tqdm(total=total, unit=f" {noun}s", file=sys.stderr, dynamic_ncols=True, leave=False)


# -- configuration ----------------------------------------------------------------


@attrs.frozen(repr=False)
class _Config:
    base_url: str
    app_id: str | None
    app_secret: str | None


def _config(args: argparse.Namespace) -> _Config:
    """Flags first, then the environment; the secret only from a file or the environment."""
    base_url = args.base_url or os.environ.get(ENV_BASE_URL) or _protocol.DEFAULT_BASE_URL
    app_id = getattr(args, "app_id", None) or os.environ.get(ENV_APP_ID) or None
    path: str | None = getattr(args, "app_secret_file", None)
    secret = _read_secret_file(path) if path is not None else os.environ.get(ENV_SECRET) or None
    return _Config(base_url=base_url, app_id=app_id, app_secret=secret)


def _read_secret_file(path: str) -> str:
    """The first line of *path* (``-``: stdin) that is not blank, without a byte-order mark.

    Editors on some systems save a BOM (U+FEFF, invisible) or leave a blank
    first line; neither is part of a secret.
    """
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            if sys.stdin is None:
                raise UsageError("cannot read --app-secret-file -: standard input is closed")
            raw = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                raw = file.read()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --app-secret-file {name}: {reason(exc)}") from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise UsageError(f"--app-secret-file {name} is empty")


def client_from_args(
    args: argparse.Namespace, *, needs_id: bool, needs_secret: bool
) -> TwinneClient:
    """A client from the configuration; refuses missing or unusable settings (exit 2)."""
    config = _config(args)
    if needs_id and config.app_id is None:
        raise UsageError(f"no app id: pass --app-id or set {ENV_APP_ID}")
    if needs_secret and config.app_secret is None:
        raise UsageError(f"no app secret: set {ENV_SECRET} or pass --app-secret-file PATH")
    allow_insecure: bool = args.allow_insecure
    try:
        _protocol.check_base_url(config.base_url, allow_insecure=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        _protocol.check_base_url(config.base_url, allow_insecure=allow_insecure)
    except ValueError:
        # The library's message names its Python argument; a user here has a flag.
        raise UsageError(
            f"the base URL {config.base_url} is plain http:// to a host that is not this "
            "machine, so the app secret would travel in clear text: use https://, or pass "
            "--allow-insecure"
        ) from None
    attempts: int = getattr(args, "attempts", None) or RetryPolicy().attempts
    try:
        # get_user_info needs neither credential; the client still wants both.
        return TwinneClient(
            config.app_id or "0",
            config.app_secret or "unused",
            base_url=config.base_url,
            timeout=getattr(args, "timeout", 10.0),
            allow_insecure=allow_insecure,
            retry=RetryPolicy(attempts=attempts),
        )
    except (ValueError, TypeError) as exc:
        # check_identifier's messages never repeat a secret.
        raise UsageError(str(exc)) from None


def secret_input(value: str | None, name: str, variable: str) -> str:
    """A secret from the environment or stdin; one given on argv is used, with a warning.

    Command lines are visible to every user of the machine (``ps``) and stay in
    shell histories, so the argument is only the explicit ``-`` for stdin. On
    a terminal the command says what it waits for and the terminal does not
    echo what is typed. Call it outside the event loop: a read blocked there
    would not see the first Ctrl-C.

    Args:
        value: The command-line argument: ``None``, ``"-"`` or the secret itself.
        name: What the secret is, for messages (``"auth_key"``, ``"token"``).
        variable: The environment variable that may hold it.

    Raises:
        UsageError: stdin could not be read, or gave an empty line.
    """
    if value is None:
        value = os.environ.get(variable) or "-"
    elif value != "-":
        note(
            f"warning: the {name} on the command line is visible to other users "
            f"of this machine (ps) and in shell history; set {variable} or pass - and "
            "write it to stdin instead"
        )
    if value != "-":
        return value
    if sys.stdin is None:
        raise UsageError(f"no {name}: standard input is closed (set {variable})")
    try:
        line = _read_line(sys.stdin, name)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the {name} from stdin: {reason(exc)}") from None
    line = line.removeprefix("\ufeff").strip()
    if not line:
        raise UsageError(f"no {name} on stdin")
    return line


def _read_line(stream: IO[str], name: str) -> str:
    """One line of *stream*; on a terminal, with echo off and a note on stderr saying so."""
    if not stream.isatty():
        return stream.readline()
    try:
        import termios
    except ImportError:  # pragma: no cover - not POSIX: the terminal echoes
        termios = None  # type: ignore[assignment]
    fd = stream.fileno()
    saved = None
    if termios is not None:
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO
        # Echo off before the note: what is typed after reading it is never shown.
        # TCSANOW keeps what was typed ahead.
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    note(f"reading the {name} from standard input (type it, then Enter; Ctrl-C to stop)")
    try:
        return stream.readline()
    finally:
        if termios is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            _to_stderr("")  # the Enter the terminal did not echo
