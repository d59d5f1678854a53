"""What aiotwinne keeps in the aiohttp-session session, under one key.

The session holds one small JSON object under :data:`SESSION_KEY` (cookies are
capped at about 4 KB, and EncryptedCookieStorage adds a third on top)::

    {
      "auth": {"tk": token, "iat": 1700000000.0, "exp": 1700003600.0,
               "u": {"id": 42, "un": "jdoe", "fn": "J", "ln": "Doe", "pic": url},
               "d": {"uid": 7}},
      "pending": [{"m": marker, "t": created, "next": "/page", "r": 0}],
      "auto": 1,
      "b": name
    }

* ``auth``: the signed-in user: the access token, when Twinne issued it and
  when it expires (seconds on the web layer's clock), and a user summary.
  It stays while a new login is pending (an expired one too): a login that
  is abandoned, or that another site started, takes nothing away, and a
  token Twinne hands back unchanged keeps its issue time. ``d`` is what the
  site's ``on_login`` returned (absent when it returned nothing), at most
  :data:`MAX_LOGIN_DATA` bytes of JSON.
* ``pending``: logins started by this browser and not finished yet, oldest
  first: a random marker, the creation time, the page to return to, and
  whether it is already the one automatic retry.
* ``auto``: how many logins completed in a row without a guarded page being
  served in between; bounded so a broken setup ends in an error page,
  never a redirect loop.
* ``b``: a random name for the session, given when a login first starts in
  it and renewed by every completed login, so that tabs of one browser can
  wait for one another's login (see :meth:`Record.login_key`). It grants
  nothing.

Only this module reads or writes that layout: the guard and the routes hold
a :class:`Record` and call its methods.

Why this module is long: it is the one owner of the session layout, so every
read and write of the record (the login and the site's data with it, pending
logins and their share of the cookie, the loop counter, the session's name)
lives here with its checks, rather than spread over the modules that use them.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import string
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import attrs

from .._protocol import check_identifier
from ..models import AccessToken, UserInfo

if TYPE_CHECKING:
    from aiohttp_session import Session

__all__ = [
    "MAX_LOGIN_DATA",
    "MAX_PENDING_NEXT",
    "PENDING_BUDGET",
    "SESSION_KEY",
    "Pending",
    "Record",
    "SignedIn",
    "add_pending",
    "fit_pending",
    "live_pending",
    "login_data_of",
    "read_auto",
    "read_signed_in",
    "reset_auto",
    "signed_in_of",
    "signed_in_record",
    "summary_user",
    "write_auto",
    "write_pending",
]

#: The one session key aiotwinne writes.
SESSION_KEY: Final = "aiotwinne"

_MAX_TEXT: Final = 200
#: Times in a record are seconds since the epoch before the year 10000 (what
#: a datetime holds); anything else is a corrupted record.
_MAX_TIME: Final = 253402300800
_MAX_URL: Final = 512
#: Most characters of a return path kept in a pending login; a longer one keeps
#: only its path (its query dropped), or ``/`` (see :data:`PENDING_BUDGET`).
MAX_PENDING_NEXT: Final = 512
#: Bytes of JSON all pending logins together may take. With the signed-in
#: record beside them and EncryptedCookieStorage's encoding on top, the cookie
#: stays under the 4,096 bytes browsers keep: a larger ``Set-Cookie`` is
#: silently ignored, and the login it carried is lost.
PENDING_BUDGET: Final = 1536
#: Most bytes of JSON (``json.dumps``, as the session stores it) the site's
#: ``on_login`` mapping may take. It shares :data:`PENDING_BUDGET`: the pending
#: logins of a session with login data get what the data leaves.
MAX_LOGIN_DATA: Final = 512


@attrs.frozen
class Pending:
    """One login started by this browser and not yet completed.

    Attributes:
        marker: 128 random bits (``secrets``), naming the login; never sent
            to Twinne (it has no ``state`` parameter), so it only serves to
            tell a consumed login from a live one.
        created: When it started, on the web layer's clock.
        next: The same-origin path to return to.
        retry: ``True`` for the single automatic retry after an exchange whose
            auth_key may have been spent; such a login is not retried again.
    """

    marker: str
    created: float
    next: str
    retry: bool = False

    @classmethod
    def new(cls, now: float, next_path: str, *, retry: bool = False) -> Pending:
        """A fresh pending login with a random marker (a very long *next_path* is shortened)."""
        return cls(secrets.token_urlsafe(16), now, _fit_next(next_path), retry)

    def to_json(self) -> dict[str, Any]:
        """The session form."""
        return {"m": self.marker, "t": self.created, "next": self.next, "r": int(self.retry)}

    @classmethod
    def from_json(cls, data: object) -> Pending | None:
        """Read one entry; ``None`` for anything malformed."""
        if not isinstance(data, Mapping):
            return None
        marker, created, next_path = data.get("m"), data.get("t"), data.get("next")
        if (
            not isinstance(marker, str)
            or not isinstance(created, (int, float))
            or not isinstance(next_path, str)
        ):
            return None
        return cls(marker, float(created), next_path, bool(data.get("r")))


def _fit_next(path: str) -> str:
    if len(path) <= MAX_PENDING_NEXT:
        return path
    bare = path.split("?", 1)[0]
    return bare if len(bare) <= MAX_PENDING_NEXT else "/"


class SignedIn(NamedTuple):
    """The signed-in user as read from the session (a NamedTuple: read on every guarded request).

    Attributes:
        token: The access token's value.
        issued_at: When Twinne issued it, as far as this site knows (web clock,
            seconds): the first time this session received it.
        expires_at: When it expires (web clock, seconds).
        user: The summary: id, username, first and last name, picture URL.
    """

    token: str
    issued_at: float
    expires_at: float
    user: UserInfo

    def access_token(self) -> AccessToken:
        """The token as an :class:`~aiotwinne.AccessToken` (times in UTC)."""
        utc = dt.timezone.utc
        return AccessToken(
            value=self.token,
            issued_at=dt.datetime.fromtimestamp(self.issued_at, utc),
            expires_at=dt.datetime.fromtimestamp(self.expires_at, utc),
        )


def _text(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    return value if len(value) <= limit else None


def signed_in_record(
    token: AccessToken,
    user: UserInfo,
    *,
    now: float,
    previous: SignedIn | None = None,
    leeway: float = 0.0,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The session form of a completed login (with the site's *data*, already checked).

    The token's lifetime as the client computed it is anchored to the web
    layer's clock (*now*), so one clock judges every expiry. Long names and
    picture URLs are dropped rather than stored: the cookie must stay small.

    Expiry counts from when Twinne issued the token, not from when this site
    last received it: inside its window Twinne hands back the token it issued
    before, without renewing its date (PROTOCOL.md, "Token lifetime"). So
    when *previous* (the login this session held) has the same token and has
    not expired yet, its issue and expiry times are kept. Two edges:

    * Handed back in its last *leeway* seconds (the guard's leeway), the token
      cannot be replaced before it dies (Twinne keeps handing it back), so it
      is kept until its real expiry instead of being "expired" on arrival:
      the stored expiry moves by *leeway*, and the guard, which subtracts the
      leeway, serves pages until the real expiry, then logs in again.
    * Handed back after its expiry here, Twinne's window is longer than the
      client's lifetime assumed: the token gets a new lifetime from *now*
      (anything else would log the user in again at once, forever), and
      Twinne's own "expired access_token" stays the last word
      (``get_user(fresh=True)``).
    """
    lifetime = (token.expires_at - token.issued_at).total_seconds()
    issued_at, expires_at = now, now + lifetime
    if previous is not None and previous.token == token.value and now < previous.expires_at:
        issued_at, expires_at = previous.issued_at, previous.expires_at
        if now + leeway >= expires_at:
            expires_at += leeway
    summary: dict[str, Any] = {"id": user.id, "un": user.username[:_MAX_TEXT]}
    for key, value, limit in (
        ("fn", user.first_name, _MAX_TEXT),
        ("ln", user.last_name, _MAX_TEXT),
        ("pic", user.picture_url, _MAX_URL),
    ):
        text = _text(value, limit)
        if text is not None:
            summary[key] = text
    record = {"tk": token.value, "iat": issued_at, "exp": expires_at, "u": summary}
    if data:
        record["d"] = data
    return record


def read_signed_in(data: object) -> SignedIn | None:
    """Read the ``auth`` part of the record; ``None`` when absent or malformed.

    Every field is checked, so whatever this returns can be used without a
    second look: a record from another layout, a corrupted store or a
    tampered plain cookie reads as nobody signed in, never as an error later.
    """
    # Session data is decoded JSON: plain dicts (isinstance on dict is much
    # cheaper than on the Mapping ABC, and this runs on every guarded request).
    if not isinstance(data, dict):
        return None
    auth = data.get("auth")
    if not isinstance(auth, dict):
        return None
    token, iat, exp = auth.get("tk"), auth.get("iat"), auth.get("exp")
    if (
        not isinstance(token, str)
        or not isinstance(iat, (int, float))
        or not isinstance(exp, (int, float))
        # Times a datetime can hold (access_token() builds two); false for NaN.
        or not (0 <= iat < _MAX_TIME and 0 <= exp < _MAX_TIME)
    ):
        return None
    user = summary_user(auth)
    if user is None or not _usable_token(token):
        return None
    return SignedIn(token, float(iat), float(exp), user)


def _usable_token(token: str) -> bool:
    """Whether the client would send *token* (not empty, no whitespace or control characters)."""
    if token and token.isprintable() and " " not in token:
        # The common case, cheaply: a printable character other than the space
        # is never whitespace or a control character.
        return True
    try:
        check_identifier("access_token", token)
    except ValueError:
        return False
    return True


def summary_user(auth: dict[str, Any]) -> UserInfo | None:
    """The :class:`~aiotwinne.UserInfo` of an ``auth`` record's summary (cheap: cached)."""
    summary = auth.get("u")
    if not isinstance(summary, dict):
        return None
    user_id, username = summary.get("id"), summary.get("un")
    if type(user_id) is not int or not isinstance(username, str):
        return None
    return _summary_user(
        user_id,
        username,
        _str(summary.get("fn")),
        _str(summary.get("ln")),
        _str(summary.get("pic")) or None,
    )


@functools.lru_cache(maxsize=4096)
def _summary_user(
    user_id: int, username: str, first_name: str, last_name: str, picture_url: str | None
) -> UserInfo:
    # UserInfo is frozen, so one instance per summary can be shared by every
    # request: building it is most of what get_user() would otherwise cost.
    return UserInfo(
        id=user_id,
        username=username,
        first_name=first_name,
        last_name=last_name,
        picture_url=picture_url,
    )


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def live_pending(data: object, *, now: float, ttl: float) -> list[Pending]:
    """The pending logins younger than *ttl* seconds, oldest first."""
    if not isinstance(data, Mapping):
        return []
    raw = data.get("pending")
    if not isinstance(raw, list):
        return []
    entries = [p for p in map(Pending.from_json, raw) if p is not None]
    return sorted((p for p in entries if 0 <= now - p.created < ttl), key=lambda p: p.created)


def add_pending(
    pending: list[Pending],
    entry: Pending,
    *,
    cap: int,
    reuse_within: float,
    budget: int = PENDING_BUDGET,
) -> tuple[list[Pending], Pending]:
    """Add *entry*, or reuse a recent live login with the same return page.

    Several tabs may log in at once, so several pending logins coexist; but a
    burst of requests that all need a login (a page's many expired requests)
    must not fill the session, so a login to the same page started less than
    *reuse_within* seconds ago is reused, and only the newest *cap* are kept,
    fewer when their return paths would take more than :data:`PENDING_BUDGET`
    bytes (the session cookie must stay under what browsers keep).

    Returns:
        The new list (oldest first) and the entry in force.
    """
    for existing in reversed(pending):
        if (
            existing.next == entry.next
            and existing.retry == entry.retry
            and 0 <= entry.created - existing.created < reuse_within
        ):
            return pending, existing
    kept = [*pending, entry][-cap:]
    return fit_pending(kept, budget), entry


def fit_pending(pending: list[Pending], budget: int) -> list[Pending]:
    """The newest of *pending* whose JSON fits *budget* bytes (the newest one always)."""
    kept = list(pending)
    while len(kept) > 1 and len(json.dumps([p.to_json() for p in kept])) > budget:
        del kept[0]
    return kept


def write_pending(record: MutableMapping[str, Any], pending: list[Pending]) -> None:
    """Store *pending* in *record* (drops the key when empty)."""
    if pending:
        record["pending"] = [p.to_json() for p in pending]
    else:
        record.pop("pending", None)


def read_auto(data: object) -> int:
    """How many logins completed in a row without a page served."""
    if not isinstance(data, Mapping):
        return 0
    value = data.get("auto")
    return value if isinstance(value, int) and value > 0 else 0


def write_auto(record: MutableMapping[str, Any], count: int) -> None:
    """Store the automatic-login count (drops the key at zero)."""
    if count > 0:
        record["auto"] = count
    else:
        record.pop("auto", None)


def login_data_of(session: Session) -> dict[str, Any]:
    """What the site's ``on_login`` stored with the session's login (``{}`` when nothing)."""
    record = session.get(SESSION_KEY)
    auth = record.get("auth") if isinstance(record, dict) else None
    data = auth.get("d") if isinstance(auth, dict) else None
    return data if isinstance(data, dict) else {}


def signed_in_of(session: Session) -> SignedIn | None:
    """The session's login if its record reads back whole (expired or not), else ``None``.

    The guard's hot path: one lookup and the checks of :func:`read_signed_in`.
    """
    return read_signed_in(session.get(SESSION_KEY))


def reset_auto(session: Session) -> bool:
    """A page is being served: forget the count of logins completed in a row.

    Returns whether there was one (and so whether *session* changed).
    """
    record = session.get(SESSION_KEY)
    if isinstance(record, dict) and "auto" in record:
        record = dict(record)
        del record["auto"]
        session[SESSION_KEY] = record
        return True
    return False


# What secrets.token_urlsafe() writes.
_NAME_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-_")


class Record:
    """aiotwinne's part of one session: read once, changed in memory, written back by :meth:`save`.

    A copy: nothing reaches the session until :meth:`save`, so an answer
    that must not change the session (a refusal, a page for another site's
    navigation) simply does not call it.
    """

    __slots__ = ("_data",)

    def __init__(self, data: object = None) -> None:
        self._data: dict[str, Any] = dict(data) if isinstance(data, dict) else {}

    @classmethod
    def of(cls, session: Session) -> Record:
        """The record in *session* (empty when absent or not a JSON object)."""
        return cls(session.get(SESSION_KEY))

    def save(self, session: Session) -> None:
        """Write the record into *session* (aiohttp-session then saves the session)."""
        session[SESSION_KEY] = dict(self._data)

    # -- the login ----------------------------------------------------------

    def signed_in(self) -> SignedIn | None:
        """The login held, expired or not; ``None`` when absent or malformed."""
        return read_signed_in(self._data)

    def sign_in(
        self,
        token: AccessToken,
        user: UserInfo,
        *,
        now: float,
        previous: SignedIn | None,
        leeway: float,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Hold a completed login (see :func:`signed_in_record` for its times)."""
        self._data["auth"] = signed_in_record(
            token, user, now=now, previous=previous, leeway=leeway, data=data
        )

    def login_data(self) -> dict[str, Any]:
        """What the site's ``on_login`` stored with the login held (``{}`` when nothing)."""
        auth = self._data.get("auth")
        data = auth.get("d") if isinstance(auth, dict) else None
        return data if isinstance(data, dict) else {}

    def pending_budget(self) -> int:
        """Bytes the pending logins may take beside the login data held."""
        data = self.login_data()
        return PENDING_BUDGET - (len(json.dumps(data)) if data else 0)

    def drop_login(self) -> None:
        """Forget the login (Twinne refused its token)."""
        self._data.pop("auth", None)

    # -- pending logins -----------------------------------------------------

    def pending(self, *, now: float, ttl: float) -> list[Pending]:
        """The pending logins younger than *ttl* seconds, oldest first."""
        return live_pending(self._data, now=now, ttl=ttl)

    def set_pending(self, pending: list[Pending]) -> None:
        """Replace the pending logins (an empty list drops the key)."""
        write_pending(self._data, pending)

    def fit_pending(self) -> None:
        """Drop the oldest pending logins that do not fit beside the login data held."""
        pending = self._data.get("pending")
        if isinstance(pending, list) and pending:
            entries = [p for p in map(Pending.from_json, pending) if p is not None]
            write_pending(self._data, fit_pending(entries, self.pending_budget()))

    def add_pending(
        self, entry: Pending, *, now: float, ttl: float, cap: int, reuse_within: float
    ) -> Pending:
        """Add a pending login (or reuse a recent one to the same page, see :func:`add_pending`).

        Returns:
            The entry in force.
        """
        pending, chosen = add_pending(
            self.pending(now=now, ttl=ttl),
            entry,
            cap=cap,
            reuse_within=reuse_within,
            budget=self.pending_budget(),
        )
        self.set_pending(pending)
        return chosen

    # -- the loop counter ---------------------------------------------------

    @property
    def auto(self) -> int:
        """How many logins completed in a row without a page served."""
        return read_auto(self._data)

    @auto.setter
    def auto(self, count: int) -> None:
        write_auto(self._data, count)

    # -- the session's name --------------------------------------------------

    @property
    def name(self) -> str | None:
        """The session's random name, if the record has a well-formed one."""
        value = self._data.get("b")
        if isinstance(value, str) and 16 <= len(value) <= 64 and _NAME_CHARS.issuperset(value):
            return value
        return None

    def ensure_name(self) -> str:
        """The session's name, made (128 random bits) if the record has none."""
        name = self.name
        if name is None:
            name = self._data["b"] = secrets.token_urlsafe(16)
        return name

    def login_key(self) -> str | None:
        """A name for "this browser, about to replace this session's login", shared by its tabs.

        Tabs of one browser send the same session, so they see the same name
        until one of them completes a login, which starts a new session with a
        new name. ``None`` for a record without a name (a first visit): its
        tabs share nothing.
        """
        return self.name

    def successor(self) -> Record:
        """The record a new session starts with after a login: a new name, nothing else."""
        following = Record()
        following.ensure_name()
        return following
