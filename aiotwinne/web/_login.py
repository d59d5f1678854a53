"""The site's own user at login: ``on_login`` / ``on_logout``, :class:`Login`, and the outcome log.

``setup(..., on_login=...)`` runs after Twinne answered the exchange and the
profile fetch, before the redirect back, on every login (a first one and each
silent re-login after the hour). What it returns (a small JSON object: the
site's own user id, a role) is kept in the session with the login and read by
:func:`get_login` on every request, with no database call. Inside
``on_login``, :func:`get_login` answers the login this browser held until now
(expired or not), or ``None`` on a first login: that is how a re-login is told
from a first login, and how it can reuse the data instead of a query.

Every login outcome is one log record on the ``aiotwinne.web`` logger (a
child of ``aiotwinne``) with ``extra`` fields: ``outcome`` (``signed_in``,
``relogin``, ``signed_out``, ``refused``, ``provider_error``,
``on_login_failed``), ``twinne_user_id``, ``token_fingerprint`` (8 hex
characters of the token's SHA-256, never the token) and ``duration`` (seconds
the step took). INFO for the first four, WARNING for Twinne's failures,
ERROR for the site's own (with the traceback, once).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs
from aiohttp import web

from ..models import UserInfo
from . import _record
from ._middleware import _request_key, _signed_in, _state, load_session
from ._record import MAX_LOGIN_DATA, SignedIn

__all__ = [
    "MAX_LOGIN_DATA",
    "Login",
    "LoginDataError",
    "LoginRefused",
    "check_login_data",
    "clear_previous_login",
    "get_login",
    "log_outcome",
    "login_of",
    "set_previous_login",
]

_log = logging.getLogger("aiotwinne.web")
_UTC: Final = dt.timezone.utc


class LoginRefused(Exception):
    """Raise in ``on_login`` to refuse the login: nobody is signed in.

    The visitor sees the error page (``403``, JSON ``{"error": "login_refused"}``)
    with *message*, which is shown as written (escaped): write it for the
    visitor, in their language if you like (``request.headers["Accept-Language"]``).

    Args:
        message: The sentence the visitor reads. Empty: the page's default text.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class LoginDataError(ValueError):
    """``on_login`` returned something that cannot be kept with the login."""


@attrs.frozen
class Login:
    """The signed-in visitor as this site knows them, from the session (no call, no query).

    Attributes:
        user: Twinne's user summary (id, username, first and last name,
            picture URL; the other fields are empty), as of the last login.
        issued_at: When Twinne issued the token (UTC, the web layer's clock).
        expires_at: When the token expires (UTC, the web layer's clock).
        data: What ``on_login`` returned (read-only; empty without ``on_login``).
    """

    user: UserInfo
    issued_at: dt.datetime
    expires_at: dt.datetime
    data: Mapping[str, Any]


def login_of(signed_in: SignedIn, data: Mapping[str, Any]) -> Login:
    """The :class:`Login` of a session record and its data."""
    return Login(
        user=signed_in.user,
        issued_at=dt.datetime.fromtimestamp(signed_in.issued_at, _UTC),
        expires_at=dt.datetime.fromtimestamp(signed_in.expires_at, _UTC),
        data=MappingProxyType(dict(data)),
    )


class _Previous:
    __slots__ = ("login",)

    def __init__(self, login: Login | None) -> None:
        self.login = login


_PREVIOUS: Final = _request_key("aiotwinne.previous_login", _Previous)


def set_previous_login(request: web.Request, login: Login | None) -> None:
    """While ``on_login`` runs, :func:`get_login` answers *login* (the one held until now)."""
    request[_PREVIOUS] = _Previous(login)


def clear_previous_login(request: web.Request) -> None:
    """``on_login`` is over: :func:`get_login` reads the session again."""
    request.pop(_PREVIOUS, None)


async def get_login(request: web.Request) -> Login | None:
    """The signed-in visitor's :class:`Login` (Twinne's summary and your data), or ``None``.

    Read from the session: no call to Twinne, no database. ``None`` for an
    anonymous visitor, an expired login, or a request authenticated by a
    Bearer token only. Inside ``on_login``: the login this browser held until
    now (expired or not), or ``None`` on a first login in this browser.

    Example::

        login = await get_login(request)
        if login is not None:
            account_id = login.data["account_id"]     # what on_login returned

    Raises:
        RuntimeError: ``aiotwinne.web.setup()`` was not called.
    """
    previous: _Previous | None = request.get(_PREVIOUS)
    if previous is not None:
        return previous.login
    state = _state(request)
    signed_in = await _signed_in(request, state)
    if signed_in is None:
        return None
    session = await load_session(request)
    return login_of(signed_in, _record.login_data_of(session))


def check_login_data(value: object) -> dict[str, Any] | None:
    """*value* as it will be stored: a JSON object of at most :data:`MAX_LOGIN_DATA` bytes.

    ``None`` or an empty mapping stores nothing. Tuples become lists (JSON
    has no tuples), so what :func:`get_login` returns is what JSON gives back.

    Raises:
        LoginDataError: Not a mapping with string keys and JSON values
            (``NaN`` and infinities included), or larger than the limit.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise LoginDataError(f"on_login must return a mapping or None, not {type(value).__name__}")
    try:
        text = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LoginDataError(f"on_login returned a mapping that is not JSON: {exc}") from None
    if len(text) > MAX_LOGIN_DATA:
        raise LoginDataError(
            f"on_login returned {len(text)} bytes of JSON; the limit is {MAX_LOGIN_DATA} "
            "(the session cookie must stay under 4 KB): keep an id and look the rest up"
        )
    data: dict[str, Any] = json.loads(text)
    return data or None


def log_outcome(
    level: int,
    outcome: str,
    *,
    user_id: int | None,
    fingerprint: str | None,
    duration: float,
    detail: str = "",
    exc_info: BaseException | None = None,
) -> None:
    """Write the one log record of a login outcome (see the module docstring)."""
    if not _log.isEnabledFor(level):
        return
    _log.log(
        level,
        "login %s: user %s, token %s, %.3fs%s",
        outcome,
        "-" if user_id is None else user_id,
        fingerprint or "-",
        duration,
        f": {detail}" if detail else "",
        exc_info=exc_info,
        extra={
            "outcome": outcome,
            "twinne_user_id": user_id,
            "token_fingerprint": fingerprint,
            "duration": round(duration, 6) if math.isfinite(duration) else None,
        },
    )
