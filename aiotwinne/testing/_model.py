"""The emulator's records: apps, users, their connections, and what it saw.

These are the rows of the emulated Sngine database: ``developers_apps``
(:class:`EmulatedApp`), ``users`` (:class:`EmulatedUser`) and ``users_apps``
(:class:`Connection`: one row per user and app holding the approval, the
current auth_key and the access token with its date), plus what the emulator
answers (:class:`Answer`) and what it saw (:class:`RequestRecord`). Values are
kept the way MySQL hands them to PHP: strings or ``None`` (PROTOCOL.md, "User
info fields"). A user's row is the same whatever the Sngine version: the site
renders it for the wire per version (:mod:`._sngine`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs

__all__ = [
    "USER_FIELDS",
    "Answer",
    "Connection",
    "EmulatedApp",
    "EmulatedUser",
    "Endpoint",
    "RequestRecord",
    "default_user_fields",
    "php_json",
]

#: Which part of the emulator a request reached (see :meth:`TwinneEmulator.count`).
Endpoint = Literal["oauth", "authorize", "user_info", "login", "other"]

#: The user-info fields Sngine sends, in its order (PROTOCOL.md, "User info fields").
USER_FIELDS: Final = (
    "user_id",
    "user_name",
    "user_email",
    "user_firstname",
    "user_lastname",
    "user_gender",
    "user_birthdate",
    "user_picture",
    "user_cover",
    "user_registered",
    "user_verified",
    "user_relationship",
    "user_biography",
    "user_website",
)

_GENDERS: Final = ("male", "female", "other")
# Real dates, a null, and MySQL's zero date, which Sngine sends as is.
_BIRTHDATES: Final = ("1990-05-17", "1985-12-01", "0000-00-00", "2001-02-28", None, "1978-07-04")


def _enabled_changed(app: EmulatedApp, _: attrs.Attribute[bool], enabled: bool) -> bool:
    # Sngine has no "disabled app that keeps its tokens": turning an app off is
    # removing it, so its connections go at once (see EmulatedApp.enabled).
    if not enabled and app._on_disabled is not None:
        app._on_disabled(app)
    return enabled


@attrs.define(eq=False)
class EmulatedApp:
    """An app registered in the emulator's developers dashboard.

    Attributes:
        app_id: The public id, a decimal string (as Twinne's ``app_id``).
        secret: The app secret, 32 lowercase hex characters.
        name: The name shown on the approval page.
        redirect_url: The registered redirect URL. Twinne appends
            ``?auth_key=KEY`` to it as plain text, even when it already has a
            query string. A relative URL (the default ``/callback``) points at
            the emulator itself.
        enabled: ``False`` treats the app as removed, the only way Sngine
            disables one: its app_id is unknown ("We're sorry, but the
            application ... doesn't exist or has been disabled") and, the moment
            it is set, every approval of it is deleted, so its auth_keys and
            tokens answer "invalid auth_key" / "invalid access_token". Setting
            it back to ``True`` brings the app back with no approvals.
    """

    app_id: str
    secret: str = attrs.field(repr=False)
    name: str
    redirect_url: str
    enabled: bool = attrs.field(default=True, on_setattr=_enabled_changed)
    # Set by the database that holds the app: what turning `enabled` off does.
    _on_disabled: Callable[[EmulatedApp], None] | None = attrs.field(
        default=None, init=False, repr=False
    )


@attrs.define(eq=False)
class EmulatedUser:
    """A Twinne user of the emulator.

    Attributes:
        id: ``user_id`` as a number.
        fields: The user's row as MySQL hands it to PHP: the
            :data:`USER_FIELDS` keys (plus any extra key given), values strings
            or ``None``. Edit it through :meth:`TwinneEmulator.update_user` so a
            fast-mode emulator drops its cached answer.
        deleted: Set by :meth:`TwinneEmulator.delete_user`; Twinne then
            answers ``[]`` for the user's tokens.
    """

    id: int
    fields: dict[str, Any] = attrs.field(repr=False)
    deleted: bool = False

    @property
    def username(self) -> str:
        """``user_name``: what the emulator's login form asks for."""
        return str(self.fields["user_name"])


@attrs.define(eq=False, repr=False)
class Connection:
    """One ``users_apps`` row: a user's approval of an app and its credentials.

    Attributes:
        user: The user.
        app: The app.
        auth_key: The key the next redirect or exchange uses; replaced each
            time it is handed out or exchanged (keys are single use).
        access_token: The current token, or ``None`` before the first exchange.
        token_date: Emulator time (seconds) at which the token was issued.
        body: The encoded user-info answer, cached in fast mode.
    """

    user: EmulatedUser
    app: EmulatedApp
    auth_key: str | None = None
    access_token: str | None = None
    token_date: float = 0.0
    body: bytes | None = None

    def __repr__(self) -> str:
        # The credentials are secrets: never shown.
        return f"Connection(user_id={self.user.id}, app_id={self.app.app_id!r})"


@attrs.frozen
class Answer:
    """What the emulator is about to send: status, headers and the whole body.

    Attributes:
        status: The HTTP status.
        body: The whole body.
        content_type: The ``Content-Type`` header, sent as is (Sngine's JSON
            answers carry no charset).
        headers: Other headers (``Location``, ``Set-Cookie``, ``Retry-After``...).
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class RequestRecord:
    """What the emulator saw of one request.

    Attributes:
        endpoint: Which part of the emulator answered.
        method: The HTTP method.
        path: The URL path, without the query string.
        query: The query parameters, with ``app_secret``, ``auth_key`` and
            ``access_token`` values replaced by ``"***"``.
        status: The status sent, or ``None`` when the connection was dropped
            (a ``drop`` fault) before a whole answer went out.
        fault: The injected fault's kind, or ``None`` for a normal answer.
        processed: Whether the request took effect (a key exchanged, a
            login approved); ``False`` when a fault answered instead.
        form: The form fields of a POST body (``application/x-www-form-urlencoded``
            or ``multipart/form-data``, what PHP reads into ``$_POST``), masked
            like *query*; empty for other requests.
    """

    endpoint: Endpoint
    method: str
    path: str
    query: Mapping[str, str]
    status: int | None
    fault: str | None = None
    processed: bool = True
    form: Mapping[str, str] = attrs.field(factory=dict)


def default_user_fields(user_id: int) -> dict[str, Any]:
    """Plausible Sngine values for a user, varied a little by id."""
    text = str(user_id)
    return {
        "user_id": text,
        "user_name": "user" + text,
        "user_email": "user" + text + "@example.com",
        "user_firstname": "Test",
        "user_lastname": "User " + text,
        "user_gender": _GENDERS[user_id % 3],
        "user_birthdate": _BIRTHDATES[user_id % len(_BIRTHDATES)],
        "user_picture": "photos/2021/03/user" + text + ".jpg",
        "user_cover": "",
        "user_registered": "2021-03-04 10:11:12",
        "user_verified": "0",
        "user_relationship": None,
        "user_biography": "",
        "user_website": None,
    }


def php_json(value: object) -> bytes:
    """Encode like PHP's ``json_encode`` with default flags.

    PHP escapes ``/`` as ``\\/`` and non-ASCII text as ``\\uXXXX``; a client
    must read both.
    """
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")
