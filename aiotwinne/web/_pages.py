"""The few answers the web layer writes itself: error pages and their JSON twins.

Every text that may come from Twinne (its error messages) is HTML-escaped
here; nothing shown ever holds a token or an auth_key.
"""

from __future__ import annotations

import html
import json
from typing import Final

from aiohttp import web

from ._http import prefers_json

__all__ = [
    "NO_FRAMES",
    "NO_STORE",
    "continue_page",
    "error_response",
    "login_required_response",
    "logout_form",
    "wait_page",
]

#: Headers for every answer that is part of a login or holds per-user data.
NO_STORE: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
#: Headers for every page written here: no framing (another site must not
#: overlay a button of ours and borrow the click), no scripts, no subresources.
NO_FRAMES: Final = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}

_PAGE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{head}<title>{title}</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""


# Raised, not returned: the guard runs inside handlers (require_login), and
# aiohttp-session saves the session for a raised HTTPException too.
_STATUSES: Final[dict[int, type[web.HTTPException]]] = {
    200: web.HTTPOk,
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}


def _answer(
    status: int, text: str, content_type: str, headers: dict[str, str]
) -> web.HTTPException:
    return _STATUSES[status](text=text, content_type=content_type, headers={**NO_STORE, **headers})


def _page(
    title: str, body: str, status: int, headers: dict[str, str] | None = None, *, head: str = ""
) -> web.HTTPException:
    text = _PAGE.format(title=html.escape(title), body=body, head=head)
    return _answer(status, text, "text/html", {**NO_FRAMES, **(headers or {})})


def _json(payload: dict[str, object], status: int, headers: dict[str, str]) -> web.HTTPException:
    return _answer(status, json.dumps(payload), "application/json", headers)


def error_response(
    request: web.Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    retry_url: str | None,
) -> web.HTTPException:
    """A friendly error to raise: an HTML page with a "try again" link, or JSON for API callers.

    Args:
        request: The request answered (its ``Accept`` header picks the format).
        status: The HTTP status: 400, 401, 403, 502 or 503.
        code: A stable machine-readable code (``"login_failed"``...).
        title: The page's heading.
        detail: A sentence for people; may quote Twinne, so it is escaped.
        retry_url: Where "try again" leads (a same-origin path), if anywhere.
    """
    if prefers_json(request.headers.get("Accept")):
        payload: dict[str, object] = {"error": code, "message": detail}
        if retry_url is not None:
            payload["login_url"] = retry_url
        return _json(payload, status, {})
    body = f"<p>{html.escape(detail)}</p>"
    if retry_url is not None:
        body += f'<p><a href="{html.escape(retry_url)}">Try again</a></p>'
    return _page(title, body, status)


def login_required_response(request: web.Request, login_url: str) -> web.HTTPException:
    """``401``: the request needs a login but cannot be redirected to one.

    API callers get ``{"error": "login_required", "login_url": ...}``; a
    browser form post (which is never replayed) gets a page with a link.
    """
    headers = {"WWW-Authenticate": 'Twinne realm="login"'}
    accept = request.headers.get("Accept", "")
    if prefers_json(accept) or "text/html" not in accept:
        return _json({"error": "login_required", "login_url": login_url}, 401, headers)
    body = (
        "<p>Your session has ended. Log in again, then repeat what you were doing.</p>"
        f'<p><a href="{html.escape(login_url)}">Log in with Twinne</a></p>'
    )
    return _page("Please log in again", body, 401, headers)


def logout_form(action: str, *, status: int = 200) -> web.HTTPException:
    """The page with a button that posts the logout.

    A ``GET`` on the logout path shows it (200); so does a ``POST`` that did
    not come from this site (403), so a person can still log out with one click
    while another site cannot do it for them.
    """
    body = (
        f'<form method="post" action="{html.escape(action)}">'
        '<button type="submit" id="logout">Log out</button></form>'
    )
    return _page("Log out", body, status)


def continue_page(login_url: str) -> web.HTTPException:
    """What a navigation from another site gets instead of a login: a button on this site.

    Another site may link to the login route or to a guarded page, but the
    login itself only starts from a click here (a same-origin navigation).
    The page cannot be framed, changes no session, and the button is a plain
    link to *login_url* (the login route, returning to the page asked for).
    """
    body = (
        "<p>To continue, log in with your Twinne account.</p>"
        f'<p><a id="continue" href="{html.escape(login_url)}">Continue with Twinne</a></p>'
    )
    return _page("Log in with Twinne", body, 200)


def wait_page(path: str, seconds: int) -> web.HTTPException:
    """A page that loads *path* again after *seconds*, without a script or a click.

    Shown to a tab that needs a login while another tab of the same browser
    is completing one: when it reloads, the new session is there.
    """
    url = html.escape(path)
    refresh = f"{seconds}; url={path}"
    body = f'<p>Signing you in&hellip; <a href="{url}">continue</a></p>'
    head = f'<meta http-equiv="refresh" content="{html.escape(refresh)}">\n'
    return _page("Signing you in", body, 200, {"Refresh": refresh}, head=head)
