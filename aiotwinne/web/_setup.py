"""``setup()``: install the middleware and the routes, own the client's lifetime, check storage."""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final

import aiohttp_session
from aiohttp import web

from ..client import TwinneClient
from ._bearer import (
    DEFAULT_REDIS_PREFIX,
    BearerValidator,
    MemoryTokenRegistry,
    RedisTokenRegistry,
    TokenRegistry,
)
from ._config import SETTINGS_KEY, TWINNE_CLIENT_KEY, OnLogin, OnLogout, Settings
from ._i18n import Texts, merge_texts
from ._middleware import make_middleware, make_save_guard
from ._pages import Renderer
from ._routes import callback, login, logout

__all__ = ["InsecureCookieWarning", "check_cookie_params", "check_storage", "setup"]

DEFAULT_CALLBACK_PATH: Final = "/auth/twinne/callback"
DEFAULT_LOGIN_PATH: Final = "/auth/twinne/login"
DEFAULT_LOGOUT_PATH: Final = "/auth/twinne/logout"

_MISSING_SESSION: Final = (
    "aiotwinne.web needs aiohttp-session's middleware on the same application, "
    "installed before aiotwinne's: call aiohttp_session.setup(app, storage) first, "
    "then aiotwinne.web.setup(app, client)"
)


#: Storages whose session data a visitor cannot forge, by module and class name
#: (names, so that the optional ones need not be importable), subclasses included.
_AUTHENTICATED_STORAGES: Final = frozenset(
    {
        # Fernet: AES encryption with an HMAC over it.
        "aiohttp_session.cookie_storage.EncryptedCookieStorage",
        # libsodium's secretbox: encryption with a MAC.
        "aiohttp_session.nacl_storage.NaClCookieStorage",
        # Server-side: the cookie carries only a random key, the data stays in the store.
        "aiohttp_session.redis_storage.RedisStorage",
        "aiohttp_session.memcached_storage.MemcachedStorage",
    }
)
_OPT_IN: Final = "allow_unauthenticated_storage=True"


class InsecureCookieWarning(UserWarning):
    """The session cookie's settings weaken the login (not Secure, not HttpOnly...)."""


def check_cookie_params(storage: aiohttp_session.AbstractStorage, *, secure: bool = True) -> None:
    """Check a storage's session cookie for what a Twinne login needs.

    * ``SameSite=Strict`` raises: the browser would not send the cookie on
      Twinne's cross-site redirect back to the callback, so the pending login
      is never found and no login can complete. Use ``Lax``.
    * Otherwise warns (:class:`InsecureCookieWarning`) when the cookie is not
      ``Secure`` (unless *secure* is ``False``: http://localhost development),
      not ``HttpOnly``, has no ``SameSite`` (browsers disagree on the default),
      has ``SameSite=None``, or has no finite ``max_age``.

    Args:
        storage: The aiohttp-session storage.
        secure: Whether the site is served over https.

    Raises:
        ValueError: ``SameSite=Strict``.
    """
    params = storage.cookie_params
    samesite = (params.get("samesite") or "").lower()
    if samesite == "strict":
        raise ValueError(
            "the session cookie has SameSite=Strict: browsers do not send it on Twinne's "
            "cross-site redirect back to the callback, so no login could complete; "
            "use samesite='Lax' (see aiotwinne.web.cookie_storage)"
        )
    problems: list[str] = []
    if secure and not params.get("secure"):
        problems.append(
            "not Secure (pass secure=True to the storage; setup(..., secure_cookies=False) "
            "only for http://localhost development)"
        )
    if not params.get("httponly"):
        problems.append("not HttpOnly (scripts could read the session)")
    if samesite != "lax":
        problems.append("SameSite is not Lax")
    if not storage.max_age:
        problems.append("no max_age (the session never expires)")
    if problems:
        warnings.warn(
            "aiotwinne: the session cookie is " + "; ".join(problems),
            InsecureCookieWarning,
            stacklevel=2,
        )


def check_storage(storage: object, *, allow_unauthenticated: bool = False) -> None:
    """Refuse a session storage whose data a visitor could edit.

    The guard trusts the session's record (who is signed in, until when), so
    a storage that lets the browser write the session lets anyone claim to be
    any user. Accepted: aiohttp-session's ``EncryptedCookieStorage`` and
    ``NaClCookieStorage`` (encrypted and authenticated), ``RedisStorage`` and
    ``MemcachedStorage`` (the data stays on the server), and their subclasses;
    :func:`cookie_storage` and :func:`redis_storage` build the first and third.
    ``SimpleCookieStorage`` (plain JSON in the cookie) is refused, and so is a
    storage class aiotwinne does not know: it cannot tell whether it
    authenticates its data, and a warning in a log is easily missed while the
    failure is total, so the decision is left to the caller, by name.

    Args:
        storage: The aiohttp-session storage.
        allow_unauthenticated: Accept it anyway (tests that read the cookie, or
            a third-party storage that signs, encrypts or keeps data server-side).

    Raises:
        ValueError: The storage does not authenticate its data, or is unknown.
    """
    if allow_unauthenticated:
        return
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(storage).__mro__}
    if names & _AUTHENTICATED_STORAGES:
        return
    kind = type(storage).__qualname__
    if not isinstance(storage, aiohttp_session.AbstractStorage):
        # aiohttp-session changed how its middleware holds the storage.
        raise ValueError(
            "aiotwinne: could not find aiohttp-session's storage to check that it "
            "authenticates its data; if it does (cookie_storage(), redis_storage(), "
            f"EncryptedCookieStorage, RedisStorage), pass {_OPT_IN} to setup()"
        )
    if isinstance(storage, aiohttp_session.SimpleCookieStorage):
        raise ValueError(
            f"aiotwinne: the session storage is {kind}, which keeps the session as plain "
            "JSON in the cookie: a visitor can edit it to claim to be any user. Use "
            "aiotwinne.web.cookie_storage(key) or redis_storage(redis); for tests that "
            f"read the cookie, pass {_OPT_IN} to setup()"
        )
    raise ValueError(
        f"aiotwinne: cannot tell whether the session storage {kind} authenticates its "
        "data (a session a visitor can edit lets them claim to be any user). Use "
        "aiotwinne.web.cookie_storage(key) or redis_storage(redis); if this storage "
        f"encrypts and signs its cookie or keeps sessions server-side, pass {_OPT_IN} "
        "to setup()"
    )


def _registry_for(storage: object, client: TwinneClient) -> TokenRegistry | None:
    """The Bearer registry that follows *storage*: its Redis, or ``None`` (memory)."""
    try:
        from aiohttp_session.redis_storage import RedisStorage
    except ImportError:  # pragma: no cover - the module imports without redis
        return None
    if not isinstance(storage, RedisStorage):
        return None
    # aiohttp-session keeps the client in a private attribute; without it,
    # fall back to memory (tokens then work on the instance that logged in)
    # and say so, rather than fail a site that may not use Bearer at all.
    redis = getattr(storage, "_redis", None)
    try:
        from redis.asyncio import Redis
    except ImportError:  # pragma: no cover - RedisStorage needs redis
        redis = None
    else:
        if not isinstance(redis, Redis):
            redis = None
    if redis is None:
        warnings.warn(
            "aiotwinne: the RedisStorage's Redis client was not found; Bearer tokens are "
            "registered in memory, per process: pass "
            "setup(..., bearer_registry=RedisTokenRegistry(redis)) to share them",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return RedisTokenRegistry(redis, prefix=f"{DEFAULT_REDIS_PREFIX}{client.app_id}:")


def _session_middleware(app: web.Application) -> tuple[int, Any] | None:
    """The index of aiohttp-session's middleware and its storage, if installed."""
    for index, middleware in enumerate(app.middlewares):
        if getattr(middleware, "__module__", None) == "aiohttp_session" and getattr(
            middleware, "__qualname__", ""
        ).startswith("session_middleware."):
            storage = inspect.getclosurevars(middleware).nonlocals.get("storage")
            return index, storage
    return None


def _check_app(app: web.Application, ours: Any, *, secure: bool | None) -> object:
    """Raise unless aiohttp-session runs outside ours; check its cookie unless *secure* is None.

    Returns the storage.
    """
    found = _session_middleware(app)
    if found is None or found[0] > list(app.middlewares).index(ours):
        raise RuntimeError(_MISSING_SESSION)
    storage: object = found[1]
    if secure is not None and isinstance(storage, aiohttp_session.AbstractStorage):
        check_cookie_params(storage, secure=secure)
    return storage


def _prefixes(values: Iterable[str], name: str) -> tuple[str, ...]:
    result = tuple(values)
    for value in result:
        if not value.startswith("/"):
            raise ValueError(f"{name} entries must start with '/', got {value!r}")
    return result


def setup(
    app: web.Application,
    client: TwinneClient,
    *,
    callback_path: str = DEFAULT_CALLBACK_PATH,
    login_path: str = DEFAULT_LOGIN_PATH,
    logout_path: str = DEFAULT_LOGOUT_PATH,
    logout_redirect: str = "/",
    protect: Iterable[str] = (),
    bearer_prefixes: Iterable[str] = (),
    leeway: float | None = None,
    pending_ttl: float = 600.0,
    max_pending: int = 5,
    max_auto_logins: int = 3,
    bearer_ttl: float = 60.0,
    bearer_max_entries: int = 10_000,
    bearer_invalid_ttl: float = 10.0,
    bearer_max_checks: int = 10,
    bearer_accept_foreign_tokens: bool = False,
    bearer_registry: TokenRegistry | None = None,
    allow_unauthenticated_storage: bool = False,
    secure_cookies: bool = True,
    close_client: bool = True,
    clock: Callable[[], float] = time.time,
    on_login: OnLogin | None = None,
    on_logout: OnLogout | None = None,
    renderer: Renderer | None = None,
    texts: Texts | None = None,
    default_language: str = "en",
) -> None:
    """Add "Log in with Twinne" to an aiohttp application.

    Installs aiotwinne's middleware and three routes (login start, callback,
    logout), and ties the client's lifetime to the app's (closed at cleanup).
    A second, small middleware goes just outside aiohttp-session's, so that a
    session store failing while a session is saved answers 503, not 500.
    aiohttp-session must be set up first, on the same app; its absence, or its
    middleware placed after ours, fails at start-up (or here, when detectable)
    with a clear message, and the session cookie (see :func:`check_cookie_params`)
    and the storage (see :func:`check_storage`: one a visitor could edit is
    refused) are checked.

    In Twinne's developer dashboard, register the absolute URL of
    *callback_path* (e.g. ``https://example.com/auth/twinne/callback``) as
    the app's redirect URL: Twinne sends users there with ``?auth_key=``
    appended (even after an existing ``?``; the callback copes).

    Example::

        aiohttp_session.setup(app, aiotwinne.web.cookie_storage(fernet_key))
        aiotwinne.web.setup(app, TwinneClient(app_id, app_secret), protect=("/account/",))

    Args:
        app: The application.
        client: The Twinne client (one per application).
        callback_path: The route Twinne redirects to (the registered redirect URL).
        login_path: The route that starts a login (``?next=/page``); link the
            "Log in with Twinne" button here.
        logout_path: The route that logs out (``POST``; a ``GET`` shows a button).
        logout_redirect: Where a logout lands.
        protect: Path prefixes guarded like :func:`login_required` without decorating.
        bearer_prefixes: Path prefixes that require ``Authorization: Bearer``
            with a Twinne access token (API routes; no session involved). By
            default only tokens this site's callback obtained are accepted
            (see *bearer_accept_foreign_tokens*).
        leeway: Seconds before the token's expiry from which it counts as
            expired (default: the client's leeway).
        pending_ttl: Seconds a started login stays valid.
        max_pending: Most logins pending at once in one session (tabs).
        max_auto_logins: Logins completed in a row without a guarded page
            served in between before an error page replaces the redirect.
        bearer_ttl: Seconds a successful Bearer check is cached (a token
            revoked or expired at Twinne is accepted up to this long).
        bearer_max_entries: Most Bearer tokens cached, valid and refused each
            in a cache of its own (junk never evicts a valid token).
        bearer_invalid_ttl: Seconds a refused Bearer token is cached.
        bearer_max_checks: Most Bearer checks calling Twinne at once. A token
            this site obtained waits for a slot; in foreign mode any token
            finding none free gets ``503`` at once.
        bearer_accept_foreign_tokens: Accept any token Twinne accepts,
            including tokens that users gave *other* Twinne apps (Twinne's
            ``get_user_info`` does not say which app a token belongs to), so
            another app could act as its users here. Only for APIs meant to
            be called with tokens obtained elsewhere.
        bearer_registry: Where the tokens obtained by the callback are
            recorded. Default: the Redis of a ``RedisStorage`` session storage
            (keys ``aiotwinne:bearer:{app_id}:`` + SHA-256 of the token,
            expiring with it), otherwise this process's memory.
        allow_unauthenticated_storage: Accept a session storage that does not
            authenticate its data (``SimpleCookieStorage``) or that aiotwinne
            does not know (see :func:`check_storage`).
        secure_cookies: Expect a ``Secure`` session cookie. ``False`` only for
            plain http://localhost development.
        close_client: Close *client* at application cleanup.
        clock: The current time in seconds since the epoch (tests pass an
            emulator's clock).
        on_login: ``async (request, user, token) -> mapping | None``, run
            after Twinne answered and before the redirect back, on every
            login (first or re-login: inside it, :func:`get_login` gives the
            login held until now, or ``None``). Its mapping (JSON, at most
            :data:`MAX_LOGIN_DATA` bytes) is kept with the login and read by
            :func:`get_login` without a query. Raise :class:`LoginRefused`
            to refuse the login (403 page with your message); any other
            exception gives a 500 page and is logged.
        on_logout: ``async (request, login)``, run on a logout before the
            session is cleared (its exceptions are logged; the user is
            logged out anyway).
        renderer: ``(request, page) -> web.Response`` for every page
            aiotwinne shows (see :class:`Page`): your templates instead of
            the plain default ones. The status, anti-framing and no-store
            headers stay aiotwinne's.
        texts: Page texts to replace, by language and key (see
            :data:`DEFAULT_TEXTS`, English and French); a new language code
            adds a language (missing keys in English).
        default_language: The language for visitors whose ``Accept-Language``
            names none of the texts' languages.

    Raises:
        ValueError: A bad option, a ``SameSite=Strict`` session cookie, or a
            storage that does not authenticate its data (found at start-up at
            the latest).
        RuntimeError: aiohttp-session is not set up (found at start-up at the
            latest), or ``setup()`` is called twice on one app.
    """
    if SETTINGS_KEY in app:
        raise RuntimeError("aiotwinne.web.setup() was already called for this application")
    for name, path in (
        ("callback_path", callback_path),
        ("login_path", login_path),
        ("logout_path", logout_path),
    ):
        if not path.startswith("/") or "?" in path:
            raise ValueError(f"{name} must be a path starting with '/', got {path!r}")
    if len({callback_path, login_path, logout_path}) != 3:
        raise ValueError("callback_path, login_path and logout_path must differ")
    if not logout_redirect.startswith("/") or logout_redirect.startswith("//"):
        raise ValueError("logout_redirect must be a same-origin path")
    if pending_ttl <= 0 or max_pending < 1 or max_auto_logins < 1:
        raise ValueError("pending_ttl must be positive, max_pending and max_auto_logins >= 1")
    for name, hook in (("on_login", on_login), ("on_logout", on_logout), ("renderer", renderer)):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name} must be callable")
    merged_texts = merge_texts(texts, default_language)

    validator = BearerValidator(
        client,
        ttl=bearer_ttl,
        max_entries=bearer_max_entries,
        invalid_ttl=bearer_invalid_ttl,
        max_checks=bearer_max_checks,
        registry=MemoryTokenRegistry(clock=clock) if bearer_registry is None else bearer_registry,
        accept_foreign=bearer_accept_foreign_tokens,
        clock=clock,
    )

    def adopt(storage: object) -> None:
        check_storage(storage, allow_unauthenticated=allow_unauthenticated_storage)
        if bearer_registry is None:
            shared = _registry_for(storage, client)
            if shared is not None:
                validator.registry = shared

    # Checked before the app is touched, so a refused storage leaves it as it was.
    found = _session_middleware(app)
    if found is not None:
        storage = found[1]
        if isinstance(storage, aiohttp_session.AbstractStorage):
            check_cookie_params(storage, secure=secure_cookies)
        adopt(storage)

    settings = Settings(
        client=client,
        login_path=login_path,
        callback_path=callback_path,
        logout_path=logout_path,
        logout_redirect=logout_redirect,
        protect=_prefixes(protect, "protect"),
        bearer_prefixes=_prefixes(bearer_prefixes, "bearer_prefixes"),
        leeway=client.leeway if leeway is None else leeway,
        pending_ttl=pending_ttl,
        max_pending=max_pending,
        max_auto_logins=max_auto_logins,
        clock=clock,
        bearer=validator,
        on_login=on_login,
        on_logout=on_logout,
        renderer=renderer,
        texts=merged_texts,
        default_language=default_language.lower(),
    )
    app[SETTINGS_KEY] = settings
    app[TWINNE_CLIENT_KEY] = client

    middleware = make_middleware(settings)
    app.middlewares.append(middleware)
    if found is not None:
        # Outside aiohttp-session's middleware, where its failed saves arrive.
        app.middlewares.insert(found[0], make_save_guard())

    async def check_at_startup(app: web.Application) -> None:
        # The cookie and the storage were checked already when aiohttp-session came first.
        storage = _check_app(app, middleware, secure=None if found is not None else secure_cookies)
        if found is None:
            adopt(storage)

    app.on_startup.append(check_at_startup)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        yield
        if settings.bearer is not None:
            await settings.bearer.close()
        if close_client:
            await client.close()

    app.cleanup_ctx.append(lifetime)

    app.router.add_get(login_path, login, name="aiotwinne.login")
    app.router.add_get(callback_path, callback, name="aiotwinne.callback")
    app.router.add_route("GET", logout_path, logout, name="aiotwinne.logout")
    app.router.add_post(logout_path, logout, name="aiotwinne.logout_post")
