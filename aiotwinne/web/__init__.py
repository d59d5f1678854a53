"""aiohttp integration: "Log in with Twinne", guarded routes, silent re-login.

Sessions belong to aiohttp-session; set it up first, with the storage of
your choice, then add aiotwinne::

    import aiohttp_session
    from aiotwinne import TwinneClient
    from aiotwinne.web import cookie_storage, get_user, login_required, setup

    app = web.Application()
    aiohttp_session.setup(app, cookie_storage(fernet_key))        # your choice
    setup(app, TwinneClient(app_id, app_secret), callback_path="/auth/twinne/callback")

    @login_required
    async def dashboard(request: web.Request) -> web.Response:
        user = await get_user(request)        # a UserInfo, from the session
        ...

Tie Twinne's user to your own at login with ``setup(..., on_login=...)``
and read what it returned on every request with :func:`get_login` (no
query); draw aiotwinne's pages with your templates (``renderer=``) and
texts (``texts=``, English and French by default).

Register the callback's absolute URL as the app's redirect URL in Twinne's
developer dashboard. A token lasts an hour and Twinne has no refresh token:
when it expires, a page navigation is sent through Twinne and back without
the user seeing anything; scripts get ``401`` JSON with a ``login_url``.
"""

from __future__ import annotations

from ._bearer import (
    BearerResult,
    BearerValidator,
    MemoryTokenRegistry,
    RedisTokenRegistry,
    RegistryUnavailableError,
    TokenRegistry,
    remember_token,
)
from ._config import TWINNE_CLIENT_KEY
from ._helpers import (
    DEFAULT_COOKIE_NAME,
    DEFAULT_MAX_AGE,
    RedactingAccessLogger,
    cookie_storage,
    redis_storage,
)
from ._http import safe_return_path
from ._i18n import DEFAULT_TEXTS
from ._login import MAX_LOGIN_DATA, Login, LoginRefused, get_login
from ._middleware import (
    bearer_required,
    get_token,
    get_user,
    login_required,
    require_bearer,
    require_login,
)
from ._pages import Page, Renderer
from ._record import SESSION_KEY
from ._setup import (
    DEFAULT_CALLBACK_PATH,
    DEFAULT_LOGIN_PATH,
    DEFAULT_LOGOUT_PATH,
    InsecureCookieWarning,
    check_cookie_params,
    check_storage,
    setup,
)

__all__ = [
    "DEFAULT_CALLBACK_PATH",
    "DEFAULT_COOKIE_NAME",
    "DEFAULT_LOGIN_PATH",
    "DEFAULT_LOGOUT_PATH",
    "DEFAULT_MAX_AGE",
    "DEFAULT_TEXTS",
    "MAX_LOGIN_DATA",
    "SESSION_KEY",
    "TWINNE_CLIENT_KEY",
    "BearerResult",
    "BearerValidator",
    "InsecureCookieWarning",
    "Login",
    "LoginRefused",
    "MemoryTokenRegistry",
    "Page",
    "RedactingAccessLogger",
    "RedisTokenRegistry",
    "RegistryUnavailableError",
    "Renderer",
    "TokenRegistry",
    "bearer_required",
    "check_cookie_params",
    "check_storage",
    "cookie_storage",
    "get_login",
    "get_token",
    "get_user",
    "login_required",
    "redis_storage",
    "remember_token",
    "require_bearer",
    "require_login",
    "safe_return_path",
    "setup",
]
