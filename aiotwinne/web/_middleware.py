"""The guard: who is signed in, and what a request that needs a login gets.

Why this module is long: the guard's three decisions (who is signed in, the
re-login, tabs that wait for one login) read the same request state and the
same session record, and each carries its reasons in prose below; split, one
decision would be spread over several files.

When the guard calls Twinne
---------------------------
Never on the hot path. The session holds the token, its expiry and a user
summary (see :mod:`._record`), so a guarded request costs one session load,
one check of the whole record (once per request) and one comparison with the
clock. With aiotwinne's cookie storage even the load goes for a cookie already
read: the storage keeps the checked record with the value (see
:mod:`._storage`, "A note per cookie") and only the clock is compared again.
:func:`get_user` returns the :class:`~aiotwinne.UserInfo` of that
summary (cached across requests). A record that does not read back whole is
a visitor who is not signed in: a fresh login, never an error. Twinne is asked only at the
callback (exchange + user info), for Bearer tokens (cached, see
:mod:`._bearer`), and when a handler calls ``get_user(request, fresh=True)``,
whose "expired access_token" answer is handled exactly like a local expiry.

The re-login decision
---------------------
A request that needs a login and is a top-level ``GET``/``HEAD`` navigation
made by this site's own pages or by the user (a typed URL, a bookmark, a
reload; see :func:`._http.request_source`) is redirected to Twinne with a
pending login that returns to the same page; Twinne bounces a user who
approved before straight back, so an expired hour is an invisible round
trip. The same navigation coming from another site gets a page of ours with
a "Continue with Twinne" button instead, and the session is left untouched:
another site can make a browser *visit* us, but not start a login in it
(login CSRF). Anything else (a ``POST``, a script, an API client) gets
``401`` with a ``login_url`` and is never replayed.

Tabs that log in at once
------------------------
Twinne keeps one auth_key per user and app and replaces it on every bounce,
so two tabs bouncing at once would spend each other's keys, and a cookie
session keeps whichever answer's ``Set-Cookie`` came last. So while a tab of
a browser is on its way through Twinne (for a few seconds at most), another
tab of the same browser that needs a login does not bounce: it gets a small
page that loads its own URL again a second later (``Refresh``, no script,
no click) and finds the new session. The browser is recognised by the name
its session carries (:meth:`._record.Record.login_key`); the memory of
logins in flight is per process, so across instances two tabs may still
bounce at once, and the callback copes (see :mod:`._routes`).

Logins completed in a row without a guarded page served in between (the
callback succeeded, yet the guard refused the new token at once: a clock or
leeway misconfiguration, a provider that hands out dead tokens) are counted
in the session; at ``max_auto_logins`` the guard answers with an error page
instead of another redirect, so there is never a redirect loop. Abandoned
logins (a visitor who never finishes Twinne's form) do not count.
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, overload
from urllib.parse import quote, urlsplit

import aiohttp_session
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from ..errors import InvalidTokenError, TwinneError, UserNotFoundError
from ..models import AccessToken, UserInfo
from . import _record
from ._bearer import parse_bearer
from ._config import Settings
from ._http import from_this_site, is_navigation, safe_return_path
from ._pages import NO_STORE, continue_page, error_response, login_required_response, wait_page
from ._record import Pending, Record, SignedIn
from ._storage import CachedCookieStorage

__all__ = [
    "LoginsInFlight",
    "bearer_required",
    "get_token",
    "get_user",
    "load_session",
    "login_link",
    "login_required",
    "logins_in_flight",
    "make_middleware",
    "make_save_guard",
    "new_session",
    "require_bearer",
    "require_login",
    "return_path",
    "settings_of",
    "start_login",
]

_log = logging.getLogger("aiotwinne.web")

# Per-request state. web.RequestKey (newer aiohttp) avoids its NotAppKeyWarning;
# older versions take plain strings.
_REQUEST_KEY: Any = getattr(web, "RequestKey", None)


def _request_key(name: str, kind: type) -> Any:
    return _REQUEST_KEY(name, kind) if _REQUEST_KEY is not None else name


class _State:
    """What aiotwinne knows about one request: one request key, plain attributes."""

    __slots__ = ("answered", "bearer", "session", "settings", "signed_in", "user")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session: aiohttp_session.Session | None = None
        # The session's login, read and checked once per request (see _signed_in).
        self.signed_in: SignedIn | None = None
        self.user: UserInfo | None = None
        self.bearer = False
        # The handler (or the guard) produced its answer: an exception after
        # this point comes from aiohttp-session saving the session.
        self.answered = False


_STATE: Final = _request_key("aiotwinne.state", _State)

_H = TypeVar("_H", bound=Callable[..., Awaitable[web.StreamResponse]])
_V = TypeVar("_V", bound=type[web.View])


# -- plumbing ---------------------------------------------------------------


def settings_of(request: web.Request) -> Settings:
    """The settings the middleware attached to *request*.

    Raises:
        RuntimeError: ``aiotwinne.web.setup()`` was not called for this app.
    """
    return _state(request).settings


def _state(request: web.Request) -> _State:
    # request[...] rather than request.get(): the Mapping mixin's get() costs
    # an exception per miss, and this runs several times per guarded request.
    try:
        state: _State = request[_STATE]
    except KeyError:
        raise RuntimeError(
            "aiotwinne.web middleware is not installed: call "
            "aiotwinne.web.setup(app, client) after aiohttp_session.setup(app, storage)"
        ) from None
    return state


async def load_session(request: web.Request) -> aiohttp_session.Session:
    """The request's session; a storage that cannot answer gives a 503 page.

    With ``RedisStorage`` a Redis outage would otherwise surface as a 500 with
    a traceback. (A failure while *saving* happens in aiohttp-session's own
    middleware, outside ours: :func:`make_save_guard` answers it.)
    """
    # request[...] rather than request.get(): see _state (this runs on every guarded request).
    try:
        state: _State | None = request[_STATE]
    except KeyError:
        state = None
    if state is not None and state.session is not None:
        return state.session
    try:
        session = await aiohttp_session.get_session(request)
    except RuntimeError:
        raise  # aiohttp-session is not set up: a programming error, shown as such
    except Exception as exc:  # the storage's own errors (redis, OS) have no common base
        _log.error("session storage failed: %s", type(exc).__name__)
        raise _session_unavailable(request) from None
    if state is not None:
        state.session = session
    return session


def _session_unavailable(request: web.Request) -> web.HTTPException:
    return error_response(
        request,
        status=503,
        code="session_unavailable",
        title="Sessions are unavailable",
        detail="The site cannot reach its session store right now. Please retry shortly.",
        retry_url=None,
    )


async def new_session(request: web.Request) -> aiohttp_session.Session:
    """Start a new session for *request* (never promoting the current one)."""
    session = await aiohttp_session.new_session(request)
    _state(request).session = session
    return session


def login_link(settings: Settings, next_path: str) -> str:
    """The login route's URL that returns to *next_path*."""
    return f"{settings.login_path}?next={quote(next_path, safe='/')}"


def return_path(settings: Settings, candidate: str | None) -> str:
    """A safe page to return to after login (never one of the login routes)."""
    path = safe_return_path(candidate)
    # Returning to a login route after a login would start another one.
    if urlsplit(path).path in settings.own_paths:
        return "/"
    return path


def _referer_path(request: web.Request) -> str | None:
    referer = request.headers.get(hdrs.REFERER)
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc != request.host:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


# -- logins in flight ----------------------------------------------------------

#: Seconds a tab waits for another tab's login before starting its own: a
#: silent bounce takes well under a second; a user at Twinne's login form
#: takes longer, and then each tab goes its own way.
WAIT_FOR_OTHER_TAB: Final = 4.0
#: Seconds after a login completed during which a tab that still sends the
#: old session waits for the new cookie instead of starting another login.
WAIT_AFTER_LOGIN: Final = 3.0
#: Seconds between two loads of the waiting page.
_WAIT_REFRESH: Final = 1
_MAX_BROWSERS: Final = 10_000


class LoginsInFlight:
    """When each browser last started and last completed a login, in this process.

    Keys are :meth:`._record.Record.login_key` values (a random name, never a
    secret); entries older than a minute are forgotten, and at most
    10,000 browsers are remembered (the oldest go first).
    """

    def __init__(self) -> None:
        self._started: OrderedDict[str, float] = OrderedDict()
        self._finished: OrderedDict[str, float] = OrderedDict()

    def start(self, key: str, now: float) -> None:
        """A tab of this browser is on its way to Twinne."""
        self._put(self._started, key, now)
        self._finished.pop(key, None)

    def finish(self, key: str, now: float) -> None:
        """A login of this browser ended (completed, or refused with a page)."""
        self._started.pop(key, None)
        self._put(self._finished, key, now)

    def should_wait(self, key: str, now: float) -> bool:
        """Whether a tab needing a login should wait for another tab's login."""
        started = self._started.get(key)
        if started is not None and 0 <= now - started < WAIT_FOR_OTHER_TAB:
            return True
        finished = self._finished.get(key)
        return finished is not None and 0 <= now - finished < WAIT_AFTER_LOGIN

    def other_since(self, key: str, since: float) -> bool:
        """Whether another login of this browser started or ended after *since*."""
        started = self._started.get(key)
        finished = self._finished.get(key)
        return (started is not None and started > since) or (
            finished is not None and finished >= since
        )

    @staticmethod
    def _put(table: OrderedDict[str, float], key: str, now: float) -> None:
        table[key] = now
        table.move_to_end(key)
        while table and (len(table) > _MAX_BROWSERS or now - next(iter(table.values())) > 60):
            table.popitem(last=False)


_LOGINS: Final[weakref.WeakKeyDictionary[Settings, LoginsInFlight]] = weakref.WeakKeyDictionary()


def logins_in_flight(settings: Settings) -> LoginsInFlight:
    """The memory of logins in flight for one ``setup()`` (one per application)."""
    logins = _LOGINS.get(settings)
    if logins is None:
        logins = _LOGINS[settings] = LoginsInFlight()
    return logins


# -- starting a login -------------------------------------------------------


def start_login(
    settings: Settings,
    session: aiohttp_session.Session,
    record: Record,
    next_path: str,
    *,
    by_user: bool = False,
    retry: bool = False,
) -> web.HTTPException:
    """Record a pending login in *session* and return the redirect to Twinne.

    Only for a request this site's pages or the user made (or a callback
    continuing such a login): the caller has checked. The login held so far
    stays (an abandoned login takes nothing away).

    Args:
        settings: The web layer's settings.
        session: The browser's session (written).
        record: Its record, as read by the caller (changed and saved).
        next_path: A safe same-origin path to return to.
        by_user: The user asked for it (the login route): the count of
            logins completed without a page served is reset.
        retry: This is the single automatic retry of a login.
    """
    now = settings.clock()
    record.ensure_name()
    record.add_pending(
        Pending.new(now, next_path, retry=retry),
        now=now,
        ttl=settings.pending_ttl,
        cap=settings.max_pending,
        reuse_within=settings.pending_ttl / 2,
    )
    if by_user:
        record.auto = 0
    record.save(session)
    key = record.login_key()
    if key is not None:  # always, now that the session has a name
        logins_in_flight(settings).start(key, now)
    return web.HTTPFound(settings.client.login_url(), headers=NO_STORE)


def _login_needed(
    request: web.Request, settings: Settings, session: aiohttp_session.Session
) -> web.HTTPException:
    """What a request that needs a login gets (see the module docstring)."""
    if not is_navigation(request.method, request.headers):
        next_path = return_path(settings, _referer_path(request))
        return login_required_response(request, login_link(settings, next_path))
    next_path = return_path(settings, request.path_qs)
    if not from_this_site(request.headers, request.host):
        # Another site's link, form or window.open: a button of ours, and no
        # change to the session (no Set-Cookie), so nothing is pending.
        return continue_page(request, login_link(settings, next_path))
    record = Record.of(session)
    if record.auto >= settings.max_auto_logins:
        _log.warning("login loop stopped after %d logins in a row", settings.max_auto_logins)
        return error_response(
            request,
            status=502,
            code="login_loop",
            title="Logging in keeps failing",
            detail="Twinne did not complete the login after several attempts.",
            retry_url=login_link(settings, next_path),
        )
    key = record.login_key()
    if key is not None and logins_in_flight(settings).should_wait(key, settings.clock()):
        # Another tab of this browser is logging in: come back in a moment.
        return wait_page(request, next_path, _WAIT_REFRESH)
    return start_login(settings, session, record, next_path)


# -- who is signed in ---------------------------------------------------------


def _note_keeper(request: web.Request, state: _State) -> CachedCookieStorage | None:
    """aiotwinne's cookie storage, if the request uses it and has loaded no session yet.

    A cookie it has read once carries a note of its login, so there is no
    session to load (see _storage, "A note per cookie"). Once a session is
    loaded in the request it is the answer: it may have been changed in place.
    """
    if state.session is not None or aiohttp_session.SESSION_KEY in request:
        return None
    storage = request.get(aiohttp_session.STORAGE_KEY)
    return storage if isinstance(storage, CachedCookieStorage) else None


async def _signed_in(request: web.Request, state: _State) -> SignedIn | None:
    """The session's login if it reads back whole and its token is still valid, else ``None``.

    A record that does not read back whole (a missing token, a bad user
    summary, a time that is not a number: another layout or a corrupted
    store) counts as nobody signed in, so the visitor simply logs in again.
    """
    if state.signed_in is not None:
        return state.signed_in
    settings = state.settings
    storage = _note_keeper(request, state)
    if storage is not None:
        note = storage.note(request)
        if isinstance(note, SignedIn) and settings.clock() + settings.leeway < note.expires_at:
            state.signed_in = note
            return note
    session = await load_session(request)
    signed_in = _record.signed_in_of(session)
    if signed_in is None or settings.clock() + settings.leeway >= signed_in.expires_at:
        return None
    # A page is being served: the automatic logins that led here worked. A
    # session changed by that gets no note (the save forgets its cookie anyway).
    if not _record.reset_auto(session) and storage is not None:
        storage.keep_note(request, session, signed_in)
    state.signed_in = signed_in
    return signed_in


async def require_login(request: web.Request) -> UserInfo:
    """Return the signed-in user, or stop the request with a login.

    The explicit form of :func:`login_required`, for handlers that guard only
    some branches. A navigation is redirected to Twinne (and comes back to the
    same page); any other request gets ``401`` JSON with a ``login_url``.

    Args:
        request: The current request.

    Returns:
        The user, from the session's summary (no call to Twinne).

    Raises:
        web.HTTPException: The redirect to Twinne, a ``401``, or an error page.
        RuntimeError: ``aiotwinne.web.setup()`` was not called.
    """
    await _ensure_login(request)
    user = await get_user(request)
    if user is None:  # pragma: no cover - _ensure_login let a signed-in user through
        raise RuntimeError("signed-in user vanished")
    return user


async def _ensure_login(request: web.Request) -> None:
    """The guard's hot path: the record is read once per request, Twinne is not called."""
    state = _state(request)
    if state.bearer or await _signed_in(request, state) is not None:
        return
    session = await load_session(request)
    raise _login_needed(request, state.settings, session)


async def get_user(request: web.Request, *, fresh: bool = False) -> UserInfo | None:
    """The signed-in user, or ``None`` for an anonymous visitor (or an expired login).

    By default the user comes from the summary stored at login (id, username,
    first and last name, picture URL; other fields are empty) and no call is
    made. With ``fresh=True`` the full profile is fetched from Twinne with
    the session's token; if Twinne says the token is expired or unknown, the
    login is dropped and the request stopped exactly as for a local expiry (a
    navigation silently logs in again).

    A Bearer-authenticated request (see :func:`bearer_required`) returns the
    token's user.

    Raises:
        web.HTTPException: With ``fresh=True``: a re-login, or a ``502``
            page when Twinne cannot be asked.
        RuntimeError: ``aiotwinne.web.setup()`` was not called.
    """
    state = _state(request)
    if state.bearer or (state.user is not None and not fresh):
        return state.user
    signed_in = await _signed_in(request, state)
    if signed_in is None:
        return None
    if not fresh:
        state.user = signed_in.user
        return state.user
    return await _fetch_user(request, state, signed_in)


async def _fetch_user(request: web.Request, state: _State, signed_in: SignedIn) -> UserInfo:
    settings = state.settings
    try:
        user = await settings.client.get_user_info(signed_in.token)
    except (InvalidTokenError, UserNotFoundError) as exc:
        # Twinne's word beats our clock: same as a local expiry.
        _log.info("session token refused by Twinne (%s): new login", type(exc).__name__)
        state.signed_in = state.user = None
        session = await load_session(request)
        if not is_navigation(request.method, request.headers) or from_this_site(
            request.headers, request.host
        ):
            # (Another site's navigation changes nothing: it gets the continue page.)
            record = Record.of(session)
            record.drop_login()
            record.save(session)
        raise _login_needed(request, settings, session) from None
    except TwinneError as exc:
        _log.warning("user info unavailable: %s", type(exc).__name__)
        raise error_response(
            request,
            status=502,
            code="provider_unavailable",
            title="Twinne is unavailable",
            detail="Your profile could not be loaded from Twinne. Please retry shortly.",
            retry_url=None,
        ) from None
    state.user = user
    return user


async def get_token(request: web.Request) -> AccessToken | None:
    """The session's access token while it is valid, else ``None``.

    For calls of your own with the :class:`~aiotwinne.TwinneClient`. Its times
    are on the web layer's clock.
    """
    signed_in = await _signed_in(request, _state(request))
    return signed_in.access_token() if signed_in is not None else None


# -- Bearer -----------------------------------------------------------------


async def require_bearer(request: web.Request) -> UserInfo:
    """Return the user of the request's ``Authorization: Bearer`` token, or stop it.

    Refusals follow RFC 6750: ``401`` with ``WWW-Authenticate: Bearer
    error="invalid_token"`` for a token Twinne refuses (a missing header gets
    the challenge without an error code); ``503`` JSON when Twinne cannot be
    asked. Answers are cached and concurrent checks of one token coalesced.

    Raises:
        web.HTTPException: The refusal.
        RuntimeError: ``aiotwinne.web.setup()`` was not called.
    """
    state = _state(request)
    if state.bearer and state.user is not None:
        return state.user
    validator = state.settings.bearer
    if validator is None:  # pragma: no cover - setup() always creates one
        raise RuntimeError("Bearer validation is not configured")
    header = request.headers.get(hdrs.AUTHORIZATION)
    token = parse_bearer(header)
    if token is None:
        challenge = 'Bearer realm="api"'
        if header:
            challenge += ', error="invalid_request"'
        raise _bearer_refusal(401, "missing_token" if not header else "invalid_request", challenge)
    result = await validator.validate(token)
    if result.user is None:
        if result.error == "invalid_token":
            raise _bearer_refusal(
                401, "invalid_token", 'Bearer realm="api", error="invalid_token"'
            )
        raise _bearer_refusal(503, "provider_unavailable", None)
    state.bearer = True
    state.user = result.user
    return result.user


def _bearer_refusal(status: int, code: str, challenge: str | None) -> web.HTTPException:
    headers = dict(NO_STORE)
    if challenge is not None:
        headers[hdrs.WWW_AUTHENTICATE] = challenge
    cls = web.HTTPUnauthorized if status == 401 else web.HTTPServiceUnavailable
    return cls(text=json.dumps({"error": code}), content_type="application/json", headers=headers)


# -- decorators ---------------------------------------------------------------


def _request_of(args: tuple[Any, ...]) -> web.Request:
    for arg in args:
        # The request first: what a plain handler gets, and the common case.
        if isinstance(arg, web.Request):
            return arg
        if isinstance(arg, web.View):
            return arg.request
    raise TypeError("a guarded handler must receive the request (or be a web.View method)")


def _decorator(check: Callable[[web.Request], Awaitable[object]]) -> Callable[[Any], Any]:
    def decorate(handler: Any) -> Any:
        if isinstance(handler, type) and issubclass(handler, web.View):
            for method in hdrs.METH_ALL:
                attr = getattr(handler, method.lower(), None)
                if attr is not None and callable(attr):
                    setattr(handler, method.lower(), decorate(attr))
            return handler

        @functools.wraps(handler)
        async def guarded(*args: Any, **kwargs: Any) -> web.StreamResponse:
            await check(_request_of(args))
            response: web.StreamResponse = await handler(*args, **kwargs)
            return response

        return guarded

    return decorate


_login_decorator = _decorator(_ensure_login)
_bearer_decorator = _decorator(require_bearer)


@overload
def login_required(handler: _V) -> _V: ...
@overload
def login_required(handler: _H) -> _H: ...
def login_required(handler: Any) -> Any:
    """Guard a handler: only a signed-in user gets through.

    Works on plain handlers, on methods, and on class-based views (a decorated
    :class:`aiohttp.web.View` subclass guards every HTTP method it defines).
    An anonymous or expired navigation is sent through Twinne's login and
    back; other requests get ``401`` (see :func:`require_login`).

    Example::

        @login_required
        async def dashboard(request: web.Request) -> web.Response:
            user = await get_user(request)
            return web.Response(text=f"Hello {user.full_name}")
    """
    return _login_decorator(handler)


@overload
def bearer_required(handler: _V) -> _V: ...
@overload
def bearer_required(handler: _H) -> _H: ...
def bearer_required(handler: Any) -> Any:
    """Guard an API handler with ``Authorization: Bearer <Twinne access token>``.

    The decorator form of :func:`require_bearer`; paths under ``setup()``'s
    ``bearer_prefixes`` are guarded the same way without decorating.
    """
    return _bearer_decorator(handler)


# -- the middleware -------------------------------------------------------------


def make_middleware(settings: Settings) -> Middleware:
    """The middleware ``setup()`` installs: attaches the settings, guards prefixes."""
    protect = settings.protect
    bearer = settings.bearer_prefixes
    own = settings.own_paths

    @web.middleware
    async def aiotwinne_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[_STATE] = state = _State(settings)
        try:
            if bearer or protect:
                path = request.path
                if bearer and path.startswith(bearer):
                    await require_bearer(request)
                elif protect and path.startswith(protect) and path not in own:
                    await _ensure_login(request)
            response = await handler(request)
        except web.HTTPException:
            state.answered = True
            raise
        state.answered = True
        return response

    return aiotwinne_middleware


def make_save_guard() -> Middleware:
    """The middleware ``setup()`` puts *outside* aiohttp-session's: a failed save is a 503.

    aiohttp-session saves a changed session after the handler has answered,
    in its own middleware; a storage that fails then (Redis lost mid-request)
    would surface as a 500 with a traceback. An exception that arrives here
    after aiotwinne's middleware saw the answer can only come from that save.
    The application's own errors, and aiohttp-session's ``RuntimeError`` for a
    misuse, pass through unchanged.
    """

    @web.middleware
    async def aiotwinne_save_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # the storage's own errors (redis, OS) have no common base
            state: _State | None = request.get(_STATE)
            if isinstance(exc, RuntimeError) or state is None or not state.answered:
                raise
            _log.error("session storage failed while saving: %s", type(exc).__name__)
            raise _session_unavailable(request) from None

    return aiotwinne_save_guard
