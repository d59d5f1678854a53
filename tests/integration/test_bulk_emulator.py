"""Bulk fetching against the emulator: thousands of tokens, every outcome, faults, clean stops."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiotwinne import (
    InvalidTokenError,
    MalformedTokenError,
    ProtocolError,
    RetryPolicy,
    TokenExpiredError,
    TwinneClient,
    UserNotFoundError,
)
from aiotwinne._bulk import _UNORDERED_SLACK
from aiotwinne.testing import SNGINE_VERSIONS, TwinneEmulator

EXPECTED: dict[str, type[Exception] | None] = {
    "ok": None,
    "expired": TokenExpiredError,
    "invalid": InvalidTokenError,
    "deleted": UserNotFoundError,
}


@pytest.fixture(params=SNGINE_VERSIONS, ids=lambda v: f"sngine{v}")
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[TwinneEmulator]:
    """A fast-mode emulator with one app, as each Sngine version in turn."""
    async with TwinneEmulator(fast=True, sngine=request.param) as emulator:
        emulator.add_app(name="Bulk")
        yield emulator


@pytest.fixture
async def client(emu: TwinneEmulator) -> AsyncIterator[TwinneClient]:
    """A client for the emulator whose retries never sleep and outlast any injected faults."""
    app = emu.default_app
    async with TwinneClient(
        app.app_id, app.secret, base_url=emu.base_url, retry=RetryPolicy.no_wait(attempts=50)
    ) as twinne:
        yield twinne


def client_side_tasks() -> set[asyncio.Task[Any]]:
    """Tasks still alive besides this test's own and the emulator's request handlers."""
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not task.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
    }


def mixed_tokens(emu: TwinneEmulator, counts: dict[str, int]) -> tuple[list[str], list[str]]:
    """Tokens of every kind, shuffled; returns (tokens, the kind of each)."""
    app = emu.default_app
    labelled: list[tuple[str, str]] = []
    old_users = emu.add_users(counts["expired"])
    labelled += [("expired", emu.issue_token(user, app)) for user in old_users]
    emu.advance(3601)  # everything issued so far is now past its hour
    labelled += [("ok", token) for token in emu.issue_tokens(counts["ok"], app)]
    doomed = emu.add_users(counts["deleted"])
    labelled += [("deleted", emu.issue_token(user, app)) for user in doomed]
    for user in doomed:
        emu.delete_user(user)
    labelled += [("invalid", secrets.token_hex(16)) for _ in range(counts["invalid"])]
    random.Random(5).shuffle(labelled)
    kinds, tokens = zip(*labelled, strict=True)
    return list(tokens), list(kinds)


@pytest.mark.parametrize("ordered", [False, True])
async def test_five_thousand_mixed_tokens_with_faults_give_one_right_result_each(
    emu: TwinneEmulator, client: TwinneClient, ordered: bool
) -> None:
    """5,000 tokens of four kinds under injected faults: one result each, classified per index."""
    counts = {"ok": 4_800, "expired": 70, "invalid": 80, "deleted": 50}
    tokens, kinds = mixed_tokens(emu, counts)
    # Slow answers first, so that requests pile up and the peak shows the bound.
    emu.inject("latency", endpoint="user_info", delay=0.005, count=200)
    emu.inject("http_error", endpoint="user_info", status=503, count=20)  # retried
    emu.inject("http_error", endpoint="user_info", status=429, retry_after=0, count=5)
    emu.inject("drop", endpoint="user_info", count=10)  # retried: get_user_info is idempotent
    emu.inject("php_warning", endpoint="user_info", count=10)  # parsed through
    emu.inject("malformed_json", endpoint="user_info", count=3)  # not retried: 3 failures

    results = [r async for r in client.fetch_profiles(tokens, concurrency=32, ordered=ordered)]

    assert len(results) == 5_000
    assert sorted(r.index for r in results) == list(range(5_000))
    if ordered:
        assert [r.index for r in results] == list(range(5_000))
    broken = [r for r in results if isinstance(r.error, ProtocolError)]
    assert len(broken) == 3
    for result in results:
        assert result.token == tokens[result.index]
        if result in broken:
            continue
        expected = EXPECTED[kinds[result.index]]
        if expected is None:
            assert result.error is None, result
            assert result.user is not None
        else:
            assert type(result.error) is expected, result
            assert result.user is None
    assert emu.pending_faults == 0
    # one request per token, plus one retry per retryable fault
    assert emu.count("user_info") == 5_000 + 20 + 5 + 10
    assert emu.peak_concurrency == 32


async def test_peak_requests_in_flight_never_exceed_concurrency(
    emu: TwinneEmulator, client: TwinneClient
) -> None:
    """The emulator's own in-flight counter peaks at the concurrency asked for, not above."""
    tokens = emu.issue_tokens(1_000)
    emu.inject("latency", endpoint="user_info", delay=0.01, count=200)  # let requests pile up
    results = [r async for r in client.fetch_profiles(tokens, concurrency=7)]
    assert sum(r.ok for r in results) == 1_000
    assert emu.peak_concurrency == 7


async def test_an_async_generator_of_tokens_is_streamed_not_materialised(
    emu: TwinneEmulator, client: TwinneClient
) -> None:
    """Tokens produced on demand are read at most concurrency + slack ahead of the results."""
    pool = emu.issue_tokens(2_000)
    read = 0

    async def produce() -> AsyncIterator[str]:
        nonlocal read
        for token in pool:
            read += 1
            yield token

    yielded = 0
    async for result in client.fetch_profiles(produce(), concurrency=16):
        yielded += 1
        assert result.ok
        assert read - yielded <= 16 + _UNORDERED_SLACK
    assert yielded == read == 2_000


async def test_cancelling_mid_run_cancels_requests_and_leaves_no_task(
    emu: TwinneEmulator, client: TwinneClient
) -> None:
    """A consumer cancelled while requests hang leaves no task behind; the client still works."""
    tokens = emu.issue_tokens(200)
    emu.inject("latency", endpoint="user_info", delay=30, count=10)
    seen: list[int] = []

    async def consume() -> None:
        async for result in client.fetch_profiles(tokens, concurrency=10):
            seen.append(result.index)

    consumer = asyncio.create_task(consume())
    while emu.in_flight < 10:  # noqa: ASYNC110 - the emulator offers no event for this
        await asyncio.sleep(0.005)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert seen == []
    assert not client_side_tasks()
    emu.clear_faults()
    user = await client.get_user_info(tokens[0])
    assert user.username


async def test_aclose_mid_run_cancels_requests_and_leaves_no_task(
    emu: TwinneEmulator, client: TwinneClient
) -> None:
    """Closing the iterator after a few results stops the rest at once."""
    tokens = emu.issue_tokens(500)
    results = client.fetch_profiles(tokens, concurrency=8)
    taken = [await anext(results) for _ in range(20)]
    emu.inject("latency", endpoint="user_info", delay=30, count=100)
    await results.aclose()  # type: ignore[attr-defined]
    assert len(taken) == 20
    assert not client_side_tasks()
    assert emu.count("user_info") < 20 + 8 + _UNORDERED_SLACK + 8


async def test_gather_profiles_returns_a_list_in_input_order(
    emu: TwinneEmulator, client: TwinneClient
) -> None:
    """gather_profiles is the ordered fetch collected into a list."""
    tokens: list[Any] = [*emu.issue_tokens(300), "", "no such token", "f" * 32]
    results = await client.gather_profiles(tokens, concurrency=9)
    assert [r.index for r in results] == list(range(303))
    assert all(r.ok for r in results[:300])
    assert [type(r.error) for r in results[300:]] == [
        MalformedTokenError,
        MalformedTokenError,
        InvalidTokenError,
    ]
    # the empty and the spaced token are refused locally; the unknown one by Twinne
    assert [r.error.attempts for r in results[300:] if r.error] == [0, 0, 1]
    assert emu.count("user_info") == 301


async def test_aclosing_a_finished_run_is_harmless(client: TwinneClient) -> None:
    """contextlib.aclosing around a completed run closes nothing twice."""
    async with contextlib.aclosing(client.fetch_profiles([], concurrency=3)) as results:  # type: ignore[type-var]
        assert [r async for r in results] == []
