"""The demo's small site: a home page, a protected profile, logout.

``aiotwinne demo`` serves it against the emulator, and ``examples/webapp.py``
imports it and serves it against Twinne, so the example and the demo show the
same pages. It lives in the package, not in ``examples/``, so that the demo
runs from an installed wheel (issue 13). It needs the ``web`` extra
(aiohttp-session and cryptography), so the CLI imports it only when the demo
starts.

It is private to aiotwinne: read it as the example it is and copy what you
need into your own site, rather than importing it.
"""

from __future__ import annotations

import html
from typing import Any

import aiohttp_session
from aiohttp import web
from cryptography.fernet import Fernet

from ..client import TwinneClient
from ..web import (
    DEFAULT_LOGIN_PATH,
    DEFAULT_LOGOUT_PATH,
    cookie_storage,
    get_user,
    login_required,
    setup,
)

__all__ = ["create_app", "home", "profile"]

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><nav><a href="/">Home</a> · <a href="/profile">Profile</a></nav>
<main>{body}</main></body></html>
"""


def _page(title: str, body: str) -> web.Response:
    return web.Response(
        text=_PAGE.format(title=html.escape(title), body=body),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def _logout_button() -> str:
    return (
        f'<form method="post" action="{DEFAULT_LOGOUT_PATH}">'
        '<button type="submit" id="logout">Log out</button></form>'
    )


async def home(request: web.Request) -> web.Response:
    """The public home page: a greeting, and a login button for anonymous visitors."""
    user = await get_user(request)
    if user is None:
        body = (
            "<h1>Welcome</h1>"
            f'<p><a id="login" href="{DEFAULT_LOGIN_PATH}?next=/profile">'
            "Log in with Twinne</a></p>"
        )
    else:
        body = (
            f'<h1>Welcome back, <span id="name">{html.escape(user.full_name)}</span></h1>'
            + _logout_button()
        )
    return _page("Home", body)


@login_required
async def profile(request: web.Request) -> web.Response:
    """The protected profile page: the user's picture and name."""
    user = await get_user(request)
    if user is None:  # pragma: no cover - login_required let a signed-in user through
        raise web.HTTPInternalServerError()
    picture = (
        f'<img id="picture" src="{html.escape(user.picture_url)}" alt="" width="96">'
        if user.picture_url
        else ""
    )
    body = (
        f"<h1>Profile</h1>{picture}"
        f'<p id="name">{html.escape(user.full_name)}</p>'
        f'<p>@<span id="username">{html.escape(user.username)}</span> · id {user.id}</p>'
        + _logout_button()
    )
    return _page("Profile", body)


def create_app(
    client: TwinneClient,
    *,
    storage: aiohttp_session.AbstractStorage | None = None,
    secure_cookies: bool = True,
    session_key: bytes | None = None,
    **setup_options: Any,
) -> web.Application:
    """Build the site.

    Args:
        client: The Twinne client; closed when the application shuts down.
        storage: An aiohttp-session storage (e.g. a Redis one for several
            instances). Default: an encrypted cookie, see *session_key*.
        secure_cookies: ``False`` only for plain http://localhost.
        session_key: The Fernet key of the default cookie storage (a new
            random one by default: sessions then end with the process).
        **setup_options: More options for :func:`aiotwinne.web.setup`.
    """
    app = web.Application()
    if storage is None:
        storage = cookie_storage(session_key or Fernet.generate_key(), secure=secure_cookies)
    aiohttp_session.setup(app, storage)
    setup(app, client, secure_cookies=secure_cookies, **setup_options)
    app.router.add_get("/", home)
    app.router.add_get("/profile", profile)
    return app
