"""The command line's grammar: every command, flag, default and help text.

Each command's function is stored as the parsed arguments' ``command``;
:func:`aiotwinne.cli.main` runs it. Building the parser loads no command's
heavy parts (the emulator, the demo site): those are imported when a command
runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__, _protocol
from ._auth import TOKEN_FIELDS, exchange, login_url, me, prepare_exchange, prepare_me
from ._common import (
    ENV_APP_ID,
    ENV_AUTH_KEY,
    ENV_BASE_URL,
    ENV_SECRET,
    ENV_TOKEN,
    EXIT_USAGE,
    PROG,
    error,
)
from ._demo import demo
from ._emulator import SNGINE_VERSIONS, emulator
from ._profiles import profiles

__all__ = ["build_parser", "parse"]


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line that names the command's ``--help``."""

    def error(self, message: str) -> NoReturn:
        error(f"{message}; see '{self.prog} --help'")
        sys.exit(EXIT_USAGE)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse *argv*; a usage error prints one line and exits 2.

    An unknown flag after a command is reported by that command's parser, so
    the line names ``aiotwinne profiles --help``, not the top level's.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        commands: dict[str, argparse.ArgumentParser] = parser.commands  # type: ignore[attr-defined]
        owner = commands.get(getattr(args, "command_name", ""), parser)
        owner.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def build_parser() -> argparse.ArgumentParser:
    """The ``aiotwinne`` parser; ``args.command`` is the coroutine function to run.

    Each command lists only the options it uses: ``login-url`` sends nothing
    (no --timeout), ``me`` and ``profiles`` need no app credentials, and only
    ``exchange`` needs the secret.
    """
    output = _Parser(add_help=False)
    output.add_argument(
        "-v", "--verbose", action="store_true", help="one line on stderr for every retry"
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only errors on stderr: no progress bar, summary, notes or warnings",
    )
    site = _Parser(add_help=False)
    group = site.add_argument_group("Twinne")
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the Sngine site (env {ENV_BASE_URL}; default {_protocol.DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain http:// base URL to a host that is not this machine "
        "(the secret travels in clear)",
    )
    requests = _Parser(add_help=False)
    group = requests.add_argument_group("requests")
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="per-request timeout (default 10)",
    )
    group.add_argument(
        "--attempts",
        type=_positive_int,
        metavar="N",
        help="tries per request, the first included (default 4; 1: no retries); "
        "an exchange is retried only when its connection never opened",
    )
    app_id = _Parser(add_help=False)
    group = app_id.add_argument_group("app credentials")
    group.add_argument("--app-id", metavar="ID", help=f"the app's id (env {ENV_APP_ID})")
    secret = _Parser(add_help=False)
    group = secret.add_argument_group("app secret")
    group.add_argument(
        "--app-secret-file",
        metavar="PATH",
        help=f"a file whose first line is the app secret, - for stdin (default: env "
        f"{ENV_SECRET}); there is no flag for the secret itself, as command lines are "
        "visible in ps",
    )

    parser = _Parser(
        prog=PROG,
        description="Command line for Twinne's 'Log in With' API, and its emulator.",
        epilog="Exit status: 0 success; 1 Twinne refused or some items failed; 2 usage, "
        "input or output error; 3 Twinne unreachable or not answering like Twinne; "
        "130 interrupted (Ctrl-C); 141 the reader of the output went away (| head); "
        "143 terminated (SIGTERM).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    by_name: dict[str, argparse.ArgumentParser] = {}
    parser.commands = by_name  # type: ignore[attr-defined]

    def add(
        name: str, parents: list[_Parser], *, help: str, description: str
    ) -> argparse.ArgumentParser:
        inherited: list[_Parser] = [output, *parents]
        cmd = commands.add_parser(name, parents=inherited, help=help, description=description)
        cmd.set_defaults(command_name=name)
        by_name[name] = cmd
        return cmd

    cmd = add(
        "login-url",
        [site, app_id],
        help="print the login link",
        description="Print the link that starts a login (needs only the app id; sends nothing).",
    )
    cmd.set_defaults(command=login_url)

    cmd = add(
        "exchange",
        [site, requests, app_id, secret],
        help="exchange an auth_key for an access token",
        description="Exchange a single-use auth_key (from the callback's ?auth_key=) for an "
        "access token, and print it as JSON on stdout: access_token (the token itself: "
        "printing it is this command's purpose), its fingerprint, issued_at and expires_at. "
        f"The auth_key comes from {ENV_AUTH_KEY} or stdin. The token never appears in errors.",
    )
    cmd.add_argument(
        "auth_key",
        metavar="-",
        nargs="?",
        help=f"read the auth_key from stdin (the default when {ENV_AUTH_KEY} is unset); "
        "a key given here is visible to other users (ps) and is warned about",
    )
    cmd.add_argument(
        "--field",
        choices=TOKEN_FIELDS,
        metavar="NAME",
        help="print only this field, as plain text: "
        + ", ".join(TOKEN_FIELDS)
        + " (e.g. TOKEN=$(aiotwinne exchange --field access_token))",
    )
    cmd.set_defaults(command=exchange, prepare=prepare_exchange)

    cmd = add(
        "me",
        [site, requests],
        help="print the user an access token belongs to",
        description="Print the profile behind an access token as JSON: the library's "
        "model (typed values: numbers, booleans, ISO dates; unknown keys under 'extra'), "
        f"or with --wire exactly Twinne's field names and strings. The token comes from "
        f"{ENV_TOKEN} or stdin. No app credentials needed.",
    )
    cmd.add_argument(
        "token",
        metavar="-",
        nargs="?",
        help=f"read the token from stdin (the default when {ENV_TOKEN} is unset); "
        "a token given here is visible to other users (ps) and is warned about",
    )
    cmd.add_argument("--wire", action="store_true", help="print Twinne's wire form instead")
    cmd.add_argument(
        "--field",
        metavar="NAME",
        help="print only this field, as plain text (a string as is, anything else as JSON)",
    )
    cmd.set_defaults(command=me, prepare=prepare_me)

    cmd = add(
        "profiles",
        [site, requests],
        help="fetch many profiles: one token a line in, JSON Lines out",
        description="Read one access token per line and write one JSON object per line: "
        '{"line": N, "status": ..., "token": FINGERPRINT, "user": {...}} on success, '
        '"error" and "message" otherwise. status is one of ok, expired, invalid, not_found, '
        "refused (Twinne's own refusal, e.g. the feature switched off), failed, blank, "
        "malformed. Tokens themselves are never written, only fingerprints. "
        "A progress bar (when stderr is a terminal) and a summary go to stderr; Ctrl-C or "
        "SIGTERM stops it with the summary, the lines written so far complete. "
        "Exit 0 if every line succeeded, 1 if some failed, 3 if none got an answer from "
        "Twinne. No app credentials needed.",
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
    cmd.add_argument(
        "--out", metavar="FILE", help="write the JSON Lines here (default and -: stdout)"
    )
    cmd.add_argument(
        "--unordered",
        action="store_true",
        help="write results as they complete instead of in input order",
    )
    cmd.set_defaults(command=profiles)

    cmd = add(
        "emulator",
        [],
        help="run the Twinne emulator",
        description="Run a local Twinne emulator with one app and some users, until Ctrl-C "
        "or SIGTERM (exit 0). It prints the app's credentials, secret included: it is a "
        "local fake, and you need them to point a site at it.",
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
        choices=SNGINE_VERSIONS,
        default=SNGINE_VERSIONS[-1],
        help="the Sngine version to behave as (default: the newest, %(default)s)",
    )
    cmd.set_defaults(command=emulator, serves=True)

    cmd = add(
        "demo",
        [],
        help="the whole story on the emulator: login, re-login, bulk",
        description="Start the emulator and the example site (the one examples/webapp.py "
        "serves; it ships in the package, so this runs from an installed wheel) on loopback, "
        "then walk through a login, a guarded page, the token expiring and a silent "
        "re-login, and a bulk fetch. With --serve, both stay up afterwards for you to click "
        "through in a browser, until Ctrl-C or SIGTERM (exit 0). Needs the web extra.",
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
    cmd.set_defaults(command=demo)
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
