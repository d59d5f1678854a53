"""The three routes ``setup()`` adds: login start, callback, logout.

The callback's path is the redirect URL registered for the app in Twinne's
developer dashboard (Twinne takes no ``redirect_uri``). Twinne appends
``?auth_key=KEY`` to it as plain text, even after an existing ``?``
(``/cb?x=1?auth_key=KEY``), which :func:`._http.auth_key_from_query` handles.

Where a login may start
-----------------------
Only this site's own pages and the user (a typed URL, a bookmark) start a
login (see :func:`._http.request_source`): a navigation from another site to
the login route gets a page with a "Continue with Twinne" button, and its
answer changes no session. Logout likewise needs a ``POST`` from this site.

Matching a callback to a pending login
--------------------------------------
Twinne has no ``state`` parameter, so nothing in the callback says which of
the browser's pending logins (one per tab) it completes. The callback takes
the **oldest** live pending login that this process has not seen consumed:
logins finish in about the order they started (a silent re-login is two
redirects; a login form is usually filled in the tab that opened first), and
a pending login that was abandoned expires after ``pending_ttl``. The others
are carried into the new session, so the other tabs' callbacks still work.
The pending login is consumed before Twinne is called, so a failed exchange
cannot be retried with it.

A key that another bounce replaced
----------------------------------
Twinne replaces a user's unexchanged auth_key on every bounce through its
login link, so when two tabs of one browser bounce at once (across
instances, or before either had a session: see :mod:`._middleware` for how
tabs otherwise wait for one another) the first callback's key may be dead.
Such a callback does not show an error:

* if another login of this browser started after this one, or completed
  meanwhile, the tab is sent back to its page, whose guard finds the new
  session or waits for it (this answer leaves the session alone: it must not
  overwrite the other tab's new cookie);
* otherwise it makes one more round trip through Twinne, marked as the
  retry; a retry that fails too ends on an error page. Never a loop.

The residual race
-----------------
The callback cannot tell Twinne's redirect from another site's link to it.
So an attacker who gets their own auth_key to the victim's callback while
the victim's own login is in flight (between a click here and Twinne's
answer) signs the victim in as the attacker. What limits it: a pending login
exists only after a navigation of this site's or the user's own; it lives
``pending_ttl`` seconds at most; the first callback consumes it, so the
victim's own callback then fails visibly (unless the two cross within a few
seconds: the second is then taken for another tab's and sent to its page);
and a silent re-login is in flight for a few hundred milliseconds, at a
moment the attacker does not see.

The site's own user
-------------------
After Twinne answered, ``setup(..., on_login=...)`` runs (see :mod:`._login`)
before anything is written: what it returns is stored with the login; a
:class:`~._login.LoginRefused` signs nobody in (the login the browser held is
dropped too) and shows a ``403`` page with its message; any other exception
keeps the session as it was (the pending login consumed) and shows a ``500``
page. A token of a refused or failed login is never registered for Bearer use.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import aiohttp_session
from aiohttp import web

from .._redact import fingerprint
from ..errors import (
    APIError,
    HTTPStatusError,
    InvalidAuthKeyError,
    ProtocolError,
    TransportError,
    TwinneError,
    UserNotFoundError,
)
from ._bearer import remember_token
from ._config import Settings
from ._http import auth_key_from_query, from_this_site
from ._login import (
    LoginDataError,
    LoginRefused,
    check_login_data,
    clear_previous_login,
    log_outcome,
    login_of,
    set_previous_login,
)
from ._middleware import (
    load_session,
    login_link,
    logins_in_flight,
    new_session,
    return_path,
    settings_of,
    start_login,
)
from ._pages import NO_STORE, continue_page, error_response, logout_form
from ._record import Record

__all__ = ["callback", "login", "logout"]

_log = logging.getLogger("aiotwinne.web")

_FAILED_LOGIN: Final = "Logging in with Twinne failed"


async def login(request: web.Request) -> web.StreamResponse:
    """``GET`` login start: record a pending login, redirect to Twinne.

    ``?next=/path`` names the same-origin page to return to (anything else
    returns to ``/``). The "Log in with Twinne" button links here. A
    navigation from another site gets the "Continue with Twinne" page
    instead, and the session is not touched.
    """
    settings = settings_of(request)
    next_path = return_path(settings, request.query.get("next"))
    if not from_this_site(request.headers, request.host):
        raise continue_page(request, login_link(settings, next_path))
    session = await load_session(request)
    raise start_login(settings, session, Record.of(session), next_path, by_user=True)


def _no_pending_login_text(request: web.Request) -> str | None:
    """Which explanation a callback with no pending login gets (a key of the page texts).

    With no session cookie at all, the likely cause is not an attack but the
    set-up: the callback's host differs from the one the login started on
    (``localhost`` and ``127.0.0.1`` are different sites, each with its own
    cookies), or the cookie is ``Secure`` and the site is served over plain
    http, where a browser never sends it. The JSON ``error`` code stays
    ``no_pending_login``.
    """
    storage = request.get(aiohttp_session.STORAGE_KEY)
    if not isinstance(storage, aiohttp_session.AbstractStorage):
        return None
    if storage.cookie_name in request.cookies:
        return None  # a session, without this login in it: the plain refusal
    if storage.cookie_params.get("secure") and not request.secure:
        return "error.insecure_cookie.detail"
    return "error.no_session_cookie.detail"


async def callback(request: web.Request) -> web.StreamResponse:
    """``GET`` callback: Twinne's redirect back, with ``?auth_key=``.

    Refused without a call to Twinne (``400``): no live pending login in this
    browser's session, a pending login already consumed, or a missing,
    repeated or malformed auth_key. Otherwise the key is exchanged, the user
    fetched, a **new** session started (the pre-login one is never promoted)
    and the browser sent (``303``) to the page it came from. A key replaced
    by another bounce of the same browser leads back to the page or to one
    more round trip (see the module docstring).
    """
    settings = settings_of(request)
    session = await load_session(request)
    record = Record.of(session)
    now = settings.clock()
    logins = logins_in_flight(settings)
    key = record.login_key()
    pending = record.pending(now=now, ttl=settings.pending_ttl)
    unused = [p for p in pending if p.marker not in settings.used_markers]
    if not unused:
        if pending and key is not None and logins.should_wait(key, now):
            # Another tab's callback took the pending login this one would have
            # found (their answers' cookies crossed): its page waits for it.
            raise web.HTTPSeeOther(pending[-1].next, headers=NO_STORE)
        already = bool(pending)
        raise error_response(
            request,
            status=400,
            code="login_already_used" if already else "no_pending_login",
            title=_FAILED_LOGIN,
            detail=(
                "This login was already completed."
                if already
                else "This login was not started from this browser, or it took too long."
            ),
            retry_url=login_link(settings, "/"),
            detail_key=None if already else _no_pending_login_text(request),
        )
    entry = unused[0]
    auth_key = auth_key_from_query(request.rel_url.raw_query_string)
    if auth_key is None:
        raise error_response(
            request,
            status=400,
            code="bad_auth_key",
            title=_FAILED_LOGIN,
            detail="Twinne's answer did not carry a usable login key.",
            retry_url=login_link(settings, entry.next),
        )
    settings.used_markers.add(entry.marker, now)
    remaining = [p for p in unused if p.marker != entry.marker]

    client = settings.client
    started = time.perf_counter()
    try:
        token = await client.exchange(auth_key)
        user = await client.get_user_info(token)
    except TwinneError as exc:
        # The client's errors are redacted: their text holds no secret.
        log_outcome(
            logging.WARNING,
            "provider_error",
            user_id=None,
            fingerprint=None,
            duration=time.perf_counter() - started,
            detail=f"{type(exc).__name__}: {exc}",
        )
        replaced = isinstance(exc, InvalidAuthKeyError) or exc.auth_key_may_be_spent
        if replaced and key is not None and logins.other_since(key, entry.created):
            # Another tab of this browser bounced later (its bounce replaced
            # this key) or already logged in: back to the page, where the
            # new session is found or waited for.
            raise web.HTTPSeeOther(entry.next, headers=NO_STORE) from None
        record.set_pending(remaining)
        if replaced and not entry.retry:
            # One fresh round trip is cheaper for the user than an error
            # page. Not a loop: the retry is marked.
            raise start_login(settings, session, record, entry.next, retry=True) from None
        record.save(session)
        if key is not None:
            logins.finish(key, settings.clock())
        raise _login_error(request, settings, exc, entry.next) from None

    previous = record.signed_in()
    data = None
    if settings.on_login is not None:
        set_previous_login(
            request, None if previous is None else login_of(previous, record.login_data())
        )
        try:
            data = check_login_data(await settings.on_login(request, user, token))
        except LoginRefused as exc:
            # Nobody is signed in: not the refused user, nor whoever this browser held.
            record.drop_login()
            record.set_pending(remaining)
            record.save(session)
            if key is not None:
                logins.finish(key, settings.clock())
            log_outcome(
                logging.INFO,
                "refused",
                user_id=user.id,
                fingerprint=token.fingerprint,
                duration=time.perf_counter() - started,
                detail=exc.message,
            )
            raise error_response(
                request,
                status=403,
                code="login_refused",
                title="You cannot log in here",
                detail="This site refused the login.",
                text=exc.message or None,
                retry_url=None,
            ) from None
        except Exception as exc:  # the site's code: a clean page, never a traceback
            record.set_pending(remaining)
            record.save(session)
            if key is not None:
                logins.finish(key, settings.clock())
            log_outcome(
                logging.ERROR,
                "on_login_failed",
                user_id=user.id,
                fingerprint=token.fingerprint,
                duration=time.perf_counter() - started,
                detail=str(exc) if isinstance(exc, LoginDataError) else type(exc).__name__,
                exc_info=None if isinstance(exc, LoginDataError) else exc,
            )
            raise error_response(
                request,
                status=500,
                code="internal",
                title="Something went wrong",
                detail="The login could not be completed because of an error on this site.",
                retry_url=login_link(settings, entry.next),
            ) from None
        finally:
            clear_previous_login(request)

    # Bearer mode accepts only tokens this site obtained (see _bearer).
    await remember_token(request.app, token, user)
    fresh = await new_session(request)
    following = record.successor()
    following.sign_in(
        token, user, now=settings.clock(), previous=previous, leeway=settings.leeway, data=data
    )
    following.set_pending(remaining)
    # The login data shares the cookie's room with the pending logins.
    following.fit_pending()
    # Counts logins completed without a page served since (reset by the guard).
    following.auto = record.auto + 1
    following.save(fresh)
    if key is not None:
        logins.finish(key, settings.clock())
    log_outcome(
        logging.INFO,
        "relogin" if previous is not None and previous.user.id == user.id else "signed_in",
        user_id=user.id,
        fingerprint=token.fingerprint,
        duration=time.perf_counter() - started,
    )
    raise web.HTTPSeeOther(entry.next, headers=NO_STORE)


def _login_error(
    request: web.Request, settings: Settings, exc: TwinneError, next_path: str
) -> web.HTTPException:
    """The friendly page for a login that Twinne refused or could not complete."""
    retry = login_link(settings, next_path)
    if isinstance(exc, InvalidAuthKeyError):
        status, code = 400, "invalid_auth_key"
        detail = "This login link is no longer valid. Twinne said: {twinne}"
    elif isinstance(exc, UserNotFoundError):
        status, code = 403, "user_not_found"
        detail = "This Twinne account no longer exists."
    elif isinstance(exc, APIError):
        status, code = 502, "provider_refused"
        detail = "Twinne refused the login. Twinne said: {twinne}"
    elif isinstance(exc, TransportError):
        status, code = 502, "provider_unreachable"
        detail = "Twinne could not be reached. Please try again in a moment."
    elif isinstance(exc, (HTTPStatusError, ProtocolError)):
        status, code = 502, "provider_error"
        detail = "Twinne answered with an error. Please try again in a moment."
    else:  # pragma: no cover - every TwinneError is one of the above
        status, code = 502, "provider_error"
        detail = "The login could not be completed."
    return error_response(
        request,
        status=status,
        code=code,
        title=_FAILED_LOGIN,
        detail=detail,
        retry_url=retry,
        params={"twinne": exc.message if isinstance(exc, APIError) else ""},
    )


async def logout(request: web.Request) -> web.StreamResponse:
    """Logout: a ``POST`` from this site clears the session and redirects to the landing page.

    The session is invalidated (with ``RedisStorage`` its server-side record
    is emptied, so every instance sees the logout). A ``GET`` changes nothing
    and shows a page with a logout button: a link or an ``<img>`` on another
    site cannot log a user out, yet a plain link to the logout path still
    works for people. A ``POST`` from another site (or one that says nothing
    of where it comes from) gets the same button with ``403``; a ``POST``
    without a session is answered without a ``Set-Cookie``.
    """
    settings = settings_of(request)
    if request.method != "POST":
        raise logout_form(request, settings.logout_path)
    if not from_this_site(request.headers, request.host):
        raise logout_form(request, settings.logout_path, status=403)
    session = await load_session(request)
    if not session.new:
        started = time.perf_counter()
        record = Record.of(session)
        signed_in = record.signed_in()
        if signed_in is not None and settings.on_logout is not None:
            try:
                await settings.on_logout(request, login_of(signed_in, record.login_data()))
            except Exception as exc:  # the site's code: the user still gets logged out
                _log.error("on_logout failed: %s", type(exc).__name__, exc_info=exc)
        session.invalidate()
        if signed_in is not None:
            log_outcome(
                logging.INFO,
                "signed_out",
                user_id=signed_in.user.id,
                fingerprint=fingerprint(signed_in.token),
                duration=time.perf_counter() - started,
            )
    raise web.HTTPSeeOther(settings.logout_redirect, headers=NO_STORE)
