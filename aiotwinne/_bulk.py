"""Bulk profile fetching: many tokens, bounded concurrency, one result each.

:func:`stream_profiles` streams :class:`~aiotwinne.ProfileResult` values for an
iterable (or async iterable) of tokens that may be far larger than memory. It
runs a fixed pool of *concurrency* worker tasks: each takes the next input,
calls the one-profile fetch it was given (the client's ``get_user_info``, which
applies the retry policy) and hands the outcome to the consumer. No task is created per token and
nothing is logged per token: the per-item cost is one coroutine call and one
small object.

Memory stays bounded by a *window*: the number of inputs taken but not yet
yielded never exceeds it, so a slow consumer or (in ordered mode) a slow head of
line stops the reading of input instead of piling up results.

The public way in is :meth:`aiotwinne.TwinneClient.fetch_profiles`, which
documents the contract. This module takes the fetch as a callable, so it never
imports the client (the client imports it: no import circle).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Final, TypeAlias

from ._protocol import check_identifier
from .errors import MalformedTokenError, TwinneError
from .models import AccessToken, ProfileResult, UserInfo

__all__ = ["FetchOne", "stream_profiles"]

_Token: TypeAlias = AccessToken | str
#: Fetches one profile; a :class:`~aiotwinne.TwinneError` is that item's result.
FetchOne: TypeAlias = Callable[[_Token], Awaitable[UserInfo]]

#: Inputs taken but not yet yielded, beyond *concurrency*, in unordered mode:
#: room for the workers to start their next request while the consumer has not
#: yet been scheduled to take the last results.
_UNORDERED_SLACK: Final = 8
#: The reorder window in ordered mode, as a multiple of *concurrency*: a slow
#: head of line lets the other workers run this far ahead before they wait.
_ORDERED_WINDOW_FACTOR: Final = 2


def stream_profiles(
    fetch_one: FetchOne,
    tokens: Iterable[_Token] | AsyncIterable[_Token],
    *,
    concurrency: int = 32,
    ordered: bool = False,
    rate: float | None = None,
) -> AsyncGenerator[ProfileResult, None]:
    """Run *fetch_one* over *tokens* with bounded concurrency, one result per input.

    The contract (laziness, ordering, the window, rate, closing and what
    propagates) is documented on :meth:`aiotwinne.TwinneClient.fetch_profiles`.

    Raises:
        ValueError: *concurrency* is below 1 or *rate* is not positive (at call time).
        TypeError: *tokens* is a single string (at call time).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
    if isinstance(tokens, (str, bytes)):
        # A lone token would be read one character at a time.
        raise TypeError("tokens must be an iterable of tokens, not a single str")
    return _iterate(_Bulk(fetch_one, tokens, concurrency, ordered, rate))


async def _iterate(bulk: _Bulk) -> AsyncGenerator[ProfileResult, None]:
    """The consumer side: an async generator that owns the workers' lifetime."""
    bulk.start()
    try:
        while True:
            if bulk.failure is not None:
                raise bulk.failure
            result = bulk.pop()
            if result is not None:
                yield result
            elif bulk.active == 0:
                if bulk.failure is not None:
                    raise bulk.failure
                return
            else:
                await bulk.wait()
    finally:
        await bulk.stop()


class _RateLimiter:
    """Spaces acquisitions ``1 / rate`` seconds apart (virtual scheduling, no busy loop).

    Each caller reserves the next free slot at once and sleeps until it comes,
    so concurrent callers need no lock and are served in arrival order.
    ``granted`` counts the slots handed out, for accounting.
    """

    __slots__ = ("_clock", "_interval", "_next", "_sleep", "granted")

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self.granted = 0

    async def acquire(self) -> None:
        """Wait for the next slot."""
        now = self._clock()
        slot = self._next if self._next > now else now
        self._next = slot + self._interval
        self.granted += 1
        if slot > now:
            await self._sleep(slot - now)


class _Bulk:
    """Shared state of one run: the input, the workers and the results not yet yielded."""

    __slots__ = (
        "_aiter",
        "_concurrency",
        "_exhausted",
        "_fetch_one",
        "_head",
        "_iter",
        "_limiter",
        "_lock",
        "_next_index",
        "_ordered",
        "_parked",
        "_rate",
        "_ready",
        "_room",
        "_source",
        "_stopping",
        "_taken",
        "_wakeup",
        "_window",
        "_workers",
        "_yielded",
        "active",
        "failure",
    )

    def __init__(
        self,
        fetch_one: FetchOne,
        source: Iterable[_Token] | AsyncIterable[_Token],
        concurrency: int,
        ordered: bool,
        rate: float | None,
    ) -> None:
        self._fetch_one = fetch_one
        self._source = source
        self._iter: Iterator[_Token] | None = None
        self._aiter: AsyncIterator[_Token] | None = None
        self._lock = asyncio.Lock()
        self._concurrency = concurrency
        self._ordered = ordered
        self._rate = rate
        self._limiter: _RateLimiter | None = None
        self._window = (
            concurrency * _ORDERED_WINDOW_FACTOR if ordered else concurrency + _UNORDERED_SLACK
        )
        self._exhausted = False
        self._next_index = 0  # index of the next input read
        self._taken = 0  # window slots reserved by workers (inputs read or about to be)
        self._yielded = 0  # results handed to the consumer
        self._head = 0  # ordered mode: the index the consumer yields next
        self._ready: collections.deque[ProfileResult] = collections.deque()
        self._parked: dict[int, ProfileResult] = {}
        self._wakeup: asyncio.Future[None] | None = None  # the consumer waits on it
        self._room: asyncio.Future[None] | None = None  # workers wait on it for window room
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        self.active = 0
        self.failure: BaseException | None = None

    # -- lifetime -------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        source = self._source
        if isinstance(source, AsyncIterable):
            self._aiter = source.__aiter__()
        else:
            self._iter = iter(source)
        if self._rate is not None:
            # Looked up now, not at import, so tests can fake the loop's clock.
            self._limiter = _RateLimiter(self._rate, clock=loop.time, sleep=asyncio.sleep)
        self.active = self._concurrency
        self._workers = [
            loop.create_task(self._work(), name=f"aiotwinne-bulk-{n}")
            for n in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Cancel the workers and wait until every one of them has ended."""
        self._stopping = True
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.wait(workers)

    # -- the consumer's side --------------------------------------------------

    def pop(self) -> ProfileResult | None:
        """The next result to yield, or ``None`` when none is ready."""
        if self._ordered:
            result = self._parked.pop(self._head, None)
            if result is None:
                return None
            self._head += 1
        elif self._ready:
            result = self._ready.popleft()
        else:
            return None
        self._yielded += 1
        room = self._room
        if room is not None:
            self._room = None
            room.set_result(None)
        return result

    async def wait(self) -> None:
        """Sleep until a worker delivers, fails or ends."""
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    # -- the workers' side ----------------------------------------------------

    async def _work(self) -> None:
        try:
            await self._work_items()
        except asyncio.CancelledError:
            if not self._stopping:
                # Not our doing (a stray cancellation inside the client or the input):
                # an item would silently lose its result, so the run fails instead.
                self._fail(RuntimeError("a profile fetch was cancelled from outside the run"))
            raise
        except Exception as exc:  # the input's or the client's bug: the consumer raises it
            self._fail(exc)
        finally:
            self.active -= 1
            self._wake()

    async def _work_items(self) -> None:
        fetch_one = self._fetch_one
        limiter = self._limiter
        sync_items, async_items = self._iter, self._aiter
        while not self._exhausted:
            if self._taken - self._yielded >= self._window:
                if self._room is None:
                    self._room = asyncio.get_running_loop().create_future()
                await self._room
                continue
            self._taken += 1
            if async_items is not None:
                taken = await self._next_async(async_items)
            elif sync_items is not None:
                taken = self._next_sync(sync_items)
            else:  # pragma: no cover - start() sets one of them
                return
            if taken is None:
                return
            index, item = taken
            unusable = _unusable(item)
            if unusable is not None:
                result = ProfileResult(item, None, unusable, index)
            else:
                # A slot only for an item that is sent: a worker that finds the
                # input at its end must not sleep until a slot it never uses.
                if limiter is not None:
                    await limiter.acquire()
                try:
                    user = await fetch_one(item)
                except TwinneError as exc:
                    result = ProfileResult(item, None, exc, index)
                else:
                    result = ProfileResult(item, user, None, index)
            if self._ordered:
                self._parked[index] = result
                if index == self._head:
                    self._wake()
            else:
                self._ready.append(result)
                self._wake()

    def _next_sync(self, items: Iterator[_Token]) -> tuple[int, _Token] | None:
        """Read one item from a plain iterable: ``(index, item)``, or ``None`` at its end."""
        if self._exhausted:
            self._taken -= 1
            return None
        try:
            item = next(items)
        except StopIteration:
            self._end()
            return None
        return self._numbered(item)

    async def _next_async(self, items: AsyncIterator[_Token]) -> tuple[int, _Token] | None:
        """Read one item from an async source: ``(index, item)``, or ``None`` at its end.

        An async generator cannot be advanced by two tasks at once, so the
        workers take turns; the index is assigned under the same lock so that
        it follows the order of reading.
        """
        async with self._lock:
            if self._exhausted:
                self._taken -= 1
                return None
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                self._end()
                return None
            return self._numbered(item)

    def _end(self) -> None:
        """The input just ended: give back the place reserved for an item that never came."""
        self._exhausted = True
        self._taken -= 1

    def _numbered(self, item: _Token) -> tuple[int, _Token]:
        index = self._next_index
        self._next_index = index + 1
        return index, item


def _unusable(item: object) -> MalformedTokenError | None:
    """The result's error for an item that is not a usable token (never sent), else ``None``.

    Only an :class:`AccessToken` or a well-formed string is sent: the client
    would accept an ``int`` too, but a number in a list of tokens is a mistake.
    """
    if isinstance(item, AccessToken):
        return None
    if not isinstance(item, str):
        kind = type(item).__name__
        reason = f"{'an' if kind[:1] in 'aeiouAEIOU' else 'a'} {kind}, not a str"
    else:
        try:
            check_identifier("access_token", item)
        except ValueError as exc:
            # check_identifier's message never repeats the value ("access_token is empty").
            reason = str(exc)
        else:
            return None
    return MalformedTokenError(f"not a usable access token: {reason}", status=None, attempts=0)
