"""The ``aiotwinne`` command line (also ``python -m aiotwinne``).

Commands::

    aiotwinne --version                  print the version
    aiotwinne login-url                  print the "Log in With Twinne" link
    aiotwinne exchange [-] [--field F]   exchange an auth_key; print the token as JSON
    aiotwinne me [-] [--wire] [--field F]  print the token's user as JSON
    aiotwinne profiles [FILE|-] [--out FILE|-]  one token a line in, JSON Lines out
    aiotwinne emulator                   run the Twinne emulator for a person
    aiotwinne demo [--serve]             the whole story on the emulator

Every command takes ``-v`` (one line per retry) and ``-q`` (errors only on
stderr); those that call Twinne take ``--timeout SECONDS`` and ``--attempts N``.
``--field NAME`` prints one field as plain text, for ``$(...)``.

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
  that cannot be written (a full disk, a directory, a closed stdout), a busy
  port.
* ``3`` (:data:`EXIT_UNREACHABLE`): Twinne could not be reached or did not
  answer like Twinne (after the client's retries: a connection error, a
  timeout, a non-2xx status, a page that is not Twinne's API); for
  ``profiles``, no line got an answer at all. The demo's own browser losing
  its connection to the emulator or the site exits ``3`` too.
* ``130`` (:data:`EXIT_INTERRUPTED`): stopped with Ctrl-C, the first one,
  also while waiting for a secret typed on the terminal.
* ``141`` (:data:`EXIT_READER_GONE`): the reader of stdout went away
  (``aiotwinne profiles | head``): nothing more is printed, as for a shell
  tool that SIGPIPE ended.
* ``143`` (:data:`EXIT_TERMINATED`): stopped with SIGTERM, with the same
  clean ending as Ctrl-C (``profiles`` prints its summary, clears its bar and
  leaves complete lines).

``emulator`` and ``demo --serve``, which run until stopped, exit ``0`` on
Ctrl-C or SIGTERM. Every error is one line on stderr (``aiotwinne: error:
...``; a usage error adds ``see 'aiotwinne COMMAND --help'``), never a
traceback, and carries no secret. A closed stdout is an output error (``2``);
with stderr closed the error line is lost but the exit status is the same.
``-q`` leaves only the error lines on stderr.

A module per job: :mod:`._common` (exit codes, configuration, credentials,
output), :mod:`._parser` (the flags), :mod:`._auth` (``login-url``,
``exchange``, ``me``), :mod:`._profiles`, :mod:`._emulator`, :mod:`._demo`
with its scripted browser (:mod:`._browser`) and its site (:mod:`._site`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
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
    EXIT_READER_GONE,
    EXIT_TERMINATED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    NOT_ANSWERED_BY_TWINNE,
    ClosedStreamError,
    Terminated,
    UsageError,
    configure_logging,
    discard_stdout,
    error,
    flush_stdout,
    guard_closed_streams,
    network_error,
    reason,
    set_quiet,
)
from ._parser import parse

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_READER_GONE",
    "EXIT_TERMINATED",
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
    guard_closed_streams()
    args = parse(argv)
    set_quiet(args.quiet)
    configure_logging(verbose=args.verbose)
    # Until the loop takes SIGTERM over: a secret being read from the
    # terminal, for one, ends like Ctrl-C rather than killed.
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals to the caller
        return flush_stdout(_run(args))
    try:
        return flush_stdout(_run(args))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _run(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes one line on stderr and an exit status."""
    try:
        prepare: Callable[[argparse.Namespace], None] | None = getattr(args, "prepare", None)
        if prepare is not None:
            prepare(args)  # reads stdin outside the loop: the first Ctrl-C ends it
        return asyncio.run(_until_stopped(args))
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except TwinneError as exc:
        error(redact_text(str(exc)))
        return EXIT_UNREACHABLE if isinstance(exc, NOT_ANSWERED_BY_TWINNE) else EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (``aiotwinne profiles | head``): stop quietly.
        discard_stdout()
        return EXIT_READER_GONE
    except ClosedStreamError as exc:
        error(f"cannot write the output: {reason(exc)}")
        return EXIT_USAGE
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
        return _stopped(args, "interrupted", EXIT_INTERRUPTED)
    except Terminated:
        return _stopped(args, "terminated", EXIT_TERMINATED)


def _stopped(args: argparse.Namespace, how: str, status: int) -> int:
    if getattr(args, "serves", False):
        with contextlib.suppress(OSError, ValueError):
            print("stopped", file=sys.stderr)
        return EXIT_OK
    error(how)
    return status


async def _until_stopped(args: argparse.Namespace) -> int:
    """The command, which SIGTERM cancels as Ctrl-C does (``asyncio.run`` handles SIGINT).

    Cancelling lets the command end cleanly (``profiles`` prints its summary
    and clears its bar) where the signal's default action would kill it.
    """
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.command
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def on_sigterm() -> None:
        received.append(signal.SIGTERM)
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await command(args)
    except asyncio.CancelledError:
        if received:
            raise Terminated from None
        raise
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
