"""An encrypted-cookie session storage that never decrypts the same cookie twice.

Every request of a signed-in visitor sends the same session cookie until the
session changes, and aiohttp-session's ``EncryptedCookieStorage`` decrypts it
again each time (base64, HMAC, AES, JSON: most of what a session costs a
page). :class:`CachedCookieStorage` remembers, per exact cookie value, what
the decryption gave, and serves a repeat from memory.

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
  are checked as before, on every request: each hit builds a new
  ``Session``, which checks ``created``, and the guard checks the record
  (on a note, below, both checks are made without a ``Session``).

Each hit hands out a new copy of the decoded session (nested values
included), so a handler that changes the loaded session in place changes
nothing in the cache. The copy comes from :mod:`marshal` (the stdlib's C
serializer of plain Python values, used here in memory only, so its format
changing between Python versions never matters): about 1 µs where
``json.loads`` again would take 3. That is for the default decoder, whose
values are exactly what marshal keeps (dicts, lists, strings, numbers,
booleans, ``None``); with a custom ``decoder`` the plaintext is kept and
decoded again on each hit.

A note per cookie
-----------------
Most requests of a signed-in visitor only need to know who is signed in.
For those, the guard keeps next to each decrypted value a *note*: what it
read from the session that value holds (its :class:`~aiotwinne.web.SignedIn`),
and asks for the note before loading the session. A note is a pure function
of the session's content, and one cookie value always holds the same
content, so it stays true as long as the value is kept; it is only handed
out when loading the session right now would give that same content:

* the same Fernet age check as a hit (``max_age`` on the token's timestamp);
* aiohttp-session's own check of the session's ``created`` time against
  ``max_age`` (a session past it loads empty, so there is no note);
* the note is attached only to a session loaded from that value and still
  equal to it (nothing changed in place), and saving a session forgets the
  value with its note, so a login, a logout or any change ends it.

The token's own expiry is the guard's to check on every request (see
``aiotwinne.web._middleware``). Notes are kept only by this class's own
``load_session`` with the default decoder: a subclass that overrides
``load_session`` (to refuse sessions a list of revoked ones holds, say) or a
custom ``decoder`` must run on every request, so with either there are no
notes and every guarded page loads its session.

Finding the cookie in the ``Cookie`` header is aiohttp's parser, which costs
more than the rest of a hit; the header's text is remembered next to the
value it held, once that value decrypted (the parse is a pure function of
the header, so this changes nothing but the time).

What it never does
------------------
* It never keeps a value that did not decrypt: a tampered, truncated or
  foreign cookie is refused exactly as before, and a flood of junk evicts
  nothing.
* It never keeps a value the site replaced: saving a session (a login, a
  logout, any change) forgets the cookie (and header) the request came
  with. A logout therefore leaves nothing of the ended session in memory; a
  copy of the old cookie replayed later is decrypted again and, as with any
  stateless cookie, accepted until ``max_age`` or the token's hour (the
  documented limit of cookie sessions, which the cache neither widens nor
  narrows). Where logout must end every copy at once, use
  :func:`~aiotwinne.web.redis_storage`, which keeps nothing across requests.
* It never writes anything: saving is aiohttp-session's, unchanged.

Limits
------
At most ``cache_size`` values (the least recently used go first) and as many
headers (the oldest go first; a header forgotten costs a parse, never a
decryption) are kept: about 2 KB per visitor for aiotwinne's usual session
(a 500-byte cookie: the value, its header, the frozen session and the note,
whose user summary is shared), at most about 19 KB for a cookie at the 4 KB
browsers keep inside a header at aiohttp's 8 KB limit (the note then holds
a copy of a token of up to 3 KB), so about 8 MB at the default 4,096 and
under 80 MB at worst. Values that differ only after the base64 padding
(which Fernet ignores), or headers that differ in other cookies, are
distinct entries. The
memory is per process and per storage instance; a storage serves one event
loop, as aiohttp-session's storages do.
"""

from __future__ import annotations

import base64
import json
import marshal
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, TypeVar

from aiohttp import hdrs, web
from aiohttp_session import Session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from aiohttp_session.log import log as _session_log
from cryptography.fernet import Fernet, InvalidToken

__all__ = ["DEFAULT_CACHE_SIZE", "CachedCookieStorage"]

#: Decrypted cookies kept per storage (see the module docstring for the memory).
DEFAULT_CACHE_SIZE: Final = 4096
#: Fernet refuses a token stamped more than this many seconds in the future.
_MAX_CLOCK_SKEW: Final = 60

_V = TypeVar("_V")


def _put(table: OrderedDict[str, _V], key: str, value: _V, size: int) -> None:
    """Keep *value* under *key* as the most recent of at most *size* entries."""
    if size:
        table[key] = value
        table.move_to_end(key)
        while len(table) > size:
            table.popitem(last=False)


class _Opened:
    """One decrypted cookie value: Fernet's timestamp, the session frozen, and its note."""

    __slots__ = ("created", "frozen", "note", "stamp")

    def __init__(self, stamp: int, frozen: bytes | str, created: object) -> None:
        self.stamp = stamp
        self.frozen = frozen
        #: The session's ``created`` as stored (aiohttp-session checks it against max_age).
        self.created = created
        self.note: object = None


def _wall_clock() -> float:
    # Looked up at each call, as Fernet and aiohttp-session do, so that a test
    # that moves time.time moves every check together.
    return time.time()


class CachedCookieStorage(EncryptedCookieStorage):
    """``EncryptedCookieStorage`` with a bounded memory of the cookie values it decrypted.

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
        # OrderedDicts rather than functools.lru_cache (which cannot forget
        # one key, as a save must) or cachetools (a dependency for the same
        # ten lines; its TTLCache times entries from insertion, while the age
        # that counts here is the token's own). Keys never leave memory.
        #: Cookie value -> what its decryption gave (see load_session) and its note.
        self._opened: OrderedDict[str, _Opened] = OrderedDict()
        #: Cookie header -> the session cookie's value in it, for values that
        #: decrypted: aiohttp's cookie parser costs more than the rest of a hit.
        self._cookie_in: OrderedDict[str, str] = OrderedDict()
        self._thaw: Callable[[Any], Any] = (
            marshal.loads if self._decoder is json.loads else self._decoder
        )
        # Notes stand for a load: only where every load is this class's own,
        # decoding as json.loads does (see "A note per cookie").
        self._notes = (
            self._thaw is marshal.loads
            and type(self).load_session is CachedCookieStorage.load_session
        )

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
        self._cookie_in.clear()

    async def load_session(self, request: web.Request) -> Session:
        """The request's session: from memory for a cookie already decrypted, else decrypted."""
        header = request.headers.get(hdrs.COOKIE)
        if not header:
            return Session(None, data=None, new=True, max_age=self.max_age)
        cookie = self._cookie_in.get(header)
        if cookie is None:
            cookie = self.load_cookie(request)
            if cookie is None:
                return Session(None, data=None, new=True, max_age=self.max_age)
        now = int(self._clock())
        opened = self._opened.get(cookie)
        if opened is None:
            decrypted = self._decrypt(cookie, now)
            if decrypted is None:
                return self._refused()
            stamp, plain = decrypted
            data = self._decoder(plain)
            # Kept frozen: marshal's bytes of the decoded values when the decoder
            # is json.loads (plain dicts, lists, strings, numbers; thawed in about
            # a third of json.loads' time), else the plaintext for the decoder.
            frozen = marshal.dumps(data) if self._thaw is marshal.loads else plain
            created = data.get("created") if isinstance(data, dict) else None
            _put(self._opened, cookie, _Opened(stamp, frozen, created), self._cache_size)
        else:
            if self._too_old(opened.stamp, now):
                del self._opened[cookie]
                return self._refused()
            self._opened.move_to_end(cookie)
            # A new copy for every request: nothing a handler changes reaches the cache.
            data = self._thaw(opened.frozen)
        if self._cookie_in.get(header) != cookie:
            _put(self._cookie_in, header, cookie, self._cache_size)
        return Session(None, data=data, new=False, max_age=self.max_age)

    def note(self, request: web.Request) -> object:
        """The note kept with the request's cookie, or ``None``.

        ``None`` unless the cookie is one this storage decrypted and kept, a
        note was attached to it, and loading the session now would give the
        session the note was made from (Fernet's age check on the value,
        aiohttp-session's on the session's ``created``). Nothing is decrypted
        or decoded: a ``None`` costs the caller nothing but loading the
        session as usual. Always ``None`` with a custom ``decoder`` or a
        subclass's own ``load_session`` (see the module docstring).
        """
        found = self._kept(request)
        if found is None or found[1].note is None:
            return None
        cookie, opened = found
        if self._too_old(opened.stamp, int(self._clock())) or self._expired(opened.created):
            return None  # loading the session will refuse it or find it empty
        self._opened.move_to_end(cookie)
        return opened.note

    def keep_note(self, request: web.Request, session: Session, note: object) -> bool:
        """Keep *note* with the request's cookie, for :meth:`note`; whether it was kept.

        Kept only when *session* is exactly what loading the request's cookie
        gives: a kept value's session, not new, not expired, and equal to it
        (a session changed in place since it was loaded gets no note); never
        with a custom ``decoder`` or a subclass's own ``load_session``. So a
        note can be made from *session* alone, and stays true until the value
        is forgotten (a save, the cache's bound, :meth:`forget`).
        """
        found = self._kept(request)
        if found is None or session.new:
            return False
        opened = found[1]
        if self._expired(opened.created):
            return False
        data = self._thaw(opened.frozen)
        if not isinstance(data, dict) or session.created != opened.created:
            return False
        if dict(session) != (data.get("session") or {}):
            return False
        opened.note = note
        return True

    def _kept(self, request: web.Request) -> tuple[str, _Opened] | None:
        """The request's cookie value and its entry, where notes are kept and it is kept."""
        header = request.headers.get(hdrs.COOKIE)
        if not self._notes or not header:
            return None
        cookie = self._cookie_in.get(header)
        opened = self._opened.get(cookie) if cookie is not None else None
        return None if opened is None or cookie is None else (cookie, opened)

    def _expired(self, created: object) -> bool:
        # aiohttp-session's rule in Session(): past max_age (or no created at
        # all), the session loads empty. Its clock: time.time(), whole seconds.
        if self.max_age is None:
            return False
        now = int(time.time())
        age = now - created if isinstance(created, int) and created else now
        return age > self.max_age

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        """Save as ``EncryptedCookieStorage`` does, and forget the cookie being replaced."""
        await super().save_session(request, response, session)
        header = request.headers.get(hdrs.COOKIE)
        if header:
            self._cookie_in.pop(header, None)
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

    def _refused(self) -> Session:
        # EncryptedCookieStorage's words, so log filters written for it still apply.
        _session_log.warning("Cannot decrypt cookie value, create a new fresh session")
        return Session(None, data=None, new=True, max_age=self.max_age)
