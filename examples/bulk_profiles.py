"""Fetch the profiles behind many access tokens and write them as CSV.

Reads one token a line from a file (or stdin), never holding the whole file in
memory, and writes ``line,user_id,username,email,outcome`` rows::

    export TWINNE_APP_ID=... TWINNE_APP_SECRET=...
    export TWINNE_BASE_URL=https://twinne.eu          # optional
    python examples/bulk_profiles.py tokens.txt > profiles.csv

Try it on the emulator: ``aiotwinne emulator`` prints the variables to export.
The ``aiotwinne profiles`` command does the same with JSON Lines and a progress bar.

Like the command, it fails in one line on stderr, never a traceback: exit 1
when some tokens failed, 2 for a usage or input error (a variable unset, a file
that cannot be read), 130 on Ctrl-C, 141 when the reader of its output went
away (``| head``). A line that is not UTF-8 text is reported in its row.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import Iterator

from aiotwinne import TokenExpiredError, TwinneClient, UserNotFoundError

__all__ = ["main", "read_tokens"]

PROG = "bulk_profiles.py"
NOT_TEXT = "\x00not UTF-8"  # a control character: never sent, reported in its row


def read_tokens(path: str) -> Iterator[str]:
    """The file's lines, stripped, one at a time (``-`` reads stdin).

    Lines are read as bytes and decoded one by one, so one line that is not
    UTF-8 does not stop the rest; it becomes :data:`NOT_TEXT`.
    """
    lines = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    try:
        for raw in lines:
            try:
                yield raw.decode(
                    "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
                ).strip()
            except UnicodeDecodeError:
                yield NOT_TEXT
    finally:
        if lines is not sys.stdin.buffer:
            lines.close()


async def export(path: str, app_id: str, app_secret: str, base_url: str) -> int:
    """Write one CSV row per token; return how many failed."""
    failed = 0
    async with TwinneClient(app_id, app_secret, base_url=base_url) as twinne:
        writer = csv.writer(sys.stdout)
        writer.writerow(["line", "user_id", "username", "email", "outcome"])
        # 32 requests in flight at most, 50 started per second at most: be polite.
        results = twinne.fetch_profiles(read_tokens(path), concurrency=32, rate=50)
        async for result in results:
            line = result.index + 1
            if result.user is not None:
                user = result.user
                writer.writerow([line, user.id, user.username, user.email or "", "ok"])
                continue
            failed += 1
            if result.token == NOT_TEXT:
                outcome = "malformed: the line is not UTF-8 text"
            elif isinstance(result.error, TokenExpiredError):
                outcome = "expired: the user must log in again"
            elif isinstance(result.error, UserNotFoundError):
                outcome = "the user was deleted"
            else:
                outcome = f"failed: {result.error}"  # str(error) never shows the token
            writer.writerow([line, "", "", "", outcome])
    return failed


def main() -> int:
    """Run :func:`export` on the file named on the command line; return the exit status."""
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    app_id = os.environ.get("TWINNE_APP_ID")
    app_secret = os.environ.get("TWINNE_APP_SECRET")
    if not app_id or not app_secret:
        return fail("set TWINNE_APP_ID and TWINNE_APP_SECRET (aiotwinne emulator prints them)")
    base_url = os.environ.get("TWINNE_BASE_URL", "https://twinne.eu")
    if path != "-":
        try:
            open(path, "rb").close()  # unreadable: one line, before anything is sent
        except OSError as exc:
            return fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        failed = asyncio.run(export(path, app_id, app_secret, base_url))
        sys.stdout.flush()
    except ValueError as exc:  # a bad id, secret or base URL: the message holds no secret
        return fail(str(exc))
    except BrokenPipeError:
        # The reader went away: stop quietly, as shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        return fail(f"input/output error: {exc.strerror or exc}")
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    return 1 if failed else 0


def fail(message: str, status: int = 2) -> int:
    """One line on stderr; *status* back."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
