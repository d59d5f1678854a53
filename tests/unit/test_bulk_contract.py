"""Bulk fetching's contract, against a fake client (no sockets): one result per input,
bounded concurrency, lazy input, ordering, clean cancellation and the rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotwinne import (
    AccessToken,
    InvalidTokenError,
    MalformedTokenError,
    ProfileResult,
    TokenExpiredError,
    TransportError,
    TwinneClient,
    TwinneError,
    UserInfo,
    UserNotFoundError,
    _bulk,
)
from aiotwinne._bulk import _ORDERED_WINDOW_FACTOR, _UNORDERED_SLACK, _RateLimiter, stream_profiles

# token prefix -> the error the fake client raises for it ("ok" tokens succeed)
ERRORS: dict[str, type[TwinneError]] = {
    "expired": TokenExpiredError,
    "invalid": InvalidTokenError,
    "gone": UserNotFoundError,
    "down": TransportError,
}
KINDS = ["ok", *ERRORS]


class FakeClient:
    """Stands in for TwinneClient: ``"<kind>-<n>"`` tokens succeed or fail by kind.

    Each call yields to the loop *steps* times (so calls overlap), or waits for
    its gate when one is set; it counts calls in flight and the peak.
    """

    def __init__(self, steps: int = 1) -> None:
        self.steps = steps
        self.gates: dict[str, asyncio.Event] = {}
        self.in_flight = 0
        self.peak = 0
        self.calls = 0
        self.cancelled = 0
        self.started = asyncio.Event()  # set at every call's start
        self.waiting: dict[str, asyncio.Task[Any]] = {}  # token -> the task held at its gate

    async def get_user_info(self, token: AccessToken | str) -> UserInfo:
        value = token.value if isinstance(token, AccessToken) else token
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.started.set()
        try:
            gate = self.gates.get(value)
            if gate is not None:
                task = asyncio.current_task()
                assert task is not None
                self.waiting[value] = task
                await gate.wait()
            for _ in range(self.steps):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        kind, _, number = value.partition("-")
        if kind in ERRORS:
            raise ERRORS[kind](f"{kind} token")
        if kind == "boom":
            raise RuntimeError("a bug in the client")
        return UserInfo(id=int(number), username=f"user{number}")

    async def wait_in_flight(self, n: int) -> None:
        """Wait until *n* calls are in flight."""
        while self.in_flight < n:
            self.started.clear()
            await self.started.wait()


def fake(steps: int = 1) -> Any:
    """A FakeClient typed as Any, so it can stand where a TwinneClient goes."""
    return FakeClient(steps)


def fetch_profiles(
    client: Any, tokens: Any, **options: Any
) -> AsyncGenerator[ProfileResult, None]:
    """The bulk engine over a (fake) client's get_user_info, as the client's method runs it."""
    return stream_profiles(client.get_user_info, tokens, **options)


def tokens_for(kinds: Iterable[str]) -> list[str]:
    return [f"{kind}-{n}" for n, kind in enumerate(kinds)]


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def collect(results: AsyncIterator[ProfileResult]) -> list[ProfileResult]:
    return [result async for result in results]


def check_result(result: ProfileResult, tokens: list[str]) -> None:
    token = tokens[result.index]
    assert result.token == token
    kind = token.partition("-")[0]
    if kind == "ok":
        assert result.ok
        assert result.user is not None
        assert result.user.id == result.index
    else:
        assert result.user is None
        assert type(result.error) is ERRORS[kind]


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(KINDS), max_size=120),
    concurrency=st.integers(1, 12),
    ordered=st.booleans(),
    steps=st.integers(0, 3),
)
def test_exactly_one_result_per_input_whatever_the_outcomes(
    kinds: list[str], concurrency: int, ordered: bool, steps: int
) -> None:
    """Every input gets exactly one correctly classified result, in any mode."""
    tokens = tokens_for(kinds)
    client = fake(steps)
    results = asyncio.run(
        collect(fetch_profiles(client, tokens, concurrency=concurrency, ordered=ordered))
    )
    assert sorted(r.index for r in results) == list(range(len(tokens)))
    for result in results:
        check_result(result, tokens)
    if ordered:
        assert [r.index for r in results] == list(range(len(tokens)))
    assert client.peak <= concurrency


async def test_ordered_mode_yields_input_order_when_completions_are_reversed() -> None:
    """Items finishing last-to-first still come out in input order."""
    tokens = tokens_for(["ok"] * 8)
    client = FakeClient()
    gates = [asyncio.Event() for _ in tokens]
    client.gates = dict(zip(tokens, gates, strict=True))

    async def release_backwards() -> None:
        for gate in reversed(gates):
            await asyncio.sleep(0)
            gate.set()

    releaser = asyncio.create_task(release_backwards())
    results = await collect(fetch_profiles(client, tokens, concurrency=8, ordered=True))
    await releaser
    assert [r.index for r in results] == list(range(8))


async def test_unordered_mode_yields_in_completion_order() -> None:
    """Without ordered=True, a slow first item does not hold back the others."""
    tokens = tokens_for(["ok"] * 6)
    client = FakeClient()
    client.gates["ok-0"] = gate = asyncio.Event()
    seen = []
    async for result in fetch_profiles(client, tokens, concurrency=6):
        seen.append(result.index)
        if len(seen) == 5:
            gate.set()
    assert seen == [1, 2, 3, 4, 5, 0]


async def test_concurrency_is_a_hard_bound_and_is_reached() -> None:
    """Calls in flight never exceed concurrency, and a long run fills every slot."""
    client = fake(steps=3)
    results = await collect(fetch_profiles(client, tokens_for(["ok"] * 500), concurrency=16))
    assert len(results) == 500
    assert client.peak == 16


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_sync_generator_is_read_lazily(ordered: bool) -> None:
    """Items read ahead of the results yielded never exceed the window."""
    concurrency = 8
    window = concurrency * _ORDERED_WINDOW_FACTOR if ordered else concurrency + _UNORDERED_SLACK
    read = 0

    def source() -> Iterator[str]:
        nonlocal read
        for n in range(10_000):
            read += 1
            yield f"ok-{n}"

    yielded = 0
    async for _ in fetch_profiles(fake(), source(), concurrency=concurrency, ordered=ordered):
        yielded += 1
        assert read - yielded < window
        if yielded == 300:
            break
    assert read < 300 + window


async def test_an_async_generator_is_read_lazily_and_never_materialised() -> None:
    """An endless async generator is read a little at a time, ahead by at most the window."""
    concurrency = 8
    read = 0

    async def endless() -> AsyncIterator[str]:
        nonlocal read
        n = 0
        while True:
            await asyncio.sleep(0)
            read += 1
            yield f"ok-{n}"
            n += 1

    yielded = 0
    async with contextlib.aclosing(fetch_profiles(fake(), endless(), concurrency=8)) as results:
        async for result in results:
            yielded += 1
            assert result.ok
            assert read - yielded <= concurrency + _UNORDERED_SLACK
            if yielded == 1_000:
                break
    assert not other_tasks()


async def test_a_slow_consumer_stops_the_reading_of_input() -> None:
    """When results are not taken, workers stop reading once the window is full."""
    read = 0

    def source() -> Iterator[str]:
        nonlocal read
        for n in range(1_000):
            read += 1
            yield f"ok-{n}"

    results = fetch_profiles(fake(), source(), concurrency=4)
    async with contextlib.aclosing(results):
        await anext(results)
        for _ in range(50):
            await asyncio.sleep(0)  # the consumer dawdles; the workers run
        assert read <= 1 + 4 + _UNORDERED_SLACK


async def test_unusable_items_become_malformed_token_results_without_a_request() -> None:
    """Empty, blank, spaced and non-string items become MalformedTokenError results, unsent."""
    client = TwinneClient("1", "s" * 32, base_url="http://127.0.0.1:9")
    items: list[Any] = ["", "  ", "abc def", "tab\there", None, 3.5, 123, b"f" * 32]
    results = await client.gather_profiles(items, concurrency=2)
    assert [r.index for r in results] == list(range(len(items)))
    for result, item in zip(results, items, strict=True):
        assert result.token is item
        assert type(result.error) is MalformedTokenError
        assert isinstance(result.error, InvalidTokenError)
        assert result.error.attempts == 0
        assert result.error.status is None
        assert str(result.error).startswith("not a usable access token")
    assert client._session is None  # no request was ever attempted
    await client.close()


async def test_locally_expired_access_tokens_are_told_apart() -> None:
    """An AccessToken past its expiry gives TokenExpiredError, as the client decides."""
    client = TwinneClient("1", "s" * 32, base_url="http://127.0.0.1:9")
    past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    expired = AccessToken(value="f" * 32, issued_at=past, expires_at=past)
    (result,) = await client.gather_profiles([expired])
    assert isinstance(result.error, TokenExpiredError)
    assert "f" * 32 not in repr(result)
    await client.close()


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_an_input_that_raises_propagates_after_cancelling_work(asynchronous: bool) -> None:
    """The input's own exception stops the run; requests in flight are cancelled."""
    client = FakeClient()
    client.gates["ok-1"] = asyncio.Event()  # never set: stays in flight

    def sync_source() -> Iterator[str]:
        yield "ok-0"
        yield "ok-1"
        raise OSError("disk on fire")

    async def async_source() -> AsyncIterator[str]:
        for token in sync_source():
            yield token

    source: Any = async_source() if asynchronous else sync_source()
    with pytest.raises(OSError, match="disk on fire"):
        await collect(fetch_profiles(client, source, concurrency=4))
    assert client.cancelled == 1
    assert not other_tasks()


async def test_a_client_bug_propagates_instead_of_becoming_a_result() -> None:
    """A non-Twinne exception from the client (a bug) is raised, not swallowed."""
    with pytest.raises(RuntimeError, match="a bug in the client"):
        await collect(fetch_profiles(fake(), ["ok-0", "boom-1", "ok-2"], concurrency=1))
    assert not other_tasks()


async def test_a_closed_client_raises_instead_of_failing_every_item() -> None:
    """Using a closed TwinneClient is the caller's bug: RuntimeError, not N error results."""
    client = TwinneClient("1", "s" * 32, base_url="http://127.0.0.1:9")
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.gather_profiles(["a" * 32, "b" * 32])
    assert not other_tasks()


async def test_aclose_cancels_requests_in_flight_and_leaves_no_task() -> None:
    """Closing the iterator mid-run cancels what is in flight and waits for it."""
    client = FakeClient()
    tokens = tokens_for(["ok"] * 100)
    for token in tokens[1:]:
        client.gates[token] = asyncio.Event()
    results = fetch_profiles(client, tokens, concurrency=10)
    first = await anext(results)
    assert first.index == 0
    assert client.in_flight == 10  # the freed worker already took the next item
    await results.aclose()
    assert client.in_flight == 0
    assert client.cancelled == 10
    assert not other_tasks()


async def test_cancelling_the_consumer_cancels_requests_and_leaves_no_task() -> None:
    """Cancelling the task that iterates stops every request; no task survives."""
    client = FakeClient()
    tokens = tokens_for(["ok"] * 100)
    for token in tokens:
        client.gates[token] = asyncio.Event()
    consumer = asyncio.create_task(collect(fetch_profiles(client, tokens, concurrency=10)))
    await client.wait_in_flight(10)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert client.in_flight == 0
    assert client.cancelled == 10
    assert not other_tasks()


async def test_empty_input_yields_nothing_and_leaves_no_task() -> None:
    """No input, no results, no leftover workers."""
    assert await collect(fetch_profiles(fake(), [], concurrency=5)) == []
    assert await collect(fetch_profiles(fake(), [], concurrency=5, ordered=True)) == []
    assert not other_tasks()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"rate": 0}, "rate"),
        ({"rate": -1.0}, "rate"),
        ({"rate": float("nan")}, "rate"),
    ],
)
def test_bad_options_are_refused_at_call_time(options: dict[str, Any], message: str) -> None:
    """Invalid concurrency or rate raises ValueError before any iteration."""
    with pytest.raises(ValueError, match=message):
        fetch_profiles(fake(), [], **options)


def test_a_single_string_is_refused_rather_than_read_letter_by_letter() -> None:
    """Passing one token instead of a list raises TypeError at call time."""
    with pytest.raises(TypeError, match="not a single str"):
        fetch_profiles(fake(), "ok-1")


async def test_a_stray_cancellation_fails_the_run_instead_of_losing_a_result() -> None:
    """A fetch cancelled by someone else raises RuntimeError: no result is silently dropped."""
    client = FakeClient()
    client.gates["ok-1"] = asyncio.Event()
    results = fetch_profiles(client, tokens_for(["ok"] * 3), concurrency=3)
    await anext(results)
    await client.wait_in_flight(1)
    client.waiting["ok-1"].cancel()
    with pytest.raises(RuntimeError, match="cancelled from outside"):
        await collect(results)
    assert not other_tasks()


class VirtualTime:
    """A clock that moves only when sleepers wait on it, earliest deadline first."""

    def __init__(self) -> None:
        self.now = 0.0
        self._deadlines: list[float] = []
        self._real_sleep = asyncio.sleep

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await self._real_sleep(0)
            return
        deadline = self.now + delay
        self._deadlines.append(deadline)
        try:
            while self.now < deadline:
                if deadline <= min(self._deadlines):
                    self.now = deadline  # nobody wakes earlier: jump
                else:
                    await self._real_sleep(0)
        finally:
            self._deadlines.remove(deadline)


async def test_rate_limiter_spaces_slots_evenly_with_no_burst() -> None:
    """Concurrent acquirers get slots exactly 1/rate apart, in arrival order."""
    clock = VirtualTime()
    limiter = _RateLimiter(20.0, clock=clock.time, sleep=clock.sleep)
    granted: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        granted.append(clock.now)

    await asyncio.gather(*(take() for _ in range(5)))
    assert limiter.granted == 5
    assert granted == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])


async def test_rate_limiter_does_not_bank_idle_time() -> None:
    """After a quiet period the next slot is immediate, but only one: no burst builds up."""
    clock = VirtualTime()
    limiter = _RateLimiter(10.0, clock=clock.time, sleep=clock.sleep)
    await limiter.acquire()
    clock.now = 60.0
    await limiter.acquire()
    assert clock.now == 60.0  # at once
    await limiter.acquire()
    assert clock.now == pytest.approx(60.1)  # the next one waits a full interval


async def test_bulk_rate_limit_is_respected_by_the_accounting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With rate=50, 100 fetches need 99 intervals of 20 ms on the (virtual) clock."""
    clock = VirtualTime()
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    client = FakeClient()
    real = client.get_user_info

    async def timed(token: AccessToken | str) -> UserInfo:
        starts.append(clock.now)
        return await real(token)

    monkeypatch.setattr(client, "get_user_info", timed)
    monkeypatch.setattr(loop, "time", clock.time)
    monkeypatch.setattr(asyncio, "sleep", clock.sleep)
    results = await collect(
        fetch_profiles(client, tokens_for(["ok"] * 100), concurrency=8, rate=50.0)
    )
    assert len(results) == 100
    assert len(starts) == 100
    assert max(starts) == pytest.approx(99 * 0.02)
    starts.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(0.02)


class _RecordingClient:
    """Records every token it is asked about; a token named "bug" raises *bug*."""

    def __init__(self, bug: Exception | None = None) -> None:
        self.sent: list[object] = []
        self.bug = bug

    async def get_user_info(self, token: AccessToken | str) -> UserInfo:
        self.sent.append(token)
        if token == "bug" and self.bug is not None:
            raise self.bug
        return UserInfo(id=len(self.sent), username="someone")


async def test_only_strings_and_access_tokens_are_ever_sent() -> None:
    """An int, bytes, None, a bool or a float is a MalformedTokenError result, never a request."""
    client = _RecordingClient()
    items: list[Any] = [123, 0, b"f" * 32, None, True, 3.5, "ok-0"]
    results = await collect(fetch_profiles(client, items, concurrency=3, ordered=True))
    assert client.sent == ["ok-0"]
    assert [r.index for r in results] == list(range(len(items)))
    for result in results[:-1]:
        assert type(result.error) is MalformedTokenError
        assert result.error.attempts == 0
        assert str(result.error).startswith("not a usable access token")
    assert results[-1].ok


@pytest.mark.parametrize("bug", [ValueError("a bug in the client"), TypeError("a bug too")])
async def test_a_value_or_type_error_from_the_client_propagates(bug: Exception) -> None:
    """A ValueError or TypeError from inside the client is a bug: raised, not a result."""
    client = _RecordingClient(bug)
    with pytest.raises(type(bug), match="a bug"):
        await collect(fetch_profiles(client, ["ok-0", "bug", "ok-2"], concurrency=1))
    assert client.sent[:2] == ["ok-0", "bug"]
    assert not other_tasks()


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_rate_limited_run_takes_one_slot_per_item_and_ends_with_the_last(
    asynchronous: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle workers reserve no limiter slot: 2 items at rate=4 take 2 slots, done at 0.25 s."""
    clock = VirtualTime()
    loop = asyncio.get_running_loop()
    limiters: list[_RateLimiter] = []

    class RecordingLimiter(_RateLimiter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            limiters.append(self)

    monkeypatch.setattr(_bulk, "_RateLimiter", RecordingLimiter)
    monkeypatch.setattr(loop, "time", clock.time)
    monkeypatch.setattr(asyncio, "sleep", clock.sleep)
    tokens = tokens_for(["ok"] * 2)

    async def async_source() -> AsyncIterator[str]:
        for token in tokens:
            yield token

    source: Any = async_source() if asynchronous else tokens
    results = await collect(fetch_profiles(fake(), source, concurrency=16, rate=4.0))
    assert len(results) == 2
    (limiter,) = limiters
    assert limiter.granted == 2
    assert clock.now == pytest.approx(0.25)
