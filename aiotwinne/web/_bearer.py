"""``Authorization: Bearer`` validation for API routes: this site's tokens only, cached, capped.

Whose tokens
------------
Twinne's ``get_user_info`` takes no app_id: it vouches for a token of *any*
Twinne app. Asking it alone would let a token that a user gave another app be
replayed here to act as that user. So by default a Bearer token is accepted
only if this site obtained it through its own callback, which records it
(:func:`remember_token`) in a :class:`TokenRegistry`; a token the registry does
not know is refused at once, without a call to Twinne. The registry follows the
session storage: in memory for one process (:class:`MemoryTokenRegistry`), in
the same Redis as a ``RedisStorage`` across several (:class:`RedisTokenRegistry`).
Either expires an entry with the token's remaining lifetime. ``setup(...,
bearer_accept_foreign_tokens=True)`` skips the registry: any token Twinne
accepts is accepted, whichever app it was issued to.

What a check costs
------------------
* A registered token is still checked with ``get_user_info`` (the user may have
  removed the app, or Twinne's window may be shorter than ours), and the answer
  is cached for ``ttl`` seconds, never past the registry's expiry: a token
  revoked or expired upstream is accepted for at most ``ttl`` more seconds.
  Concurrent requests with the same token share one call. The callback seeds
  the cache, so requests right after a login make no call at all.
* A refused token is remembered for ``invalid_ttl`` seconds in a cache of its
  own: a flood of junk tokens only pushes out other junk, never a valid token.
* At most ``max_checks`` calls to Twinne run at once. A registered token waits
  for a free slot (the queue is bounded by this site's real logins); any other
  token (foreign mode) that finds none free is answered ``"busy"`` (503) at once,
  so a flood of random tokens has at most ``max_checks`` calls in flight.

Keys are SHA-256 digests of the token, in memory and in Redis: the raw token is
never stored, logged or shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

import attrs
from aiohttp import web

from .._protocol import check_identifier
from .._redact import fingerprint
from ..client import TwinneClient
from ..errors import InvalidTokenError, TwinneError, UserNotFoundError
from ..models import AccessToken, UserInfo
from ._config import SETTINGS_KEY

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "BearerResult",
    "BearerValidator",
    "MemoryTokenRegistry",
    "RedisTokenRegistry",
    "RegistryUnavailableError",
    "TokenRegistry",
    "parse_bearer",
    "remember_token",
]

_log = logging.getLogger("aiotwinne.web")

_MAX_TOKEN: Final = 256
#: The Redis key prefix; ``setup()`` appends the app id and a colon.
DEFAULT_REDIS_PREFIX: Final = "aiotwinne:bearer:"


@attrs.frozen
class BearerResult:
    """The outcome of checking one token.

    Attributes:
        user: The token's user, or ``None`` when the token is refused.
        error: ``None`` on success; ``"invalid_token"`` (not obtained by this
            site, or refused by Twinne: unknown, expired, its user gone),
            ``"unavailable"`` (Twinne or the registry could not be asked) or
            ``"busy"`` (too many checks already running; try again).
    """

    user: UserInfo | None
    error: str | None = None


_INVALID: Final = BearerResult(None, "invalid_token")
_UNAVAILABLE: Final = BearerResult(None, "unavailable")
_BUSY: Final = BearerResult(None, "busy")


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``.

    The scheme is case-insensitive (RFC 6750); an empty, over-long or
    whitespace-laden token is refused.
    """
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip(" ")
    if not token or len(token) > _MAX_TOKEN:
        return None
    try:
        return check_identifier("access_token", token)
    except ValueError:
        return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# -- the registry of tokens this site obtained ---------------------------------------


class RegistryUnavailableError(Exception):
    """The token registry could not be read or written (e.g. Redis is down)."""


class TokenRegistry(Protocol):
    """Where this site records the tokens its callback obtained.

    Keys are SHA-256 digests of tokens; a registry never sees a token itself.
    Methods raise :class:`RegistryUnavailableError` when the backing store
    fails, and nothing else.
    """

    async def add(self, key: bytes, ttl: float, user_id: int) -> None:
        """Record *key* for *ttl* seconds (the token's remaining lifetime)."""

    async def remaining(self, key: bytes) -> float | None:
        """Seconds *key* has left (``math.inf``: no expiry), or ``None`` when unknown."""

    async def discard(self, key: bytes) -> None:
        """Forget *key* (Twinne refused its token)."""


class MemoryTokenRegistry:
    """A :class:`TokenRegistry` in this process's memory.

    Right for one process (cookie sessions). With several processes a token is
    known only to the one whose callback obtained it: use Redis there.

    Args:
        max_entries: Most tokens remembered; past it the oldest registration
            (the one closest to expiry) is forgotten, and its token refused.
        clock: Monotonic seconds (``setup()`` passes its clock).
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    async def add(self, key: bytes, ttl: float, user_id: int) -> None:
        """Record *key* for *ttl* seconds."""
        now = self._clock()
        self._prune(now)
        self._expiry[key] = now + ttl
        self._expiry.move_to_end(key)
        while len(self._expiry) > self._max_entries:
            self._expiry.popitem(last=False)

    async def remaining(self, key: bytes) -> float | None:
        """Seconds *key* has left, or ``None``."""
        expires = self._expiry.get(key)
        if expires is None:
            return None
        left = expires - self._clock()
        if left <= 0:
            del self._expiry[key]
            return None
        return left

    async def discard(self, key: bytes) -> None:
        """Forget *key*."""
        self._expiry.pop(key, None)

    def __len__(self) -> int:
        return len(self._expiry)

    def _prune(self, now: float) -> None:
        # Every token gets about the same lifetime, so insertion order is
        # nearly expiry order: the expired ones sit at the front. One that
        # does not is dropped when looked up, or by the cap.
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[oldest]


class RedisTokenRegistry:
    """A :class:`TokenRegistry` in Redis, shared by every instance of the site.

    Each token is one key, ``prefix`` + the hex SHA-256 of the token, whose
    value is the user's id and whose TTL is the token's remaining lifetime, so
    Redis forgets it by itself. ``setup()`` builds one on the ``RedisStorage``'s
    client with the prefix ``aiotwinne:bearer:{app_id}:``, so two sites of two
    Twinne apps sharing a Redis do not accept each other's tokens.

    Args:
        redis: A ``redis.asyncio.Redis`` client (the ``redis`` extra).
        prefix: The key prefix.
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        from redis.exceptions import RedisError  # the optional redis extra

        self._redis = redis
        self._prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    def key_name(self, key: bytes) -> str:
        """The Redis key of a token digest."""
        return self._prefix + key.hex()

    async def add(self, key: bytes, ttl: float, user_id: int) -> None:
        """Record *key* for *ttl* seconds (``SET ... PX``)."""
        try:
            await self._redis.set(
                self.key_name(key), str(user_id), px=max(1, math.ceil(ttl * 1000))
            )
        except self._errors as exc:
            raise RegistryUnavailableError(f"redis: {type(exc).__name__}") from exc

    async def remaining(self, key: bytes) -> float | None:
        """Seconds *key* has left (``PTTL``), or ``None``."""
        try:
            millis = int(await self._redis.pttl(self.key_name(key)))
        except self._errors as exc:
            raise RegistryUnavailableError(f"redis: {type(exc).__name__}") from exc
        if millis == -1:  # a key set by hand without a TTL
            return math.inf
        return millis / 1000 if millis > 0 else None

    async def discard(self, key: bytes) -> None:
        """Forget *key* (``DEL``)."""
        try:
            await self._redis.delete(self.key_name(key))
        except self._errors as exc:
            raise RegistryUnavailableError(f"redis: {type(exc).__name__}") from exc


# -- validation ---------------------------------------------------------------------


class BearerValidator:
    """Validate access tokens: the registry, then ``client.get_user_info``, cached and capped.

    See the module's documentation for what each check costs.

    Args:
        client: The Twinne client.
        ttl: Seconds a success is remembered (never past the registry's expiry).
        max_entries: Most tokens remembered, valid and refused each in a cache
            of its own; the least recently used go first.
        invalid_ttl: Seconds a refusal is remembered.
        max_checks: Most calls to Twinne at once.
        registry: Where the tokens this site obtained are recorded (default: a
            :class:`MemoryTokenRegistry` on *clock*).
        accept_foreign: Skip the registry and accept any token Twinne accepts,
            whichever app it was issued to.
        clock: Monotonic seconds (injectable for tests).

    Attributes:
        registry: The registry in use (``setup()`` swaps in the Redis one once
            it sees a ``RedisStorage``).
        accept_foreign: As given.
    """

    def __init__(
        self,
        client: TwinneClient,
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        invalid_ttl: float = 10.0,
        max_checks: int = 10,
        registry: TokenRegistry | None = None,
        accept_foreign: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or invalid_ttl < 0:
            raise ValueError("ttl and invalid_ttl must be >= 0")
        if max_entries < 1 or max_checks < 1:
            raise ValueError("max_entries and max_checks must be >= 1")
        self._client = client
        self._ttl = ttl
        self._invalid_ttl = invalid_ttl
        self._max_entries = max_entries
        self._clock = clock
        self.registry: TokenRegistry = (
            registry if registry is not None else MemoryTokenRegistry(clock=clock)
        )
        self.accept_foreign = accept_foreign
        self._valid: OrderedDict[bytes, tuple[float, BearerResult]] = OrderedDict()
        self._invalid: OrderedDict[bytes, float] = OrderedDict()
        self._slots = asyncio.Semaphore(max_checks)
        self._in_flight: dict[bytes, asyncio.Task[BearerResult]] = {}

    async def validate(self, token: str) -> BearerResult:
        """Check *token*: from a cache, a check already in flight, or one new check.

        Never raises a :class:`~aiotwinne.TwinneError`: failures become results.
        """
        key = _digest(token)
        now = self._clock()
        cached = self._valid.get(key)
        if cached is not None:
            expires, result = cached
            if expires > now:
                self._valid.move_to_end(key)
                return result
            del self._valid[key]
        refused_until = self._invalid.get(key)
        if refused_until is not None:
            if refused_until > now:
                return _INVALID
            del self._invalid[key]
        task = self._in_flight.get(key)
        if task is None:
            # A task of its own, so one cancelled request (a client that hung
            # up) does not cancel the check the others are waiting for.
            task = asyncio.ensure_future(self._check(key, token))
            self._in_flight[key] = task
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(task)

    async def _check(self, key: bytes, token: str) -> BearerResult:
        registered: float | None = None
        if not self.accept_foreign:
            try:
                registered = await self.registry.remaining(key)
            except RegistryUnavailableError as exc:
                _log.warning("bearer token %s: the registry failed: %s", fingerprint(token), exc)
                return _UNAVAILABLE
            if registered is None:
                # Not obtained by this site (or long expired): no call to Twinne.
                self._refuse(key)
                return _INVALID
        elif self._slots.locked():
            # Shed, never queue: a line that a flood of junk tokens can make
            # endless would hold every request behind it.
            return _BUSY
        async with self._slots:
            try:
                user = await self._client.get_user_info(token)
            except (InvalidTokenError, UserNotFoundError):
                refused = True
            except TwinneError as exc:
                # Twinne could not vouch for the token: not cached, the next
                # request asks again.
                _log.warning(
                    "bearer token %s could not be checked: %s",
                    fingerprint(token),
                    type(exc).__name__,
                )
                return _UNAVAILABLE
            else:
                refused = False
        if refused:
            self._refuse(key)
            if registered is not None:
                # Twinne never revives a refused token: spare the next instance the call.
                await self._discard(key, token)
            return _INVALID
        result = BearerResult(user)
        self._accept(key, result, self._ttl if registered is None else min(self._ttl, registered))
        return result

    async def remember(self, token: AccessToken, user: UserInfo) -> None:
        """Record *token* as obtained by this site, for *user* (see :func:`remember_token`).

        Never raises for a registry failure: it is logged, and the token is
        then accepted by this process's cache only, for up to ``ttl`` seconds.
        """
        lifetime = token.expires_in
        if lifetime <= 0:
            return
        key = _digest(token.value)
        self._invalid.pop(key, None)
        # The callback just fetched the user: the first API request needs no call.
        self._accept(key, BearerResult(user), min(self._ttl, lifetime))
        try:
            await self.registry.add(key, lifetime, user.id)
        except RegistryUnavailableError as exc:
            _log.warning("bearer token %s could not be registered: %s", token.fingerprint, exc)

    async def _discard(self, key: bytes, token: str) -> None:
        try:
            await self.registry.discard(key)
        except RegistryUnavailableError as exc:
            _log.warning("bearer token %s: the registry failed: %s", fingerprint(token), exc)

    def _accept(self, key: bytes, result: BearerResult, ttl: float) -> None:
        if ttl <= 0:
            return
        self._valid[key] = (self._clock() + ttl, result)
        self._valid.move_to_end(key)
        while len(self._valid) > self._max_entries:
            self._valid.popitem(last=False)

    def _refuse(self, key: bytes) -> None:
        if self._invalid_ttl <= 0:
            return
        self._invalid[key] = self._clock() + self._invalid_ttl
        self._invalid.move_to_end(key)
        while len(self._invalid) > self._max_entries:
            self._invalid.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached answer (the registry is left as it is)."""
        self._valid.clear()
        self._invalid.clear()

    async def close(self) -> None:
        """Cancel the checks still in flight (at application shutdown)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def remember_token(app: web.Application, token: AccessToken, user: UserInfo) -> None:
    """Record that this site obtained *token* for *user*, so Bearer mode accepts it.

    ``setup()``'s callback calls this after each login. Call it yourself only
    for tokens your own code obtained with this site's app credentials. Does
    nothing on an application without ``setup()``; a registry failure (Redis
    down) is logged, never raised.

    Args:
        app: The application ``setup()`` was called on.
        token: The token, from :meth:`~aiotwinne.TwinneClient.exchange`.
        user: Its user.
    """
    settings = app.get(SETTINGS_KEY)
    if settings is not None and settings.bearer is not None:
        await settings.bearer.remember(token, user)
