"""Fault injection: the ways a real Twinne (or what stands in front of it) misbehaves.

A :class:`Fault` is queued with :meth:`TwinneEmulator.inject` and replaces the
answer of the next matching requests. Each kind mirrors something PROTOCOL.md
("Errors") says happens in the wild. Faults that carry the real answer
(``php_warning``, ``oversized``) and those marked ``after_processing`` let the
request take effect first, exactly as a PHP page that crashed while printing
its output would: a token exchange then spends its auth_key.
"""

from __future__ import annotations

import http
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from ._model import Answer, Endpoint

__all__ = ["Answer", "Fault", "FaultKind", "make_fault", "render_fault"]

#: The kinds of fault :meth:`TwinneEmulator.inject` understands, and their parameters:
#:
#: * ``"http_error"``: an HTML error page with ``status`` (default 500;
#:   502, 503, 504, 429...) and an optional ``retry_after`` (seconds, or
#:   an HTTP date as a string). ``after_processing=True`` lets the
#:   request take effect first (default ``False``: a proxy answered).
#: * ``"html"``: a PHP/DB error page with status 200.
#:   ``after_processing`` as above.
#: * ``"php_warning"``: the real answer with a PHP warning printed
#:   before it (``text=`` to choose the warning).
#: * ``"malformed_json"``: the real answer cut in half
#:   (``after_processing``, default ``True``).
#: * ``"oversized"``: the real answer padded with spaces to ``size``
#:   bytes (default 2 MiB); ``chunked=True`` sends it without a
#:   Content-Length.
#: * ``"latency"``: wait ``delay`` seconds (real time), then answer
#:   normally. The request takes effect even if the client gave up.
#: * ``"drop"``: close the connection without an answer, or after
#:   ``partial_headers=True`` half a status line and header. With
#:   ``after_processing=True`` (the default) the request took effect
#:   first: a dropped token exchange has spent its auth_key.
FaultKind = Literal[
    "http_error", "html", "php_warning", "malformed_json", "oversized", "latency", "drop"
]

_MiB: Final = 1024 * 1024
_DEFAULT_WARNING: Final = (
    '<br />\n<b>Warning</b>:  Undefined array key "user_gender" in '
    "<b>/var/www/html/includes/class-user.php</b> on line <b>3154</b><br />\n"
)
_HTML_ERROR_PAGE: Final = (
    "<!DOCTYPE html>\n<html><head><title>Error</title></head><body>"
    "<h1>Oops! Something went wrong</h1>"
    "<p>DB Error: Too many connections</p></body></html>\n"
)
_STATUS_PAGE: Final = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)

# kind -> {parameter: default}; a parameter not listed is a caller's mistake.
_PARAMS: Final[Mapping[str, Mapping[str, Any]]] = {
    "http_error": {"status": 500, "retry_after": None, "after_processing": False},
    "html": {"after_processing": False},
    "php_warning": {"text": _DEFAULT_WARNING},
    "malformed_json": {"after_processing": True},
    "oversized": {"size": 2 * _MiB, "chunked": False},
    "latency": {"delay": 1.0},
    "drop": {"after_processing": True, "partial_headers": False},
}


@attrs.frozen
class Fault:
    """One queued fault. Built by :func:`make_fault`; see :meth:`TwinneEmulator.inject`.

    Attributes:
        kind: What goes wrong.
        endpoint: Which requests it hits (``None``: any).
        params: The kind's parameters, defaults filled in.
    """

    kind: FaultKind
    endpoint: Endpoint | None
    params: Mapping[str, Any]

    @property
    def after_processing(self) -> bool:
        """Whether the request takes effect before the fault answers."""
        if self.kind in ("php_warning", "oversized", "latency"):
            return True
        return bool(self.params["after_processing"])


def make_fault(kind: str, endpoint: Endpoint | None, params: Mapping[str, Any]) -> Fault:
    """Validate a fault request and fill in its defaults.

    Raises:
        ValueError: Unknown kind, or a parameter out of range.
        TypeError: A parameter the kind does not take.
    """
    defaults = _PARAMS.get(kind)
    if defaults is None:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_PARAMS)}")
    unknown = set(params) - set(defaults)
    if unknown:
        raise TypeError(f"fault {kind!r} takes no parameter {sorted(unknown)}")
    merged = {**defaults, **params}
    if kind == "http_error" and not 400 <= int(merged["status"]) <= 599:
        raise ValueError("http_error status must be 4xx or 5xx")
    if kind == "oversized" and int(merged["size"]) <= 0:
        raise ValueError("oversized size must be positive")
    if kind == "latency" and float(merged["delay"]) < 0:
        raise ValueError("latency delay must not be negative")
    return Fault(kind=kind, endpoint=endpoint, params=merged)  # type: ignore[arg-type]


def render_fault(fault: Fault, answer: Answer | None) -> Answer:
    """The answer a fault sends instead of *answer* (``None``: not processed).

    ``drop`` and ``latency`` are not rendered here: they act on the connection
    and the timing, not on the bytes.
    """
    params = fault.params
    if fault.kind == "http_error":
        status = int(params["status"])
        headers = {}
        if params["retry_after"] is not None:
            retry_after = params["retry_after"]
            # Seconds are sent as an integer; a string (an HTTP date) as given.
            headers["Retry-After"] = (
                retry_after if isinstance(retry_after, str) else str(round(retry_after))
            )
        return Answer(status, _status_page(status), "text/html", headers)
    if fault.kind == "html":
        return Answer(200, _HTML_ERROR_PAGE.encode(), "text/html")
    if fault.kind == "malformed_json":
        # Output cut short mid-document: never valid JSON.
        body = answer.body if answer is not None else b'{"error":true,"message":"Bad Request"}'
        return Answer(200, body[: max(1, len(body) // 2)])
    if answer is None:  # pragma: no cover - the kinds below always process first
        raise AssertionError(f"fault {fault.kind!r} needs the real answer")
    if fault.kind == "php_warning":
        # PHP prints warnings into the body and Sngine then labels it text/html.
        return attrs.evolve(
            answer, body=str(params["text"]).encode() + answer.body, content_type="text/html"
        )
    if fault.kind == "oversized":
        # The real answer padded with whitespace: still valid JSON, so only a
        # size cap makes a client refuse it.
        size = int(params["size"])
        return attrs.evolve(answer, body=answer.body + b" " * max(0, size - len(answer.body)))
    raise ValueError(f"fault {fault.kind!r} is not rendered as a body")  # pragma: no cover


def _status_page(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _STATUS_PAGE.format(code=status, phrase=phrase).encode()
