"""The three routes ``setup()`` adds: login start, callback, logout.

The callback's path is the redirect URL registered for the app in Twinne's
developer dashboard (Twinne takes no ``redirect_uri``). Twinne appends
``?auth_key=KEY`` to it as plain text, even after an existing ``?``
(``/cb?x=1?auth_key=KEY``), which :func:`._http.auth_key_from_query` handles.

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
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web

from ..errors import (
    APIError,
    HTTPStatusError,
    InvalidAuthKeyError,
    ProtocolError,
    TransportError,
    TwinneError,
    UserNotFoundError,
)
from . import _record
from ._bearer import remember_token
from ._config import Settings
from ._http import auth_key_from_query
from ._middleware import (
    load_session,
    login_link,
    new_session,
    record_of,
    return_path,
    settings_of,
    start_login,
)
from ._pages import NO_STORE, error_response, logout_form
from ._record import SESSION_KEY

__all__ = ["callback", "login", "logout"]

_log = logging.getLogger("aiotwinne.web")

_FAILED_LOGIN: Final = "Logging in with Twinne failed"


async def login(request: web.Request) -> web.StreamResponse:
    """``GET`` login start: record a pending login, redirect to Twinne.

    ``?next=/path`` names the same-origin page to return to (anything else
    returns to ``/``). The "Log in with Twinne" button links here.
    """
    settings = settings_of(request)
    session = await load_session(request)
    next_path = return_path(settings, request.query.get("next"))
    raise start_login(settings, session, next_path, by_user=True)


async def callback(request: web.Request) -> web.StreamResponse:
    """``GET`` callback: Twinne's redirect back, with ``?auth_key=``.

    Refused without a call to Twinne (``400``): no live pending login in this
    browser's session, a pending login already consumed, or a missing,
    repeated or malformed auth_key. Otherwise the key is exchanged, the user
    fetched, a **new** session started (the pre-login one is never promoted)
    and the browser sent (``303``) to the page it came from.
    """
    settings = settings_of(request)
    session = await load_session(request)
    record = record_of(session)
    now = settings.clock()
    pending = _record.live_pending(record, now=now, ttl=settings.pending_ttl)
    unused = [p for p in pending if p.marker not in settings.used_markers]
    if not unused:
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
    _record.write_pending(record, remaining)
    session[SESSION_KEY] = record

    client = settings.client
    try:
        token = await client.exchange(auth_key)
        user = await client.get_user_info(token)
    except TwinneError as exc:
        _log.warning("login failed: %s: %s", type(exc).__name__, exc)
        if exc.auth_key_may_be_spent and not entry.retry:
            # The key may be gone; one fresh round trip is cheaper for the
            # user than an error page. Not a loop: the retry is marked.
            raise start_login(settings, session, entry.next, retry=True) from None
        raise _login_error(request, settings, exc, entry.next) from None

    # Bearer mode accepts only tokens this site obtained (see _bearer).
    await remember_token(request.app, token, user)
    fresh = await new_session(request)
    new_record: dict[str, Any] = {
        "auth": _record.signed_in_record(token, user, now=settings.clock())
    }
    _record.write_pending(new_record, remaining)
    # Counts logins completed without a page served since (reset by the guard).
    _record.write_auto(new_record, _record.read_auto(record) + 1)
    fresh[SESSION_KEY] = new_record
    _log.info("user %d logged in (token %s)", user.id, token.fingerprint)
    raise web.HTTPSeeOther(entry.next, headers=NO_STORE)


def _login_error(
    request: web.Request, settings: Settings, exc: TwinneError, next_path: str
) -> web.HTTPException:
    """The friendly page for a login that Twinne refused or could not complete."""
    retry = login_link(settings, next_path)
    if isinstance(exc, InvalidAuthKeyError):
        status, code = 400, "invalid_auth_key"
        detail = f"This login link is no longer valid. Twinne said: {exc.message}"
    elif isinstance(exc, UserNotFoundError):
        status, code = 403, "user_not_found"
        detail = "This Twinne account no longer exists."
    elif isinstance(exc, APIError):
        status, code = 502, "provider_refused"
        detail = f"Twinne refused the login. Twinne said: {exc.message}"
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
        request, status=status, code=code, title=_FAILED_LOGIN, detail=detail, retry_url=retry
    )


async def logout(request: web.Request) -> web.StreamResponse:
    """Logout: ``POST`` clears the session and redirects to the landing page.

    The session is invalidated (with ``RedisStorage`` its server-side record
    is emptied, so every instance sees the logout). A ``GET`` changes nothing
    and shows a page with a logout button: a link or an ``<img>`` on another
    site cannot log a user out, yet a plain link to the logout path still
    works for people.
    """
    settings = settings_of(request)
    if request.method != "POST":
        raise logout_form(settings.logout_path)
    session = await load_session(request)
    session.invalidate()
    raise web.HTTPSeeOther(settings.logout_redirect, headers=NO_STORE)
