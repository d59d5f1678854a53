"""aiotwinne.web._bearer: Bearer parsing, the TTL cache and request coalescing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aiotwinne import InvalidTokenError, TokenExpiredError, TransportError, UserInfo
from aiotwinne.web import BearerValidator
from aiotwinne.web._bearer import parse_bearer

TOKEN = "0123456789abcdef0123456789abcdef"


class FakeClient:
    """Answers get_user_info from a table; counts calls; can be made to wait."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.answers: dict[str, UserInfo | Exception] = {TOKEN: UserInfo(id=1, username="a")}

    async def get_user_info(self, token: str) -> UserInfo:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.get(token, InvalidTokenError("invalid access_token"))
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _validator(client: FakeClient, clock: Clock, **options: float) -> BearerValidator:
    return BearerValidator(client, clock=clock, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),
        (f"BEARER  {TOKEN}", TOKEN),
        (None, None),
        ("", None),
        (f"Basic {TOKEN}", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer a b", None),
        ("Bearer a\tb", None),
        ("Bearer " + "a" * 257, None),
    ],
)
def test_parse_bearer(header: str | None, expected: str | None) -> None:
    """Only `Bearer <one token>` with a sane token is read."""
    assert parse_bearer(header) == expected


async def test_concurrent_checks_of_one_token_make_one_call() -> None:
    """N concurrent requests with the same new token share one upstream call."""
    client, clock = FakeClient(), Clock()
    client.gate = asyncio.Event()
    validator = _validator(client, clock)
    waiters = [asyncio.ensure_future(validator.validate(TOKEN)) for _ in range(50)]
    await asyncio.sleep(0)
    client.gate.set()
    results = await asyncio.gather(*waiters)
    assert client.calls == 1
    assert all(r.user is not None and r.user.id == 1 for r in results)


async def test_answers_are_cached_until_the_ttl() -> None:
    """A known token is not checked again within the TTL, and is after it."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, ttl=60)
    await validator.validate(TOKEN)
    clock.now = 59
    await validator.validate(TOKEN)
    assert client.calls == 1
    clock.now = 61
    await validator.validate(TOKEN)
    assert client.calls == 2


async def test_refused_tokens_are_cached_too() -> None:
    """An invalid or expired token is refused from the cache: no upstream hammering."""
    client, clock = FakeClient(), Clock()
    client.answers["e" * 32] = TokenExpiredError("expired access_token")
    validator = _validator(client, clock)
    for token in ("d" * 32, "e" * 32):
        for _ in range(3):
            result = await validator.validate(token)
            assert result.user is None
            assert result.error == "invalid_token"
    assert client.calls == 2


async def test_upstream_failures_are_not_cached(caplog: pytest.LogCaptureFixture) -> None:
    """Twinne being down gives 'unavailable', asks again next time, and never logs the token."""
    client, clock = FakeClient(), Clock()
    client.answers[TOKEN] = TransportError("connection refused")
    validator = _validator(client, clock)
    with caplog.at_level(logging.DEBUG):
        first = await validator.validate(TOKEN)
        await validator.validate(TOKEN)
    assert first.error == "unavailable"
    assert client.calls == 2
    assert TOKEN not in caplog.text


async def test_the_cache_is_bounded() -> None:
    """Past max_entries the least recently used token is forgotten."""
    client, clock = FakeClient(), Clock()
    tokens = [f"{i:032x}" for i in range(3)]
    for token in tokens:
        client.answers[token] = UserInfo(id=1, username="a")
    validator = _validator(client, clock, max_entries=2)
    for token in tokens:
        await validator.validate(token)
    await validator.validate(tokens[0])
    assert client.calls == 4


async def test_a_cancelled_request_does_not_cancel_the_shared_call() -> None:
    """One client hanging up leaves the upstream call running for the others."""
    client, clock = FakeClient(), Clock()
    client.gate = asyncio.Event()
    validator = _validator(client, clock)
    first = asyncio.ensure_future(validator.validate(TOKEN))
    second = asyncio.ensure_future(validator.validate(TOKEN))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    client.gate.set()
    result = await second
    assert result.user is not None
    assert client.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_close_cancels_calls_in_flight() -> None:
    """At shutdown a call still waiting on Twinne is cancelled."""
    client, clock = FakeClient(), Clock()
    client.gate = asyncio.Event()
    validator = _validator(client, clock)
    waiter = asyncio.ensure_future(validator.validate(TOKEN))
    await asyncio.sleep(0)
    await validator.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_bad_options_are_refused() -> None:
    """A negative TTL or an empty cache is a configuration error."""
    with pytest.raises(ValueError, match="ttl"):
        BearerValidator(FakeClient(), ttl=-1)  # type: ignore[arg-type]
