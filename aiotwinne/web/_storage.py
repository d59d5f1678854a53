"""An encrypted-cookie session storage that never decrypts the same cookie twice.

Every request of a signed-in visitor sends the same session cookie until the
session changes, and aiohttp-session's ``EncryptedCookieStorage`` decrypts it
again each time (base64, HMAC, AES: most of what a session costs a page).
:class:`CachedCookieStorage` remembers, per exact cookie value, what the
decryption gave, and serves a repeat from memory.

Why a hit returns exactly what a decrypt would
----------------------------------------------
The cookie value is Fernet ciphertext with an HMAC over it: only the site's
key makes a value that decrypts, and one value always decrypts to the same
plaintext. So the cache is keyed by the whole value, and a hit re-checks the
only thing that changes with time, the age Fernet would check:

* the token's own timestamp (kept from the first decryption) against
  ``max_age``, on the same clock and with Fernet's rule (older than
  ``max_age`` seconds, or more than a minute in the future: refused, and the
  entry forgotten);
* the session's ``created`` time and aiotwinne's record (the token's expiry)
  are checked as before, on every request, because each hit builds a new
  ``Session`` from the cached *plaintext*.

Decoding the plaintext again on every hit (``json.loads``, about 3 µs) is
also what makes the session a fresh copy: a handler that changes the loaded
session in place, nested values included, changes nothing in the cache.

What it never does
------------------
* It never caches a value that did not decrypt: a tampered, truncated or
  foreign cookie is refused exactly as before, and a flood of junk evicts
  nothing.
* It never keeps a value the site replaced: saving a session (a login, a
  logout, any change) forgets the cookie the request came with. A logout
  therefore leaves nothing of the ended session in memory; a copy of the old
  cookie replayed later is decrypted again and, as with any stateless cookie,
  accepted until ``max_age`` or the token's hour (the documented limit of
  cookie sessions, which the cache neither widens nor narrows). Where logout
  must end every copy at once, use :func:`~aiotwinne.web.redis_storage`,
  which is not cached across requests.
* It never writes anything: saving is aiohttp-session's, unchanged.

Limits
------
At most ``cache_size`` values are kept (least recently used go first):
about 1 KB each for aiotwinne's usual session, at most about 7 KB for a
cookie at the 4 KB browsers keep, so under 30 MB at the default 4,096.
Values that differ only after the base64 padding (which Fernet ignores) are
distinct entries. The memory is per process and per storage instance; a
storage serves one event loop, as aiohttp-session's storages do.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp_session import Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from aiohttp_session.log import log as _session_log
from cryptography.fernet import Fernet, InvalidToken

__all__ = ["DEFAULT_CACHE_SIZE", "CachedCookieStorage"]

#: Decrypted cookies kept per storage (see the module docstring for the memory).
DEFAULT_CACHE_SIZE: Final = 4096
#: Fernet refuses a token stamped more than this many seconds in the future.
_MAX_CLOCK_SKEW: Final = 60


def _wall_clock() -> float:
    # Looked up at each call, as Fernet and aiohttp-session do, so that a test
    # that moves time.time moves every check together.
    return time.time()


class CachedCookieStorage(EncryptedCookieStorage):
    """``EncryptedCookieStorage`` with a bounded memory of the cookies it decrypted.

    Built by :func:`aiotwinne.web.cookie_storage`; see the module docstring
    for why a hit is exactly what a decryption would give, and the limits.

    Args:
        secret_key: A Fernet key, as ``EncryptedCookieStorage`` takes it.
        cache_size: Most decrypted cookies kept; ``0`` turns the cache off.
        clock: Seconds since the epoch for Fernet's age check (default
            :func:`time.time`, read at each call).
        **options: ``EncryptedCookieStorage``'s cookie options.

    Raises:
        ValueError: A negative *cache_size*.
    """

    def __init__(
        self,
        secret_key: str | bytes | bytearray | Fernet,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] | None = None,
        **options: Any,
    ) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be 0 (no cache) or more")
        super().__init__(secret_key, **options)
        self._cache_size = cache_size
        self._clock = clock if clock is not None else _wall_clock
        # An OrderedDict rather than functools.lru_cache (which cannot forget
        # one key, as a save must) or cachetools (a dependency for the same
        # ten lines; its TTLCache times entries from insertion, while the age
        # that counts here is the token's own). Value: (Fernet timestamp,
        # plaintext); the key is the cookie value, which never leaves memory.
        self._opened: OrderedDict[str, tuple[int, str]] = OrderedDict()

    @property
    def cache_size(self) -> int:
        """Most decrypted cookies kept."""
        return self._cache_size

    @property
    def cached(self) -> int:
        """How many decrypted cookies are kept right now."""
        return len(self._opened)

    def forget(self) -> None:
        """Drop every decrypted cookie (the next request of each visitor decrypts again)."""
        self._opened.clear()

    async def load_session(self, request: web.Request) -> Session:
        """The request's session: from memory for a cookie already decrypted, else decrypted."""
        cookie = self.load_cookie(request)
        if cookie is None:
            return Session(None, data=None, new=True, max_age=self.max_age)
        now = int(self._clock())
        opened = self._opened.get(cookie)
        if opened is None:
            opened = self._decrypt(cookie, now)
            if opened is None:
                return self._refused()
            data = self._decoder(opened[1])
            self._remember(cookie, opened)
        else:
            if self._too_old(opened[0], now):
                self._opened.pop(cookie, None)
                return self._refused()
            self._opened.move_to_end(cookie)
            data = self._decoder(opened[1])
        return Session(None, data=data, new=False, max_age=self.max_age)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        """Save as ``EncryptedCookieStorage`` does, and forget the cookie being replaced."""
        await super().save_session(request, response, session)
        cookie = self.load_cookie(request)
        if cookie is not None:
            self._opened.pop(cookie, None)

    def _decrypt(self, cookie: str, now: int) -> tuple[int, str] | None:
        """Fernet's decryption at *now* (as ``EncryptedCookieStorage`` does) and its timestamp."""
        token = cookie.encode("utf-8")
        try:
            if self.max_age is None:
                plain = self._fernet.decrypt(token)
            else:
                plain = self._fernet.decrypt_at_time(token, self.max_age, now)
        except InvalidToken:
            return None
        # Authenticated now; bytes 1-8 of what Fernet decoded are its timestamp.
        stamp = int.from_bytes(base64.urlsafe_b64decode(token)[1:9], "big")
        return stamp, plain.decode("utf-8")

    def _too_old(self, stamp: int, now: int) -> bool:
        # Fernet's own rule (decrypt with ttl): too old, or from too far ahead.
        ttl = self.max_age
        return ttl is not None and (stamp + ttl < now or now + _MAX_CLOCK_SKEW < stamp)

    def _remember(self, cookie: str, opened: tuple[int, str]) -> None:
        if not self._cache_size:
            return
        self._opened[cookie] = opened
        while len(self._opened) > self._cache_size:
            self._opened.popitem(last=False)

    def _refused(self) -> Session:
        # EncryptedCookieStorage's words, so log filters written for it still apply.
        _session_log.warning("Cannot decrypt cookie value, create a new fresh session")
        return Session(None, data=None, new=True, max_age=self.max_age)
