"""aiotwinne.web._bearer: Bearer parsing, the registry, the caches, coalescing and the cap."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging

import pytest
from aiohttp import web

from aiotwinne import (
    AccessToken,
    InvalidTokenError,
    TokenExpiredError,
    TransportError,
    UserInfo,
)
from aiotwinne.web import (
    BearerValidator,
    MemoryTokenRegistry,
    RegistryUnavailableError,
    remember_token,
)
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


def _validator(client: FakeClient, clock: Clock, **options: object) -> BearerValidator:
    """A validator in foreign mode (every token goes to the fake Twinne) unless told."""
    options.setdefault("accept_foreign", True)
    return BearerValidator(client, clock=clock, **options)  # type: ignore[arg-type]


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _access_token(value: str = TOKEN, lifetime: float = 3600) -> AccessToken:
    now = dt.datetime.now(dt.timezone.utc)
    return AccessToken(value, now, now + dt.timedelta(seconds=lifetime))


class BrokenRegistry:
    """A registry whose store is down."""

    async def add(self, key: bytes, ttl: float, user_id: int) -> None:
        raise RegistryUnavailableError("redis: ConnectionError")

    async def remaining(self, key: bytes) -> float | None:
        raise RegistryUnavailableError("redis: ConnectionError")

    async def discard(self, key: bytes) -> None:
        raise RegistryUnavailableError("redis: ConnectionError")


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


@pytest.mark.parametrize(
    "options",
    [{"ttl": -1}, {"invalid_ttl": -1}, {"max_entries": 0}, {"max_checks": 0}],
)
def test_bad_options_are_refused(options: dict[str, float]) -> None:
    """A negative TTL, an empty cache or no upstream slot is a configuration error."""
    with pytest.raises(ValueError, match=r"ttl|max_"):
        BearerValidator(FakeClient(), **options)  # type: ignore[arg-type]


# -- whose tokens: the registry (row 5 of issue 11) ----------------------------------


async def test_a_token_this_site_did_not_obtain_is_refused_without_a_call() -> None:
    """Default mode: a token Twinne would accept, but unknown to the registry, is refused."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, accept_foreign=False)
    for _ in range(3):
        result = await validator.validate(TOKEN)
        assert result.user is None
        assert result.error == "invalid_token"
    assert client.calls == 0


async def test_a_remembered_token_is_served_without_a_call() -> None:
    """The callback's remember() seeds the cache: the first API request costs nothing."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, accept_foreign=False)
    await validator.remember(_access_token(), UserInfo(id=1, username="a"))
    result = await validator.validate(TOKEN)
    assert result.user is not None
    assert result.user.id == 1
    assert client.calls == 0


async def test_a_registered_token_is_checked_at_twinne_then_cached() -> None:
    """Past the seeded cache, a registered token is checked once per TTL (revocations show)."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, accept_foreign=False, ttl=60)
    await validator.remember(_access_token(), UserInfo(id=1, username="a"))
    clock.now = 61
    assert (await validator.validate(TOKEN)).user is not None
    assert (await validator.validate(TOKEN)).user is not None
    assert client.calls == 1


async def test_the_cache_never_outlives_the_registry_entry() -> None:
    """A success is cached for min(ttl, the token's remaining lifetime)."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, accept_foreign=False, ttl=60)
    await validator.registry.add(_key(TOKEN), 5, 1)
    assert (await validator.validate(TOKEN)).user is not None
    clock.now = 6
    result = await validator.validate(TOKEN)
    assert result.error == "invalid_token"
    assert client.calls == 1


async def test_a_token_twinne_refuses_leaves_the_registry() -> None:
    """Expired at Twinne: refused, and forgotten, so later requests make no call."""
    client, clock = FakeClient(), Clock()
    client.answers[TOKEN] = TokenExpiredError("expired access_token")
    validator = _validator(client, clock, accept_foreign=False, invalid_ttl=10)
    await validator.registry.add(_key(TOKEN), 3600, 1)
    assert (await validator.validate(TOKEN)).error == "invalid_token"
    assert await validator.registry.remaining(_key(TOKEN)) is None
    clock.now = 11
    assert (await validator.validate(TOKEN)).error == "invalid_token"
    assert client.calls == 1


async def test_an_expired_access_token_is_not_remembered() -> None:
    """A token already past its expiry is neither registered nor cached."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, accept_foreign=False)
    await validator.remember(_access_token(lifetime=-1), UserInfo(id=1, username="a"))
    assert (await validator.validate(TOKEN)).error == "invalid_token"
    assert await validator.registry.remaining(_key(TOKEN)) is None


async def test_a_registry_failure_is_unavailable_and_logged_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis down: 'unavailable' (503, not cached, not 401); remember() only logs."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, accept_foreign=False, registry=BrokenRegistry())
    with caplog.at_level(logging.DEBUG):
        assert (await validator.validate(TOKEN)).error == "unavailable"
        assert (await validator.validate(TOKEN)).error == "unavailable"
        await validator.remember(_access_token(), UserInfo(id=1, username="a"))
    assert "could not be registered" in caplog.text
    assert TOKEN not in caplog.text
    assert client.calls == 0
    # This process still knows the token it just obtained.
    assert (await validator.validate(TOKEN)).user is not None


async def test_remember_token_without_setup_does_nothing() -> None:
    """remember_token() on an application without setup() is a no-op, not an error."""
    await remember_token(web.Application(), _access_token(), UserInfo(id=1, username="a"))


async def test_the_memory_registry_expires_and_is_bounded() -> None:
    """Entries expire with their TTL; past max_entries the oldest registration goes."""
    clock = Clock()
    registry = MemoryTokenRegistry(max_entries=2, clock=clock)
    await registry.add(b"a", 10, 1)
    await registry.add(b"b", 20, 1)
    assert await registry.remaining(b"a") == 10
    await registry.add(b"c", 20, 1)
    assert await registry.remaining(b"a") is None
    assert len(registry) == 2
    clock.now = 20
    assert await registry.remaining(b"b") is None
    await registry.discard(b"c")
    assert len(registry) == 0
    with pytest.raises(ValueError, match="max_entries"):
        MemoryTokenRegistry(max_entries=0)


# -- flooding (row 6 of issue 11) ---------------------------------------------------


async def test_refusals_are_cached_briefly() -> None:
    """A refused token is not checked again for invalid_ttl seconds, and is after."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, invalid_ttl=10)
    await validator.validate("d" * 32)
    clock.now = 9
    await validator.validate("d" * 32)
    assert client.calls == 1
    clock.now = 11
    await validator.validate("d" * 32)
    assert client.calls == 2


async def test_junk_tokens_never_evict_a_valid_one() -> None:
    """Refusals live in a cache of their own: a flood of them leaves valid tokens cached."""
    client, clock = FakeClient(), Clock()
    validator = _validator(client, clock, max_entries=2)
    await validator.validate(TOKEN)
    for i in range(50):
        assert (await validator.validate(f"{i:032x}")).error == "invalid_token"
    assert (await validator.validate(TOKEN)).user is not None
    assert client.calls == 51


async def test_foreign_mode_sheds_checks_beyond_the_cap() -> None:
    """With max_checks busy, an unknown token is answered 'busy' at once, without a call."""
    client, clock = FakeClient(), Clock()
    client.gate = asyncio.Event()
    validator = _validator(client, clock, max_checks=2)
    waiters = [asyncio.ensure_future(validator.validate(f"{i:032x}")) for i in range(10)]
    await asyncio.sleep(0.01)
    assert client.calls == 2
    client.gate.set()
    results = await asyncio.gather(*waiters)
    assert [r.error for r in results].count("busy") == 8
    assert [r.error for r in results].count("invalid_token") == 2
    assert client.calls == 2
    # Shed answers are not cached: asked again once a slot is free.
    assert (await validator.validate(TOKEN)).user is not None


async def test_registered_tokens_wait_for_a_slot() -> None:
    """This site's own tokens queue for a slot instead of being shed; all get through."""
    client, clock = FakeClient(), Clock()
    client.gate = asyncio.Event()
    tokens = [f"{i:032x}" for i in range(3)]
    validator = _validator(client, clock, accept_foreign=False, max_checks=1)
    for token in tokens:
        client.answers[token] = UserInfo(id=1, username="a")
        await validator.registry.add(_key(token), 3600, 1)
    waiters = [asyncio.ensure_future(validator.validate(token)) for token in tokens]
    await asyncio.sleep(0.01)
    assert client.calls == 1
    client.gate.set()
    results = await asyncio.gather(*waiters)
    assert all(r.user is not None for r in results)
    assert client.calls == 3
