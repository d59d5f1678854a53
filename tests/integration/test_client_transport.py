"""TwinneClient's transport options over real sockets: proxy, TLS, trust_env, User-Agent, tracing.

Twinne's side is the emulator; the other servers here are small and real: an
aiohttp forward proxy for plain-http calls, a ``CONNECT`` tunnel for https
ones, and a TLS front with a certificate made in the test (``cryptography``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import aiotwinne
import aiotwinne._session
from aiotwinne import RetryPolicy, TransportError, TwinneClient
from aiotwinne.client import DEFAULT_USER_AGENT
from aiotwinne.testing import EmulatedApp, EmulatedUser, TwinneEmulator

# -- servers ------------------------------------------------------------------


@attrs.define
class Seen:
    """One request a proxy forwarded."""

    method: str
    url: str
    user_agent: str


@attrs.define
class ForwardProxy:
    """A plain-http forward proxy (aiohttp) that records and relays each request."""

    url: str
    seen: list[Seen]


SEEN: web.AppKey[list[Seen]] = web.AppKey("seen", list)


async def _relay(request: web.Request) -> web.StreamResponse:
    """Forward one absolute-form request to its target and answer with what came back."""
    # An absolute-form request line: aiohttp's request.url is the target itself.
    target = str(request.url)
    seen = request.app[SEEN]
    seen.append(Seen(request.method, target, request.headers.get("User-Agent", "")))
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",)}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            request.method, target, data=body or None, headers=headers, allow_redirects=False
        ) as answer,
    ):
        payload = await answer.read()
        return web.Response(status=answer.status, body=payload, content_type=answer.content_type)


@contextlib.asynccontextmanager
async def forward_proxy() -> AsyncIterator[ForwardProxy]:
    """A forward proxy on 127.0.0.1, stopped on exit."""
    app = web.Application()
    seen: list[Seen] = []
    app[SEEN] = seen
    app.router.add_route("*", "/{tail:.*}", _relay)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield ForwardProxy(f"http://127.0.0.1:{runner.addresses[0][1]}", seen)
    finally:
        await runner.cleanup()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    await asyncio.gather(_pipe(client[0], upstream[1]), _pipe(upstream[0], client[1]))


@attrs.define
class Server:
    """A raw asyncio server: where it listens and what it saw."""

    port: int
    seen: list[str]


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    **options: Any,
) -> AsyncIterator[int]:
    """Serve *handler* on 127.0.0.1:0 (asyncio streams); yield the port."""
    tasks: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        finally:
            tasks.discard(task)  # type: ignore[arg-type]

    server = await asyncio.start_server(tracked, "127.0.0.1", 0, **options)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def tls_front(emu: TwinneEmulator, context: ssl.SSLContext) -> AsyncIterator[int]:
    """The emulator behind TLS: a front on 127.0.0.1 that decrypts and relays the bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await asyncio.open_connection("127.0.0.1", emu.port)
        await _splice((reader, writer), upstream)

    async with serving(handle, ssl=context, ssl_handshake_timeout=5) as port:
        yield port


@contextlib.asynccontextmanager
async def connect_proxy() -> AsyncIterator[Server]:
    """An https proxy: answers ``CONNECT host:port`` with a tunnel, records the request line."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        seen.append(head.split("\r\n", 1)[0])
        method, target, _ = head.split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        port = target.rsplit(":", 1)[1]
        upstream = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _splice((reader, writer), upstream)

    async with serving(handle) as port:
        yield Server(port, seen)


@attrs.frozen
class Certificate:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, and contexts around it."""

    server: ssl.SSLContext
    trusting: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    """A fresh self-signed certificate (P-256), a server context and a client one trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return Certificate(server, trusting)


# -- fixtures -------------------------------------------------------------------


@pytest.fixture
async def emu() -> AsyncIterator[TwinneEmulator]:
    """An emulator with one app and one user."""
    async with TwinneEmulator() as emulator:
        emulator.add_app(name="Site", redirect_url="http://127.0.0.1:1/cb")
        emulator.add_user(user_name="user1", user_firstname="Ada")
        yield emulator


@pytest.fixture
def app(emu: TwinneEmulator) -> EmulatedApp:
    """The emulator's app."""
    return emu.apps[0]


@pytest.fixture
def user(emu: TwinneEmulator) -> EmulatedUser:
    """The emulator's user."""
    return emu.users[0]


async def _log_in(client: TwinneClient, emu: TwinneEmulator, app: EmulatedApp) -> str:
    """One exchange and one profile fetch; returns the token's value."""
    token = await client.exchange(emu.authorize(emu.users[0], app))
    user = await client.get_user_info(token)
    assert user.username == "user1"
    return token.value


def _client(emu_app: EmulatedApp, base_url: str, **options: Any) -> TwinneClient:
    return TwinneClient(
        emu_app.app_id,
        emu_app.secret,
        base_url=base_url,
        retry=RetryPolicy.none(),
        **options,
    )


# -- proxy ------------------------------------------------------------------------


@pytest.mark.parametrize("session_proxy", [True, False], ids=["session", "request-class"])
async def test_forward_proxy_carries_every_call(
    emu: TwinneEmulator,
    app: EmulatedApp,
    monkeypatch: pytest.MonkeyPatch,
    session_proxy: bool,
) -> None:
    """With proxy=, the exchange and the profile fetch both go through the proxy.

    Both ways the client sets it: ClientSession(proxy=) (aiohttp 3.11+) and the
    request class older aiohttp needs.
    """
    monkeypatch.setattr(aiotwinne._session, "_SESSION_PROXY", session_proxy)
    async with forward_proxy() as proxy:
        async with _client(app, emu.base_url, proxy=proxy.url) as client:
            await _log_in(client, emu, app)
        assert [(s.method, s.url.split("?")[0]) for s in proxy.seen] == [
            ("POST", f"{emu.base_url}/api/authorize"),
            ("GET", f"{emu.base_url}/api/get_user_info"),
        ]
    assert emu.count("authorize") == 1


async def test_without_proxy_nothing_goes_through_it(
    emu: TwinneEmulator, app: EmulatedApp
) -> None:
    """The default client talks to Twinne directly."""
    async with forward_proxy() as proxy:
        async with _client(app, emu.base_url) as client:
            await _log_in(client, emu, app)
        assert proxy.seen == []


async def test_trust_env_reads_the_proxy_from_the_environment(
    emu: TwinneEmulator, app: EmulatedApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_env=True follows HTTP_PROXY; the default (False) ignores it."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        async with _client(app, emu.base_url) as client:
            await _log_in(client, emu, app)
        assert proxy.seen == []
        async with _client(app, emu.base_url, trust_env=True) as client:
            await _log_in(client, emu, app)
        assert len(proxy.seen) == 2


async def test_https_through_a_proxy_is_a_tunnel_the_proxy_cannot_read(
    emu: TwinneEmulator, app: EmulatedApp, certificate: Certificate
) -> None:
    """An https call through proxy= is a CONNECT: the proxy sees host and port, no secret."""
    async with tls_front(emu, certificate.server) as port, connect_proxy() as proxy:
        base = f"https://localhost:{port}"
        proxy_url = f"http://127.0.0.1:{proxy.port}"
        async with _client(app, base, proxy=proxy_url, ssl=certificate.trusting) as client:
            token = await _log_in(client, emu, app)
    assert proxy.seen, "the proxy saw no request"
    assert all(line == f"CONNECT localhost:{port} HTTP/1.1" for line in proxy.seen)
    assert not any(app.secret in line or token in line for line in proxy.seen)


# -- TLS ----------------------------------------------------------------------------


async def test_tls_emulator_works_with_an_ssl_context(
    emu: TwinneEmulator, app: EmulatedApp, certificate: Certificate
) -> None:
    """A self-signed Twinne is reached with ssl= a context that trusts its certificate."""
    async with (
        tls_front(emu, certificate.server) as port,
        _client(app, f"https://localhost:{port}", ssl=certificate.trusting) as client,
    ):
        await _log_in(client, emu, app)
    assert emu.count("user_info") == 1


async def test_tls_emulator_is_refused_without_the_context(
    emu: TwinneEmulator, app: EmulatedApp, certificate: Certificate
) -> None:
    """Without ssl=, the self-signed certificate fails verification: no request is sent."""
    async with (
        tls_front(emu, certificate.server) as port,
        _client(app, f"https://localhost:{port}") as client,
    ):
        with pytest.raises(TransportError) as caught:
            await client.exchange(emu.authorize(emu.users[0], app))
    assert "Certificate" in caught.value.cause
    assert caught.value.request_sent is False
    assert app.secret not in str(caught.value)
    assert emu.count("authorize") == 0


async def test_ssl_false_skips_verification(
    emu: TwinneEmulator, app: EmulatedApp, certificate: Certificate
) -> None:
    """ssl=False (tests only) accepts the self-signed certificate."""
    async with (
        tls_front(emu, certificate.server) as port,
        _client(app, f"https://127.0.0.1:{port}", ssl=False) as client,
    ):
        await _log_in(client, emu, app)


# -- User-Agent -------------------------------------------------------------------------


async def test_user_agent_default_and_custom(emu: TwinneEmulator, app: EmulatedApp) -> None:
    """Calls say aiotwinne/<version> unless user_agent= says otherwise."""
    assert f"aiotwinne/{aiotwinne.__version__}" == DEFAULT_USER_AGENT
    async with forward_proxy() as proxy:
        async with _client(app, emu.base_url, proxy=proxy.url) as client:
            await _log_in(client, emu, app)
        async with _client(
            app, emu.base_url, proxy=proxy.url, user_agent="MySite/2.0 (+https://example.com)"
        ) as client:
            await _log_in(client, emu, app)
    assert [s.user_agent for s in proxy.seen] == [DEFAULT_USER_AGENT] * 2 + [
        "MySite/2.0 (+https://example.com)"
    ] * 2


# -- tracing ------------------------------------------------------------------------


@attrs.define
class Recorder:
    """A trace config of the site's: records every signal it receives."""

    config: aiohttp.TraceConfig
    events: list[tuple[str, Any, Any]] = attrs.field(factory=list)


def _recorder() -> Recorder:
    class Context(SimpleNamespace):
        pass

    config = aiohttp.TraceConfig(trace_config_ctx_factory=Context)
    recorder = Recorder(config)
    for name in dir(config):
        if name.startswith("on_"):

            async def record(
                session: aiohttp.ClientSession, ctx: Any, params: Any, name: str = name
            ) -> None:
                recorder.events.append((name, ctx, params))

            getattr(config, name).append(record)
    return recorder


def _text_of(params: Any) -> str:
    """Everything a careless callback could log from *params*."""
    parts = [repr(params)]
    for field in ("url", "chunk", "exception"):
        if hasattr(params, field):
            parts.append(str(getattr(params, field)))
    response = getattr(params, "response", None)
    if response is not None:
        parts += [str(response.url), str(response.real_url), repr(response.request_info)]
    return "\n".join(parts)


async def test_trace_config_sees_every_request_and_no_secret(
    emu: TwinneEmulator, app: EmulatedApp
) -> None:
    """A site's trace config sees both calls start, send, receive and end; secrets are masked."""
    recorder = _recorder()
    auth_key = emu.authorize(emu.users[0], app)
    async with _client(app, emu.base_url, trace_configs=[recorder.config]) as client:
        token = await client.exchange(auth_key)
        await client.get_user_info(token)
    names = [name for name, _, _ in recorder.events]
    starts = [p for n, _, p in recorder.events if n == "on_request_start"]
    ends = [p for n, _, p in recorder.events if n == "on_request_end"]
    assert [(p.method, p.url.path) for p in starts] == [
        ("POST", "/api/authorize"),
        ("GET", "/api/get_user_info"),
    ]
    assert str(starts[0].url).endswith("app_secret=***&auth_key=***")
    assert str(starts[1].url).endswith("access_token=***")
    assert [p.response.status for p in ends] == [200, 200]
    assert ends[1].response.headers["Content-Type"].startswith("application/json")
    sent = [p.chunk for n, _, p in recorder.events if n == "on_request_chunk_sent"]
    assert sent
    assert set(b"".join(sent)) == {ord("*")}
    assert "on_response_chunk_received" in names
    assert "on_connection_create_end" in names
    # The site's own context factory holds its per-request state.
    assert all(type(ctx).__name__ == "Context" for _, ctx, _ in recorder.events)
    everything = "\n".join(_text_of(p) for _, _, p in recorder.events)
    for secret in (app.secret, auth_key, token.value):
        assert secret not in everything


async def test_trace_config_sees_a_failed_call_without_secrets(
    emu: TwinneEmulator, app: EmulatedApp
) -> None:
    """A request that fails reaches on_request_exception, its text free of secrets."""
    recorder = _recorder()
    token = emu.issue_token(emu.users[0], app)
    emu.inject("drop", endpoint="user_info")
    async with _client(app, emu.base_url, trace_configs=[recorder.config]) as client:
        with pytest.raises(TransportError):
            await client.get_user_info(token)
    failures = [p for n, _, p in recorder.events if n == "on_request_exception"]
    assert len(failures) == 1
    assert isinstance(failures[0].exception, aiohttp.ClientError)
    assert token not in _text_of(failures[0])


def test_transport_options_need_the_clients_own_session() -> None:
    """proxy/ssl/trust_env/user_agent/trace_configs with a borrowed session raise ValueError."""
    session = object.__new__(aiohttp.ClientSession)
    for option in (
        {"proxy": "http://127.0.0.1:3128"},
        {"ssl": False},
        {"trust_env": True},
        {"user_agent": "x/1"},
        {"trace_configs": [aiohttp.TraceConfig()]},
    ):
        with pytest.raises(ValueError, match="borrowed session"):
            TwinneClient("1", "s" * 32, session=session, **option)


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ({"proxy": "socks5://127.0.0.1:1080"}, ValueError),
        ({"proxy": "127.0.0.1:3128"}, ValueError),
        ({"user_agent": "evil\r\nX-Injected: 1"}, ValueError),
        ({"user_agent": " "}, ValueError),
        ({"ssl": "yes"}, TypeError),
        ({"trace_configs": [object()]}, TypeError),
    ],
)
def test_bad_transport_options_are_refused(option: dict[str, Any], error: type[Exception]) -> None:
    """A proxy that is not an http(s) URL, a header-breaking User-Agent, a wrong type."""
    with pytest.raises(error):
        TwinneClient("1", "s" * 32, **option)
