"""The Twinne emulator: a faithful Sngine "Log in With" server on a local port.

It follows PROTOCOL.md to the letter (errors with HTTP 200, string values,
``[]`` for a deleted user, single-use auth_keys, ``?auth_key=`` appended as
plain text), has a clock of its own, fault injection, a login and consent page
a person can click, and a fast mode for benchmarks.

It imports only the protocol's *constants*: it is the other side of the wire,
so it must not share the client's parser.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import attrs
from aiohttp import web

from .._protocol import AUTHORIZE_PATH, MESSAGES, OAUTH_PATH, USER_INFO_PATH
from . import _pages
from ._faults import Answer, Fault, FaultKind, make_fault, render_fault
from ._model import (
    USER_FIELDS,
    Connection,
    EmulatedApp,
    EmulatedUser,
    Endpoint,
    RequestRecord,
    default_user_fields,
    php_json,
)

__all__ = ["SESSION_COOKIE", "TwinneEmulator", "run_emulator"]

#: The cookie that holds the emulator's own login session.
SESSION_COOKIE: Final = "twinne_emulator_session"

_SECRET_PARAMS: Final = frozenset({"app_secret", "auth_key", "access_token"})
_MASK: Final = "***"
_CHUNK: Final = 64 * 1024
_HTML: Final = "text/html"

_Process = Callable[[web.Request], Awaitable[Answer]]


def _new_secret() -> str:
    """32 lowercase hex characters, like Sngine's keys and tokens."""
    return secrets.token_hex(16)


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _api_error(message: str) -> Answer:
    # Sngine answers every API error with HTTP 200 (PROTOCOL.md, "Errors").
    return Answer(200, php_json({"error": True, "message": message}))


def _html(text: str, status: int = 200) -> Answer:
    return Answer(status, text.encode("utf-8"), _HTML)


def _redirect(location: str, **headers: str) -> Answer:
    # Sent as given, like PHP's header("Location: ..."): no URL normalisation.
    return Answer(302, b"", _HTML, {"Location": location, **headers})


def _safe_next(value: object) -> str:
    # Only local paths: the login form must not become an open redirect.
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


@attrs.define
class _Session:
    user_id: int
    csrf: str


@attrs.define
class _Queued:
    fault: Fault
    remaining: int


class TwinneEmulator:
    """A Twinne ("Sngine") server for tests, demos and benchmarks.

    Use it as an async context manager, or call :meth:`start` and
    :meth:`close`. It listens on ``127.0.0.1`` (a free port by default; see
    :attr:`base_url`) and serves:

    * ``/api/oauth?app_id=`` — the browser login link. The emulator's own
      login form (``/login``: a username, no password) and consent page
      ("Log in With Twinne", Approve / Cancel) come first when needed; then a
      ``302`` to the app's registered redirect URL with ``?auth_key=KEY``
      appended as plain text.
    * ``/api/authorize`` and ``/api/get_user_info`` — with Sngine's exact
      answers, error texts and order of checks.

    Example:
        >>> async with TwinneEmulator() as emu:  # doctest: +SKIP
        ...     app = emu.add_app(name="Shop", redirect_url="http://127.0.0.1:8000/cb")
        ...     user = emu.add_user(user_name="jdoe")
        ...     auth_key = emu.authorize(user, app)  # as if jdoe clicked Approve

    Args:
        host: The address to listen on.
        port: The port; ``0`` picks a free one. After :meth:`stop`,
            :meth:`start` comes back on the same port.
        token_lifetime: Seconds an access token stays valid (Twinne's docs:
            3600). Judged by the emulator's clock, see :meth:`advance`.
        keepalive_timeout: Seconds an idle keep-alive connection stays open.
        fast: Benchmark mode: requests are counted but not recorded in
            :attr:`requests`, and user-info answers are encoded once per token
            and cached (change users through :meth:`update_user`).
        reuse_valid_tokens: Hand back a user's still-valid token on a new
            exchange, as Sngine may (PROTOCOL.md, "Token exchange"), instead
            of issuing a new one.
        shutdown_timeout: Seconds :meth:`stop` waits for in-flight requests
            before cancelling them.

    Attributes:
        token_lifetime: See above; may be changed at any time.
        requests: What the emulator saw, oldest first (empty in fast mode).
        peak_concurrency: The most requests in flight at once since the
            start or :meth:`reset_stats`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = 3600.0,
        keepalive_timeout: float = 75.0,
        fast: bool = False,
        reuse_valid_tokens: bool = True,
        shutdown_timeout: float = 0.25,
    ) -> None:
        self._host = host
        self._port = port
        self._keepalive_timeout = keepalive_timeout
        self._shutdown_timeout = shutdown_timeout
        self._fast = fast
        self._reuse_valid_tokens = reuse_valid_tokens
        self._runner: web.AppRunner | None = None
        self.token_lifetime = token_lifetime
        self._clock_offset = 0.0
        self._feature_message: str | None = None

        self._apps: dict[str, EmulatedApp] = {}
        self._users: dict[int, EmulatedUser] = {}
        self._users_by_name: dict[str, EmulatedUser] = {}
        self._next_user_id = 1
        self._connections: dict[tuple[int, str], Connection] = {}
        self._by_auth_key: dict[str, Connection] = {}
        self._by_token: dict[str, Connection] = {}
        self._sessions: dict[str, _Session] = {}

        self._faults: list[_Queued] = []
        self.requests: list[RequestRecord] = []
        self._counts: Counter[str] = Counter()
        self._in_flight = 0
        self._idle: asyncio.Event | None = None  # set when _in_flight drops to 0
        self.peak_concurrency = 0

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Start listening. After :meth:`stop`, comes back on the same port.

        Raises:
            RuntimeError: Already running.
            OSError: The port is taken.
        """
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(
            self._make_app(),
            handle_signals=False,
            # aiohttp's access log prints query strings, which hold secrets here.
            access_log=None,
            keepalive_timeout=self._keepalive_timeout,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and drop open connections; all state is kept.

        A later :meth:`start` listens on the same port again, so a test can
        simulate an outage. Does nothing when not running.
        """
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def close(self) -> None:
        """Stop the server (same as :meth:`stop`; the name ``async with`` users expect)."""
        await self.stop()

    async def __aenter__(self) -> TwinneEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def running(self) -> bool:
        """Whether the emulator is listening."""
        return self._runner is not None

    @property
    def port(self) -> int:
        """The port listened on (known once started; ``0`` before the first start)."""
        return self._port

    @property
    def base_url(self) -> str:
        """The site's base URL, e.g. ``"http://127.0.0.1:54321"``.

        Raises:
            RuntimeError: The emulator was never started, so it has no port yet.
        """
        if not self._port:
            raise RuntimeError("the emulator has no port yet: start it first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def login_page_url(self) -> str:
        """The emulator's sign-in page (a username, no password)."""
        return f"{self.base_url}/login"

    def login_url(self, app: EmulatedApp) -> str:
        """The "Log in With Twinne" link for *app* (``/api/oauth?app_id=...``)."""
        return f"{self.base_url}{OAUTH_PATH}?app_id={quote(app.app_id, safe='')}"

    # -- apps and users -----------------------------------------------------

    def add_app(
        self,
        name: str = "Test App",
        redirect_url: str = "/callback",
        *,
        app_id: str | None = None,
        secret: str | None = None,
        enabled: bool = True,
    ) -> EmulatedApp:
        """Register an app, as in Twinne's developers dashboard.

        Args:
            name: Shown on the consent page.
            redirect_url: Where the browser goes back with ``?auth_key=KEY``
                appended as plain text. The default ``/callback`` is a page of
                the emulator that says a key arrived.
            app_id: A decimal id; a random 15-digit one by default.
            secret: The app secret; 32 random hex characters by default.
            enabled: ``False`` registers it disabled.

        Raises:
            ValueError: The app_id is taken, or the redirect URL holds
                whitespace or control characters (it goes into a header).
        """
        if not redirect_url or any(ch.isspace() or ord(ch) < 32 for ch in redirect_url):
            raise ValueError("redirect_url must be non-empty, without whitespace or controls")
        if app_id is None:
            app_id = str(secrets.randbelow(9 * 10**14) + 10**14)
            while app_id in self._apps:  # pragma: no cover - 1 in 10**14
                app_id = str(secrets.randbelow(9 * 10**14) + 10**14)
        elif app_id in self._apps:
            raise ValueError(f"app_id {app_id!r} is already registered")
        app = EmulatedApp(
            app_id=app_id,
            secret=secret if secret is not None else _new_secret(),
            name=name,
            redirect_url=redirect_url,
            enabled=enabled,
        )
        self._apps[app_id] = app
        return app

    def add_user(self, **fields: Any) -> EmulatedUser:
        """Create a user; fields not given get plausible generated values.

        Args:
            **fields: Wire fields (``user_name="jdoe"``, ``user_email=None``,
                ``user_birthdate="0000-00-00"``, ``user_verified="1"``...),
                values as MySQL gives them to PHP: strings or ``None``.
                ``user_id`` picks the id (a decimal string). Keys beyond
                :data:`USER_FIELDS` are sent too, as a newer Sngine might.

        Returns:
            The user; its :attr:`~EmulatedUser.username` signs in on the
            login page.

        Raises:
            ValueError: ``user_id`` or ``user_name`` is taken or invalid.
            TypeError: A known field that is neither a string nor ``None``.
        """
        for key in USER_FIELDS:
            value = fields.get(key)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be a str or None, as MySQL sends it")
        if "user_id" in fields:
            raw = fields["user_id"]
            if raw is None or not raw.isdigit():
                raise ValueError("user_id must be a decimal string")
            user_id = int(raw)
            if user_id in self._users:
                raise ValueError(f"user_id {user_id} is taken")
        else:
            user_id = self._take_user_id()
        row = default_user_fields(user_id)
        row.update(fields)
        row["user_id"] = str(user_id)
        name = row.get("user_name")
        if not isinstance(name, str) or not name:
            raise ValueError("user_name must be a non-empty string")
        if name in self._users_by_name:
            raise ValueError(f"user_name {name!r} is taken")
        return self._insert_user(EmulatedUser(id=user_id, fields=row))

    def add_users(self, n: int) -> list[EmulatedUser]:
        """Create *n* users with generated fields; built for bulk (100,000 in about a second)."""
        users = []
        by_id, by_name = self._users, self._users_by_name
        for _ in range(n):
            user_id = self._take_user_id()
            fields = default_user_fields(user_id)
            name = fields["user_name"]
            if name in by_name:  # pragma: no cover - clashes with a name chosen by hand
                name = fields["user_name"] = f"user{user_id}_{secrets.token_hex(4)}"
            user = EmulatedUser(user_id, fields)
            by_id[user_id] = by_name[name] = user
            users.append(user)
        return users

    def update_user(self, user: EmulatedUser, **fields: Any) -> None:
        """Change some of a user's fields (see :meth:`add_user` for their form)."""
        if "user_id" in fields:
            raise ValueError("user_id cannot change")
        new_name = fields.get("user_name", user.username)
        if new_name != user.username:
            if not isinstance(new_name, str) or not new_name or new_name in self._users_by_name:
                raise ValueError("user_name must be a new, non-empty string")
            del self._users_by_name[user.username]
            self._users_by_name[new_name] = user
        user.fields.update(fields)
        self._forget_bodies(user)

    def delete_user(self, user: EmulatedUser) -> None:
        """Delete a user: Twinne then answers ``[]`` to their tokens' user-info calls."""
        user.deleted = True
        self._forget_bodies(user)

    def get_user(self, user_id: int) -> EmulatedUser:
        """The user with this id (deleted ones included).

        Raises:
            KeyError: No such user.
        """
        return self._users[user_id]

    @property
    def apps(self) -> Sequence[EmulatedApp]:
        """Every registered app, oldest first."""
        return tuple(self._apps.values())

    @property
    def users(self) -> Sequence[EmulatedUser]:
        """Every user, oldest first (a copy: costly with very many users)."""
        return tuple(self._users.values())

    @property
    def default_app(self) -> EmulatedApp:
        """The first app registered (the one the pytest fixtures and CLI set up).

        Raises:
            LookupError: No app is registered.
        """
        for app in self._apps.values():
            return app
        raise LookupError("no app is registered: call add_app() first")

    @property
    def default_user(self) -> EmulatedUser:
        """The first user created.

        Raises:
            LookupError: No user exists.
        """
        for user in self._users.values():
            return user
        raise LookupError("no user exists: call add_user() first")

    # -- approvals, keys and tokens -----------------------------------------

    def approve(self, user: EmulatedUser, app: EmulatedApp) -> None:
        """Record that *user* approved *app*, without handing out a key."""
        self._connect(user, app)

    def revoke(self, user: EmulatedUser, app: EmulatedApp) -> None:
        """Forget the approval: its auth_key and token stop working."""
        conn = self._connections.pop((user.id, app.app_id), None)
        if conn is not None:
            self._set_auth_key(conn, None)
            self._set_token(conn, None)

    def is_approved(self, user: EmulatedUser, app: EmulatedApp) -> bool:
        """Whether *user* has approved *app*."""
        return (user.id, app.app_id) in self._connections

    def authorize(self, user: EmulatedUser, app: EmulatedApp) -> str:
        """Approve *app* for *user* and return a fresh auth_key, as the Approve button does.

        Like Sngine, each (user, app) pair has one current key: a new one
        replaces any key handed out before and not yet exchanged.
        """
        conn = self._connect(user, app)
        key = _new_secret()
        self._set_auth_key(conn, key)
        return key

    def issue_token(self, user: EmulatedUser, app: EmulatedApp) -> str:
        """A valid access token for *user* and *app*, without the login round trip.

        Replaces the pair's previous token. Fast enough for 100,000 calls.
        """
        return self._issue(user, app, _new_secret(), self.now())

    def issue_tokens(self, n: int, app: EmulatedApp | None = None) -> list[str]:
        """Create *n* new users and a valid token for each (*app*: :attr:`default_app`).

        The quickest way to many tokens: 100,000 in about a second.
        """
        target = app if app is not None else self.default_app
        now = self.now()
        # One read from the OS for all the tokens, cut into 32-hex pieces.
        pool = secrets.token_hex(16 * n)
        return [
            self._issue(user, target, pool[32 * i : 32 * i + 32], now)
            for i, user in enumerate(self.add_users(n))
        ]

    def _issue(self, user: EmulatedUser, app: EmulatedApp, token: str, now: float) -> str:
        conn = self._connect(user, app)
        if conn.access_token is not None:
            self._by_token.pop(conn.access_token, None)
        conn.access_token = token
        conn.token_date = now
        conn.body = None
        self._by_token[token] = conn
        return token

    def sign_in(self, user: EmulatedUser) -> dict[str, str]:
        """Open a login session for *user*, skipping the login form.

        Returns:
            The cookie to send (``{name: value}``), e.g. with
            ``session.cookie_jar.update_cookies(...)``.
        """
        session_id = _new_secret()
        self._sessions[session_id] = _Session(user_id=user.id, csrf=_new_secret())
        return {SESSION_COOKIE: session_id}

    # -- the clock and the site switch ---------------------------------------

    def now(self) -> float:
        """The emulator's time: the wall clock plus every :meth:`advance`."""
        return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward, e.g. past a token's lifetime.

        Raises:
            ValueError: *seconds* is negative.
        """
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._clock_offset += seconds

    def set_feature_enabled(
        self, enabled: bool, *, message: str = MESSAGES.FEATURE_DISABLED
    ) -> None:
        """Turn the site's apps feature on or off, as Twinne's admin can.

        Args:
            enabled: ``False`` makes every API call answer *message*.
            message: The error text; newer Sngine says
                ``MESSAGES.DEVELOPERS_DISABLED``.
        """
        self._feature_message = None if enabled else message

    # -- faults -------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        endpoint: Endpoint | None = None,
        count: int = 1,
        **params: Any,
    ) -> None:
        """Make the next *count* matching requests misbehave.

        Faults are used oldest first; each matching request takes one.

        Kinds and their parameters:

        * ``"http_error"``: an HTML error page with ``status`` (default 500;
          502, 503, 504, 429...) and an optional ``retry_after`` (seconds, or
          an HTTP date as a string). ``after_processing=True`` lets the
          request take effect first (default ``False``: a proxy answered).
        * ``"html"``: a PHP/DB error page with status 200.
          ``after_processing`` as above.
        * ``"php_warning"``: the real answer with a PHP warning printed
          before it (``text=`` to choose the warning).
        * ``"malformed_json"``: the real answer cut in half
          (``after_processing``, default ``True``).
        * ``"oversized"``: the real answer padded with spaces to ``size``
          bytes (default 2 MiB); ``chunked=True`` sends it without a
          Content-Length.
        * ``"latency"``: wait ``delay`` seconds (real time), then answer
          normally. The request takes effect even if the client gave up.
        * ``"drop"``: close the connection without an answer, or after
          ``partial_headers=True`` half a status line and header. With
          ``after_processing=True`` (the default) the request took effect
          first: a dropped token exchange has spent its auth_key.

        Args:
            kind: What goes wrong.
            endpoint: ``"authorize"``, ``"user_info"``, ``"oauth"``,
                ``"login"``, ``"other"``, or ``None`` for any request.
            count: How many requests it hits.
            **params: The kind's parameters.

        Raises:
            ValueError: Unknown kind, bad parameter value, or count below 1.
            TypeError: A parameter the kind does not take.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        self._faults.append(_Queued(make_fault(kind, endpoint, params), count))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many requests queued faults will still hit."""
        return sum(queued.remaining for queued in self._faults)

    # -- what the emulator saw ----------------------------------------------

    def count(self, endpoint: Endpoint | None = None) -> int:
        """How many requests reached *endpoint* (``None``: all), faults included.

        Works in fast mode too, where :attr:`requests` stays empty.
        """
        if endpoint is None:
            return sum(self._counts.values())
        return self._counts[endpoint]

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._in_flight

    async def wait_idle(self) -> None:
        """Wait until no request is in flight.

        A client that timed out has left, but the emulator may still be
        working on its request (a ``latency`` fault): wait for it before
        checking what that request did.
        """
        while self._in_flight:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()

    def reset_stats(self) -> None:
        """Forget recorded requests, counts and the concurrency peak (not faults)."""
        self.requests.clear()
        self._counts.clear()
        self.peak_concurrency = self._in_flight

    # -- internals: state -----------------------------------------------------

    def _take_user_id(self) -> int:
        while self._next_user_id in self._users:
            self._next_user_id += 1
        user_id = self._next_user_id
        self._next_user_id += 1
        return user_id

    def _insert_user(self, user: EmulatedUser) -> EmulatedUser:
        self._users[user.id] = user
        self._users_by_name[user.username] = user
        return user

    def _connect(self, user: EmulatedUser, app: EmulatedApp) -> Connection:
        key = (user.id, app.app_id)
        conn = self._connections.get(key)
        if conn is None:
            conn = self._connections[key] = Connection(user=user, app=app)
        return conn

    def _set_auth_key(self, conn: Connection, key: str | None) -> None:
        if conn.auth_key is not None:
            self._by_auth_key.pop(conn.auth_key, None)
        conn.auth_key = key
        if key is not None:
            self._by_auth_key[key] = conn

    def _set_token(self, conn: Connection, token: str | None) -> None:
        if conn.access_token is not None:
            self._by_token.pop(conn.access_token, None)
        conn.access_token = token
        conn.token_date = self.now()
        conn.body = None
        if token is not None:
            self._by_token[token] = conn

    def _forget_bodies(self, user: EmulatedUser) -> None:
        for conn in self._connections.values():
            if conn.user is user:
                conn.body = None

    def _expired(self, conn: Connection) -> bool:
        return self.now() - conn.token_date > self.token_lifetime

    def _session_user(self, request: web.Request) -> tuple[_Session, EmulatedUser] | None:
        session = self._sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            return None
        user = self._users.get(session.user_id)
        if user is None or user.deleted:
            return None
        return session, user

    def _user_info_body(self, conn: Connection) -> bytes:
        if conn.body is not None:
            return conn.body
        wire = dict(conn.user.fields)
        # Sngine adds the public picture and cover URLs next to the raw paths.
        uploads = f"{self.base_url}/content/uploads"
        picture = wire.get("user_picture")
        gender = wire.get("user_gender") or "male"
        wire["profile_picture"] = (
            f"{uploads}/{picture}"
            if picture
            else f"{self.base_url}/content/themes/default/images/blank_profile_{gender}.png"
        )
        cover = wire.get("user_cover")
        wire["profile_cover"] = f"{uploads}/{cover}" if cover else None
        body = php_json({"user_info": wire})
        if self._fast:
            conn.body = body
        return body

    # -- internals: the web app ---------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application()
        route = self._route
        app.router.add_get("/", route("other", self._home))
        app.router.add_get("/login", route("login", self._login_form))
        app.router.add_post("/login", route("login", self._login))
        app.router.add_post("/logout", route("login", self._logout))
        app.router.add_get("/callback", route("other", self._callback))
        app.router.add_get(OAUTH_PATH, route("oauth", self._oauth))
        app.router.add_post(OAUTH_PATH, route("oauth", self._oauth))
        # PHP reads $_GET whatever the method, so these answer any method.
        app.router.add_route("*", AUTHORIZE_PATH, route("authorize", self._authorize))
        app.router.add_route("*", USER_INFO_PATH, route("user_info", self._user_info))
        app.router.add_route("*", "/api/{tail:.*}", route("other", self._unknown_api))
        return app

    def _route(
        self, endpoint: Endpoint, process: _Process
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, endpoint, process)

        return handler

    async def _serve(
        self, request: web.Request, endpoint: Endpoint, process: _Process
    ) -> web.StreamResponse:
        self._in_flight += 1
        if self._in_flight > self.peak_concurrency:
            self.peak_concurrency = self._in_flight
        self._counts[endpoint] += 1
        fault = self._take_fault(endpoint) if self._faults else None
        status: int | None = None
        answer: Answer | None = None
        try:
            if fault is not None and fault.kind == "latency":
                await asyncio.sleep(float(fault.params["delay"]))
            if fault is None or fault.after_processing:
                answer = await process(request)
            if fault is not None and fault.kind == "drop":
                self._drop(request, partial=bool(fault.params["partial_headers"]))
                return web.Response()
            if fault is not None and fault.kind != "latency":
                if fault.kind == "oversized" and fault.params["chunked"] and answer is not None:
                    sent = render_fault(fault, answer)
                    status = sent.status
                    return await self._stream(request, sent)
                answer = render_fault(fault, answer)
            if answer is None:  # pragma: no cover - every path above sets it
                raise AssertionError("no answer")
            status = answer.status
            return web.Response(
                status=answer.status,
                body=answer.body,
                content_type=answer.content_type,
                charset="utf-8",
                headers=answer.headers,
            )
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._idle is not None:
                self._idle.set()
                self._idle = None
            if not self._fast:
                self._record(request, endpoint, status, fault, processed=answer is not None)

    def _take_fault(self, endpoint: Endpoint) -> Fault | None:
        for index, queued in enumerate(self._faults):
            if queued.fault.endpoint in (None, endpoint):
                queued.remaining -= 1
                if queued.remaining <= 0:
                    del self._faults[index]
                return queued.fault
        return None

    @staticmethod
    def _drop(request: web.Request, *, partial: bool) -> None:
        transport = request.transport
        if transport is None:  # pragma: no cover - already gone
            return
        if partial:
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: appli")
        transport.close()

    @staticmethod
    async def _stream(request: web.Request, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_type = answer.content_type
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            for start in range(0, len(answer.body), _CHUNK):
                await response.write(answer.body[start : start + _CHUNK])
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading (its size cap): expected
        return response

    def _record(
        self,
        request: web.Request,
        endpoint: Endpoint,
        status: int | None,
        fault: Fault | None,
        *,
        processed: bool,
    ) -> None:
        query = {
            key: _MASK if key in _SECRET_PARAMS else value for key, value in request.query.items()
        }
        self.requests.append(
            RequestRecord(
                endpoint=endpoint,
                method=request.method,
                path=request.path,
                query=query,
                status=status,
                fault=fault.kind if fault is not None else None,
                processed=processed,
            )
        )

    # -- internals: the pages and the API -------------------------------------

    async def _authorize(self, request: web.Request) -> Answer:
        # Sngine's order of checks: feature, app_id, app, secret, auth_key.
        if self._feature_message is not None:
            return _api_error(self._feature_message)
        query = request.query
        app_id = query.get("app_id")
        if not app_id:
            return _api_error(MESSAGES.INVALID_APP_ID)
        app = self._apps.get(app_id)
        if app is None or not app.enabled:
            return _api_error(MESSAGES.APP_DISABLED)
        app_secret = query.get("app_secret")
        if not app_secret or not _same(app_secret, app.secret):
            return _api_error(MESSAGES.INVALID_APP_SECRET)
        auth_key = query.get("auth_key")
        conn = self._by_auth_key.get(auth_key) if auth_key else None
        if conn is None or conn.app is not app:
            return _api_error(MESSAGES.INVALID_AUTH_KEY)
        # The key is single use: Sngine replaces it the moment it is exchanged.
        self._set_auth_key(conn, None)
        if conn.access_token is None or not self._reuse_valid_tokens or self._expired(conn):
            self._set_token(conn, _new_secret())
        return Answer(200, php_json({"access_token": conn.access_token}))

    async def _user_info(self, request: web.Request) -> Answer:
        if self._feature_message is not None:
            return _api_error(self._feature_message)
        token = request.query.get("access_token")
        conn = self._by_token.get(token) if token else None
        if conn is None:
            return _api_error(MESSAGES.INVALID_ACCESS_TOKEN)
        if self._expired(conn):
            return _api_error(MESSAGES.EXPIRED_ACCESS_TOKEN)
        if conn.user.deleted:
            # PHP's json_encode of an empty array (PROTOCOL.md, "User info").
            return Answer(200, b"[]")
        return Answer(200, self._user_info_body(conn))

    async def _unknown_api(self, request: web.Request) -> Answer:
        if self._feature_message is not None:
            return _api_error(self._feature_message)
        return _api_error(MESSAGES.INVALID_PARAMETERS)

    async def _oauth(self, request: web.Request) -> Answer:
        if self._feature_message is not None:
            return _html(_pages.error_page(self._feature_message))
        app_id = request.query.get("app_id")
        if not app_id:
            return _html(_pages.error_page(MESSAGES.INVALID_APP_ID))
        app = self._apps.get(app_id)
        if app is None or not app.enabled:
            # An error page, never a redirect (PROTOCOL.md, "The flow").
            return _html(_pages.error_page(MESSAGES.APP_DISABLED))
        signed_in = self._session_user(request)
        if signed_in is None:
            return _redirect(f"/login?next={quote(request.path_qs, safe='')}")
        session, user = signed_in
        if request.method == "POST":
            form = await request.post()
            csrf = form.get("csrf")
            if not isinstance(csrf, str) or not _same(csrf, session.csrf):
                return _html(_pages.error_page("This form has expired: please try again."), 400)
            if form.get("action") != "approve":
                return _html(_pages.cancelled_page(app.name))
        elif not self.is_approved(user, app):
            page = _pages.approval_page(
                app_name=app.name, app_id=app.app_id, username=user.username, csrf=session.csrf
            )
            return _html(page)
        # Plain concatenation, exactly as Sngine does, even after an existing "?".
        return _redirect(app.redirect_url + "?auth_key=" + self.authorize(user, app))

    async def _login_form(self, request: web.Request) -> Answer:
        return _html(_pages.login_page(next_url=_safe_next(request.query.get("next"))))

    async def _login(self, request: web.Request) -> Answer:
        form = await request.post()
        next_url = _safe_next(form.get("next"))
        username = form.get("username")
        user = self._users_by_name.get(username.strip()) if isinstance(username, str) else None
        if user is None or user.deleted:
            page = _pages.login_page(next_url=next_url, error="No Twinne user has that username.")
            return _html(page)
        (session_id,) = self.sign_in(user).values()
        cookie = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax"
        return _redirect(next_url, **{"Set-Cookie": cookie})

    async def _logout(self, request: web.Request) -> Answer:
        self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        cookie = f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        return _redirect("/", **{"Set-Cookie": cookie})

    async def _callback(self, request: web.Request) -> Answer:
        return _html(_pages.callback_page(received="auth_key=" in request.query_string))

    async def _home(self, request: web.Request) -> Answer:
        signed_in = self._session_user(request)
        apps = itertools.islice(self._apps.values(), 20)
        links = [(app.name, self.login_url(app)) for app in apps]
        return _html(
            _pages.home_page(
                username=signed_in[1].username if signed_in else None, app_links=links
            )
        )


async def run_emulator(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    users: int = 10,
    app_name: str = "Demo App",
    redirect_url: str = "/callback",
    on_ready: Callable[[TwinneEmulator], None] | None = None,
    **options: Any,
) -> None:
    """Run an emulator with one app and *users* users until cancelled.

    This is what ``aiotwinne emulator [--port P] [--users N]`` runs. It prints
    nothing itself: *on_ready* receives the running emulator, whose
    :attr:`~TwinneEmulator.default_app` holds the credentials
    (``app_id``, ``secret``), :meth:`~TwinneEmulator.login_url` the login
    link and :attr:`~TwinneEmulator.login_page_url` the sign-in page
    (usernames ``user1``, ``user2``...).

    Args:
        host: The address to listen on.
        port: The port (``0``: a free one).
        users: How many users to create.
        app_name: The app's name on the consent page.
        redirect_url: The app's registered redirect URL.
        on_ready: Called once listening, e.g. to print the credentials.
        **options: Passed to :class:`TwinneEmulator`.
    """
    emulator = TwinneEmulator(host=host, port=port, **options)
    emulator.add_app(name=app_name, redirect_url=redirect_url)
    emulator.add_users(users)
    async with emulator:
        if on_ready is not None:
            on_ready(emulator)
        await asyncio.Event().wait()
