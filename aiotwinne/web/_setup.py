"""``setup()``: install the middleware and the routes, own the client's lifetime, check cookies."""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final

import aiohttp_session
from aiohttp import web

from ..client import TwinneClient
from ._bearer import BearerValidator
from ._config import SETTINGS_KEY, TWINNE_CLIENT_KEY, Settings
from ._middleware import make_middleware, make_save_guard
from ._routes import callback, login, logout

__all__ = ["InsecureCookieWarning", "check_cookie_params", "setup"]

DEFAULT_CALLBACK_PATH: Final = "/auth/twinne/callback"
DEFAULT_LOGIN_PATH: Final = "/auth/twinne/login"
DEFAULT_LOGOUT_PATH: Final = "/auth/twinne/logout"

_MISSING_SESSION: Final = (
    "aiotwinne.web needs aiohttp-session's middleware on the same application, "
    "installed before aiotwinne's: call aiohttp_session.setup(app, storage) first, "
    "then aiotwinne.web.setup(app, client)"
)


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


def _session_middleware(app: web.Application) -> tuple[int, Any] | None:
    """The index of aiohttp-session's middleware and its storage, if installed."""
    for index, middleware in enumerate(app.middlewares):
        if getattr(middleware, "__module__", None) == "aiohttp_session" and getattr(
            middleware, "__qualname__", ""
        ).startswith("session_middleware."):
            storage = inspect.getclosurevars(middleware).nonlocals.get("storage")
            return index, storage
    return None


def _check_app(app: web.Application, ours: Any, *, secure: bool | None) -> None:
    """Raise unless aiohttp-session runs outside ours; check its cookie unless *secure* is None."""
    found = _session_middleware(app)
    if found is None or found[0] > list(app.middlewares).index(ours):
        raise RuntimeError(_MISSING_SESSION)
    storage = found[1]
    if secure is not None and isinstance(storage, aiohttp_session.AbstractStorage):
        check_cookie_params(storage, secure=secure)


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
    secure_cookies: bool = True,
    close_client: bool = True,
    clock: Callable[[], float] = time.time,
) -> None:
    """Add "Log in with Twinne" to an aiohttp application.

    Installs aiotwinne's middleware and three routes (login start, callback,
    logout), and ties the client's lifetime to the app's (closed at cleanup).
    A second, small middleware goes just outside aiohttp-session's, so that a
    session store failing while a session is saved answers 503, not 500.
    aiohttp-session must be set up first, on the same app; its absence, or its
    middleware placed after ours, fails at start-up (or here, when detectable)
    with a clear message, and the session cookie is checked (see
    :func:`check_cookie_params`).

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
            with a Twinne access token (API routes; no session involved).
        leeway: Seconds before the token's expiry from which it counts as
            expired (default: the client's leeway).
        pending_ttl: Seconds a started login stays valid.
        max_pending: Most logins pending at once in one session (tabs).
        max_auto_logins: Logins completed in a row without a guarded page
            served in between before an error page replaces the redirect.
        bearer_ttl: Seconds a Bearer check is cached.
        bearer_max_entries: Most Bearer tokens cached.
        secure_cookies: Expect a ``Secure`` session cookie. ``False`` only for
            plain http://localhost development.
        close_client: Close *client* at application cleanup.
        clock: The current time in seconds since the epoch (tests pass an
            emulator's clock).

    Raises:
        ValueError: A bad option, or a ``SameSite=Strict`` session cookie.
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
        bearer=BearerValidator(client, ttl=bearer_ttl, max_entries=bearer_max_entries),
    )
    app[SETTINGS_KEY] = settings
    app[TWINNE_CLIENT_KEY] = client

    middleware = make_middleware(settings)
    app.middlewares.append(middleware)
    found = _session_middleware(app)
    checked_early = found is not None
    if found is not None:
        _check_app(app, middleware, secure=secure_cookies)
        # Outside aiohttp-session's middleware, where its failed saves arrive.
        app.middlewares.insert(found[0], make_save_guard())

    async def check_at_startup(app: web.Application) -> None:
        # The cookie was checked already when aiohttp-session came first.
        _check_app(app, middleware, secure=None if checked_early else secure_cookies)

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
