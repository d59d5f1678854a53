"""What every command shares: exit codes, usage errors, configuration, output.

The credentials rules live here once: the app secret comes only from
``TWINNE_APP_SECRET`` or ``--app-secret-file`` (never a flag: command lines are
visible in ``ps``), and an auth_key or token from the environment or stdin.
So do the rules for what reaches the terminal: one ``aiotwinne: error: ...``
line per failure, redacted, and stdout flushed before the exit status is
decided.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Final, TextIO

import attrs

from .. import _protocol
from ..client import TwinneClient
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
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "NOT_ANSWERED_BY_TWINNE",
    "PROG",
    "UsageError",
    "client_from_args",
    "configure_logging",
    "discard_stdout",
    "error",
    "flush_stdout",
    "network_error",
    "print_json",
    "progress_bar",
    "reason",
    "secret_input",
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


# -- terminal output -------------------------------------------------------------


def error(message: str) -> None:
    """Print the one error line of a failure on stderr (*message* must be redacted)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


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
        return EXIT_FAILED
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

    Without this, Python's last-resort handler would print stamina's bare
    ``stamina.retry_scheduled`` warnings. Every record the library writes is
    redacted; the format prints only the message, never a record's extras.
    """
    logging.basicConfig(
        format=f"{PROG}: %(name)s: %(message)s",
        level=logging.WARNING if verbose else logging.ERROR,
        stream=sys.stderr,
    )
    if verbose:
        logging.getLogger("aiotwinne").setLevel(logging.DEBUG)


def progress_bar(total: int | None, unit: str) -> Any:
    """A tqdm bar on stderr when it is a terminal (and tqdm, the ``cli`` extra, is installed)."""
    if not sys.stderr.isatty():
        return None
    try:
        # tqdm ships no type information; types-tqdm is not worth a dependency.
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


# -- configuration ----------------------------------------------------------------


@attrs.frozen(repr=False)
class _Config:
    base_url: str
    app_id: str | None
    app_secret: str | None


def _config(args: argparse.Namespace) -> _Config:
    """Flags first, then the environment; the secret only from a file or the environment."""
    base_url = args.base_url or os.environ.get(ENV_BASE_URL) or _protocol.DEFAULT_BASE_URL
    app_id = args.app_id or os.environ.get(ENV_APP_ID) or None
    secret: str | None
    if args.app_secret_file is not None:
        path: Path = args.app_secret_file
        try:
            secret = path.read_text(encoding="utf-8").partition("\n")[0].strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --app-secret-file {path}: {reason(exc)}") from None
        if not secret:
            raise UsageError(f"--app-secret-file {path} is empty")
    else:
        secret = os.environ.get(ENV_SECRET) or None
    return _Config(base_url=base_url, app_id=app_id, app_secret=secret)


def client_from_args(
    args: argparse.Namespace, *, needs_id: bool, needs_secret: bool
) -> TwinneClient:
    """A client from the configuration; refuses missing or unusable settings (exit 2)."""
    config = _config(args)
    if needs_id and config.app_id is None:
        raise UsageError(f"no app id: pass --app-id or set {ENV_APP_ID}")
    if needs_secret and config.app_secret is None:
        raise UsageError(f"no app secret: set {ENV_SECRET} or pass --app-secret-file PATH")
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
        raise UsageError(str(exc)) from None


def secret_input(value: str | None, name: str, variable: str) -> str:
    """A secret from the environment or stdin; one given on argv is used, with a warning.

    Command lines are visible to every user of the machine (``ps``) and stay in
    shell histories, so the argument is only the explicit ``-`` for stdin.

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
        print(
            f"{PROG}: warning: the {name} on the command line is visible to other users "
            f"of this machine (ps) and in shell history; set {variable} or pass - and "
            "write it to stdin instead",
            file=sys.stderr,
        )
    if value != "-":
        return value
    try:
        line = sys.stdin.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the {name} from stdin: {reason(exc)}") from None
    if not line:
        raise UsageError(f"no {name} on stdin")
    return line
