"""Bearer-mode helpers: a page that hands the signed-in user's token to scripts, as a site would.

Bearer mode accepts only tokens the site obtained through its own callback, so
tests get theirs the way a real single-page app would: log in through the real
round trip, then ask the site for the session's token.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from websupport import JSON, Site, log_in

from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import get_token, require_login

TOKEN_PATH = "/token"


async def _token_page(request: web.Request) -> web.Response:
    await require_login(request)
    token = await get_token(request)
    assert token is not None
    return web.json_response({"access_token": token.value})


def token_routes() -> dict[str, Handler]:
    """The extra route for ``site_factory(routes=...)``."""
    return {TOKEN_PATH: _token_page}


async def own_token(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> str:
    """Log *visitor* in to *site* (built with :func:`token_routes`) and return its token."""
    await log_in(visitor, site, emu, user)
    async with visitor.get(site(TOKEN_PATH), headers=JSON) as answer:
        assert answer.status == 200, await answer.text()
        token: str = (await answer.json())["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for *token*."""
    return {"Authorization": f"Bearer {token}"}
