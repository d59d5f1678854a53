"""aiotwinne.web.setup(): start-up checks, cookie checks, lifetime, helpers, logging."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp_session
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp_session import SimpleCookieStorage
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from aiohttp_session.redis_storage import RedisStorage
from cryptography.fernet import Fernet

from aiotwinne import TwinneClient
from aiotwinne.web import (
    TWINNE_CLIENT_KEY,
    InsecureCookieWarning,
    MemoryTokenRegistry,
    RedactingAccessLogger,
    RedisTokenRegistry,
    check_cookie_params,
    check_storage,
    cookie_storage,
    get_user,
    login_required,
    redis_storage,
    setup,
)
from aiotwinne.web._config import SETTINGS_KEY

pytestmark = pytest.mark.filterwarnings(
    "ignore::aiohttp.web_exceptions.NotAppKeyWarning:aiohttp_session"
)

SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def client() -> AsyncIterator[TwinneClient]:
    """A client that is never used for requests."""
    twinne = TwinneClient("123", SECRET, base_url="http://127.0.0.1:9")
    yield twinne
    await twinne.close()


def _app_with_sessions(storage: aiohttp_session.AbstractStorage | None = None) -> web.Application:
    app = web.Application()
    aiohttp_session.setup(app, storage or cookie_storage(Fernet.generate_key()))
    return app


async def _start_and_stop(app: web.Application) -> None:
    runner = web.AppRunner(app, handle_signals=False)
    try:
        await runner.setup()
    finally:
        await runner.cleanup()


async def test_setup_adds_routes_and_the_client_key(client: TwinneClient) -> None:
    """Login, callback and logout routes exist and the client is reachable by its AppKey."""
    app = _app_with_sessions()
    setup(app, client, callback_path="/cb")
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert {"/auth/twinne/login", "/cb", "/auth/twinne/logout"} <= paths
    assert app[TWINNE_CLIENT_KEY] is client


async def test_missing_session_middleware_fails_at_startup(client: TwinneClient) -> None:
    """Without aiohttp-session the app refuses to start, with a message saying what to do."""
    app = web.Application()
    setup(app, client)
    with pytest.raises(RuntimeError, match=r"aiohttp_session\.setup\(app, storage\) first"):
        await _start_and_stop(app)


async def test_session_middleware_after_ours_fails_at_startup(client: TwinneClient) -> None:
    """aiohttp-session installed after aiotwinne (wrong order) is refused at start-up."""
    app = web.Application()
    setup(app, client)
    aiohttp_session.setup(app, cookie_storage(Fernet.generate_key()))
    with pytest.raises(RuntimeError, match="before aiotwinne"):
        await _start_and_stop(app)


async def test_correct_setup_starts_and_closes_the_client(client: TwinneClient) -> None:
    """The client's lifetime is the app's: closed at cleanup."""
    app = _app_with_sessions()
    setup(app, client)
    await _start_and_stop(app)
    assert client.closed


async def test_close_client_false_leaves_it_open(client: TwinneClient) -> None:
    """A shared client can be kept open past the app's shutdown."""
    app = _app_with_sessions()
    setup(app, client, close_client=False)
    await _start_and_stop(app)
    assert not client.closed


async def test_setup_twice_is_refused(client: TwinneClient) -> None:
    """A second setup() on one app is a programming error."""
    app = _app_with_sessions()
    setup(app, client)
    with pytest.raises(RuntimeError, match="already"):
        setup(app, client)


@pytest.mark.parametrize(
    "options",
    [
        {"callback_path": "auth/cb"},
        {"login_path": "/login?x=1"},
        {"login_path": "/same", "logout_path": "/same"},
        {"logout_redirect": "//evil.example"},
        {"logout_redirect": "https://evil.example"},
        {"protect": ("account/",)},
        {"bearer_prefixes": ("api",)},
        {"pending_ttl": 0},
        {"max_pending": 0},
        {"max_auto_logins": 0},
    ],
)
async def test_bad_options_are_refused(client: TwinneClient, options: dict[str, object]) -> None:
    """Paths must be same-origin paths and limits positive."""
    with pytest.raises(ValueError, match=r"."):
        setup(_app_with_sessions(), client, **options)  # type: ignore[arg-type]


async def test_samesite_strict_is_refused(client: TwinneClient) -> None:
    """SameSite=Strict would drop the session on Twinne's cross-site redirect back: refused."""
    storage = cookie_storage(Fernet.generate_key())
    storage.cookie_params["samesite"] = "Strict"
    with pytest.raises(ValueError, match="SameSite=Strict"):
        setup(_app_with_sessions(storage), client)


async def test_insecure_cookie_warns_at_setup(client: TwinneClient) -> None:
    """A cookie that is not Secure/HttpOnly/Lax/finite is named in one warning."""
    storage = SimpleCookieStorage(httponly=False)
    with pytest.warns(InsecureCookieWarning) as record:
        setup(_app_with_sessions(storage), client, allow_unauthenticated_storage=True)
    text = str(record[0].message)
    for problem in ("not Secure", "not HttpOnly", "SameSite is not Lax", "no max_age"):
        assert problem in text


async def test_plain_http_development_is_explicit(client: TwinneClient) -> None:
    """secure=False storage passes silently only with secure_cookies=False."""
    storage = cookie_storage(Fernet.generate_key(), secure=False)
    setup(_app_with_sessions(storage), client, secure_cookies=False)
    with pytest.warns(InsecureCookieWarning, match="not Secure"):
        check_cookie_params(storage)


# -- storages that do not authenticate their data (row 7 of issue 11) ------------------


class _ThirdPartyStorage(aiohttp_session.AbstractStorage):
    """A storage aiotwinne knows nothing about."""

    async def load_session(self, request: web.Request) -> aiohttp_session.Session:
        return aiohttp_session.Session(None, data=None, new=True, max_age=self.max_age)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: aiohttp_session.Session
    ) -> None:
        return None


class _MyEncryptedStorage(EncryptedCookieStorage):
    """A subclass of an authenticated storage."""


#: Cookie settings that pass check_cookie_params, so only the storage's kind matters.
_LAX: Final[dict[str, Any]] = {"secure": True, "httponly": True, "samesite": "Lax", "max_age": 60}


async def test_simple_cookie_storage_is_refused_without_the_opt_in(client: TwinneClient) -> None:
    """A cookie a visitor can edit is refused, naming the opt-in; the app is left untouched."""
    app = _app_with_sessions(SimpleCookieStorage(**_LAX))
    middlewares = list(app.middlewares)
    with pytest.raises(ValueError, match="allow_unauthenticated_storage=True") as refused:
        setup(app, client)
    assert "SimpleCookieStorage" in str(refused.value)
    assert list(app.middlewares) == middlewares
    assert TWINNE_CLIENT_KEY not in app
    setup(app, client, allow_unauthenticated_storage=True)
    assert app[TWINNE_CLIENT_KEY] is client


async def test_an_unknown_storage_is_refused_without_the_opt_in(client: TwinneClient) -> None:
    """aiotwinne cannot tell whether a third-party storage authenticates: the caller decides."""
    with pytest.raises(ValueError, match=r"cannot tell whether.*_ThirdPartyStorage"):
        setup(_app_with_sessions(_ThirdPartyStorage(**_LAX)), client)
    setup(
        _app_with_sessions(_ThirdPartyStorage(**_LAX)), client, allow_unauthenticated_storage=True
    )


def test_a_storage_that_cannot_be_found_is_not_trusted() -> None:
    """Not a storage at all (aiohttp-session's internals changed): refused, naming the opt-in."""
    with pytest.raises(ValueError, match=r"could not find.*allow_unauthenticated_storage=True"):
        check_storage(None)
    check_storage(None, allow_unauthenticated=True)


async def test_a_storage_set_up_after_ours_is_checked_at_startup(client: TwinneClient) -> None:
    """aiohttp-session added after setup() (a sub-app's order): refused when the app starts."""
    app = web.Application()
    setup(app, client)
    app.middlewares.insert(0, aiohttp_session.session_middleware(SimpleCookieStorage(**_LAX)))
    with pytest.raises(ValueError, match="allow_unauthenticated_storage"):
        await _start_and_stop(app)


async def test_authenticated_storages_are_accepted(client: TwinneClient) -> None:
    """Encrypted cookies, Redis, our helpers and their subclasses pass without an opt-in."""
    key = Fernet.generate_key()
    redis = aioredis.Redis.from_url("redis://127.0.0.1:9/0")  # never connected
    try:
        for storage in (
            cookie_storage(key),
            EncryptedCookieStorage(Fernet(key), **_LAX),
            _MyEncryptedStorage(Fernet(key), **_LAX),
            redis_storage(redis),
            RedisStorage(redis, **_LAX),
        ):
            check_storage(storage)
            setup(_app_with_sessions(storage), client, close_client=False)
    finally:
        await redis.aclose()


async def test_a_redis_storage_puts_the_bearer_registry_in_the_same_redis(
    client: TwinneClient,
) -> None:
    """RedisStorage: the registry is a RedisTokenRegistry on its client, prefixed by app id."""
    redis = aioredis.Redis.from_url("redis://127.0.0.1:9/0")  # never connected
    try:
        app = _app_with_sessions(redis_storage(redis))
        setup(app, client)
        registry = app[SETTINGS_KEY].bearer.registry  # type: ignore[union-attr]
        assert isinstance(registry, RedisTokenRegistry)
        assert registry.prefix == "aiotwinne:bearer:123:"
        other = _app_with_sessions()
        setup(other, client)
        assert isinstance(other[SETTINGS_KEY].bearer.registry, MemoryTokenRegistry)  # type: ignore[union-attr]
        mine = MemoryTokenRegistry()
        chosen = _app_with_sessions(redis_storage(redis))
        setup(chosen, client, bearer_registry=mine)
        assert chosen[SETTINGS_KEY].bearer.registry is mine  # type: ignore[union-attr]
    finally:
        await redis.aclose()


def test_cookie_storage_defaults() -> None:
    """The helper's cookie is HttpOnly, Secure, SameSite=Lax, with a finite max_age."""
    storage = cookie_storage(Fernet.generate_key())
    params = storage.cookie_params
    assert params["httponly"] is True
    assert params["secure"] is True
    assert params["samesite"] == "Lax"
    assert storage.max_age
    assert storage.max_age > 0
    for key in (Fernet.generate_key().decode(), b"k" * 32, Fernet(Fernet.generate_key())):
        check_cookie_params(cookie_storage(key))


async def test_handlers_without_setup_say_so() -> None:
    """A guarded handler on an app without setup() fails with a clear RuntimeError."""

    @login_required
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    request = make_mocked_request("GET", "/")
    with pytest.raises(RuntimeError, match=r"aiotwinne\.web\.setup"):
        await handler(request)
    with pytest.raises(RuntimeError, match=r"aiotwinne\.web\.setup"):
        await get_user(request)


async def test_a_guarded_handler_needs_the_request() -> None:
    """Decorating something that receives no request is reported, not silently unguarded."""

    @login_required
    async def handler(value: int) -> web.Response:
        return web.Response()

    with pytest.raises(TypeError, match="request"):
        await handler(1)  # type: ignore[call-arg]


def test_access_logger_drops_query_strings(caplog: pytest.LogCaptureFixture) -> None:
    """The callback's auth_key never reaches the access log; headers are redacted too."""
    logger = logging.getLogger("test.access")
    access = RedactingAccessLogger(logger, '%a "%r" %s "%{Referer}i"')
    request = make_mocked_request(
        "GET",
        f"/auth/twinne/callback?x=1?auth_key={SECRET}",
        headers={"Referer": f"https://x.example/p?access_token={SECRET}"},
    )
    response = web.Response(status=303)
    with caplog.at_level(logging.INFO, logger="test.access"):
        access.log(request, response, 0.01)
    assert "GET /auth/twinne/callback HTTP/1.1" in caplog.text
    assert SECRET not in caplog.text
    assert "https://x.example/p" in caplog.text


def test_core_package_does_not_import_web() -> None:
    """`import aiotwinne` loads neither aiotwinne.web nor aiohttp_session."""
    code = (
        "import sys, aiotwinne; "
        "assert 'aiotwinne.web' not in sys.modules; "
        "assert 'aiohttp_session' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603
