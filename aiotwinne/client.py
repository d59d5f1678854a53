"""TwinneClient: how requests are sent.

The client owns one pooled :class:`aiohttp.ClientSession` (or borrows the
caller's), applies timeouts and retries, and hands every answer to
:mod:`aiotwinne._protocol`, which decides what it means. Nothing here parses
Twinne's payloads. How the client's own session is built (pool, proxy, TLS,
tracing) lives in :mod:`aiotwinne._session`.

Why this module is long: it is one class whose public methods carry their whole
contracts in their docstrings (``fetch_profiles`` alone is seventy lines), and
the send path (``_fetch``, ``_backoff``, ``_attempt``) belongs beside the
session and policy it drives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import ssl as ssl_module
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from types import TracebackType
from typing import Final, NoReturn

import aiohttp
import attrs
import stamina
from yarl import URL

from . import _bulk, _protocol
from ._redact import redact_text, redact_url, scrub
from ._session import DEFAULT_USER_AGENT, WAITING, Transport, open_session
from .errors import (
    HTTPStatusError,
    TokenExpiredError,
    TransportError,
    TwinneError,
)
from .models import AccessToken, ProfileResult, UserInfo

__all__ = ["DEFAULT_USER_AGENT", "RetryPolicy", "TwinneClient"]

_log = logging.getLogger("aiotwinne")
# A library prints nothing unless the application configured logging. Without a
# handler anywhere, Python's last-resort handler would print our warnings, and
# stamina's "stamina.retry_scheduled" at every retry, on stderr. A NullHandler
# counts as one for that rule only: an application that configures logging
# still gets every record (propagation), and stamina's hooks stay untouched.
_log.addHandler(logging.NullHandler())
logging.getLogger("stamina").addHandler(logging.NullHandler())

_UTC = dt.timezone.utc
DEFAULT_MAX_BODY_SIZE: Final = 1024 * 1024
_FORM_HEADERS: Final = {"Content-Type": _protocol.FORM_CONTENT_TYPE}


@attrs.frozen
class RetryPolicy:
    """How idempotent calls (``get_user_info``) are retried.

    Connection errors, timeouts and HTTP 429/502/503/504 are retried with
    jittered exponential backoff; a ``Retry-After`` header replaces the backoff
    (capped by *retry_after_max*). Retrying stops at *attempts* or when the
    *deadline* would be passed, whichever comes first. The token exchange is
    never retried once its request may have left (its auth_key is single use);
    it follows only *attempts* and *deadline*, for connections that never opened.

    Attributes:
        attempts: Total attempts per call, the first included (1 = no retries).
        deadline: Seconds one call may take, all attempts and waits included.
        wait_initial: First backoff, in seconds.
        wait_max: Largest backoff, in seconds.
        wait_jitter: Random seconds (0 to this) added to each backoff.
        retry_after_max: Cap on a server's ``Retry-After``; a longer demand
            than the time left before the deadline ends the retries at once.
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    deadline: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    wait_initial: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    wait_max: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    wait_jitter: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    retry_after_max: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))

    @classmethod
    def no_wait(cls, attempts: int = 4, deadline: float = 30.0) -> RetryPolicy:
        """A policy that retries as usual but never sleeps: for tests."""
        return cls(
            attempts=attempts,
            deadline=deadline,
            wait_initial=0.0,
            wait_max=0.0,
            wait_jitter=0.0,
            retry_after_max=0.0,
        )

    @classmethod
    def none(cls) -> RetryPolicy:
        """A single attempt per call."""
        return cls(attempts=1)


class TwinneClient:
    """Async client for Twinne's "Log in With" API.

    Create one per application and share it: all calls go through one
    connection pool. Use it as an async context manager, or call
    :meth:`close` when done.

    Example::

        async with TwinneClient(app_id, app_secret) as twinne:
            print(twinne.login_url())            # send the browser here
            token = await twinne.exchange(auth_key)  # from the callback's query
            user = await twinne.get_user_info(token)

    Args:
        app_id: The app's id from Twinne's developer dashboard.
        app_secret: The app's secret. Never logged, raised or shown in ``repr()``.
        base_url: The Sngine site (Twinne by default).
        session: An :class:`aiohttp.ClientSession` to borrow. It is used as is
            and never closed by the client. Without one, the client creates its
            own inside the running loop on first use and closes it in :meth:`close`.
        timeout: Per-attempt timeout: seconds, or an :class:`aiohttp.ClientTimeout`.
        retry: The retry policy for idempotent calls (see :class:`RetryPolicy`).
        limit: Most connections open at once in the client's own pool.
        limit_per_host: Most connections to one host (0: no separate limit).
        token_lifetime: Seconds a token is valid after the exchange (Twinne: 3600).
        leeway: Seconds before its expiry from which a token counts as expired.
        max_body_size: Largest answer read, in bytes; larger ones are refused.
        allow_insecure: Allow a plain ``http://`` base URL to a non-loopback host.
        proxy: A forward proxy for every call (``http://host:port``; aiohttp
            tunnels ``https://`` calls through it with ``CONNECT``, so the
            proxy sees the host only; a plain ``http://`` call, loopback
            only, is sent to it in full, secrets included).
        ssl: ``True`` (the default: verify certificates against the system's
            CAs), an :class:`ssl.SSLContext` (your own CAs, client
            certificates), or ``False`` to skip verification (tests only).
        trust_env: Read proxies from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``
            and credentials from ``~/.netrc``, as aiohttp's ``trust_env`` does.
        user_agent: The ``User-Agent`` header (default ``aiotwinne/<version>``).
        trace_configs: aiohttp trace configs (OpenTelemetry's aiohttp
            instrumentation, metrics of your own). Each sees every request,
            with the secrets masked: ``***`` in URLs, body chunks as ``*``
            bytes of the same length, the response as a
            :class:`~aiotwinne._trace.RedactedResponse` (no body), exceptions
            with their text redacted (see :mod:`aiotwinne._trace`).

        The five transport options apply to the session the client owns; with
        a borrowed *session* they raise ``ValueError``: configure that session
        yourself.

    Raises:
        ValueError: An empty or malformed app_id/app_secret, an unusable base
            URL, or transport options given with a borrowed session.
    """

    def __init__(
        self,
        app_id: str | int,
        app_secret: str,
        *,
        base_url: str = _protocol.DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout: float | aiohttp.ClientTimeout = 10.0,
        retry: RetryPolicy | None = None,
        limit: int = 100,
        limit_per_host: int = 0,
        token_lifetime: float = 3600.0,
        leeway: float = 30.0,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        allow_insecure: bool = False,
        proxy: str | URL | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        trust_env: bool = False,
        user_agent: str | None = None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None = None,
    ) -> None:
        self._app_id = _protocol.check_identifier("app_id", app_id)
        self._app_secret = _protocol.check_identifier("app_secret", app_secret)
        self._base_url = _protocol.check_base_url(base_url, allow_insecure=allow_insecure)
        if token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        if max_body_size <= 0:
            raise ValueError("max_body_size must be positive")
        self._timeout = (
            timeout
            if isinstance(timeout, aiohttp.ClientTimeout)
            else aiohttp.ClientTimeout(total=timeout)
        )
        self._retry = retry or RetryPolicy()
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._token_lifetime = token_lifetime
        self._leeway = leeway
        self._max_body_size = max_body_size
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._transport = Transport.build(
            proxy=proxy,
            ssl=ssl,
            trust_env=trust_env,
            user_agent=user_agent,
            trace_configs=trace_configs,
            borrowed=session is not None,
        )

    # -- configuration ------------------------------------------------------

    @property
    def app_id(self) -> str:
        """The app's id (not a secret)."""
        return self._app_id

    @property
    def base_url(self) -> str:
        """The site's base URL, without a trailing slash."""
        return self._base_url

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._retry

    @property
    def leeway(self) -> float:
        """Seconds before expiry from which a token counts as expired."""
        return self._leeway

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"TwinneClient(app_id={self._app_id!r}, base_url={self._base_url!r})"

    # -- lifetime -----------------------------------------------------------

    async def __aenter__(self) -> TwinneClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client's own session. A borrowed session is left open."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("TwinneClient is closed")
        if self._session is None:
            self._session = open_session(
                self._transport,
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                timeout=self._timeout,
            )
        return self._session

    # -- the three calls ----------------------------------------------------

    def login_url(self) -> str:
        """The link that starts a login: send the browser there.

        Twinne takes no ``redirect_uri`` and no ``state``: after approval it
        sends the user to the redirect URL registered for the app, with
        ``?auth_key=...`` appended.
        """
        return _protocol.login_url(self._base_url, self._app_id)

    async def exchange(self, auth_key: str) -> AccessToken:
        """Exchange a single-use auth_key for an access token.

        One ``POST /api/authorize`` carries the parameters in its query string
        and in a form body, so every Sngine version reads them (2.x/3.x the
        query, 4.x the body) with no setting and no probe. The request is
        retried only when the connection never opened. Any
        other failure raises at once, with ``auth_key_may_be_spent`` set when
        the request may have reached Twinne: the user then needs a new login.

        Args:
            auth_key: The ``auth_key`` from the callback's query string.

        Returns:
            The token, valid for ``token_lifetime`` seconds from now.

        Raises:
            ValueError: The auth_key is empty or holds whitespace/control characters.
            InvalidAuthKeyError: Unknown or already used key.
            InvalidSecretError: Wrong app_secret.
            InvalidAppError: Unknown or disabled app.
            TransportError: No answer.
            HTTPStatusError: Non-2xx answer.
            ProtocolError: An answer that is not Twinne's.
        """
        key = _protocol.check_identifier("auth_key", auth_key)
        url, form = _protocol.authorize_request(
            self._base_url, self._app_id, self._app_secret, key
        )
        issued_at = dt.datetime.now(_UTC)
        try:
            status, headers, body, attempts = await self._fetch(
                url, (self._app_secret, key), form=form
            )
            try:
                return _protocol.parse_exchange(
                    status, headers, body, now=issued_at, lifetime=self._token_lifetime
                )
            except TwinneError as exc:
                exc.attempts = attempts
                raise
        except TwinneError as exc:
            exc.auth_key_may_be_spent = _protocol.auth_key_may_be_spent(exc)
            error = exc
        _raise_unchained(scrub(error, (self._app_secret, key)))

    async def get_user_info(self, token: AccessToken | str) -> UserInfo:
        """Fetch the profile of the user a token belongs to.

        An :class:`AccessToken` past its local expiry (minus ``leeway``) raises
        :class:`TokenExpiredError` without a request; Twinne's own "expired
        access_token" answer raises the same error.

        Args:
            token: An :class:`AccessToken` or the token's string value.

        Raises:
            TokenExpiredError: Expired, locally or by Twinne's word.
            InvalidTokenError: Unknown token.
            UserNotFoundError: The user no longer exists.
            TransportError: No answer after retries.
            HTTPStatusError: Non-2xx answer after retries.
            ProtocolError: An answer that is not Twinne's.
            ValueError: An empty or malformed token string.
        """
        if isinstance(token, AccessToken):
            if token.is_expired(self._leeway):
                raise TokenExpiredError(
                    f"access token {token.fingerprint} expired at "
                    f"{token.expires_at.isoformat()} (local clock)",
                    status=None,
                )
            value = token.value
        else:
            value = _protocol.check_identifier("access_token", token)
        url = _protocol.user_info_url(self._base_url, value)
        try:
            status, headers, body, attempts = await self._fetch(url, (self._app_secret, value))
        except TwinneError as exc:
            error = exc
        else:
            try:
                return _protocol.parse_user_info(status, headers, body, base_url=self._base_url)
            except TwinneError as exc:
                exc.attempts = attempts
                error = exc
        _raise_unchained(scrub(error, (self._app_secret, value)))

    # -- bulk ---------------------------------------------------------------

    def fetch_profiles(
        self,
        tokens: Iterable[AccessToken | str] | AsyncIterable[AccessToken | str],
        *,
        concurrency: int = 32,
        ordered: bool = False,
        rate: float | None = None,
    ) -> AsyncGenerator[ProfileResult, None]:
        """Fetch the profile behind each token, yielding exactly one result per input.

        Each fetch is :meth:`get_user_info`: this client's retry policy and
        connection pool apply.

        The input is read lazily, as workers become free; at most *concurrency*
        requests are in flight at any time. Each result carries the input item
        (``result.token``), its position (``result.index``) and either the profile
        (``result.user``) or the failure (``result.error``). Per-item failures are
        values, never exceptions that stop the run: expired tokens give
        :class:`~aiotwinne.TokenExpiredError`, unknown ones
        :class:`~aiotwinne.InvalidTokenError`, deleted users
        :class:`~aiotwinne.UserNotFoundError`, and a Twinne that could not be reached
        after the client's retries :class:`~aiotwinne.TransportError` (or
        :class:`~aiotwinne.HTTPStatusError` / :class:`~aiotwinne.ProtocolError`).
        Only an :class:`~aiotwinne.AccessToken` or a well-formed string is sent.
        Any other item (an empty string, one holding whitespace or control
        characters, or anything that is not a string: an ``int``, ``bytes``,
        ``None``) is never sent and takes no rate-limit slot: its result holds a
        :class:`~aiotwinne.MalformedTokenError` (an ``InvalidTokenError`` with
        ``attempts == 0``).

        Closing the iterator (``aclose()``, leaving an ``async with
        contextlib.aclosing(...)`` block) or cancelling the task that iterates it
        cancels the requests in flight and waits for them to end: no task is left
        behind. Breaking out of a bare ``async for`` leaves the clean-up to the
        garbage collector, as with any async generator, so prefer ``aclosing``.

        Example::

            async for result in twinne.fetch_profiles(tokens, concurrency=32):
                if result.ok:
                    print(result.index, result.user.username)
                else:
                    print(result.index, type(result.error).__name__)

        Args:
            tokens: :class:`~aiotwinne.AccessToken` objects or token strings, as
                any iterable or async iterable. It is read once, lazily, and not
                closed by this function.
            concurrency: The most requests in flight at once (a hard bound).
            ordered: Yield results in input order. Results that complete early wait
                in a reorder window of ``2 * concurrency`` inputs; when the window
                is full, no more input is read until the oldest outstanding item
                completes. Unordered (the default) yields results as they complete.
            rate: The most fetches started per second, for being polite to Twinne;
                ``None`` for no limit. Fetches are spaced evenly (a leaky bucket
                without burst). Retries inside one fetch follow the client's
                retry policy and are not counted.

        Returns:
            An async generator of :class:`~aiotwinne.ProfileResult`, one per input
            (it has ``aclose()``).

        Raises:
            ValueError: *concurrency* is below 1 or *rate* is not positive (at call time).
            TypeError: *tokens* is a single string (at call time).
            Exception: Whatever the input iterable raises while being read, and any
                exception from the client that is not a :class:`~aiotwinne.TwinneError`
                (such as ``RuntimeError`` for a closed client, or a ``ValueError``
                or ``TypeError`` from a bug): the caller's or the library's bug, so
                they propagate from the iterator once the requests in flight are
                cancelled; results not yet yielded are discarded.
        """
        return _bulk.stream_profiles(
            self.get_user_info, tokens, concurrency=concurrency, ordered=ordered, rate=rate
        )

    async def gather_profiles(
        self,
        tokens: Iterable[AccessToken | str] | AsyncIterable[AccessToken | str],
        *,
        concurrency: int = 32,
        rate: float | None = None,
    ) -> list[ProfileResult]:
        """Fetch many profiles and return the results as a list in input order."""
        return [
            result
            async for result in self.fetch_profiles(
                tokens, concurrency=concurrency, ordered=True, rate=rate
            )
        ]

    # -- sending ------------------------------------------------------------

    async def _fetch(
        self, url: str, secrets: tuple[str, ...], *, form: bytes | None = None
    ) -> tuple[int, Mapping[str, str], bytes, int]:
        """Send one call under the retry policy; return (status, headers, body, attempts).

        Without *form* it is an idempotent GET. With *form* it is the token
        exchange: a POST with that body, which spends a single-use key, so it
        is retried only when its connection never opened.

        stamina runs the retry loop: it counts attempts, sleeps (and so obeys
        ``stamina.set_testing()``) and reports each retry to its instrumentation.
        What is ours, and why:

        * The first attempt runs before any retry machinery: it is the hot path,
          and building a ``stamina.retry_context`` costs about 67 µs, more than
          the whole request costs the client (benchmarks/, "stub session").
        * A first failure is replayed as stamina's attempt 1, so stamina's count
          and instrumentation see every attempt and its hook picks the first wait.
        * The wait comes from our ``on=`` hook (:meth:`_backoff`), not from
          stamina's own backoff: the hook must know the wait to keep it inside
          our deadline, and stamina returns no wait a hook could inspect.
        * ``timeout=None``: stamina's timeout checks the elapsed time after an
          attempt and may still sleep past it; :meth:`_backoff` stops as soon as
          the next wait would not fit, so the caller gets the real failure in time.
        """
        spends_key = form is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.deadline
        try:
            status, headers, body = await self._attempt(url, secrets, deadline, 1, form)
        except TwinneError as exc:
            failure = exc
        else:
            if status not in _protocol.RETRYABLE_STATUSES or spends_key:
                return status, headers, body, 1
            failure = _protocol.status_error(status, headers, body)
        if self._retry.attempts == 1 or not self._should_retry(failure, spends_key):
            raise failure

        pending: TwinneError | None = failure
        policy = self._retry
        async for attempt in stamina.retry_context(
            on=lambda exc: self._backoff(exc, deadline, spends_key, url),
            attempts=policy.attempts,
            timeout=None,
        ):
            with attempt:
                if pending is not None:
                    replayed, pending = pending, None
                    raise replayed
                status, headers, body = await self._attempt(
                    url, secrets, deadline, attempt.num, form
                )
                if status in _protocol.RETRYABLE_STATUSES and not spends_key:
                    raise _protocol.status_error(status, headers, body, attempts=attempt.num)
                return status, headers, body, attempt.num
        raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover

    def _should_retry(self, exc: BaseException, spends_key: bool) -> bool:
        if not isinstance(exc, TwinneError):
            return False
        if spends_key:
            # Only a request that provably never left did not spend the key.
            return isinstance(exc, TransportError) and not exc.request_sent
        if isinstance(exc, TransportError):
            return True
        return isinstance(exc, HTTPStatusError) and exc.status in _protocol.RETRYABLE_STATUSES

    def _backoff(
        self, exc: Exception, deadline: float, spends_key: bool, url: str
    ) -> bool | float:
        """stamina's ``on=`` hook: ``False`` to stop, else the seconds to wait.

        The wait is Retry-After (capped) when the server gave one, else jittered
        exponential backoff. A wait that would end past the deadline stops the
        retries at once, so the caller gets the last real failure in time.
        """
        if not self._should_retry(exc, spends_key):
            return False
        assert isinstance(exc, TwinneError)  # narrowed by _should_retry, for mypy
        policy = self._retry
        remaining = deadline - asyncio.get_running_loop().time()
        if isinstance(exc, HTTPStatusError) and exc.retry_after is not None:
            if exc.retry_after > remaining:
                return False  # the server asks for longer than we have left
            wait = min(exc.retry_after, policy.retry_after_max)
        else:
            exponential = policy.wait_initial * 2 ** max(exc.attempts - 1, 0)
            jitter = random.uniform(0, policy.wait_jitter)  # noqa: S311 - jitter, not a secret
            wait = min(policy.wait_max, exponential + jitter)
        if wait >= remaining:
            return False
        if _log.isEnabledFor(logging.DEBUG) and exc.attempts < policy.attempts:
            _log.debug(
                "retrying %s %s after attempt %d of %d failed: %s",
                "POST" if spends_key else "GET",
                redact_url(url),
                exc.attempts,
                self._retry.attempts,
                exc,
            )
        return wait

    async def _attempt(
        self,
        url: str,
        secrets: tuple[str, ...],
        deadline: float,
        number: int,
        form: bytes | None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request: a GET, or a form POST when *form* is given (the exchange).

        aiohttp failures become a redacted :class:`TransportError`.

        The aiohttp exception is not chained: its text holds the full URL with
        the secrets in the query. The error is raised outside the ``except``
        block so that it carries no ``__context__`` either.
        """
        session = self._get_session()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TransportError(
                f"deadline of {self._retry.deadline:g}s exceeded before attempt {number}",
                attempts=number - 1,
                cause="deadline",
                request_sent=False,
            )
        timeout = self._timeout
        if timeout.total is None or timeout.total > remaining:
            timeout = attrs.evolve(timeout, total=remaining)
        error: TransportError
        waiting = [False]  # set by the client's own pool only: a borrowed one never says
        reset = WAITING.set(waiting)
        try:
            # Awaited rather than entered with "async with": the context manager's
            # two extra coroutines cost a real call about 2 µs; release() is its exit.
            resp = await session.request(
                "GET" if form is None else "POST",
                URL(url, encoded=True),
                data=form,
                headers=None if form is None else _FORM_HEADERS,
                allow_redirects=False,
                timeout=timeout,
            )
            try:
                status = resp.status
                if 300 <= status < 400:
                    # Never follow: the query carries secrets to wherever it points.
                    location = _redirect_host(resp.headers.get("Location", ""))
                    raise HTTPStatusError(
                        f"Twinne answered HTTP {status}, a redirect to {location}; "
                        "redirects from the API are not followed",
                        status=status,
                        attempts=number,
                    )
                body = await self._read_body(resp)
            finally:
                resp.release()
            return status, resp.headers, body
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection never opened: the request provably did not leave.
            error = self._transport_error(
                "could not connect to Twinne", exc, secrets, number, sent=False
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if waiting[0] and isinstance(exc, asyncio.TimeoutError):
                # Timed out still waiting for a connection from a full pool: nothing was sent.
                error = self._transport_error(
                    "no free connection to Twinne", exc, secrets, number, sent=False
                )
            else:
                error = self._transport_error(
                    "no complete answer from Twinne", exc, secrets, number, sent=True
                )
        finally:
            WAITING.reset(reset)
        raise error

    def _transport_error(
        self, what: str, exc: BaseException, secrets: tuple[str, ...], number: int, *, sent: bool
    ) -> TransportError:
        kind = type(exc).__name__
        detail = redact_text(str(exc), secrets)
        text = f"{what}: {kind}" + (f": {detail}" if detail else "")
        if number > 1:
            text += f" (after {number} attempts)"
        return TransportError(text, attempts=number, cause=kind, request_sent=sent)

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self._max_body_size
        length = resp.content_length
        if length is not None and length > limit:
            raise _protocol.too_large(limit, status=resp.status)
        if length is not None and "Content-Encoding" not in resp.headers:
            return await resp.read()
        # Unknown length, or compressed (Content-Length counts the compressed
        # bytes): read the decoded stream through the cap.
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise _protocol.too_large(limit, status=resp.status)
            chunks.append(chunk)
        return b"".join(chunks)


def _raise_unchained(error: TwinneError) -> NoReturn:
    """Raise *error* with no ``__context__``: no aiohttp error (its text has the URL) behind it.

    ``raise`` links whatever exception is being handled, and under the pure-Python
    asyncio Task (the one pytest-asyncio runs on Python 3.10) that is still the
    aiohttp error the task was woken with, after our own ``except`` has ended.
    ``from None`` would only hide it from tracebacks.
    """
    try:
        raise error
    finally:
        error.__context__ = None


def _redirect_host(location: str) -> str:
    """The host a redirect points to, for the error message; never the query."""
    try:
        return URL(location).host or "another page"
    except ValueError:  # a Location that is not even a URL
        return "another page"
