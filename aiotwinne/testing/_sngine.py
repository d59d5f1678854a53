"""The emulated Sngine site, sans-I/O: a request's parts in, an :class:`Answer` out.

:class:`Site` holds the database and the clock (:mod:`._database`) and applies
the rules of one Sngine version, point by point as PROTOCOL.md ("Sngine
versions") reads them from the server code. It never touches a socket and
imports no aiohttp: :mod:`._server` moves the bytes, and tests call
:meth:`Site.handle` directly.

What differs by version (``"2"``, ``"3"``, ``"4"``):

* ``/api/authorize`` reads ``app_id``, ``app_secret`` and ``auth_key`` from the
  query string on 2.x/3.x (``$_GET``, whatever the method) and only from a
  POST form body on 4.x (``$_POST``);
* ``user_gender`` is the stored text on 2.x/3.x and the gender's name on 4.x
  (``"N/A"`` when unset); ``profile_picture`` is the uploaded picture on 4.x
  and always the default picture on 2.x/3.x (a server bug).

Everything else is common: the order of checks, MySQL lookups, the token
window for expiry and reuse, routing, ``[]`` for a deleted user, compact JSON,
and a drawn placeholder (:mod:`._picture`) for every picture URL it sends.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import quote

import attrs

from .._protocol import AUTHORIZE_PATH, MESSAGES, OAUTH_PATH, USER_INFO_PATH
from . import _pages, _picture
from ._database import Clock, Database, Session, new_secret
from ._model import Answer, Connection, EmulatedApp, EmulatedUser, Endpoint, php_json

__all__ = [
    "DOCUMENTED_TOKEN_LIFETIME",
    "SESSION_COOKIE",
    "SNGINE_VERSIONS",
    "STOCK_TOKEN_LIFETIME",
    "Site",
    "SiteRequest",
    "SngineVersion",
    "php_params",
    "safe_next",
]

#: The Sngine versions the emulator can be, oldest first (the last is the default).
SNGINE_VERSIONS: Final = ("2", "3", "4")
SngineVersion = Literal["2", "3", "4"]
#: The token lifetime Twinne's docs promise: one hour.
DOCUMENTED_TOKEN_LIFETIME: Final = 3600.0
#: The window every Sngine version's code checks, for expiry and reuse alike:
#: ``strtotime("-1 minutes")``.
STOCK_TOKEN_LIFETIME: Final = 60.0
#: The cookie that holds the emulator's own login session.
SESSION_COOKIE: Final = "twinne_emulator_session"

JSON_TYPE: Final = "application/json"  # Sngine's header: no charset
HTML_TYPE: Final = "text/html; charset=utf-8"
# Apache's rewrite rule in front of api.php: ^api/([^/]+)/?$
_API_ROUTE: Final = re.compile(r"/api/([^/]+)/?")
_API_NAMES: Final[Mapping[str, Endpoint]] = {
    OAUTH_PATH.rsplit("/", 1)[1]: "oauth",
    AUTHORIZE_PATH.rsplit("/", 1)[1]: "authorize",
    USER_INFO_PATH.rsplit("/", 1)[1]: "user_info",
}
# Files Apache serves before api.php's rules: the uploads folder (pictures only:
# the emulator draws them, see _picture) and the theme's default pictures.
_UPLOADS: Final = "/content/uploads/"
_IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png", ".gif", ".webp")
_DEFAULT_PICTURE: Final = re.compile(
    r"/content/themes/default/images/blank_profile(?:_male|_female)?\.png"
)
# PHP's trim() plus the non-breaking space Sngine's is_empty() turns into one.
_PHP_BLANK: Final = " \t\n\r\0\x0b\xa0"
# Browsers drop these anywhere in a URL (WHATWG URL parser), so "/\t/x" is "//x".
_URL_IGNORED: Final = {9: None, 10: None, 13: None}
_C0_OR_SPACE: Final = "".join(chr(c) for c in range(33))


def php_params(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Parameters as PHP's ``$_GET``/``$_POST`` hold them: a repeated name keeps its last value.

    Args:
        params: A mapping (a multi-valued one, such as aiohttp's query, gives
            every pair through ``items()``) or ``(name, value)`` pairs.
    """
    pairs = params.items() if isinstance(params, Mapping) else params
    return dict(pairs)


def safe_next(value: object) -> str:
    """Where the sign-in form may send the browser: a local path, else ``/``.

    The check runs on what a browser would follow: tabs and line breaks
    removed, leading and trailing controls and spaces stripped (so
    ``"/\\t/evil.example/"`` is the off-site ``//evil.example/``). Backslashes,
    which browsers read as ``/``, are refused. Characters a header cannot carry
    are percent-encoded, so no ``next`` can break the answer.
    """
    if not isinstance(value, str):
        return "/"
    path = value.translate(_URL_IGNORED).strip(_C0_OR_SPACE)
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return "".join(ch if "!" <= ch <= "~" else quote(ch, safe="") for ch in path)


@attrs.frozen
class SiteRequest:
    """A request's parts, as the PHP code sees them.

    Attributes:
        method: The HTTP method.
        path: The URL path, percent-decoded, without the query string.
        query: ``$_GET`` (pairs or a mapping; a repeated name keeps its last value).
        form: ``$_POST``: the fields of a POST form body, or ``None`` when the
            request had none (not a POST, or not a form content type).
        cookies: The request's cookies.
        query_string: The raw query string (to send the browser back to the
            same URL after signing in).
    """

    method: str
    path: str
    query: Mapping[str, str] = attrs.field(factory=dict, converter=php_params)
    form: Mapping[str, str] | None = attrs.field(
        default=None, converter=attrs.converters.optional(php_params)
    )
    cookies: Mapping[str, str] = attrs.field(factory=dict)
    query_string: str = ""

    @property
    def target(self) -> str:
        """The path and query string, as requested."""
        return f"{self.path}?{self.query_string}" if self.query_string else self.path


def _present(params: Mapping[str, str], name: str) -> str | None:
    # Sngine's !isset() || is_empty(): a missing or blank parameter.
    value = params.get(name)
    if value is None or not value.strip(_PHP_BLANK):
        return None
    return value


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _api_error(message: str) -> Answer:
    # Sngine answers every API error with HTTP 200 (PROTOCOL.md, "Errors").
    return Answer(200, php_json({"error": True, "message": message}), JSON_TYPE)


def _html(text: str, status: int = 200, **headers: str) -> Answer:
    return Answer(status, text.encode("utf-8"), HTML_TYPE, headers)


def _redirect(location: str, **headers: str) -> Answer:
    # Sent as given, like PHP's header("Location: ..."): no URL normalisation.
    return Answer(302, b"", HTML_TYPE, {"Location": location, **headers})


class Site:
    """One Sngine site: its tables, its clock and one version's rules.

    Args:
        sngine: The version to behave as: ``"2"``, ``"3"`` or ``"4"``.
        token_lifetime: Seconds a token stays valid, and stays handed back on a
            new exchange (:data:`DOCUMENTED_TOKEN_LIFETIME` or
            :data:`STOCK_TOKEN_LIFETIME`).
        reuse_valid_tokens: Hand back a still-valid token on a new exchange,
            with its original date, as every version does.
        sngine27_token_bug: Sngine 2.7's bug: a new token is written to every
            connection of the site (an UPDATE without a WHERE). Only with
            ``sngine="2"``.
        cache_bodies: Encode each token's user-info answer once (fast mode).
        clock: The clock (a new one by default).
        new_secret: Makes keys, tokens and session ids (32 random hex
            characters by default).

    Attributes:
        db: The tables.
        token_lifetime: As above; may be changed at any time.
        feature_message: The admin's message while the developers module is
            off, else ``None``.
        base_url: The site's address, used in the URLs it writes.

    Raises:
        ValueError: An unknown version, or the 2.7 bug on another version.
    """

    def __init__(
        self,
        *,
        sngine: str = SNGINE_VERSIONS[-1],
        token_lifetime: float = DOCUMENTED_TOKEN_LIFETIME,
        reuse_valid_tokens: bool = True,
        sngine27_token_bug: bool = False,
        cache_bodies: bool = False,
        clock: Clock | None = None,
        new_secret: Callable[[], str] = new_secret,
    ) -> None:
        if sngine not in SNGINE_VERSIONS:
            raise ValueError(f"sngine must be one of {SNGINE_VERSIONS}, not {sngine!r}")
        if sngine27_token_bug and sngine != "2":
            raise ValueError("sngine27_token_bug is Sngine 2.7's: use it with sngine='2'")
        self.sngine: SngineVersion = sngine  # type: ignore[assignment]
        self.db = Database(clock if clock is not None else Clock(), new_secret)
        self.token_lifetime = token_lifetime
        self.reuse_valid_tokens = reuse_valid_tokens
        self.sngine27_token_bug = sngine27_token_bug
        self.cache_bodies = cache_bodies
        self.feature_message: str | None = None
        self._base_url = "http://127.0.0.1"
        self._pages: Mapping[str, Callable[[SiteRequest], Answer]] = {
            "home": self._home,
            "login": self._login,
            "logout": self._logout,
            "callback": self._callback,
            "oauth": self._oauth,
            "authorize": self._authorize,
            "user_info": self._user_info,
            "api": self._unknown_api,
            "picture": self._picture,
            "default_picture": self._picture,
            "missing": self._not_found,
        }

    @property
    def base_url(self) -> str:
        """The site's address, e.g. ``"http://127.0.0.1:8080"``."""
        return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        if value != self._base_url:
            self._base_url = value
            self.db.forget_all_bodies()

    # -- routing -------------------------------------------------------------

    @staticmethod
    def route(path: str) -> tuple[Endpoint, str]:
        """Which endpoint (for counts and faults) and which page serve *path*."""
        if path == "/":
            return "other", "home"
        if path in ("/login", "/logout"):
            return "login", path[1:]
        if path == "/callback":
            return "other", "callback"
        if _DEFAULT_PICTURE.fullmatch(path):
            return "other", "default_picture"
        if path.startswith(_UPLOADS) and path.lower().endswith(_IMAGE_SUFFIXES):
            return "other", "picture"
        match = _API_ROUTE.fullmatch(path)
        if match is None:
            # /api/, /api/a/b and anything unknown: the site's HTML 404.
            return "other", "missing"
        endpoint = _API_NAMES.get(match.group(1))
        if endpoint is None:
            return "other", "api"
        return endpoint, endpoint

    def handle(self, request: SiteRequest) -> Answer:
        """Serve *request*: the answer Sngine's code would give, with its side effects."""
        _, page = self.route(request.path)
        return self._pages[page](request)

    # -- the API ---------------------------------------------------------------

    def _authorize_params(self, request: SiteRequest) -> Mapping[str, str]:
        if self.sngine == "4":
            # 4.x reads $_POST only: a GET, or parameters in the query, find nothing.
            if request.method == "POST" and request.form is not None:
                return request.form
            return {}
        # 2.x/3.x read $_GET whatever the method; a body is ignored.
        return request.query

    def _authorize(self, request: SiteRequest) -> Answer:
        params = self._authorize_params(request)
        # Sngine's order: each parameter's presence, the module, the app, the
        # secret, then the key looked up by app and key.
        app_id = _present(params, "app_id")
        if app_id is None:
            return _api_error(MESSAGES.INVALID_APP_ID)
        app_secret = _present(params, "app_secret")
        if app_secret is None:
            return _api_error(MESSAGES.INVALID_APP_SECRET)
        auth_key = _present(params, "auth_key")
        if auth_key is None:
            return _api_error(MESSAGES.INVALID_AUTH_KEY)
        if self.feature_message is not None:
            return _api_error(self.feature_message)
        app = self.db.find_app(app_id)
        if app is None:
            return _api_error(MESSAGES.APP_DISABLED)
        if not _same(app_secret, app.secret):
            return _api_error(MESSAGES.INVALID_APP_SECRET)
        conn = self.db.find_by_key(app, auth_key)
        if conn is None:
            return _api_error(MESSAGES.INVALID_AUTH_KEY)
        # The key is single use: Sngine replaces it the moment it is exchanged.
        self.db.set_auth_key(conn, None)
        if conn.access_token is None or not self.reuse_valid_tokens or self.expired(conn):
            token, now = self.db.new_secret(), self.db.clock.now()
            if self.sngine27_token_bug:
                self.db.set_token_everywhere(token, now)
            else:
                self.db.set_token(conn, token, now)
        # A token still inside the window comes back with its original date.
        return Answer(200, php_json({"access_token": conn.access_token}), JSON_TYPE)

    def _user_info(self, request: SiteRequest) -> Answer:
        # get_user_info reads $_GET on every version.
        token = _present(request.query, "access_token")
        if token is None:
            return _api_error(MESSAGES.INVALID_ACCESS_TOKEN)
        if self.feature_message is not None:
            return _api_error(self.feature_message)
        conn = self.db.find_by_token(token)
        if conn is None:
            return _api_error(MESSAGES.INVALID_ACCESS_TOKEN)
        if self.expired(conn):
            return _api_error(MESSAGES.EXPIRED_ACCESS_TOKEN)
        if conn.user.deleted:
            # PHP's json_encode of an empty array (PROTOCOL.md, "User info").
            return Answer(200, b"[]", JSON_TYPE)
        return Answer(200, self._user_info_body(conn), JSON_TYPE)

    def _unknown_api(self, request: SiteRequest) -> Answer:
        # api.php's default case: no module check before it.
        return _api_error(MESSAGES.INVALID_PARAMETERS)

    def expired(self, conn: Connection) -> bool:
        """Whether *conn*'s token is past the window, on the site's clock."""
        return self.db.clock.now() - conn.token_date > self.token_lifetime

    def _user_info_body(self, conn: Connection) -> bytes:
        if conn.body is not None:
            return conn.body
        body = php_json({"user_info": self.render_user(conn.user)})
        if self.cache_bodies:
            conn.body = body
        return body

    def render_user(self, user: EmulatedUser) -> dict[str, Any]:
        """The ``user_info`` object this version sends for *user*'s stored row."""
        wire = dict(user.fields)
        stored_gender = wire.get("user_gender")
        if self.sngine == "4":
            wire["user_gender"] = self.db.gender_name(stored_gender)
        uploads = f"{self._base_url}/content/uploads"
        picture = wire.get("user_picture")
        if self.sngine == "4" and picture:
            wire["profile_picture"] = f"{uploads}/{picture}"
        else:
            # 2.x/3.x always send the default picture (a server bug).
            wire["profile_picture"] = self.default_picture(stored_gender)
        # Every version sends the bare uploads folder (a server bug).
        wire["profile_cover"] = f"{uploads}/"
        return wire

    def default_picture(self, stored_gender: str | None) -> str:
        """The site's default picture URL for a user of this gender."""
        key = self.db.gender_key(stored_gender)
        suffix = f"_{key}" if key in ("male", "female") else ""
        return f"{self._base_url}/content/themes/default/images/blank_profile{suffix}.png"

    # -- the browser pages -------------------------------------------------------

    def authorize(self, user: EmulatedUser, app: EmulatedApp) -> str:
        """Approve *app* for *user* and hand out a new key, replacing any unexchanged one."""
        conn = self.db.connect(user, app)
        key = self.db.new_secret()
        self.db.set_auth_key(conn, key)
        return key

    def login_url(self, app: EmulatedApp) -> str:
        """The "Log in With Twinne" link for *app*."""
        return f"{self._base_url}{OAUTH_PATH}?app_id={quote(app.app_id, safe='')}"

    def _signed_in(self, request: SiteRequest) -> tuple[Session, EmulatedUser] | None:
        return self.db.session_user(request.cookies.get(SESSION_COOKIE, ""))

    def _oauth(self, request: SiteRequest) -> Answer:
        signed_in = self._signed_in(request)
        if signed_in is None:
            # The sign-in page at the same URL (no redirect); its form brings
            # the browser back here.
            return _html(_pages.login_page(next_url=safe_next(request.target)))
        if self.feature_message is not None:
            return _html(_pages.error_page(self.feature_message))
        app_id = _present(request.query, "app_id")
        if app_id is None:
            return self._not_found(request)
        app = self.db.find_app(app_id)
        if app is None:
            # An error page, never a redirect (PROTOCOL.md, "The flow").
            return _html(_pages.error_page(MESSAGES.APP_DISABLED))
        session, user = signed_in
        if request.method == "POST":
            form = request.form or {}
            csrf = form.get("csrf")
            if csrf is None or not _same(csrf, session.csrf):
                return _html(_pages.error_page("This form has expired: please try again."), 400)
            if form.get("action") != "approve":
                return _html(_pages.cancelled_page(app.name))
        elif self.db.connection(user, app) is None:
            page = _pages.approval_page(
                app_name=app.name, app_id=app.app_id, username=user.username, csrf=session.csrf
            )
            return _html(page)
        # Plain concatenation, exactly as Sngine does, even after an existing "?".
        return _redirect(app.redirect_url + "?auth_key=" + self.authorize(user, app))

    def _login(self, request: SiteRequest) -> Answer:
        if request.method != "POST":
            return _html(_pages.login_page(next_url=safe_next(request.query.get("next"))))
        form = request.form or {}
        next_url = safe_next(form.get("next"))
        user = self.db.users_by_name.get(form.get("username", "").strip())
        if user is None or user.deleted:
            page = _pages.login_page(next_url=next_url, error="No Twinne user has that username.")
            return _html(page)
        session_id = self.db.open_session(user)
        cookie = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax"
        return _redirect(next_url, **{"Set-Cookie": cookie})

    def _logout(self, request: SiteRequest) -> Answer:
        if request.method != "POST":
            return _html(_pages.error_page("Sign out with the button."), 405, Allow="POST")
        self.db.close_session(request.cookies.get(SESSION_COOKIE, ""))
        cookie = f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        return _redirect("/", **{"Set-Cookie": cookie})

    def _callback(self, request: SiteRequest) -> Answer:
        return _html(_pages.callback_page(received="auth_key=" in request.query_string))

    def _home(self, request: SiteRequest) -> Answer:
        signed_in = self._signed_in(request)
        apps = itertools.islice(self.db.apps.values(), 20)
        links = [(app.name, self.login_url(app)) for app in apps]
        username = signed_in[1].username if signed_in else None
        return _html(_pages.home_page(username=username, app_links=links))

    def _picture(self, request: SiteRequest) -> Answer:
        # A static file: GET and HEAD only, the same bytes for the same path.
        if request.method not in ("GET", "HEAD"):
            return _html(_pages.error_page("Method not allowed."), 405, Allow="GET, HEAD")
        default = _DEFAULT_PICTURE.fullmatch(request.path) is not None
        body = _picture.placeholder_png(request.path, default=default)
        headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Answer(200, body, _picture.PNG_TYPE, headers)

    def _not_found(self, request: SiteRequest) -> Answer:
        return _html(_pages.not_found_page(), 404)
