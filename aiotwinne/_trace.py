"""Trace configs that never see a secret: what ``TwinneClient(trace_configs=...)`` installs.

aiohttp's tracing hands each signal the request's URL, its body chunks, the
live response and any exception. For Twinne's API those hold secrets
(PROTOCOL.md, "Secrets travel in URLs"): the exchange carries ``app_secret``
and ``auth_key`` in its query string *and* its form body, its answer carries
the new access token, and ``get_user_info``'s query carries the token. A
site's trace config (OpenTelemetry's aiohttp instrumentation records
``params.url`` as a span attribute) would copy them into its spans and
metrics. So the client never gives aiohttp the site's trace configs: it gives
each one a stand-in, :class:`RedactingTraceConfig`, whose signals forward to
the site's with:

* ``url``: the secret query values replaced by ``***``
  (:func:`aiotwinne._redact.redact_url`);
* ``chunk`` (request body sent, response body received): the same number of
  bytes, every one replaced by ``*``: sizes stay right for metrics, content
  never leaves (a chunk may end in the middle of a secret, so masking it by
  pattern could let half of one through);
* ``response``: a :class:`RedactedResponse`: status, reason, headers,
  redacted URLs, no body;
* ``exception``: the same exception, copied, with its text redacted (aiohttp's
  ``ConnectionTimeoutError`` names the full URL);
* every other field (hosts, headers: ours carry no secret) as aiohttp sent it.

The site's ``trace_config_ctx`` factory is used, so per-request state
(an OpenTelemetry span) lives where the site's callbacks expect it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Final

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._redact import redact_text, redact_url

__all__ = ["RedactedResponse", "RedactingTraceConfig", "redact_params"]

#: Every signal of :class:`aiohttp.TraceConfig`, by attribute name.
_SIGNALS: Final = tuple(name for name in dir(aiohttp.TraceConfig) if name.startswith("on_"))


def _url(url: URL) -> URL:
    return URL(redact_url(str(url)), encoded=True)


class RedactedResponse:
    """What a trace callback sees of a response: its metadata, never its body or secrets.

    Attributes:
        method: The request's method.
        url: The request's URL with the secret query values masked.
        real_url: Same as :attr:`url` (no fragment is ever sent).
        status: The HTTP status.
        reason: The reason phrase.
        headers: The response headers.
        content_type: The ``Content-Type`` without parameters.
        content_length: The ``Content-Length``, if any.
        request_info: The request's method, masked URL and headers.
    """

    __slots__ = (
        "content_length",
        "content_type",
        "headers",
        "method",
        "real_url",
        "reason",
        "request_info",
        "status",
        "url",
    )

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.method: str = response.method
        self.url: URL = _url(response.url)
        self.real_url: URL = self.url
        self.status: int = response.status
        self.reason: str | None = response.reason
        self.headers: CIMultiDictProxy[str] = response.headers
        self.content_type: str = response.content_type
        self.content_length: int | None = response.content_length
        info = response.request_info
        self.request_info = aiohttp.RequestInfo(self.url, info.method, info.headers, self.url)

    def __repr__(self) -> str:
        return f"<RedactedResponse({self.url}) [{self.status} {self.reason}]>"


def _exception(exc: BaseException) -> BaseException:
    """A copy of *exc* whose text holds no secret (the original is left alone)."""
    text = str(exc)
    clean = redact_text(text)
    if clean == text:
        return exc
    try:
        masked = copy.copy(exc)
        masked.args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)
    except Exception:  # an exception class that cannot be copied
        return aiohttp.ClientError(clean)
    # Some classes build their text from attributes rather than args.
    return masked if redact_text(str(masked)) == str(masked) else aiohttp.ClientError(clean)


_FIELDS: Final[dict[str, Callable[[Any], Any]]] = {
    "url": _url,
    "chunk": lambda chunk: b"*" * len(chunk),
    "response": RedactedResponse,
    "exception": _exception,
}


def redact_params(params: Any) -> Any:
    """*params* (a frozen aiohttp ``Trace*Params``) with its secret-bearing fields replaced.

    aiohttp declares them with attrs (3.9 to 3.14) or dataclasses (newer).
    """
    if isinstance(params, type):
        return params
    if attrs.has(type(params)):
        names = [field.name for field in attrs.fields(type(params))]
        evolve: Callable[..., Any] = attrs.evolve
    elif dataclasses.is_dataclass(params):
        names = [field.name for field in dataclasses.fields(params)]
        evolve = dataclasses.replace
    else:
        return params
    changes = {name: _FIELDS[name](getattr(params, name)) for name in names if name in _FIELDS}
    return evolve(params, **changes) if changes else params


class RedactingTraceConfig(aiohttp.TraceConfig):
    """Forwards every aiohttp trace signal to *inner* with secrets masked (see the module).

    Args:
        inner: The site's trace config. It is frozen here (aiohttp freezes
            the configs a session is given; this one is never given one).
    """

    def __init__(self, inner: aiohttp.TraceConfig) -> None:
        super().__init__()
        self.inner = inner
        for name in _SIGNALS:
            target = getattr(inner, name)
            getattr(self, name).append(_forwarder(target))

    def trace_config_ctx(self, trace_request_ctx: Any = None) -> SimpleNamespace:
        """The site's own per-request context (its factory, its ``trace_request_ctx``)."""
        return self.inner.trace_config_ctx(trace_request_ctx)

    def freeze(self) -> None:
        """Freeze this config's signals and the site's."""
        super().freeze()
        self.inner.freeze()


def _forwarder(target: Any) -> Callable[..., Any]:
    async def forward(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        if len(target):
            await target.send(session, ctx, redact_params(params))

    return forward
