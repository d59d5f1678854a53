"""Fetch the profiles behind many access tokens and write them as CSV.

Reads one token a line from a file (or stdin), never holding the whole file in
memory, and writes ``line,user_id,username,email,outcome`` rows::

    export TWINNE_APP_ID=... TWINNE_APP_SECRET=...
    export TWINNE_BASE_URL=https://twinne.eu          # optional
    python examples/bulk_profiles.py tokens.txt > profiles.csv

Try it on the emulator: ``aiotwinne emulator`` prints the variables to export.
The ``aiotwinne profiles`` command does the same with JSON Lines and a progress bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import sys
from collections.abc import Iterator

from aiotwinne import TokenExpiredError, TwinneClient, UserNotFoundError

__all__ = ["main", "read_tokens"]


def read_tokens(path: str) -> Iterator[str]:
    """The file's lines, stripped, one at a time (``-`` reads stdin)."""
    with contextlib.nullcontext(sys.stdin) if path == "-" else open(path) as lines:
        for line in lines:
            yield line.strip()


async def export(path: str) -> int:
    """Write one CSV row per token; return how many failed."""
    failed = 0
    writer = csv.writer(sys.stdout)
    writer.writerow(["line", "user_id", "username", "email", "outcome"])
    async with TwinneClient(
        os.environ["TWINNE_APP_ID"],
        os.environ["TWINNE_APP_SECRET"],
        base_url=os.environ.get("TWINNE_BASE_URL", "https://twinne.eu"),
    ) as twinne:
        # 32 requests in flight at most, 50 started per second at most: be polite.
        results = twinne.fetch_profiles(read_tokens(path), concurrency=32, rate=50)
        async for result in results:
            line = result.index + 1
            if result.user is not None:
                user = result.user
                writer.writerow([line, user.id, user.username, user.email or "", "ok"])
                continue
            failed += 1
            if isinstance(result.error, TokenExpiredError):
                outcome = "expired: the user must log in again"
            elif isinstance(result.error, UserNotFoundError):
                outcome = "the user was deleted"
            else:
                outcome = f"failed: {result.error}"  # str(error) never shows the token
            writer.writerow([line, "", "", "", outcome])
    return failed


def main() -> None:
    """Run :func:`export` on the file named on the command line."""
    failed = asyncio.run(export(sys.argv[1] if len(sys.argv) > 1 else "-"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
