"""TwinneEmulator: the facade users hold over the emulated site and its server.

The site's rules, tables and clock live in :mod:`._sngine` (sans-I/O), the
aiohttp server with faults and counters in :mod:`._server`; this class wires
them together and keeps one small, stable API. It imports only the
protocol's *constants*: it is the other side of the wire, so it must not
share the client's parser.

Why this module is long: it is one class, the emulator's whole public API
(some 45 short methods for apps, users, tokens, the clock, faults and
counters, each with its docstring); the logic behind them lives in the
modules above, and splitting the class would scatter one API over files.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .._protocol import MESSAGES, OAUTH_PATH
from ._faults import FaultKind, make_fault
from ._model import Connection, EmulatedApp, EmulatedUser, Endpoint, RequestRecord
from ._server import EmulatorServer
from ._sngine import (
    DOCUMENTED_TOKEN_LIFETIME,
    SESSION_COOKIE,
    SNGINE_VERSIONS,
    Site,
    SngineVersion,
)

__all__ = ["TwinneEmulator"]


def _new_secret() -> str:
    """32 lowercase hex characters, like Sngine's keys and tokens.

    Every secret the emulator makes comes from here, looked up at each call,
    so a test can watch them all (the reliability suite's secret spy).
    """
    return secrets.token_hex(16)


class TwinneEmulator:
    """A Twinne ("Sngine") server for tests, demos and benchmarks.

    Use it as an async context manager, or call :meth:`start` and
    :meth:`close`. It listens on ``127.0.0.1`` (a free port by default; see
    :attr:`base_url`) and serves, as the chosen Sngine version does:

    * ``/api/oauth?app_id=`` — the browser login link. Not signed in, it
      answers the sign-in page (a username, no password) at the same URL;
      then the consent page ("Log in With Twinne", Approve / Cancel); then a
      ``302`` to the app's registered redirect URL with ``?auth_key=KEY``
      appended as plain text.
    * ``/api/authorize`` and ``/api/get_user_info`` — with Sngine's exact
      answers, error texts and order of checks (PROTOCOL.md).

    Example:
        >>> async with TwinneEmulator(sngine="3") as emu:  # doctest: +SKIP
        ...     app = emu.add_app(name="Shop", redirect_url="http://127.0.0.1:8000/cb")
        ...     user = emu.add_user(user_name="jdoe")
        ...     auth_key = emu.authorize(user, app)  # as if jdoe clicked Approve

    Args:
        host: The address to listen on.
        port: The port; ``0`` picks a free one. After :meth:`stop`,
            :meth:`start` comes back on the same port.
        token_lifetime: Seconds a token stays valid and is handed back again
            on a new exchange, on the emulator's clock (see :meth:`advance`).
            Default :data:`DOCUMENTED_TOKEN_LIFETIME` (the hour Twinne's docs
            promise); :data:`STOCK_TOKEN_LIFETIME` is the 60 s every Sngine
            version's code checks.
        keepalive_timeout: Seconds an idle keep-alive connection stays open.
        fast: Benchmark mode: requests are counted but not recorded in
            :attr:`requests`, and user-info answers are encoded once per token
            and cached (change users through :meth:`update_user`).
        reuse_valid_tokens: Hand back a user's still-valid token (with its
            original date: it is not renewed) on a new exchange, as Sngine
            does, instead of issuing a new one.
        shutdown_timeout: Seconds :meth:`stop` waits for in-flight requests
            before cancelling them.
        sngine: The Sngine version to behave as, one of
            :data:`SNGINE_VERSIONS` (default: the newest, ``"4"``). It decides
            where ``/api/authorize`` reads its parameters (4.x: a POST form
            body only; 2.x/3.x: the query string) and how ``user_gender`` and
            ``profile_picture`` are sent.
        sngine27_token_bug: Sngine 2.7's bug, opt-in, only with
            ``sngine="2"``: a new token is written to every approval on the
            site (an UPDATE without a WHERE), so every user's old token dies
            and the new one answers with the first approval's user.

    Attributes:
        requests: What the emulator saw, oldest first (empty in fast mode).

    Raises:
        ValueError: An unknown *sngine*, or the 2.7 bug with another version.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = DOCUMENTED_TOKEN_LIFETIME,
        keepalive_timeout: float = 75.0,
        fast: bool = False,
        reuse_valid_tokens: bool = True,
        shutdown_timeout: float = 0.25,
        sngine: SngineVersion | str = SNGINE_VERSIONS[-1],
        sngine27_token_bug: bool = False,
    ) -> None:
        self._site = Site(
            sngine=sngine,
            token_lifetime=token_lifetime,
            reuse_valid_tokens=reuse_valid_tokens,
            sngine27_token_bug=sngine27_token_bug,
            cache_bodies=fast,
            # A lambda: the name is looked up at each call, so a test can patch it.
            new_secret=lambda: _new_secret(),
        )
        self._db = self._site.db
        self._server = EmulatorServer(
            self._site,
            host=host,
            port=port,
            keepalive_timeout=keepalive_timeout,
            shutdown_timeout=shutdown_timeout,
            record=not fast,
        )
        self.requests: list[RequestRecord] = self._server.requests

    def __repr__(self) -> str:
        where = self._server.base_url if self._server.port else "not started"
        return f"<TwinneEmulator sngine={self.sngine!r} {where}>"

    @property
    def sngine(self) -> SngineVersion:
        """The Sngine version this emulator behaves as (``"2"``, ``"3"`` or ``"4"``)."""
        return self._site.sngine

    @property
    def token_lifetime(self) -> float:
        """Seconds a token stays valid and reusable; may be changed at any time."""
        return self._site.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        self._site.token_lifetime = seconds

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Start listening. After :meth:`stop`, comes back on the same port.

        Raises:
            RuntimeError: Already running.
            OSError: The port is taken.
        """
        await self._server.start()

    async def stop(self) -> None:
        """Stop listening and drop open connections; all state is kept.

        A later :meth:`start` listens on the same port again, so a test can
        simulate an outage. Does nothing when not running.
        """
        await self._server.stop()

    async def close(self) -> None:
        """Stop the server (same as :meth:`stop`; the name ``async with`` users expect)."""
        await self._server.stop()

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
        return self._server.running

    @property
    def port(self) -> int:
        """The port listened on (known once started; ``0`` before the first start)."""
        return self._server.port

    @property
    def base_url(self) -> str:
        """The site's base URL, e.g. ``"http://127.0.0.1:54321"``.

        Raises:
            RuntimeError: The emulator was never started, so it has no port yet.
        """
        return self._server.base_url

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
            enabled: ``False`` registers it disabled, which Sngine cannot tell
                from removed (see :attr:`EmulatedApp.enabled`).

        Raises:
            ValueError: The app_id is not decimal or is taken (as a number),
                or the redirect URL holds whitespace or control characters (it
                goes into a header).
        """
        secret = secret if secret is not None else _new_secret()
        return self._db.create_app(name, redirect_url, app_id, secret, enabled=enabled)

    def remove_app(self, app: EmulatedApp) -> None:
        """Delete *app*, as its owner can in Twinne's dashboard.

        Its app_id becomes unknown and every approval of it is deleted: its
        auth_keys and tokens answer "invalid auth_key" / "invalid access_token".
        Removing an app twice is harmless.
        """
        self._db.remove_app(app)

    def add_user(self, **fields: Any) -> EmulatedUser:
        """Create a user; fields not given get plausible generated values.

        Args:
            **fields: Wire fields (``user_name="jdoe"``, ``user_email=None``,
                ``user_birthdate="0000-00-00"``, ``user_verified="1"``...),
                values as MySQL gives them to PHP: strings or ``None``.
                ``user_id`` picks the id (a decimal string). Keys beyond
                :data:`USER_FIELDS` are sent too, as a newer Sngine might.
                ``user_gender`` is stored once for every version (``"male"``,
                ``"female"``, ``"other"``, an id from :meth:`add_gender`, or
                ``None``) and sent as the version sends it.

        Returns:
            The user; its :attr:`~EmulatedUser.username` signs in on the
            login page.

        Raises:
            ValueError: ``user_id`` or ``user_name`` is taken or invalid.
            TypeError: A known field that is neither a string nor ``None``.
        """
        return self._db.add_user(fields)

    def add_users(self, n: int) -> list[EmulatedUser]:
        """Create *n* users with generated fields; built for bulk (100,000 in about a second)."""
        return self._db.add_users(n)

    def update_user(self, user: EmulatedUser, **fields: Any) -> None:
        """Change some of a user's fields (see :meth:`add_user` for their form).

        Raises:
            ValueError: ``user_id`` given, or ``user_name`` empty or taken.
        """
        self._db.update_user(user, fields)

    def delete_user(self, user: EmulatedUser) -> None:
        """Delete a user: Twinne keeps their approvals, and answers ``[]`` to their tokens."""
        user.deleted = True
        self._db.forget_bodies(user)

    def get_user(self, user_id: int) -> EmulatedUser:
        """The user with this id (deleted ones included).

        Raises:
            KeyError: No such user.
        """
        return self._db.users[user_id]

    def add_gender(self, name: str) -> str:
        """Define a gender of the site's own (Sngine 4.x sends its *name*).

        Returns:
            Its id, the value to give as ``user_gender`` (2.x/3.x send that
            id as is).

        Raises:
            ValueError: *name* is empty or already defined.
        """
        return self._db.add_gender(name)

    @property
    def apps(self) -> Sequence[EmulatedApp]:
        """Every registered app, oldest first (disabled ones included)."""
        return tuple(self._db.apps.values())

    @property
    def users(self) -> Sequence[EmulatedUser]:
        """Every user, oldest first (a copy: costly with very many users)."""
        return tuple(self._db.users.values())

    @property
    def default_app(self) -> EmulatedApp:
        """The first app registered (the one the pytest fixtures and CLI set up).

        Raises:
            LookupError: No app is registered.
        """
        for app in self._db.apps.values():
            return app
        raise LookupError("no app is registered: call add_app() first")

    @property
    def default_user(self) -> EmulatedUser:
        """The first user created.

        Raises:
            LookupError: No user exists.
        """
        for user in self._db.users.values():
            return user
        raise LookupError("no user exists: call add_user() first")

    # -- approvals, keys and tokens -----------------------------------------

    def _registered(self, app: EmulatedApp) -> EmulatedApp:
        if not self._db.is_registered(app):
            raise ValueError(f"app {app.app_id!r} is not registered here")
        return app

    def approve(self, user: EmulatedUser, app: EmulatedApp) -> None:
        """Record that *user* approved *app*, without handing out a key.

        Raises:
            ValueError: *app* is not registered (or was removed).
        """
        self._db.connect(user, self._registered(app))

    def revoke(self, user: EmulatedUser, app: EmulatedApp) -> None:
        """*user* removes *app* in their settings: the approval, its key and token are deleted."""
        conn = self._db.connection(user, app)
        if conn is not None:
            self._db.disconnect(conn)

    def is_approved(self, user: EmulatedUser, app: EmulatedApp) -> bool:
        """Whether *user* has approved *app*."""
        return self._db.connection(user, app) is not None

    def authorize(self, user: EmulatedUser, app: EmulatedApp) -> str:
        """Approve *app* for *user* and return a fresh auth_key, as the Approve button does.

        Like Sngine, each (user, app) pair has one current key: a new one
        replaces any key handed out before and not yet exchanged.

        Raises:
            ValueError: *app* is not registered (or was removed).
        """
        return self._site.authorize(user, self._registered(app))

    def issue_token(self, user: EmulatedUser, app: EmulatedApp) -> str:
        """A valid access token for *user* and *app*, without the login round trip.

        Replaces the pair's previous token. Fast enough for 100,000 calls.

        Raises:
            ValueError: *app* is not registered (or was removed).
        """
        conn = self._db.connect(user, self._registered(app))
        token = _new_secret()
        self._db.set_token(conn, token, self._db.clock.now())
        return token

    def issue_tokens(self, n: int, app: EmulatedApp | None = None) -> list[str]:
        """Create *n* new users and a valid token for each (*app*: :attr:`default_app`).

        The quickest way to many tokens: 100,000 in about a second.
        """
        target = self._registered(app if app is not None else self.default_app)
        db = self._db
        now = db.clock.now()
        # One read from the OS for all the tokens, cut into 32-hex pieces.
        pool = secrets.token_hex(16 * n)
        tokens = [pool[32 * i : 32 * i + 32] for i in range(n)]
        for user, token in zip(db.add_users(n), tokens, strict=True):
            db.set_token(db.connect(user, target), token, now)
        return tokens

    def sign_in(self, user: EmulatedUser) -> dict[str, str]:
        """Open a login session for *user*, skipping the login form.

        Returns:
            The cookie to send (``{name: value}``), e.g. with
            ``session.cookie_jar.update_cookies(...)``.
        """
        return {SESSION_COOKIE: self._db.open_session(user)}

    @property
    def _connections(self) -> Mapping[tuple[int, str], Connection]:
        # The users_apps rows; tests/reliability measure the fast-mode cache through it.
        return self._db.connections

    # -- the clock and the site switch ---------------------------------------

    def now(self) -> float:
        """The emulator's time: the wall clock plus every :meth:`advance`."""
        return self._db.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward, e.g. past a token's lifetime.

        Raises:
            ValueError: *seconds* is negative.
        """
        self._db.clock.advance(seconds)

    def set_feature_enabled(
        self, enabled: bool, *, message: str = MESSAGES.FEATURE_DISABLED
    ) -> None:
        """Turn the site's developers module on or off, as Twinne's admin can.

        Args:
            enabled: ``False`` makes ``/api/authorize`` and
                ``/api/get_user_info`` answer *message* (after their
                parameters' presence check) and ``/api/oauth`` show it as a
                page; an unknown endpoint still answers "invalid parameters".
            message: The error text; newer Sngine says
                ``MESSAGES.DEVELOPERS_DISABLED``.
        """
        self._site.feature_message = None if enabled else message

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

        Faults are used oldest first; each matching request takes one. The
        kinds and their parameters are listed under :data:`FaultKind`
        (``"http_error"``, ``"html"``, ``"php_warning"``, ``"malformed_json"``,
        ``"oversized"``, ``"latency"``, ``"drop"``).

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
        self._server.inject(make_fault(kind, endpoint, params), count)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._server.clear_faults()

    @property
    def pending_faults(self) -> int:
        """How many requests queued faults will still hit."""
        return self._server.pending_faults

    # -- what the emulator saw ----------------------------------------------

    def count(self, endpoint: Endpoint | None = None) -> int:
        """How many requests reached *endpoint* (``None``: all), faults included.

        Works in fast mode too, where :attr:`requests` stays empty.
        """
        return self._server.count(endpoint)

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._server.in_flight

    @property
    def peak_concurrency(self) -> int:
        """The most requests in flight at once since the start or :meth:`reset_stats`."""
        return self._server.peak_concurrency

    async def wait_idle(self) -> None:
        """Wait until no request is in flight.

        A client that timed out has left, but the emulator may still be
        working on its request (a ``latency`` fault): wait for it before
        checking what that request did.
        """
        await self._server.wait_idle()

    def reset_stats(self) -> None:
        """Forget recorded requests, counts and the concurrency peak (not faults)."""
        self._server.reset_stats()
