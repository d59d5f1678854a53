"""The session the client owns: its pool, its transport options, no hidden resend.

:class:`~aiotwinne.TwinneClient` creates one :class:`aiohttp.ClientSession`
lazily and keeps it; everything about how that session is built lives here,
apart from the client's send path: the connection pool that notes when an
attempt is still waiting for a connection (:data:`WAITING`), the transport
options (proxy, TLS, ``trust_env``, ``User-Agent``, trace configs wrapped so
they never see a secret) and aiohttp's hidden resend turned off.
"""

from __future__ import annotations

import contextvars
import importlib.metadata
import inspect
import ssl as ssl_module
from collections.abc import Iterable
from typing import Any, Final

import aiohttp
import attrs
from yarl import URL

from ._trace import RedactingTraceConfig

__all__ = ["DEFAULT_USER_AGENT", "WAITING", "Transport", "open_session"]

# The current attempt's "still waiting for a connection" flag, kept by _Connector.
# An attempt that timed out while it was set (queued behind a full pool, or the
# connect itself slow) provably never left, so it spent no auth_key.
WAITING: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "aiotwinne_waiting", default=None
)


class _Connector(aiohttp.TCPConnector):
    """The pool of the client's own session: notes while an attempt waits for a connection.

    ``connect`` is documented on ``BaseConnector``; overriding it is the cheapest
    way to know whether a timed-out exchange ever left. aiohttp's public tracing
    (``on_connection_queued_start``) could tell the same, but it costs every
    request a Trace object and several awaited signals. A unit test pins the
    method's signature, so a new aiohttp that changes it fails our tests first.
    """

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[aiohttp.tracing.Trace],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.connector.Connection:
        flag = WAITING.get()
        if flag is not None:
            flag[0] = True
        connection = await super().connect(req, traces, timeout)
        if flag is not None:
            flag[0] = False
        return connection


def _version() -> str:
    # The package's __init__ imports this module, so its __version__ is not there yet.
    try:
        return importlib.metadata.version("aiotwinne")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "0"


_VERSION: Final = _version()
#: The ``User-Agent`` of the client's own session unless told otherwise.
DEFAULT_USER_AGENT: Final = f"aiotwinne/{_VERSION}"
# aiohttp 3.11 added ClientSession(proxy=...); before it, a request class sets ours.
_SESSION_PROXY = "proxy" in inspect.signature(aiohttp.ClientSession).parameters


@attrs.frozen
class Transport:
    """The transport options of the session the client owns."""

    proxy: URL | None
    ssl: ssl_module.SSLContext | bool
    trust_env: bool
    user_agent: str
    trace_configs: tuple[aiohttp.TraceConfig, ...]

    @classmethod
    def build(
        cls,
        *,
        proxy: str | URL | None,
        ssl: ssl_module.SSLContext | bool,
        trust_env: bool,
        user_agent: str | None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None,
        borrowed: bool,
    ) -> Transport:
        configs = tuple(trace_configs or ())
        if borrowed and (
            proxy is not None or ssl is not True or trust_env or user_agent or configs
        ):
            raise ValueError(
                "proxy, ssl, trust_env, user_agent and trace_configs apply to the session "
                "the client owns; with a borrowed session, set them on that session"
            )
        if not isinstance(ssl, (bool, ssl_module.SSLContext)):
            raise TypeError("ssl must be True, False or an ssl.SSLContext")
        for config in configs:
            if not isinstance(config, aiohttp.TraceConfig):
                raise TypeError(f"trace_configs holds {type(config).__name__}, not a TraceConfig")
        proxy_url = URL(proxy) if isinstance(proxy, str) else proxy
        if proxy_url is not None and (
            proxy_url.scheme not in ("http", "https") or not proxy_url.host
        ):
            raise ValueError("proxy must be an absolute http:// or https:// URL")
        if user_agent is not None and (
            not user_agent.strip() or not user_agent.isascii() or not user_agent.isprintable()
        ):
            # A header value: no CR/LF (header injection), no other control character.
            raise ValueError("user_agent must be printable ASCII text")
        return cls(proxy_url, ssl, trust_env, user_agent or DEFAULT_USER_AGENT, configs)

    def session_proxy(self) -> dict[str, Any]:
        """``ClientSession`` keyword arguments for the proxy (none without one)."""
        if self.proxy is None:
            return {}
        if _SESSION_PROXY:
            return {"proxy": self.proxy}
        return {"request_class": _proxied_request(self.proxy)}


def _proxied_request(proxy: URL) -> type[aiohttp.ClientRequest]:
    """A request class that sends every request through *proxy* (aiohttp before 3.11).

    ``ClientRequest`` takes the proxy as a documented keyword; the client never
    passes one per request, so the class puts ours in, as ``ClientSession(proxy=)``
    does on newer aiohttp (where an environment proxy does not override it either).
    """

    class ProxiedRequest(aiohttp.ClientRequest):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["proxy"] = proxy
            kwargs["proxy_auth"] = None
            super().__init__(*args, **kwargs)

    return ProxiedRequest


def open_session(
    transport: Transport, *, limit: int, limit_per_host: int, timeout: aiohttp.ClientTimeout
) -> aiohttp.ClientSession:
    """The client's own session: its pool, its transport options, no hidden resend."""
    connector = _Connector(
        limit=limit,
        limit_per_host=limit_per_host,
        ttl_dns_cache=300,
        ssl=transport.ssl,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=transport.trust_env,
        headers={"User-Agent": transport.user_agent},
        # Stand-ins that mask the secrets before the site's configs see them.
        trace_configs=[RedactingTraceConfig(c) for c in transport.trace_configs],
        **transport.session_proxy(),
    )
    # aiohttp silently resends an idempotent request once when a connection
    # drops (aio-libs/aiohttp#10790). The exchange is a POST, which aiohttp does
    # not resend today, but a single-use auth_key must never depend on that; and
    # the client's own retry policy already covers get_user_info. So the hidden
    # retry is turned off on the session we own. The attribute is private and
    # has no public equivalent; aiohttp's own test utilities set it the same
    # way, and a unit test fails if a new aiohttp drops or renames it.
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session
