"""Correctly configured session storages, and an access logger that hides secrets."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from cryptography.fernet import Fernet

from .._redact import redact_url
from ._storage import DEFAULT_CACHE_SIZE, CachedCookieStorage

if TYPE_CHECKING:
    from aiohttp_session.redis_storage import RedisStorage
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_COOKIE_NAME",
    "DEFAULT_MAX_AGE",
    "RedactingAccessLogger",
    "cookie_storage",
    "redis_storage",
]

#: The session cookie's default name.
DEFAULT_COOKIE_NAME: Final = "AIOTWINNE_SESSION"
#: The session's default lifetime: two weeks (a token lasts an hour; the
#: session outlives it so the silent re-login can find the user's browser).
DEFAULT_MAX_AGE: Final = 14 * 24 * 3600


def cookie_storage(
    secret_key: str | bytes | Fernet,
    *,
    secure: bool = True,
    max_age: int = DEFAULT_MAX_AGE,
    cookie_name: str = DEFAULT_COOKIE_NAME,
    domain: str | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> CachedCookieStorage:
    """An encrypted-cookie session storage set up for a Twinne login.

    The cookie is ``HttpOnly``, ``SameSite=Lax`` (``Strict`` would lose the
    session on Twinne's cross-site redirect back), ``Secure`` unless
    *secure* is ``False`` (plain http://localhost development only), and
    expires after *max_age* seconds (the encrypted value too: an old copy is
    refused after that).

    It is aiohttp-session's ``EncryptedCookieStorage``, except that each
    cookie value is decrypted once: a repeat of the same value (every page of a signed-in
    visitor) is served from a bounded memory of the last *cache_size* values,
    re-checked against *max_age* each time, at a fraction of a decryption's
    cost. A value that does not decrypt is never kept, and saving a session
    forgets the value it replaces. With each value (and the default
    ``decoder``) it also keeps the guard's reading of the login it holds, so
    a guarded page of a visitor already seen does not load the session at
    all (the same checks, ``max_age`` and the token's expiry, still run on
    every request; see :mod:`aiotwinne.web._storage`).

    Args:
        secret_key: A Fernet key (``Fernet.generate_key()``, bytes or text),
            32 raw bytes, or a :class:`~cryptography.fernet.Fernet`.
        secure: Send the cookie over https only.
        max_age: Seconds the session lives.
        cookie_name: The cookie's name.
        domain: The cookie's domain (default: the exact host).
        cache_size: Most decrypted cookie values kept in memory (about 2 KB
            each); ``0`` decrypts every request, as ``EncryptedCookieStorage``.

    Raises:
        ValueError: A negative *cache_size*.
    """
    return CachedCookieStorage(
        _fernet(secret_key),
        cache_size=cache_size,
        **_cookie_options(secure, max_age, cookie_name, domain),
    )


def _fernet(secret_key: str | bytes | Fernet) -> Fernet:
    # aiohttp-session reads bytes as a *raw* key and base64-encodes them again,
    # so the bytes Fernet.generate_key() returns would be refused there.
    if isinstance(secret_key, Fernet):
        return secret_key
    if isinstance(secret_key, bytes) and len(secret_key) == 32:
        secret_key = base64.urlsafe_b64encode(secret_key)
    return Fernet(secret_key)


def redis_storage(
    redis: Redis,
    *,
    secure: bool = True,
    max_age: int = DEFAULT_MAX_AGE,
    cookie_name: str = DEFAULT_COOKIE_NAME,
    domain: str | None = None,
) -> RedisStorage:
    """A Redis session storage (``redis.asyncio``) with the same cookie settings.

    Sessions live server-side, so several instances of the app share them and
    a logout anywhere is seen everywhere. Needs the ``redis`` extra.
    """
    from aiohttp_session.redis_storage import RedisStorage  # the optional redis extra

    return RedisStorage(redis, **_cookie_options(secure, max_age, cookie_name, domain))


def _cookie_options(
    secure: bool, max_age: int, cookie_name: str, domain: str | None
) -> dict[str, Any]:
    # HttpOnly always; Lax, because Strict loses the session on Twinne's redirect back.
    return {
        "cookie_name": cookie_name,
        "domain": domain,
        "max_age": max_age,
        "secure": secure,
        "httponly": True,
        "samesite": "Lax",
    }


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger without query strings or secrets.

    aiohttp's default request line (``%r``) includes the query string, so the
    callback's line would record the auth_key. This logger writes the path
    only, and masks secret parameters in logged headers (a ``Referer`` may
    carry another site's query). Use it with
    ``web.run_app(app, access_log_class=RedactingAccessLogger)`` or
    ``web.AppRunner(app, access_log_class=RedactingAccessLogger)``.
    """

    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        lines = []
        for key, value in super()._format_line(request, response, time):
            if key == "first_request_line" and request is not None:
                version = request.version
                value = f"{request.method} {request.path} HTTP/{version.major}.{version.minor}"
            elif isinstance(key, tuple) and isinstance(value, str):
                value = redact_url(value.split("?", 1)[0] if "?" in value else value)
            lines.append((key, value))
        return lines
