"""The few answers the web layer writes itself: pages, their JSON twins, and one renderer.

Every page (an error, "Continue with Twinne", "Signing you in", the logout
button, "Please log in again") is first described as a :class:`Page`, its
texts already in the visitor's language (see :mod:`._i18n`), then rendered:
by aiotwinne's own small HTML, or by the site's ``setup(..., renderer=...)``,
a callable ``(request, page) -> web.Response`` (its templates, its layout).

Whatever renders it, the answer keeps what the page is for: the status is
the page's, ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer``
and ``X-Frame-Options: DENY`` are set, a ``Content-Security-Policy`` gets
``frame-ancestors 'none'`` (another site must not frame a button of ours
under a decoy), and a ``Set-Cookie`` the renderer added is dropped (some of
these pages must change no session). A renderer that raises or returns
something else is logged and replaced by the default page, never a 500.

Every text that may come from Twinne (its error messages) is HTML-escaped
by the default renderer (a template engine escapes it too); nothing shown
ever holds a token or an auth_key. JSON callers get ``{"error": code, ...}``.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import Callable, Mapping
from typing import Final

import attrs
from aiohttp import web
from multidict import CIMultiDict

from ._config import SETTINGS_KEY
from ._http import prefers_json
from ._i18n import DEFAULT_TEXTS, pick_language

__all__ = [
    "NO_FRAMES",
    "NO_STORE",
    "Page",
    "Renderer",
    "continue_page",
    "error_response",
    "login_required_response",
    "logout_form",
    "render",
    "wait_page",
]

_log = logging.getLogger("aiotwinne.web")

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


@attrs.frozen
class Page:
    """A page aiotwinne answers with, for a renderer to turn into HTML.

    Its texts are in :attr:`lang` already, from ``setup(..., texts=...)``
    or the defaults, and are plain text: escape them (template engines do).

    Attributes:
        kind: ``"error"``, ``"continue"`` (a navigation from another site
            that needs a login: a button to the login route), ``"wait"``
            (another tab is logging in: reload :attr:`link` after
            :attr:`refresh` seconds), ``"logout"`` (a button that posts to
            :attr:`form_action`) or ``"login_required"`` (a form post whose
            session ended: a link to log in again).
        status: The HTTP status the answer gets (the renderer's is replaced).
        lang: The language of the texts (``"en"``, ``"fr"``...).
        title: The page's heading.
        message: One sentence for people (may quote Twinne).
        link: The URL of the page's link or button (same-origin), if any.
        link_text: The text of that link or button.
        form_action: For ``"logout"``: where the button posts (method POST).
        button: For ``"logout"``: the button's text.
        refresh: For ``"wait"``: seconds before loading :attr:`link` again
            (aiotwinne also sends a ``Refresh`` header).
        code: For ``"error"``: the machine-readable code (``"invalid_auth_key"``...).
    """

    kind: str
    status: int
    lang: str
    title: str
    message: str
    link: str | None = None
    link_text: str | None = None
    form_action: str | None = None
    button: str | None = None
    refresh: int | None = None
    code: str | None = None


#: A site's renderer: ``(request, page) -> web.Response``, synchronous (call
#: ``aiohttp_jinja2.render_template`` and the like).
Renderer = Callable[[web.Request, Page], web.Response]

_PAGE: Final = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
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
    500: web.HTTPInternalServerError,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}

#: Error codes whose page is titled "Logging in with Twinne failed".
_LOGIN_FAILURES: Final = frozenset(
    {
        "no_pending_login",
        "login_already_used",
        "bad_auth_key",
        "invalid_auth_key",
        "user_not_found",
        "provider_refused",
        "provider_unreachable",
        "provider_error",
    }
)


def _answer(
    status: int, text: str, content_type: str, headers: Mapping[str, str]
) -> web.HTTPException:
    return _STATUSES[status](text=text, content_type=content_type, headers={**NO_STORE, **headers})


def _json(payload: dict[str, object], status: int, headers: dict[str, str]) -> web.HTTPException:
    return _answer(status, json.dumps(payload), "application/json", headers)


def _texts(request: web.Request) -> tuple[str, Mapping[str, str]]:
    """The visitor's language and its texts (the site's, from setup(), or the defaults)."""
    settings = request.config_dict.get(SETTINGS_KEY)
    texts: Mapping[str, Mapping[str, str]] = DEFAULT_TEXTS
    default = "en"
    if settings is not None:
        texts, default = settings.texts, settings.default_language
    lang = pick_language(request.headers.get("Accept-Language"), texts, default)
    return lang, texts[lang]


def _default_html(page: Page) -> str:
    """aiotwinne's own page: one heading, one sentence, a link, a form or a refresh."""
    body = f"<p>{html.escape(page.message)}</p>"
    head = ""
    if page.kind == "logout" and page.form_action is not None:
        body = (
            f'<form method="post" action="{html.escape(page.form_action)}">'
            f'<button type="submit" id="logout">{html.escape(page.button or "")}</button></form>'
        )
    elif page.link is not None:
        url = html.escape(page.link)
        text = html.escape(page.link_text or page.link)
        if page.kind == "continue":
            body += f'<p><a id="continue" href="{url}">{text}</a></p>'
        elif page.kind == "wait":
            body = f'<p>{html.escape(page.message)} <a href="{url}">{text}</a></p>'
            refresh = f"{page.refresh}; url={page.link}"
            head = f'<meta http-equiv="refresh" content="{html.escape(refresh)}">\n'
        else:
            body += f'<p><a href="{url}">{text}</a></p>'
    return _PAGE.format(
        lang=html.escape(page.lang), title=html.escape(page.title), body=body, head=head
    )


def render(
    request: web.Request, page: Page, headers: Mapping[str, str] | None = None
) -> web.HTTPException:
    """The answer to raise for *page*: the site's renderer's, or aiotwinne's own HTML.

    Args:
        request: The request answered.
        page: What to show.
        headers: Headers of the page's own (``Refresh``, ``WWW-Authenticate``).
    """
    extra = {**NO_STORE, **(headers or {})}
    settings = request.config_dict.get(SETTINGS_KEY)
    renderer = settings.renderer if settings is not None else None
    if renderer is not None:
        try:
            response = renderer(request, page)
        except Exception as exc:  # the site's code: any failure falls back to our page
            _log.error(
                "the page renderer failed on a %s page: %s",
                page.kind,
                type(exc).__name__,
                exc_info=exc,
            )
        else:
            if isinstance(response, web.Response) and not isinstance(response, web.HTTPException):
                return _from_response(response, page.status, extra)
            _log.error(
                "the page renderer returned %s, not an aiohttp.web.Response",
                type(response).__name__,
            )
    return _answer(page.status, _default_html(page), "text/html", {**NO_FRAMES, **extra})


def _from_response(
    response: web.Response, status: int, extra: Mapping[str, str]
) -> web.HTTPException:
    """The site's rendered page as our answer: our status and our protective headers."""
    headers: CIMultiDict[str] = CIMultiDict(response.headers)
    for name in ("Content-Type", "Content-Length", "Set-Cookie"):
        headers.popall(name, None)
    headers["X-Frame-Options"] = "DENY"
    policy = headers.get("Content-Security-Policy")
    if policy is None:
        headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    elif "frame-ancestors" not in policy:
        headers["Content-Security-Policy"] = f"{policy.rstrip('; ')}; frame-ancestors 'none'"
    headers.update(extra)
    return _STATUSES[status](
        text=response.text or "", content_type=response.content_type, headers=headers
    )


def error_response(
    request: web.Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    retry_url: str | None,
    params: Mapping[str, str] | None = None,
    text: str | None = None,
    detail_key: str | None = None,
) -> web.HTTPException:
    """A friendly error to raise: a page with a "try again" link, or JSON for API callers.

    The title and sentence come from the texts for *code* in the visitor's
    language (``error.<code>.title``, ``error.<code>.detail``); *title* and
    *detail* are used for a code that has none.

    Args:
        request: The request answered (``Accept`` picks the format,
            ``Accept-Language`` the language).
        status: The HTTP status: 400, 401, 403, 500, 502 or 503.
        code: A stable machine-readable code (``"login_failed"``...).
        title: The page's heading, when the texts have none for *code*.
        detail: A sentence for people, when the texts have none for *code*.
        retry_url: Where "try again" leads (a same-origin path), if anywhere.
        params: Values for the text's placeholders (``{twinne}``: Twinne's message).
        text: A sentence that replaces the texts' (the site's own, from
            :class:`~aiotwinne.web.LoginRefused`), shown as written.
        detail_key: The texts' key of the sentence, when it is not
            ``error.<code>.detail`` (one code, several explanations).
    """
    lang, texts = _texts(request)
    title_key = "error.login_failed.title" if code in _LOGIN_FAILURES else f"error.{code}.title"
    title = texts.get(title_key, title)
    if text is not None:
        detail = text
    else:
        detail = texts.get(detail_key or f"error.{code}.detail", detail)
        if params:
            # A site's text with a stray brace is shown as written.
            with contextlib.suppress(ValueError, IndexError):
                detail = detail.format_map(_Missing(params))
    if prefers_json(request.headers.get("Accept")):
        payload: dict[str, object] = {"error": code, "message": detail}
        if retry_url is not None:
            payload["login_url"] = retry_url
        return _json(payload, status, {})
    page = Page(
        kind="error",
        status=status,
        lang=lang,
        title=title,
        message=detail,
        link=retry_url,
        link_text=texts["error.retry"] if retry_url is not None else None,
        code=code,
    )
    return render(request, page)


class _Missing(dict[str, str]):
    """Placeholders a site's text names but the page does not have stay as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def login_required_response(request: web.Request, login_url: str) -> web.HTTPException:
    """``401``: the request needs a login but cannot be redirected to one.

    API callers get ``{"error": "login_required", "login_url": ...}``; a
    browser form post (which is never replayed) gets a page with a link.
    """
    headers = {"WWW-Authenticate": 'Twinne realm="login"'}
    accept = request.headers.get("Accept", "")
    if prefers_json(accept) or "text/html" not in accept:
        return _json({"error": "login_required", "login_url": login_url}, 401, headers)
    lang, texts = _texts(request)
    page = Page(
        kind="login_required",
        status=401,
        lang=lang,
        title=texts["login_required.title"],
        message=texts["login_required.message"],
        link=login_url,
        link_text=texts["login_required.button"],
    )
    return render(request, page, headers)


def logout_form(request: web.Request, action: str, *, status: int = 200) -> web.HTTPException:
    """The page with a button that posts the logout.

    A ``GET`` on the logout path shows it (200); so does a ``POST`` that did
    not come from this site (403), so a person can still log out with one click
    while another site cannot do it for them.
    """
    lang, texts = _texts(request)
    page = Page(
        kind="logout",
        status=status,
        lang=lang,
        title=texts["logout.title"],
        message=texts["logout.title"],
        form_action=action,
        button=texts["logout.button"],
    )
    return render(request, page)


def continue_page(request: web.Request, login_url: str) -> web.HTTPException:
    """What a navigation from another site gets instead of a login: a button on this site.

    Another site may link to the login route or to a guarded page, but the
    login itself only starts from a click here (a same-origin navigation).
    The page cannot be framed, changes no session, and the button is a plain
    link to *login_url* (the login route, returning to the page asked for).
    """
    lang, texts = _texts(request)
    page = Page(
        kind="continue",
        status=200,
        lang=lang,
        title=texts["continue.title"],
        message=texts["continue.message"],
        link=login_url,
        link_text=texts["continue.button"],
    )
    return render(request, page)


def wait_page(request: web.Request, path: str, seconds: int) -> web.HTTPException:
    """A page that loads *path* again after *seconds*, without a script or a click.

    Shown to a tab that needs a login while another tab of the same browser
    is completing one: when it reloads, the new session is there.
    """
    lang, texts = _texts(request)
    page = Page(
        kind="wait",
        status=200,
        lang=lang,
        title=texts["wait.title"],
        message=texts["wait.message"],
        link=path,
        link_text=texts["wait.link"],
        refresh=seconds,
    )
    return render(request, page, {"Refresh": f"{seconds}; url={path}"})
