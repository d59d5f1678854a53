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

A module per job: :mod:`._common` (exit codes, configuration, credentials,
output), :mod:`._parser` (the flags), :mod:`._auth` (``login-url``,
``exchange``, ``me``), :mod:`._profiles`, :mod:`._emulator`, :mod:`._demo`
with its scripted browser (:mod:`._browser`) and its site (:mod:`._site`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp

from .._redact import redact_text
from ..errors import TwinneError
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    NOT_ANSWERED_BY_TWINNE,
    UsageError,
    configure_logging,
    discard_stdout,
    error,
    flush_stdout,
    network_error,
    reason,
)
from ._parser import build_parser

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiotwinne`` command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see the module's documentation).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    return flush_stdout(_run(args))


def _run(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes one line on stderr and an exit status."""
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.command
    try:
        return asyncio.run(command(args))
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except TwinneError as exc:
        error(redact_text(str(exc)))
        return EXIT_UNREACHABLE if isinstance(exc, NOT_ANSWERED_BY_TWINNE) else EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (``aiotwinne profiles | head``): stop quietly.
        discard_stdout()
        return EXIT_FAILED
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        # Outside the client, which turns these into TwinneError: the demo's
        # browser. (Before OSError: both can be OSErrors too.)
        error(redact_text(network_error(exc)))
        return EXIT_UNREACHABLE
    except OSError as exc:
        # Reading the input and writing --out say which file failed; this is
        # whatever else the system refused (stdout written without a buffer).
        error(f"input/output error: {reason(exc)}")
        try:
            sys.stdout.flush()
        except OSError:
            discard_stdout()  # stdout is what failed: reported above, not again
        return EXIT_USAGE
    except KeyboardInterrupt:
        if getattr(args, "serves", False):
            print("stopped", file=sys.stderr)
            return EXIT_OK
        error("interrupted")
        return EXIT_INTERRUPTED
