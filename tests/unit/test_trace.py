"""What a site's aiohttp trace config is handed by the client's stand-in (no sockets)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import tracing
from multidict import CIMultiDict
from yarl import URL

from aiotwinne._trace import RedactingTraceConfig, redact_params

SECRET = "5ec2e75ec2e75ec2e75ec2e75ec2e7aa"
KEY = "a17a17a17a17a17a17a17a17a17a17bb"
URL_WITH_SECRETS = URL(
    f"https://twinne.eu/api/authorize?app_id=1&app_secret={SECRET}&auth_key={KEY}", encoded=True
)


def test_url_of_every_request_signal_is_masked() -> None:
    """url fields keep the path and parameter names, not the secret values."""
    headers: CIMultiDict[str] = CIMultiDict()
    kinds = [tracing.TraceRequestStartParams]
    # on_request_headers_sent is newer than the oldest aiohttp supported.
    kinds += [getattr(tracing, "TraceRequestHeadersSentParams", tracing.TraceRequestStartParams)]
    for kind in kinds:
        params = kind("POST", URL_WITH_SECRETS, headers)
        masked = redact_params(params)
        assert str(masked.url) == (
            "https://twinne.eu/api/authorize?app_id=1&app_secret=***&auth_key=***"
        )
        assert masked.headers is headers
        assert SECRET not in repr(masked)


def test_chunks_keep_their_size_not_their_bytes() -> None:
    """A body chunk (the exchange's form, its answer) becomes as many '*' bytes."""
    chunk = f"app_id=1&app_secret={SECRET}&auth_key={KEY}".encode()
    masked = redact_params(tracing.TraceRequestChunkSentParams("POST", URL_WITH_SECRETS, chunk))
    assert masked.chunk == b"*" * len(chunk)
    answer = b'{"access_token":"' + KEY.encode() + b'"}'
    received = redact_params(
        tracing.TraceResponseChunkReceivedParams("POST", URL_WITH_SECRETS, answer)
    )
    assert received.chunk == b"*" * len(answer)


def test_an_exception_naming_the_url_is_copied_with_its_text_masked() -> None:
    """aiohttp's ConnectionTimeoutError names the URL: its copy does not; the original stays."""
    original = aiohttp.ConnectionTimeoutError(f"Connection timeout to host {URL_WITH_SECRETS}")
    params = tracing.TraceRequestExceptionParams("POST", URL_WITH_SECRETS, CIMultiDict(), original)
    masked = redact_params(params).exception
    assert isinstance(masked, aiohttp.ConnectionTimeoutError)
    assert SECRET not in str(masked)
    assert KEY not in str(masked)
    assert "app_secret=***" in str(masked)
    assert SECRET in str(original)


def test_an_exception_without_secrets_is_passed_as_is() -> None:
    """Nothing to hide: the very exception aiohttp raised."""
    error = aiohttp.ServerDisconnectedError()
    params = tracing.TraceRequestExceptionParams("GET", URL_WITH_SECRETS, CIMultiDict(), error)
    assert redact_params(params).exception is error


def test_an_exception_whose_text_ignores_its_args_is_replaced() -> None:
    """A class that builds its text from attributes is replaced by a plain ClientError."""

    class Stubborn(aiohttp.ClientError):
        def __str__(self) -> str:
            return f"failed {URL_WITH_SECRETS}"

    params = tracing.TraceRequestExceptionParams(
        "GET", URL_WITH_SECRETS, CIMultiDict(), Stubborn()
    )
    masked = redact_params(params).exception
    assert type(masked) is aiohttp.ClientError
    assert SECRET not in str(masked)


def test_params_without_secrets_are_untouched() -> None:
    """DNS and connection signals carry a host or nothing: passed through."""
    params = tracing.TraceDnsResolveHostStartParams("twinne.eu")
    assert redact_params(params) is params
    empty = tracing.TraceConnectionCreateStartParams()
    assert redact_params(empty) is empty


def test_stand_in_uses_the_sites_context_and_freezes_it() -> None:
    """The stand-in builds the site's own context and freezes the site's signals with its own."""

    class Context:
        def __init__(self, trace_request_ctx: object = None) -> None:
            self.trace_request_ctx = trace_request_ctx

    inner = aiohttp.TraceConfig(trace_config_ctx_factory=Context)  # type: ignore[arg-type]
    stand_in = RedactingTraceConfig(inner)
    ctx = stand_in.trace_config_ctx("mine")
    assert isinstance(ctx, Context)
    assert ctx.trace_request_ctx == "mine"
    stand_in.freeze()
    assert inner.on_request_start.frozen
    with pytest.raises(RuntimeError):
        inner.on_request_start.append(lambda *a: None)
