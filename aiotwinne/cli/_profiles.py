"""``profiles``: one token a line in, one JSON object a line out, through the bulk fetch.

The pipeline: a daemon thread reads the input in chunks (:func:`_read_lines`),
each line becomes a token or a refusal of our own (too long, not UTF-8), the
client's :meth:`~aiotwinne.TwinneClient.fetch_profiles` answers every line at
its own line number, and :class:`_Output` writes the results. Tokens are never
written, only fingerprints. :class:`Tally` counts outcomes for the summary and
the exit status; the demo's bulk step uses it too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, BinaryIO, Final, TextIO

import attrs

from .._redact import fingerprint, redact_text
from ..errors import (
    APIError,
    InvalidTokenError,
    MalformedTokenError,
    TokenExpiredError,
    UserNotFoundError,
)
from ..models import AccessToken, ProfileResult, user_info_to_json
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    UsageError,
    client_from_args,
    discard_stdout,
    note,
    plural,
    progress_bar,
    reason,
)

__all__ = ["Tally", "profiles"]

_READ_CHUNK: Final = 64 * 1024
#: A line longer than this is not a token; it is reported, not sent.
_MAX_LINE: Final = 4096
#: Marks a line refused by the CLI itself. NUL is a control character, so the
#: client refuses such an item before sending it, and bulk still gives it its
#: own result at its own line number.
_REFUSED: Final = "\x00"


async def profiles(args: argparse.Namespace) -> int:
    """``aiotwinne profiles``: fetch every line's profile; exit 0, 1 or 3 by the tally."""
    client = client_from_args(args, needs_id=False, needs_secret=False)
    name = "stdin" if args.file == "-" else args.file
    if args.file == "-" and sys.stdin is None:
        raise UsageError("cannot read stdin: standard input is closed")
    try:
        source: BinaryIO = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115, ASYNC230 - closed below; opening is instant
    except OSError as exc:
        await client.close()
        raise UsageError(f"cannot read {name}: {reason(exc)}") from None
    if source is sys.stdin.buffer and sys.stdin.isatty():
        # Otherwise a person who forgot the FILE sees a command that hangs.
        note("reading tokens from standard input, one a line (Ctrl-D to end, Ctrl-C to stop)")
    try:
        out = _Output(None if args.out == "-" else args.out)
    except UsageError:
        if source is not sys.stdin.buffer:
            source.close()
        await client.close()
        raise
    tally = Tally()
    try:
        async with client:
            bar = progress_bar(total=None, noun="line")
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
        raise UsageError(f"cannot read {name}: {reason(exc.__cause__ or exc)}") from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        # Ctrl-C or SIGTERM: the lines written so far are complete (out.close()
        # below flushes them); say how far it got, then end as interrupted.
        out.close()
        note(f"stopped after {tally.summary()}")
        raise
    finally:
        try:
            out.close()
        finally:
            if source is not sys.stdin.buffer:
                source.close()
    note(tally.summary())
    return tally.exit_status()


class _Output:
    """Where ``profiles`` writes: ``--out FILE`` or stdout.

    A write that fails (a full disk, a file system gone read-only) is a
    :class:`~._common.UsageError` naming the file: one line, exit 2. A reader
    gone away from stdout stays a ``BrokenPipeError``, which ends quietly.
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
                discard_stdout()  # reported once, here: not again when main() flushes
            raise UsageError(f"cannot write {self.name}: {reason(exc)}") from None


class _InputError(Exception):
    """Reading the input failed (raised through the bulk fetch, which propagates it)."""


async def _read_lines(stream: BinaryIO) -> AsyncIterator[str]:
    """The stream's lines, decoded and stripped, read by a daemon thread in chunks.

    A thread, not the loop's default executor: a read blocked on a terminal
    must not keep the process alive after Ctrl-C (``asyncio.run`` waits for
    the default executor's threads, never for a daemon thread). Standard input
    is read from its descriptor, not through ``sys.stdin.buffer``: a thread
    blocked inside the buffer holds its lock, and the interpreter, closing
    stdin at exit after Ctrl-C or SIGTERM, would abort on it.
    """
    read = _chunk_reader(stream)
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=4)

    def pump() -> None:
        try:
            while True:
                try:
                    chunk: bytes | BaseException = read()
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


def _chunk_reader(stream: BinaryIO) -> Callable[[], bytes]:
    """What the reader thread calls for the next chunk (``b""`` at the end)."""
    if stream is sys.stdin.buffer:
        try:
            fd = stream.fileno()
        except (OSError, ValueError):  # not a real file (a test's stand-in)
            pass
        else:
            return lambda: os.read(fd, _READ_CHUNK)
    return lambda: stream.read1(_READ_CHUNK)  # type: ignore[attr-defined]


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
class Tally:
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
        """Every line counted."""
        return sum(self.counts.values())

    @property
    def answered(self) -> int:
        """Lines that got an answer from Twinne (good or bad)."""
        c = self.counts
        return c["ok"] + c["expired"] + c["invalid"] + c["not_found"] + c["refused"]

    def summary(self, noun: str = "line") -> str:
        """One line: the outcomes, and the speed when Twinne answered any."""
        c = self.counts
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        speed = f", {self.answered / elapsed:,.0f} profiles/s" if self.answered else ""
        return (
            f"{plural(self.total, noun)} in {elapsed:.1f}s{speed}: "
            f"{c['ok']} ok, {c['expired']} expired, {c['invalid']} invalid, "
            f"{c['not_found']} not found, {c['refused']} refused, {c['failed']} failed, "
            f"{c['blank'] + c['malformed']} blank or malformed"
        )

    def exit_status(self) -> int:
        """0 when every line is ok, 3 when none got an answer from Twinne, else 1."""
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
        line["user"] = user_info_to_json(result.user)
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
