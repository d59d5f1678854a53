"""Twinne's protocol, sans I/O.

This module answers "what does Twinne send and what does it mean". It builds
the request URLs and turns an answer, given as ``(status, headers, body)``, into
a model or the matching :mod:`aiotwinne.errors` exception. It never touches a
socket and does not import aiohttp: it is tested by feeding it bytes.

Everything here follows ``PROTOCOL.md`` (the server as it really behaves), not
the public docs: errors arrive with HTTP 200, values are strings, a missing
user is ``[]``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlsplit

from . import _redact
from .errors import (
    APIError,
    FeatureDisabledError,
    HTTPStatusError,
    InvalidAppError,
    InvalidAuthKeyError,
    InvalidSecretError,
    InvalidTokenError,
    ProtocolError,
    TokenExpiredError,
    TransportError,
    TwinneError,
    UserNotFoundError,
)
from .models import AccessToken, UserInfo, user_info_from_wire

__all__ = [
    "AUTHORIZE_PATH",
    "DEFAULT_BASE_URL",
    "FORM_CONTENT_TYPE",
    "MESSAGES",
    "OAUTH_PATH",
    "RETRYABLE_STATUSES",
    "USER_INFO_PATH",
    "auth_key_may_be_spent",
    "authorize_request",
    "check_base_url",
    "check_identifier",
    "error_for_message",
    "login_url",
    "parse_exchange",
    "parse_retry_after",
    "parse_user_info",
    "status_error",
    "too_large",
    "user_info_url",
]

DEFAULT_BASE_URL: Final = "https://twinne.eu"

OAUTH_PATH: Final = "/api/oauth"
AUTHORIZE_PATH: Final = "/api/authorize"
USER_INFO_PATH: Final = "/api/get_user_info"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


class MESSAGES:
    """The error texts Sngine's code emits (PROTOCOL.md, "Errors")."""

    INVALID_APP_ID: Final = "Bad Request, invalid app_id"
    INVALID_APP_SECRET: Final = "Bad Request, invalid app_secret"
    INVALID_AUTH_KEY: Final = "Bad Request, invalid auth_key"
    INVALID_ACCESS_TOKEN: Final = "Bad Request, invalid access_token"
    EXPIRED_ACCESS_TOKEN: Final = "Bad Request, expired access_token"
    INVALID_PARAMETERS: Final = "Bad Request, invalid parameters"
    APP_DISABLED: Final = (
        "We're sorry, but the application you're trying to use doesn't exist or has been disabled"
    )
    FEATURE_DISABLED: Final = "This feature has been disabled by the admin"
    DEVELOPERS_DISABLED: Final = "The developers module has been disabled by the admin"


_ERRORS_BY_MESSAGE: Final[Mapping[str, type[APIError]]] = {
    MESSAGES.INVALID_APP_ID: InvalidAppError,
    MESSAGES.APP_DISABLED: InvalidAppError,
    MESSAGES.INVALID_APP_SECRET: InvalidSecretError,
    MESSAGES.INVALID_AUTH_KEY: InvalidAuthKeyError,
    MESSAGES.INVALID_ACCESS_TOKEN: InvalidTokenError,
    MESSAGES.EXPIRED_ACCESS_TOKEN: TokenExpiredError,
    MESSAGES.FEATURE_DISABLED: FeatureDisabledError,
    MESSAGES.DEVELOPERS_DISABLED: FeatureDisabledError,
}

#: Statuses worth retrying for an idempotent call: rate limit and proxy faults.
RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})

_SNIPPET_CHARS: Final = 200
# PHP warnings printed before the JSON are short; a JSON document further in
# than this many candidate openings is not a Twinne answer.
_MAX_JSON_CANDIDATES: Final = 32
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f\ufeff]")  # U+FEFF: a byte-order mark, invisible
_DECODER = json.JSONDecoder()


# -- requests ---------------------------------------------------------------


def check_identifier(name: str, value: object) -> str:
    """Reject what is surely a caller's mistake before anything is sent.

    Twinne's identifiers are decimal (app_id) or 32 hex characters on stock
    Sngine, but other sites differ, so only emptiness, whitespace and control
    characters are refused.

    Args:
        name: The parameter's name, for the message.
        value: The value given.

    Returns:
        The value as a string.

    Raises:
        ValueError: Empty, or holds whitespace or control characters. The
            message never repeats the value.
        TypeError: Neither a str nor an int.
    """
    if type(value) is str and value.isprintable() and " " not in value and value:
        # The common case, cheaply: a printable character other than the space
        # is never whitespace, a control character or U+FEFF.
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{name} must be a str (or an int), not {type(value).__name__}")
    text = str(value)
    if not text:
        raise ValueError(f"{name} is empty")
    if _BAD_CHARS.search(text):
        raise ValueError(f"{name} contains whitespace or control characters")
    return text


def check_base_url(base_url: str, *, allow_insecure: bool = False) -> str:
    """Validate the site's base URL and return it without a trailing slash.

    Raises:
        ValueError: Not an absolute http(s) URL, carries a query or fragment,
            or is plain ``http://`` to a non-loopback host without
            *allow_insecure* (the app_secret would travel in clear text).
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not carry a query string or fragment")
    if parts.scheme == "http" and not allow_insecure and not _is_loopback(parts.hostname):
        raise ValueError(
            "base_url uses plain http:// to a non-loopback host: the app_secret would "
            "travel in clear text. Use https://, or pass allow_insecure=True."
        )
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    # A loopback IP literal (127.0.0.0/8, ::1) or exactly "localhost". A text
    # prefix is not enough: "127.0.0.1.nip.io" and "127.attacker.example" are
    # names that resolve wherever their owner likes.
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def login_url(base_url: str, app_id: str) -> str:
    """The browser link that starts a login (``/api/oauth?app_id=...``)."""
    return f"{base_url}{OAUTH_PATH}?app_id={quote(app_id, safe='')}"


def authorize_request(
    base_url: str, app_id: str, app_secret: str, auth_key: str
) -> tuple[str, bytes]:
    """The token exchange as one ``POST``: its URL and its form body.

    Sngine 2.x/3.x read the three parameters from the query string whatever
    the method; 4.x reads them from a POST form body only (PROTOCOL.md,
    "Sngine versions"). One POST that carries them in both places is read by
    every version, so the exchange costs one request and its single-use key
    is never sent twice. Both parts hold two secrets: never log them unredacted.

    Returns:
        ``(url, body)``: send *body* with ``Content-Type: FORM_CONTENT_TYPE``.
    """
    params = (
        f"app_id={quote(app_id, safe='')}"
        f"&app_secret={quote(app_secret, safe='')}&auth_key={quote(auth_key, safe='')}"
    )
    return f"{base_url}{AUTHORIZE_PATH}?{params}", params.encode("ascii")


def user_info_url(base_url: str, access_token: str) -> str:
    """The user-info URL. Holds the token: never log it unredacted."""
    if not (access_token.isascii() and access_token.isalnum()):
        # Stock tokens are hex and need no quoting; quote() costs a real call 1 µs.
        access_token = quote(access_token, safe="")
    return f"{base_url}{USER_INFO_PATH}?access_token={access_token}"


# -- responses --------------------------------------------------------------


def parse_exchange(
    status: int, headers: Mapping[str, str], body: bytes, *, now: dt.datetime, lifetime: float
) -> AccessToken:
    """Turn an ``/api/authorize`` answer into an :class:`AccessToken`.

    Args:
        status: HTTP status.
        headers: Response headers (case-insensitive mapping preferred).
        body: The raw body, already capped by the caller.
        now: The token's ``issued_at`` (timezone-aware): the client passes
            the time the request was sent, so the expiry errs early.
        lifetime: The token's lifetime in seconds (Twinne's docs: 3600).

    Raises:
        APIError: Twinne refused (see the subclasses).
        HTTPStatusError: Non-2xx status.
        ProtocolError: Not a Twinne answer.
    """
    data = _decipher(status, headers, body)
    value = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value or _BAD_CHARS.search(value):
        raise ProtocolError(
            "token exchange answer has no usable access_token",
            status=status,
            snippet=_snippet(body),
        )
    return AccessToken(value=value, issued_at=now, expires_at=now + dt.timedelta(seconds=lifetime))


def parse_user_info(
    status: int, headers: Mapping[str, str], body: bytes, *, base_url: str
) -> UserInfo:
    """Turn an ``/api/get_user_info`` answer into a :class:`UserInfo`.

    Raises:
        UserNotFoundError: The body is ``[]`` (the user no longer exists).
        APIError: Twinne refused (see the subclasses).
        HTTPStatusError: Non-2xx status.
        ProtocolError: Not a Twinne answer, or a field that cannot be read.
    """
    data = _decipher(status, headers, body)
    if data == []:
        # PHP encodes the empty array of a deleted user as a JSON list.
        raise UserNotFoundError("the user no longer exists", status=status)
    wire = data.get("user_info") if isinstance(data, dict) else None
    if not isinstance(wire, dict):
        raise ProtocolError(
            "user info answer has no user_info object", status=status, snippet=_snippet(body)
        )
    try:
        return user_info_from_wire(wire, base_url=base_url)
    except (ValueError, TypeError, KeyError) as exc:
        # cattrs' ClassValidationError is a ValueError; its text may quote values.
        reason = _redact.redact_text(_first_line(exc))
    raise ProtocolError(
        f"user info has a field that cannot be read: {reason}",
        status=status,
        snippet=_snippet(body),
    )


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delta-seconds or an HTTP date. ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def error_for_message(message: str, *, status: int | None = 200) -> APIError:
    """The :class:`APIError` subclass for one of Twinne's error texts."""
    cls = _ERRORS_BY_MESSAGE.get(message.strip(), APIError)
    return cls(_redact.redact_text(message), status=status)


def status_error(
    status: int, headers: Mapping[str, str], body: bytes, *, attempts: int = 1
) -> HTTPStatusError:
    """The error for a non-2xx answer, with ``Retry-After`` read and a redacted snippet."""
    return HTTPStatusError(
        f"Twinne answered HTTP {status}",
        status=status,
        retry_after=parse_retry_after(_header(headers, "Retry-After")),
        snippet=_snippet(body),
        attempts=attempts,
    )


def auth_key_may_be_spent(error: TwinneError) -> bool:
    """The one rule for a failed token exchange: may its single-use auth_key be spent?

    Sngine replaces a key the moment it exchanges it (PROTOCOL.md, "The flow"),
    so any request that may have reached the server may have spent it, with
    two exceptions the facts prove:

    * Twinne refused in its own words (:class:`APIError`): it checks the app,
      the secret and the key before it spends anything, and a refused key was
      not spendable.
    * No answer, and the request never left (:attr:`TransportError.request_sent`
      is ``False``: the connection never opened, or it waited for a pooled one).

    A non-2xx answer, a redirect, a page that is not Twinne's JSON or a
    connection lost after sending may all come after Twinne spent the key.
    """
    if isinstance(error, APIError):
        return False
    if isinstance(error, TransportError):
        return error.request_sent
    return True


def _decipher(status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """Common checks: status, JSON (content type not trusted), Twinne errors."""
    if not 200 <= status < 300:
        raise status_error(status, headers, body)
    data = _loads(body, status)
    if isinstance(data, dict) and data.get("error") not in (None, False, "false", "0", 0):
        message = data.get("message")
        raise error_for_message(message if isinstance(message, str) else "unknown error")
    if not isinstance(data, (dict, list)):
        raise ProtocolError(
            "answer is JSON but not an object", status=status, snippet=_snippet(body)
        )
    return data


def _loads(body: bytes, status: int) -> Any:
    # The content type is not trusted: Sngine labels JSON as text/html at times.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        pass
    # PHP may print warnings (HTML) before the JSON; the call did succeed, and
    # for an exchange the key is already spent, so the JSON must be recovered.
    end = len(text.rstrip())
    start = 0
    for _ in range(_MAX_JSON_CANDIDATES):
        start = _next_opening(text, start)
        if start < 0:
            break
        try:
            data, stop = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            start += 1
            continue
        if stop >= end and isinstance(data, (dict, list)):
            return data
        start += 1
    kind = "an HTML page" if "<" in text[:512] else "malformed JSON"
    raise ProtocolError(
        f"answer is {kind}, not Twinne JSON", status=status, snippet=_snippet(body)
    )


def _next_opening(text: str, start: int) -> int:
    brace = text.find("{", start)
    bracket = text.find("[", start)
    if brace < 0:
        return bracket
    if bracket < 0:
        return brace
    return min(brace, bracket)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        # A plain dict (tests, other clients) is not case-insensitive.
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _snippet(body: bytes) -> str:
    text = body[: _SNIPPET_CHARS * 4].decode("utf-8", "replace")
    text = " ".join(text.split())[:_SNIPPET_CHARS]
    return _redact.redact_text(text)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def too_large(limit: int, *, status: int) -> ProtocolError:
    """The error for a body over the size cap."""
    return ProtocolError(f"answer is larger than the {limit}-byte cap", status=status)
