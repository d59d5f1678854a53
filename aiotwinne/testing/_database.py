"""The emulated Sngine database and clock: the tables the site's rules read and write.

Tables: ``developers_apps`` (:class:`EmulatedApp`), ``users``
(:class:`EmulatedUser`), ``users_apps`` (:class:`Connection`), the site's
gender table, and the emulator's own sign-in sessions. Lookups follow MySQL
where Sngine relies on it (PROTOCOL.md, "Sngine versions"): ``app_id`` is
read as an integer, auth_keys and tokens compare case-insensitively with
trailing spaces ignored. No I/O here: the site (:mod:`._sngine`) and the
facade call these methods directly.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import attrs

from ._model import USER_FIELDS, Connection, EmulatedApp, EmulatedUser, default_user_fields

__all__ = ["Clock", "Database", "Gender", "Session", "mysql_int", "mysql_text", "new_secret"]

# PHP's (int) cast and MySQL's string-to-number conversion skip leading
# whitespace, take an optional sign and the leading ASCII digits, and stop there.
_INT_PREFIX: Final = re.compile(r"[ \t\n\r\v\f]*[+-]?[0-9]+")
_DEFAULT_GENDERS: Final = (("male", "Male"), ("female", "Female"), ("other", "Other"))
#: What Sngine 4.x sends for a user without a gender.
NO_GENDER: Final = "N/A"


def new_secret() -> str:
    """32 lowercase hex characters, like Sngine's keys, tokens and secrets."""
    return secrets.token_hex(16)


def mysql_int(text: str) -> int:
    """*text* read as an integer the way PHP and MySQL do.

    Leading whitespace and a sign are skipped and the leading digits read:
    ``"0001001"`` and ``"1001abc"`` are 1001; no leading digit reads as 0.
    """
    match = _INT_PREFIX.match(text)
    return int(match.group()) if match else 0


def mysql_text(value: str) -> str:
    """*value* as a case-insensitive, PAD SPACE MySQL collation compares it."""
    return value.rstrip(" ").lower()


class Clock:
    """The emulator's time: the wall clock plus every :meth:`advance`."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        """Seconds since the epoch, on the emulator's clock."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move forward by *seconds*.

        Raises:
            ValueError: *seconds* is negative.
        """
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds


@attrs.define
class Session:
    """One signed-in browser on the emulator's own pages."""

    user_id: int
    csrf: str = attrs.field(repr=False)


@attrs.frozen
class Gender:
    """A row of the site's gender table (Sngine 4.x sends *name* for a user's gender)."""

    id: int
    key: str
    name: str


class Database:
    """Every table of the emulated site, with the lookups its rules make.

    Args:
        clock: Whose time stamps token dates.
        new_secret: Makes every key, token and session id (the owner of the
            randomness passes it in, so it can watch or replace it).
    """

    def __init__(self, clock: Clock, new_secret: Callable[[], str] = new_secret) -> None:
        self.clock = clock
        self.new_secret = new_secret
        self.apps: dict[str, EmulatedApp] = {}
        self._apps_by_number: dict[int, EmulatedApp] = {}
        self.users: dict[int, EmulatedUser] = {}
        self.users_by_name: dict[str, EmulatedUser] = {}
        self._next_user_id = 1
        self.connections: dict[tuple[int, str], Connection] = {}
        self._by_auth_key: dict[tuple[str, str], Connection] = {}
        self._by_token: dict[str, Connection] = {}
        # Only the 2.7 bug gives two rows the same token; then removing one row
        # must find the next holder instead of dropping the index entry.
        self._tokens_shared = False
        self.sessions: dict[str, Session] = {}
        self.genders = [Gender(i, key, name) for i, (key, name) in enumerate(_DEFAULT_GENDERS, 1)]

    # -- apps -----------------------------------------------------------------

    def create_app(
        self, name: str, redirect_url: str, app_id: str | None, secret: str, *, enabled: bool
    ) -> EmulatedApp:
        """Register a new app (*app_id* ``None``: a random 15-digit one).

        Raises:
            ValueError: As :meth:`add_app`, or the redirect URL is empty or
                holds whitespace or control characters (it goes into a header).
        """
        if not redirect_url or any(ch.isspace() or ord(ch) < 32 for ch in redirect_url):
            raise ValueError("redirect_url must be non-empty, without whitespace or controls")
        while app_id is None:
            candidate = str(secrets.randbelow(9 * 10**14) + 10**14)
            if int(candidate) not in self._apps_by_number:  # pragma: no branch - 1 in 10**14
                app_id = candidate
        app = EmulatedApp(app_id, secret, name, redirect_url, enabled)
        return self.add_app(app)

    def add_app(self, app: EmulatedApp) -> EmulatedApp:
        """Register *app*.

        Raises:
            ValueError: Its app_id is not decimal, or is taken (as a number:
                ``"42"`` and ``"042"`` are the same app to MySQL).
        """
        if not (app.app_id.isascii() and app.app_id.isdigit()):
            raise ValueError(f"app_id must be a decimal string, not {app.app_id!r}")
        number = int(app.app_id)
        if number in self._apps_by_number:
            raise ValueError(f"app_id {app.app_id!r} is already registered")
        self.apps[app.app_id] = app
        self._apps_by_number[number] = app
        app._on_disabled = self.drop_connections
        return app

    def remove_app(self, app: EmulatedApp) -> None:
        """Delete *app* and every approval of it (what Sngine does). Unknown apps are ignored."""
        if self.apps.get(app.app_id) is not app:
            return
        del self.apps[app.app_id]
        del self._apps_by_number[int(app.app_id)]
        app._on_disabled = None
        self.drop_connections(app)

    def find_app(self, app_id: str) -> EmulatedApp | None:
        """The enabled app whose id is *app_id* read as an integer, as MySQL does."""
        app = self._apps_by_number.get(mysql_int(app_id))
        return app if app is not None and app.enabled else None

    def is_registered(self, app: EmulatedApp) -> bool:
        """Whether *app* is in the table (enabled or not)."""
        return self.apps.get(app.app_id) is app

    # -- users ----------------------------------------------------------------

    def add_user(self, fields: dict[str, Any]) -> EmulatedUser:
        """Insert a user; fields not given get plausible generated values.

        Raises:
            ValueError: ``user_id`` or ``user_name`` is taken or invalid.
            TypeError: A known field that is neither a string nor ``None``.
        """
        for key in USER_FIELDS:
            value = fields.get(key)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be a str or None, as MySQL sends it")
        if "user_id" in fields:
            raw = fields["user_id"]
            if raw is None or not (raw.isascii() and raw.isdigit()):
                raise ValueError("user_id must be a decimal string")
            user_id = int(raw)
            if user_id in self.users:
                raise ValueError(f"user_id {user_id} is taken")
        else:
            user_id = self._take_user_id()
        row = default_user_fields(user_id)
        row.update(fields)
        row["user_id"] = str(user_id)
        name = row.get("user_name")
        if not isinstance(name, str) or not name:
            raise ValueError("user_name must be a non-empty string")
        if name in self.users_by_name:
            raise ValueError(f"user_name {name!r} is taken")
        user = EmulatedUser(id=user_id, fields=row)
        self.users[user_id] = self.users_by_name[name] = user
        return user

    def add_users(self, n: int) -> list[EmulatedUser]:
        """Insert *n* users with generated fields, quickly (100,000 in about a second)."""
        users = []
        by_id, by_name = self.users, self.users_by_name
        for _ in range(n):
            user_id = self._take_user_id()
            fields = default_user_fields(user_id)
            name = fields["user_name"]
            if name in by_name:  # pragma: no cover - clashes with a name chosen by hand
                name = fields["user_name"] = f"user{user_id}_{secrets.token_hex(4)}"
            user = EmulatedUser(user_id, fields)
            by_id[user_id] = by_name[name] = user
            users.append(user)
        return users

    def update_user(self, user: EmulatedUser, fields: dict[str, Any]) -> None:
        """Change some of a user's fields and forget their cached answers.

        Raises:
            ValueError: ``user_id`` given, or ``user_name`` empty or taken.
        """
        if "user_id" in fields:
            raise ValueError("user_id cannot change")
        new_name = fields.get("user_name", user.username)
        if new_name != user.username:
            if not isinstance(new_name, str) or not new_name or new_name in self.users_by_name:
                raise ValueError("user_name must be a new, non-empty string")
            del self.users_by_name[user.username]
            self.users_by_name[new_name] = user
        user.fields.update(fields)
        self.forget_bodies(user)

    def _take_user_id(self) -> int:
        while self._next_user_id in self.users:
            self._next_user_id += 1
        user_id = self._next_user_id
        self._next_user_id += 1
        return user_id

    # -- genders --------------------------------------------------------------

    def add_gender(self, name: str) -> str:
        """Add a site-defined gender; returns its id, the value to store in ``user_gender``.

        Raises:
            ValueError: *name* is empty or already defined.
        """
        if not name.strip() or self._gender(name) is not None:
            raise ValueError(f"gender {name!r} is empty or already defined")
        gender = Gender(len(self.genders) + 1, name.strip().lower(), name.strip())
        self.genders.append(gender)
        return str(gender.id)

    def gender_name(self, stored: str | None) -> str:
        """What Sngine 4.x sends for a stored ``user_gender``: the name, ``"N/A"`` when unset."""
        gender = self._gender(stored) if stored else None
        return gender.name if gender is not None else NO_GENDER

    def gender_key(self, stored: str | None) -> str | None:
        """The gender's key (``"male"``...) for a stored value, or ``None``."""
        gender = self._gender(stored) if stored else None
        return gender.key if gender is not None else None

    def _gender(self, stored: str) -> Gender | None:
        # A stored value is an id (4.x) or a key (older rows); match either.
        wanted = stored.strip().lower()
        for gender in self.genders:
            if wanted in (str(gender.id), gender.key):
                return gender
        return None

    # -- users_apps: approvals, keys, tokens ---------------------------------

    def connect(self, user: EmulatedUser, app: EmulatedApp) -> Connection:
        """The (user, app) row, created on first approval."""
        key = (user.id, app.app_id)
        conn = self.connections.get(key)
        if conn is None:
            conn = self.connections[key] = Connection(user=user, app=app)
        return conn

    def connection(self, user: EmulatedUser, app: EmulatedApp) -> Connection | None:
        """The (user, app) row, if *user* approved *app*."""
        return self.connections.get((user.id, app.app_id))

    def disconnect(self, conn: Connection) -> None:
        """Delete the row: its key and token stop working."""
        self.connections.pop((conn.user.id, conn.app.app_id), None)
        self.set_auth_key(conn, None)
        self._unindex_token(conn)
        conn.access_token = None
        conn.body = None

    def drop_connections(self, app: EmulatedApp) -> None:
        """Delete every approval of *app* (it was removed or disabled)."""
        for conn in [c for c in self.connections.values() if c.app is app]:
            self.disconnect(conn)

    def set_auth_key(self, conn: Connection, key: str | None) -> None:
        """Give *conn* a new current key (``None``: none); the old one stops working."""
        app_id = conn.app.app_id
        if conn.auth_key is not None:
            self._by_auth_key.pop((app_id, mysql_text(conn.auth_key)), None)
        conn.auth_key = key
        if key is not None:
            self._by_auth_key[(app_id, mysql_text(key))] = conn

    def find_by_key(self, app: EmulatedApp, key: str) -> Connection | None:
        """The row of *app* whose current key is *key*, compared as MySQL does."""
        return self._by_auth_key.get((app.app_id, mysql_text(key)))

    def set_token(self, conn: Connection, token: str, date: float) -> None:
        """Store a new token and its date on *conn*; its old token stops working."""
        self._unindex_token(conn)
        conn.access_token = token
        conn.token_date = date
        conn.body = None
        self._by_token[mysql_text(token)] = conn

    def set_token_everywhere(self, token: str, date: float) -> None:
        """Sngine 2.7's UPDATE without a WHERE: every row gets *token* and *date*.

        MySQL then finds the first row for that token, so every user's
        get_user_info answers with that row's user.
        """
        self._tokens_shared = True
        self._by_token.clear()
        for conn in self.connections.values():
            conn.access_token = token
            conn.token_date = date
            conn.body = None
        first = next(iter(self.connections.values()), None)
        if first is not None:
            self._by_token[mysql_text(token)] = first

    def find_by_token(self, token: str) -> Connection | None:
        """The row holding *token*, compared as MySQL does; ``None`` if its app is off."""
        conn = self._by_token.get(mysql_text(token))
        return conn if conn is not None and conn.app.enabled else None

    def forget_bodies(self, user: EmulatedUser) -> None:
        """Drop the cached answers of *user*'s rows (their fields changed)."""
        for conn in self._rows_of(user):
            conn.body = None

    def forget_all_bodies(self) -> None:
        """Drop every cached answer (the site's address changed)."""
        for conn in self.connections.values():
            conn.body = None

    def _rows_of(self, user: EmulatedUser) -> Iterator[Connection]:
        return (conn for conn in self.connections.values() if conn.user is user)

    def _unindex_token(self, conn: Connection) -> None:
        if conn.access_token is None:
            return
        key = mysql_text(conn.access_token)
        if self._by_token.get(key) is not conn:
            return
        del self._by_token[key]
        if self._tokens_shared:
            for other in self.connections.values():
                if other is not conn and other.access_token == conn.access_token:
                    self._by_token[key] = other
                    break

    # -- the emulator's sign-in sessions --------------------------------------

    def open_session(self, user: EmulatedUser) -> str:
        """Sign *user* in; returns the session id (the cookie's value)."""
        session_id = self.new_secret()
        self.sessions[session_id] = Session(user_id=user.id, csrf=self.new_secret())
        return session_id

    def close_session(self, session_id: str) -> None:
        """Sign out (unknown ids are ignored)."""
        self.sessions.pop(session_id, None)

    def session_user(self, session_id: str) -> tuple[Session, EmulatedUser] | None:
        """The session and its user; ``None`` when unknown or the user was deleted."""
        session = self.sessions.get(session_id)
        if session is None:
            return None
        user = self.users[session.user_id]  # users are marked deleted, never removed
        return None if user.deleted else (session, user)
