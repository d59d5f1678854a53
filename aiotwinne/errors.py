"""The exception hierarchy.

Every failure the library reports is a :class:`TwinneError`. Errors hold plain
values (text, numbers, flags), never a live aiohttp object, and their ``str()``
and ``repr()`` are redacted: a logged traceback shows no secret.

Whose fault it is follows from the class:

* :class:`APIError` and its subclasses: Twinne understood the request and said no.
* :class:`TransportError`: the request did not get an answer (connect failure,
  timeout, reset).
* :class:`HTTPStatusError`: something answered with a non-2xx status (a proxy,
  a rate limit, a crashed PHP page).
* :class:`ProtocolError`: an answer arrived but is not what Twinne sends
  (HTML, malformed JSON, wrong shape, too large).
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "FeatureDisabledError",
    "HTTPStatusError",
    "InvalidAppError",
    "InvalidAuthKeyError",
    "InvalidSecretError",
    "InvalidTokenError",
    "MalformedTokenError",
    "ProtocolError",
    "TokenExpiredError",
    "TransportError",
    "TwinneError",
    "UserNotFoundError",
]


class TwinneError(Exception):
    """Base class of every error raised by aiotwinne.

    Attributes:
        message: A human-readable, redacted description.
        status: The HTTP status of the answer, or ``None`` when there was none.
        attempts: How many requests were made before giving up.
        auth_key_may_be_spent: ``True`` when the failed call was a token exchange
            whose request may have reached Twinne: the single-use auth_key must
            then be treated as gone and the user sent through a new login.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        auth_key_may_be_spent: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = attempts
        self.auth_key_may_be_spent = auth_key_may_be_spent

    def __str__(self) -> str:
        text = self.message
        if self.auth_key_may_be_spent:
            text += " (the auth_key may have been spent: start a new login)"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class APIError(TwinneError):
    """Twinne answered ``{"error": true, "message": ...}``.

    ``message`` is Twinne's own text. Messages the library does not know are
    reported as a plain :class:`APIError`.
    """


class InvalidAppError(APIError):
    """The app_id is missing, unknown, or the app is disabled."""


class InvalidSecretError(APIError):
    """The app_secret is missing or wrong."""


class InvalidAuthKeyError(APIError):
    """The auth_key is missing, unknown, or was already exchanged (keys are single use)."""


class InvalidTokenError(APIError):
    """The access token is missing or unknown to Twinne."""


class MalformedTokenError(InvalidTokenError):
    """A bulk input item that is not a usable token (empty, whitespace or control
    characters, or not a string). It was never sent: ``attempts`` is 0.

    Single calls raise :class:`ValueError` for such input instead; in a bulk
    fetch, per-item failures are values, so the item gets this error.
    """


class TokenExpiredError(InvalidTokenError):
    """The access token is past its lifetime, by our clock or by Twinne's answer.

    A new token needs a new login round trip: Twinne has no refresh token.
    """


class FeatureDisabledError(APIError):
    """The site's administrator turned the developers' apps feature off."""


class UserNotFoundError(APIError):
    """The token is valid but its user no longer exists (Twinne answers ``[]``)."""


class TransportError(TwinneError):
    """No answer: connection refused or reset, DNS failure, or a timeout.

    ``attempts`` says how many requests were tried; ``cause`` names the
    underlying error type (the original exception is not chained, because
    aiohttp's exceptions print full URLs, secrets included).

    Attributes:
        request_sent: ``False`` when the request provably never left: the
            connection never opened, or no pooled connection came free in
            time. ``True`` when it may have reached the server.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int = 1,
        auth_key_may_be_spent: bool = False,
        cause: str | None = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(message, attempts=attempts, auth_key_may_be_spent=auth_key_may_be_spent)
        self.cause = cause
        self.request_sent = request_sent


class HTTPStatusError(TwinneError):
    """A non-2xx answer (after retries where the call allows them).

    Attributes:
        retry_after: Seconds the server asked us to wait (``Retry-After``), if any.
        snippet: The start of the body, redacted, for diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        snippet: str = "",
        attempts: int = 1,
        auth_key_may_be_spent: bool = False,
    ) -> None:
        super().__init__(
            message,
            status=status,
            attempts=attempts,
            auth_key_may_be_spent=auth_key_may_be_spent,
        )
        self.retry_after = retry_after
        self.snippet = snippet


class ProtocolError(TwinneError):
    """An answer that is not what Twinne sends: HTML, malformed JSON, wrong shape, too large.

    Attributes:
        snippet: The start of the body, redacted, for diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        snippet: str = "",
        attempts: int = 1,
        auth_key_may_be_spent: bool = False,
    ) -> None:
        super().__init__(
            message,
            status=status,
            attempts=attempts,
            auth_key_may_be_spent=auth_key_may_be_spent,
        )
        self.snippet = snippet
