"""TwinneClient's retry, error and session logic, against aioresponses (no sockets)."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from aiotwinne import (
    AccessToken,
    HTTPStatusError,
    InvalidAuthKeyError,
    ProtocolError,
    RetryPolicy,
    TokenExpiredError,
    TransportError,
    TwinneClient,
    UserInfo,
)

BASE = "https://twinne.test"
SECRET = "5ec2e75ec2e75ec2e75ec2e75ec2e7aa"
KEY = "4e54e54e54e54e54e54e54e54e54e5bb"
TOKEN = "70c70c70c70c70c70c70c70c70c70ccc"
USER_INFO = re.compile(r"^https://twinne\.test/api/get_user_info\?.*$")
AUTHORIZE = re.compile(r"^https://twinne\.test/api/authorize\?.*$")
USER_BODY = {"user_info": {"user_id": "42", "user_name": "jdoe", "user_verified": "1"}}


class FakeClock:
    """Sleeps advance a virtual offset on the loop's clock instead of waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.offset = 0.0
        self.sleeps: list[float] = []
        self._real_time = loop.time
        self._real_sleep = asyncio.sleep

    def time(self) -> float:
        return self._real_time() + self.offset

    async def sleep(self, delay: float, result: Any = None) -> Any:
        if delay > 0:
            self.sleeps.append(delay)
            self.offset += delay
        return await self._real_sleep(0, result)


@pytest.fixture
async def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(asyncio.get_running_loop())
    monkeypatch.setattr(fake.loop, "time", fake.time)
    monkeypatch.setattr(asyncio, "sleep", fake.sleep)
    return fake


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
def make_client() -> Iterator[Callable[..., TwinneClient]]:
    clients: list[TwinneClient] = []

    def factory(**kwargs: Any) -> TwinneClient:
        kwargs.setdefault("retry", RetryPolicy.no_wait(attempts=4))
        client = TwinneClient("123", SECRET, base_url=BASE, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        assert client.closed, "test forgot to close its client"


@pytest.fixture
async def client(make_client: Callable[..., TwinneClient]) -> AsyncIterator[TwinneClient]:
    async with make_client() as twinne:
        yield twinne


def calls(m: aioresponses) -> int:
    return sum(len(v) for v in m.requests.values())


def fresh_token() -> AccessToken:
    now = dt.datetime.now(dt.timezone.utc)
    return AccessToken(TOKEN, now, now + dt.timedelta(hours=1))


# -- happy paths ------------------------------------------------------------


async def test_exchange_then_user_info(client: TwinneClient, mocked: aioresponses) -> None:
    """A key becomes a token, and the token a typed profile."""
    mocked.post(AUTHORIZE, payload={"access_token": TOKEN})
    mocked.get(USER_INFO, payload=USER_BODY)
    token = await client.exchange(KEY)
    assert token.value == TOKEN
    assert 3590 < token.expires_in <= 3600
    user = await client.get_user_info(token)
    assert isinstance(user, UserInfo)
    assert (user.id, user.username, user.verified) == (42, "jdoe", True)


async def test_user_info_accepts_the_token_string(
    client: TwinneClient, mocked: aioresponses
) -> None:
    """get_user_info takes the token's str value too."""
    mocked.get(USER_INFO, payload=USER_BODY)
    assert (await client.get_user_info(TOKEN)).id == 42


def test_login_url_and_repr(make_client: Callable[..., TwinneClient]) -> None:
    """The login URL needs no loop; the client's repr shows no secret."""
    client = make_client()
    assert client.login_url() == f"{BASE}/api/oauth?app_id=123"
    assert SECRET not in repr(client)
    assert client.app_id == "123"
    assert client.base_url == BASE
    assert client.retry.attempts == 4
    assert client.leeway == 30.0
    asyncio.run(client.close())


def test_token_lifetime_is_configurable(make_client: Callable[..., TwinneClient]) -> None:
    """token_lifetime sets the expiry the client computes."""

    async def run() -> AccessToken:
        async with make_client(token_lifetime=60) as twinne:
            with aioresponses() as m:
                m.post(AUTHORIZE, payload={"access_token": TOKEN})
                return await twinne.exchange(KEY)

    token = asyncio.run(run())
    assert (token.expires_at - token.issued_at) == dt.timedelta(seconds=60)


# -- retries of get_user_info ----------------------------------------------

RETRIED_FAULTS: list[dict[str, Any]] = [
    {"exception": aiohttp.ClientConnectionError("reset")},
    {"exception": aiohttp.ServerDisconnectedError()},
    {"exception": asyncio.TimeoutError()},
    {"exception": aiohttp.ClientPayloadError("truncated")},
    {"status": 429, "body": "slow down"},
    {"status": 502, "body": "<html>bad gateway</html>"},
    {"status": 503, "body": "<html>unavailable</html>"},
    {"status": 504, "body": "<html>timeout</html>"},
]


@pytest.mark.parametrize("fault", RETRIED_FAULTS)
async def test_transient_faults_are_retried_then_succeed(
    client: TwinneClient, mocked: aioresponses, fault: dict[str, Any]
) -> None:
    """Connection errors, timeouts, 429 and 502/503/504 are retried until success."""
    mocked.get(USER_INFO, **fault)
    mocked.get(USER_INFO, **fault)
    mocked.get(USER_INFO, payload=USER_BODY)
    assert (await client.get_user_info(TOKEN)).id == 42
    assert calls(mocked) == 3


@pytest.mark.parametrize("fault", RETRIED_FAULTS)
async def test_transient_faults_give_up_after_the_attempt_limit(
    client: TwinneClient, mocked: aioresponses, fault: dict[str, Any]
) -> None:
    """After `attempts` tries the last failure is raised, typed, with the attempt count."""
    for _ in range(5):
        mocked.get(USER_INFO, **fault)
    expected = HTTPStatusError if "status" in fault else TransportError
    with pytest.raises(expected) as info:
        await client.get_user_info(TOKEN)
    assert calls(mocked) == 4
    assert info.value.attempts == 4


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"status": 500, "body": "<html>oops</html>"}, HTTPStatusError),
        ({"status": 404, "body": "<html>no</html>"}, HTTPStatusError),
        ({"status": 200, "body": "<html>db error</html>"}, ProtocolError),
        ({"status": 200, "body": '{"user_info": '}, ProtocolError),
    ],
)
async def test_permanent_faults_are_not_retried(
    client: TwinneClient, mocked: aioresponses, fault: dict[str, Any], error: type[Exception]
) -> None:
    """A 500, a 4xx, or a non-JSON 200 is raised at once."""
    mocked.get(USER_INFO, **fault)
    with pytest.raises(error):
        await client.get_user_info(TOKEN)
    assert calls(mocked) == 1


async def test_no_retries_with_a_single_attempt_policy(
    make_client: Callable[..., TwinneClient], mocked: aioresponses
) -> None:
    """RetryPolicy.none() makes exactly one attempt."""
    mocked.get(USER_INFO, status=503)
    async with make_client(retry=RetryPolicy.none()) as twinne:
        with pytest.raises(HTTPStatusError):
            await twinne.get_user_info(TOKEN)
    assert calls(mocked) == 1


async def test_retry_after_is_honoured_and_capped(
    make_client: Callable[..., TwinneClient], mocked: aioresponses, fake_clock: FakeClock
) -> None:
    """Retry-After replaces the backoff, capped by retry_after_max."""
    mocked.get(USER_INFO, status=503, headers={"Retry-After": "2"})
    mocked.get(USER_INFO, status=429, headers={"Retry-After": "50"})
    mocked.get(USER_INFO, payload=USER_BODY)
    policy = RetryPolicy(attempts=3, deadline=100, wait_jitter=0, retry_after_max=5)
    async with make_client(retry=policy) as twinne:
        await twinne.get_user_info(TOKEN)
    assert fake_clock.sleeps == [2.0, 5.0]


async def test_backoff_is_exponential_without_retry_after(
    make_client: Callable[..., TwinneClient], mocked: aioresponses, fake_clock: FakeClock
) -> None:
    """Without Retry-After the waits grow exponentially from wait_initial."""
    for _ in range(3):
        mocked.get(USER_INFO, status=502)
    mocked.get(USER_INFO, payload=USER_BODY)
    policy = RetryPolicy(attempts=4, wait_initial=0.1, wait_max=10, wait_jitter=0)
    async with make_client(retry=policy) as twinne:
        await twinne.get_user_info(TOKEN)
    assert fake_clock.sleeps == pytest.approx([0.1, 0.2, 0.4])


async def test_retry_after_beyond_the_deadline_stops_at_once(
    make_client: Callable[..., TwinneClient], mocked: aioresponses, fake_clock: FakeClock
) -> None:
    """A server asking for longer than the time left ends the retries with its answer."""
    mocked.get(USER_INFO, status=503, headers={"Retry-After": "120"})
    async with make_client(retry=RetryPolicy(attempts=5, deadline=10)) as twinne:
        with pytest.raises(HTTPStatusError) as info:
            await twinne.get_user_info(TOKEN)
    assert info.value.retry_after == 120
    assert calls(mocked) == 1
    assert fake_clock.sleeps == []


async def test_deadline_bounds_the_whole_call(
    make_client: Callable[..., TwinneClient], mocked: aioresponses, fake_clock: FakeClock
) -> None:
    """A wait that would end past the deadline stops the retries with the real failure."""
    for _ in range(10):
        mocked.get(USER_INFO, exception=aiohttp.ClientConnectionError("down"))
    policy = RetryPolicy(attempts=10, deadline=1.0, wait_initial=0.4, wait_max=0.4, wait_jitter=0)
    async with make_client(retry=policy) as twinne:
        with pytest.raises(TransportError) as info:
            await twinne.get_user_info(TOKEN)
    # Attempts at t=0, 0.4 and 0.8; the next wait would end at 1.2, past the deadline.
    assert calls(mocked) == 3
    assert info.value.attempts == 3
    assert info.value.cause == "ClientConnectionError"
    assert sum(fake_clock.sleeps) == pytest.approx(0.8)


async def test_deadline_caps_a_long_backoff(
    make_client: Callable[..., TwinneClient], mocked: aioresponses, fake_clock: FakeClock
) -> None:
    """A backoff longer than the time left is not slept: the 503 is raised at once."""
    for _ in range(3):
        mocked.get(USER_INFO, status=503)
    policy = RetryPolicy(attempts=3, deadline=1.0, wait_initial=3, wait_max=3, wait_jitter=0)
    async with make_client(retry=policy) as twinne:
        with pytest.raises(HTTPStatusError) as info:
            await twinne.get_user_info(TOKEN)
    assert info.value.status == 503
    assert calls(mocked) == 1
    assert fake_clock.sleeps == []


async def test_parse_errors_after_retries_count_every_attempt(
    client: TwinneClient, mocked: aioresponses
) -> None:
    """An error read from the final answer reports all the attempts made."""
    mocked.get(USER_INFO, status=503)
    mocked.get(USER_INFO, status=503)
    mocked.get(USER_INFO, body="<html>fatal</html>")
    with pytest.raises(ProtocolError) as info:
        await client.get_user_info(TOKEN)
    assert info.value.attempts == 3


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"status": 503, "headers": {"Retry-After": "²"}}, HTTPStatusError),
        ({"status": 302, "headers": {"Location": "http://[::1"}}, HTTPStatusError),
        ({"body": "[" * 5000}, ProtocolError),
        ({"body": "x" + "{" * 5000}, ProtocolError),
    ],
)
async def test_hostile_answers_are_typed_errors(
    client: TwinneClient, mocked: aioresponses, fault: dict[str, Any], error: type[Exception]
) -> None:
    """Odd Retry-After digits, unparsable redirects and absurd nesting give typed errors."""
    for _ in range(4):
        mocked.get(USER_INFO, **fault)
        mocked.post(AUTHORIZE, **fault)
    with pytest.raises(error):
        await client.get_user_info(TOKEN)
    with pytest.raises(error) as info:
        await client.exchange(KEY)
    assert isinstance(info.value, (HTTPStatusError, ProtocolError))
    assert info.value.auth_key_may_be_spent


async def test_retries_are_logged_at_debug_with_a_redacted_url(
    client: TwinneClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """Every retry is logged at DEBUG with the attempt number and no token."""
    caplog.set_level("DEBUG", logger="aiotwinne")
    mocked.get(USER_INFO, status=503)
    mocked.get(USER_INFO, status=503)
    mocked.get(USER_INFO, payload=USER_BODY)
    await client.get_user_info(TOKEN)
    retries = [r.getMessage() for r in caplog.records if r.name == "aiotwinne"]
    assert len(retries) == 2
    assert "attempt 1 of 4" in retries[0]
    assert "attempt 2 of 4" in retries[1]
    assert all("access_token=***" in r and TOKEN not in r for r in retries)


# -- the exchange spends a single-use key -----------------------------------


async def test_exchange_retries_only_when_the_connection_never_opened(
    client: TwinneClient, mocked: aioresponses
) -> None:
    """A connect failure proves the key was not sent, so the exchange is retried."""
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("twinne.test", 443, True, True, None, None, None),
        OSError(111, "Connection refused"),
    )
    mocked.post(AUTHORIZE, exception=refused)
    mocked.post(AUTHORIZE, payload={"access_token": TOKEN})
    assert (await client.exchange(KEY)).value == TOKEN
    assert calls(mocked) == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"exception": aiohttp.ServerDisconnectedError()}, TransportError),
        ({"exception": asyncio.TimeoutError()}, TransportError),
        ({"exception": aiohttp.ClientPayloadError("cut")}, TransportError),
        ({"status": 503, "headers": {"Retry-After": "1"}}, HTTPStatusError),
        ({"status": 502}, HTTPStatusError),
        ({"status": 200, "body": "<html>fatal error</html>"}, ProtocolError),
    ],
)
async def test_exchange_is_not_retried_once_the_request_may_have_left(
    client: TwinneClient, mocked: aioresponses, fault: dict[str, Any], error: type[Exception]
) -> None:
    """After the request may have reached Twinne, one attempt only, and the error says so."""
    mocked.post(AUTHORIZE, **fault)
    mocked.post(AUTHORIZE, payload={"access_token": TOKEN})
    with pytest.raises(error) as info:
        await client.exchange(KEY)
    assert calls(mocked) == 1
    assert isinstance(info.value, (TransportError, HTTPStatusError, ProtocolError))
    assert info.value.auth_key_may_be_spent
    assert "may have been spent" in str(info.value)


async def test_exchange_api_error_is_not_marked_spent(
    client: TwinneClient, mocked: aioresponses
) -> None:
    """Twinne's own refusal is an APIError; the key is known bad, not 'maybe spent'."""
    mocked.post(AUTHORIZE, payload={"error": True, "message": "Bad Request, invalid auth_key"})
    with pytest.raises(InvalidAuthKeyError) as info:
        await client.exchange(KEY)
    assert not info.value.auth_key_may_be_spent


# -- local checks before any request ----------------------------------------


async def test_locally_expired_token_makes_no_request(
    client: TwinneClient, mocked: aioresponses
) -> None:
    """A token past expires_at - leeway raises TokenExpiredError without a request."""
    now = dt.datetime.now(dt.timezone.utc)
    stale = AccessToken(TOKEN, now - dt.timedelta(hours=1), now + dt.timedelta(seconds=10))
    with pytest.raises(TokenExpiredError) as info:
        await client.get_user_info(stale)
    assert calls(mocked) == 0
    assert TOKEN not in str(info.value)


async def test_server_expiry_is_the_same_error(client: TwinneClient, mocked: aioresponses) -> None:
    """Twinne's 'expired access_token' raises TokenExpiredError, whatever our clock says."""
    mocked.get(USER_INFO, payload={"error": True, "message": "Bad Request, expired access_token"})
    with pytest.raises(TokenExpiredError):
        await client.get_user_info(fresh_token())


@pytest.mark.parametrize("bad", ["", "  ", "a b", "tok\r\nen", "\x00"])
async def test_bad_input_is_refused_before_sending(
    client: TwinneClient, mocked: aioresponses, bad: str
) -> None:
    """Blank or control-character keys and tokens raise ValueError and send nothing."""
    with pytest.raises(ValueError, match="auth_key"):
        await client.exchange(bad)
    with pytest.raises(ValueError, match="access_token"):
        await client.get_user_info(bad)
    assert calls(mocked) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"app_id": ""}, "app_id"),
        ({"app_secret": " x"}, "app_secret"),
        ({"base_url": "http://twinne.eu"}, "clear text"),
        ({"base_url": "not a url"}, "base_url"),
        ({"token_lifetime": 0}, "token_lifetime"),
        ({"max_body_size": 0}, "max_body_size"),
    ],
)
def test_bad_configuration_is_refused_at_creation(kwargs: dict[str, Any], match: str) -> None:
    """Bad credentials, an insecure or malformed base URL and bad limits raise ValueError."""
    args: dict[str, Any] = {"app_id": "1", "app_secret": SECRET, **kwargs}
    with pytest.raises(ValueError, match=match) as info:
        TwinneClient(args.pop("app_id"), args.pop("app_secret"), **args)
    assert SECRET not in str(info.value)


def test_insecure_http_needs_an_explicit_opt_in() -> None:
    """allow_insecure=True accepts plain http to a remote host."""
    client = TwinneClient("1", SECRET, base_url="http://sngine.test", allow_insecure=True)
    assert client.base_url == "http://sngine.test"


# -- answers the client refuses to read -------------------------------------


async def test_oversized_body_is_refused(
    make_client: Callable[..., TwinneClient], mocked: aioresponses
) -> None:
    """A body over max_body_size is a ProtocolError, not read into memory."""
    mocked.get(USER_INFO, body="x" * 2000)
    async with make_client(max_body_size=1000) as twinne:
        with pytest.raises(ProtocolError, match="1000-byte cap"):
            await twinne.get_user_info(TOKEN)


async def test_redirects_are_not_followed(client: TwinneClient, mocked: aioresponses) -> None:
    """A redirect from the API is reported, never followed with the secrets in the URL."""
    mocked.post(AUTHORIZE, status=302, headers={"Location": "https://evil.example/steal"})
    with pytest.raises(HTTPStatusError, match=r"evil\.example") as info:
        await client.exchange(KEY)
    assert info.value.status == 302
    assert info.value.auth_key_may_be_spent
    assert calls(mocked) == 1


# -- the session: owned or borrowed -----------------------------------------


async def test_owned_session_is_created_lazily_and_closed() -> None:
    """The client makes its session on first use and closes it on exit."""
    with aioresponses() as m:
        m.get(USER_INFO, payload=USER_BODY)
        async with TwinneClient("1", SECRET, base_url=BASE) as twinne:
            assert twinne._session is None
            await twinne.get_user_info(TOKEN)
            session = twinne._session
            assert session is not None
        assert session.closed
        assert twinne.closed


async def test_borrowed_session_is_left_open() -> None:
    """A session passed in is used and never closed by the client."""
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_INFO, payload=USER_BODY)
            async with TwinneClient("1", SECRET, base_url=BASE, session=session) as twinne:
                await twinne.get_user_info(TOKEN)
        assert not session.closed


async def test_closed_client_refuses_work() -> None:
    """A closed client raises instead of silently making a new session."""
    twinne = TwinneClient("1", SECRET, base_url=BASE)
    await twinne.close()
    with pytest.raises(RuntimeError, match="closed"):
        await twinne.get_user_info(TOKEN)


async def test_closing_twice_is_harmless() -> None:
    """close() is idempotent."""
    twinne = TwinneClient("1", SECRET, base_url=BASE)
    with aioresponses() as m:
        m.get(USER_INFO, payload=USER_BODY)
        await twinne.get_user_info(TOKEN)
    await twinne.close()
    await twinne.close()


async def test_timeout_accepts_a_client_timeout_object() -> None:
    """timeout may be an aiohttp.ClientTimeout."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=3)
    with aioresponses() as m:
        m.get(USER_INFO, payload=USER_BODY)
        async with TwinneClient("1", SECRET, base_url=BASE, timeout=timeout) as twinne:
            assert (await twinne.get_user_info(TOKEN)).id == 42


# -- the two aiohttp internals the client leans on ----------------------------


async def test_aiohttp_still_has_the_hidden_resend_switch_and_ours_is_off() -> None:
    """ClientSession._retry_connection (private, no public equivalent) exists and is off for us.

    aiohttp resends an idempotent request once when a kept-alive connection
    drops (aio-libs/aiohttp#10790); our retry policy must be the only one. If a
    new aiohttp renames the switch, this fails instead of the resend silently
    coming back.
    """
    async with aiohttp.ClientSession() as plain:
        assert plain._retry_connection is True
    client = TwinneClient("1", SECRET, base_url=BASE)
    try:
        assert client._get_session()._retry_connection is False
    finally:
        await client.close()


def test_aiohttp_connector_connect_keeps_the_signature_we_override() -> None:
    """Our pool overrides TCPConnector.connect (documented on BaseConnector) to see queueing.

    aiohttp's tracing (on_connection_queued_start) could tell the same, but it
    costs every request a Trace object and several awaited signals. If aiohttp
    changes the method's parameters, this fails before the override breaks.
    """
    parameters = list(inspect.signature(aiohttp.TCPConnector.connect).parameters)
    assert parameters == ["self", "req", "traces", "timeout"]
    assert inspect.iscoroutinefunction(aiohttp.TCPConnector.connect)
