"""``Authorization: Bearer`` validation for API routes, with a TTL cache and coalescing.

An API client sends the Twinne access token it obtained; the only way to check
it is ``get_user_info``. Calling Twinne on every request would be slow and
would hammer it, so answers are cached for a short time (a token revoked or
expired upstream is still accepted for at most ``ttl`` seconds), and concurrent
requests that carry the same new token share one upstream call.

Cache keys are SHA-256 digests of the token: the raw token is never kept as a
key, logged or shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import attrs

from .._protocol import check_identifier
from .._redact import fingerprint
from ..client import TwinneClient
from ..errors import InvalidTokenError, TwinneError, UserNotFoundError
from ..models import UserInfo

__all__ = ["BearerResult", "BearerValidator", "parse_bearer"]

_log = logging.getLogger("aiotwinne.web")

_MAX_TOKEN: Final = 256


@attrs.frozen
class BearerResult:
    """The outcome of checking one token.

    Attributes:
        user: The token's user, or ``None`` when the token is refused.
        error: ``None`` on success; ``"invalid_token"`` (refused by Twinne:
            unknown, expired, or its user is gone) or ``"unavailable"``
            (Twinne could not be asked).
    """

    user: UserInfo | None
    error: str | None = None


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


class BearerValidator:
    """Validate access tokens with ``client.get_user_info``, cached and coalesced.

    Args:
        client: The Twinne client.
        ttl: Seconds a success (or a refusal by Twinne) is remembered.
        max_entries: Most tokens remembered; the least recently used go first.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        client: TwinneClient,
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError("ttl must be >= 0 and max_entries >= 1")
        self._client = client
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, BearerResult]] = OrderedDict()
        self._in_flight: dict[bytes, asyncio.Task[BearerResult]] = {}

    async def validate(self, token: str) -> BearerResult:
        """Check *token*: from the cache, a call already in flight, or one new call.

        Never raises a :class:`~aiotwinne.TwinneError`: failures become results.
        """
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(key)
        if cached is not None:
            expires, result = cached
            if expires > self._clock():
                self._cache.move_to_end(key)
                return result
            del self._cache[key]
        task = self._in_flight.get(key)
        if task is None:
            # A task of its own, so one cancelled request (a client that hung
            # up) does not cancel the call the others are waiting for.
            task = asyncio.ensure_future(self._lookup(key, token))
            self._in_flight[key] = task
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(task)

    async def _lookup(self, key: bytes, token: str) -> BearerResult:
        try:
            user = await self._client.get_user_info(token)
        except (InvalidTokenError, UserNotFoundError):
            result = BearerResult(None, "invalid_token")
        except TwinneError as exc:
            # Twinne could not vouch for the token: not cached, the next
            # request asks again.
            _log.warning(
                "bearer token %s could not be checked: %s", fingerprint(token), type(exc).__name__
            )
            return BearerResult(None, "unavailable")
        else:
            result = BearerResult(user)
        self._remember(key, result)
        return result

    def _remember(self, key: bytes, result: BearerResult) -> None:
        if self._ttl <= 0:
            return
        self._cache[key] = (self._clock() + self._ttl, result)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    async def close(self) -> None:
        """Cancel the calls still in flight (at application shutdown)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
