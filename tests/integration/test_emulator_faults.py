"""Injected faults and the client's reaction to each, proven by the emulator's counts."""

from __future__ import annotations

import aiohttp
import pytest

from aiotwinne import (
    HTTPStatusError,
    InvalidAuthKeyError,
    ProtocolError,
    TransportError,
    TwinneClient,
)
from aiotwinne.testing import ClientFactory, TwinneEmulator

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]


def _token(emu: TwinneEmulator) -> str:
    return emu.issue_token(emu.default_user, emu.default_app)


def _key(emu: TwinneEmulator) -> str:
    return emu.authorize(emu.default_user, emu.default_app)


# -- get_user_info: idempotent, retried ---------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_user_info_retries_transient_statuses(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient, status: int
) -> None:
    """429/502/503/504 are retried; two of them then a normal answer succeed in 3 requests."""
    emu = twinne_emulator
    emu.inject("http_error", endpoint="user_info", count=2, status=status)
    user = await twinne_client.get_user_info(_token(emu))
    assert user.id == emu.default_user.id
    assert emu.count("user_info") == 3
    assert [r.fault for r in emu.requests] == ["http_error", "http_error", None]
    assert [r.status for r in emu.requests] == [status, status, 200]


async def test_user_info_gives_up_after_the_attempts(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A lasting 502 raises HTTPStatusError after exactly ``attempts`` requests."""
    emu = twinne_emulator
    emu.inject("http_error", endpoint="user_info", count=10, status=502)
    with pytest.raises(HTTPStatusError) as caught:
        await twinne_client.get_user_info(_token(emu))
    assert caught.value.status == 502
    assert caught.value.attempts == 4
    assert emu.count("user_info") == 4
    assert emu.pending_faults == 6


async def test_retry_after_too_long_is_not_waited_for(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A 429 asking for longer than the deadline is raised at once, with its Retry-After."""
    emu = twinne_emulator
    emu.inject("http_error", endpoint="user_info", status=429, retry_after=120)
    with pytest.raises(HTTPStatusError) as caught:
        await twinne_client.get_user_info(_token(emu))
    assert caught.value.retry_after == 120
    assert emu.count("user_info") == 1


async def test_retry_after_is_sent(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """``retry_after`` becomes a Retry-After header, in seconds or as the date given."""
    emu = twinne_emulator
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    emu.inject("http_error", status=503, retry_after=2.4)
    emu.inject("http_error", status=429, retry_after=date)
    async with browser.get(f"{emu.base_url}/api/get_user_info") as first:
        assert (first.status, first.headers["Retry-After"]) == (503, "2")
        assert first.content_type == "text/html"
        assert "503 Service Unavailable" in await first.text()
    async with browser.get(f"{emu.base_url}/api/get_user_info") as second:
        assert (second.status, second.headers["Retry-After"]) == (429, date)


async def test_500_is_not_retried(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A PHP crash (500) raises HTTPStatusError after one request."""
    emu = twinne_emulator
    emu.inject("http_error", endpoint="user_info", count=5)
    with pytest.raises(HTTPStatusError) as caught:
        await twinne_client.get_user_info(_token(emu))
    assert caught.value.status == 500
    assert emu.count("user_info") == 1


async def test_html_with_200_is_a_protocol_error(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A DB error page with status 200 raises ProtocolError at once."""
    emu = twinne_emulator
    emu.inject("html", endpoint="user_info", count=5)
    with pytest.raises(ProtocolError):
        await twinne_client.get_user_info(_token(emu))
    assert emu.count("user_info") == 1


async def test_php_warning_before_json_is_recovered(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """JSON preceded by a PHP warning still yields the user, in one request."""
    emu = twinne_emulator
    emu.inject("php_warning", endpoint="user_info")
    user = await twinne_client.get_user_info(_token(emu))
    assert user.username == emu.default_user.username
    assert emu.count("user_info") == 1


async def test_malformed_json_is_a_protocol_error(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A body cut mid-JSON raises ProtocolError, not retried."""
    emu = twinne_emulator
    emu.inject("malformed_json", endpoint="user_info")
    with pytest.raises(ProtocolError):
        await twinne_client.get_user_info(_token(emu))
    assert emu.count("user_info") == 1


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_body_is_refused(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient, chunked: bool
) -> None:
    """A body over the 1 MiB cap raises ProtocolError, with or without Content-Length."""
    emu = twinne_emulator
    emu.inject("oversized", endpoint="user_info", size=2 * 1024 * 1024, chunked=chunked)
    with pytest.raises(ProtocolError, match="cap"):
        await twinne_client.get_user_info(_token(emu))
    assert emu.count("user_info") == 1


async def test_oversized_body_is_the_real_answer_padded(
    twinne_emulator: TwinneEmulator, twinne_client_factory: ClientFactory
) -> None:
    """The padded answer is still valid: a client with a larger cap reads it."""
    emu = twinne_emulator
    emu.inject("oversized", endpoint="user_info", size=300_000)
    client = twinne_client_factory(max_body_size=400_000)
    assert (await client.get_user_info(_token(emu))).id == emu.default_user.id


async def test_latency_past_the_timeout_is_retried(
    twinne_emulator: TwinneEmulator, twinne_client_factory: ClientFactory
) -> None:
    """A slow answer times out and the retry, answered normally, succeeds."""
    emu = twinne_emulator
    emu.inject("latency", endpoint="user_info", delay=0.3)
    client = twinne_client_factory(timeout=0.05)
    user = await client.get_user_info(_token(emu))
    assert user.id == emu.default_user.id
    assert emu.count("user_info") == 2


async def test_latency_within_the_timeout_answers_normally(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A short delay is just a delay: one request, a normal answer."""
    emu = twinne_emulator
    emu.inject("latency", endpoint="user_info", delay=0.01)
    assert (await twinne_client.get_user_info(_token(emu))).id == emu.default_user.id
    assert emu.requests[0].fault == "latency"
    assert emu.requests[0].status == 200


@pytest.mark.parametrize("partial_headers", [False, True])
async def test_dropped_connection_is_retried(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient, partial_headers: bool
) -> None:
    """A connection closed with nothing or half a header is retried, then succeeds."""
    emu = twinne_emulator
    emu.inject("drop", endpoint="user_info", partial_headers=partial_headers)
    assert (await twinne_client.get_user_info(_token(emu))).id == emu.default_user.id
    assert emu.count("user_info") == 2
    assert emu.requests[0].status is None


async def test_lasting_drops_raise_transport_error(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """Drops on every attempt raise TransportError after ``attempts`` requests."""
    emu = twinne_emulator
    emu.inject("drop", endpoint="user_info", count=10)
    with pytest.raises(TransportError) as caught:
        await twinne_client.get_user_info(_token(emu))
    assert caught.value.attempts == 4
    assert emu.count("user_info") == 4


# -- exchange: spends a single-use key, never retried once sent ----------------


async def test_exchange_drop_after_processing_spends_the_key(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A drop after the server spent the key: one request, key flagged spent, and it is."""
    emu = twinne_emulator
    key = _key(emu)
    emu.inject("drop", endpoint="authorize", after_processing=True)
    with pytest.raises(TransportError) as caught:
        await twinne_client.exchange(key)
    assert caught.value.auth_key_may_be_spent
    assert emu.count("authorize") == 1
    assert emu.requests[0].processed
    with pytest.raises(InvalidAuthKeyError):
        await twinne_client.exchange(key)


async def test_exchange_drop_before_processing_keeps_the_key(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A drop before processing: not retried (the client cannot know), but the key still works."""
    emu = twinne_emulator
    key = _key(emu)
    emu.inject("drop", endpoint="authorize", after_processing=False, partial_headers=True)
    with pytest.raises(TransportError) as caught:
        await twinne_client.exchange(key)
    assert caught.value.auth_key_may_be_spent
    assert emu.count("authorize") == 1
    assert not emu.requests[0].processed
    await twinne_client.exchange(key)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_exchange_status_errors_are_not_retried(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient, status: int
) -> None:
    """Any error status on the exchange is raised at once with the key flagged as spent."""
    emu = twinne_emulator
    emu.inject("http_error", endpoint="authorize", count=3, status=status)
    with pytest.raises(HTTPStatusError) as caught:
        await twinne_client.exchange(_key(emu))
    assert caught.value.auth_key_may_be_spent
    assert emu.count("authorize") == 1


async def test_exchange_500_after_processing_spent_the_key(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """A 500 from a page that crashed after the exchange: the key is really gone."""
    emu = twinne_emulator
    key = _key(emu)
    emu.inject("http_error", endpoint="authorize", after_processing=True)
    with pytest.raises(HTTPStatusError):
        await twinne_client.exchange(key)
    with pytest.raises(InvalidAuthKeyError):
        await twinne_client.exchange(key)


async def test_exchange_php_warning_is_recovered(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """The token is read from behind a PHP warning, and it works."""
    emu = twinne_emulator
    emu.inject("php_warning", endpoint="authorize")
    token = await twinne_client.exchange(_key(emu))
    assert (await twinne_client.get_user_info(token)).id == emu.default_user.id


async def test_exchange_latency_past_timeout_still_spends_the_key(
    twinne_emulator: TwinneEmulator, twinne_client_factory: ClientFactory
) -> None:
    """A timed-out exchange is not retried, yet the slow server went on and spent the key."""
    emu = twinne_emulator
    key = _key(emu)
    emu.inject("latency", endpoint="authorize", delay=0.2)
    client = twinne_client_factory(timeout=0.05)
    with pytest.raises(TransportError) as caught:
        await client.exchange(key)
    assert caught.value.auth_key_may_be_spent
    assert emu.count("authorize") == 1
    await emu.wait_idle()  # the server is still working on the abandoned request
    assert emu.requests[0].processed
    with pytest.raises(InvalidAuthKeyError):
        await twinne_client_factory().exchange(key)


async def test_exchange_when_server_is_down_is_retried_then_fails(
    twinne_emulator: TwinneEmulator, twinne_client: TwinneClient
) -> None:
    """With the emulator stopped nothing can be sent: retried, then TransportError, key safe."""
    emu = twinne_emulator
    key = _key(emu)
    await emu.stop()
    with pytest.raises(TransportError) as caught:
        await twinne_client.exchange(key)
    assert caught.value.attempts == 4
    assert not caught.value.auth_key_may_be_spent
    await emu.start()
    await twinne_client.exchange(key)
    assert emu.count("authorize") == 1


# -- the fault queue itself -----------------------------------------------------


async def test_faults_hit_only_their_endpoint(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """A fault for one endpoint leaves the others alone; ``endpoint=None`` hits any."""
    emu = twinne_emulator
    emu.inject("http_error", endpoint="authorize", status=502)
    emu.inject("http_error", status=503)
    async with browser.get(f"{emu.base_url}/api/get_user_info") as first:
        assert first.status == 503
    async with browser.get(f"{emu.base_url}/api/authorize") as second:
        assert second.status == 502
    async with browser.get(f"{emu.base_url}/api/authorize") as third:
        assert third.status == 200
    assert emu.pending_faults == 0


async def test_faults_are_used_in_order_and_counted(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Queued faults serve their count oldest first, then normal answers resume."""
    emu = twinne_emulator
    emu.inject("http_error", status=502, count=2)
    emu.inject("html")
    assert emu.pending_faults == 3
    statuses = []
    for _ in range(4):
        async with browser.get(f"{emu.base_url}/api/get_user_info") as answer:
            statuses.append((answer.status, answer.content_type))
    assert statuses == [
        (502, "text/html"),
        (502, "text/html"),
        (200, "text/html"),
        (200, "application/json"),
    ]
    assert [r.fault for r in emu.requests] == ["http_error", "http_error", "html", None]


def test_clear_faults() -> None:
    """``clear_faults()`` empties the queue."""
    emu = TwinneEmulator()
    emu.inject("drop", count=3)
    emu.clear_faults()
    assert emu.pending_faults == 0


@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("explode", {}, ValueError),
        ("drop", {"delay": 1}, TypeError),
        ("http_error", {"status": 200}, ValueError),
        ("oversized", {"size": 0}, ValueError),
        ("latency", {"delay": -1}, ValueError),
    ],
)
def test_bad_fault_requests_are_refused(kind: str, params: dict[str, object], error: type) -> None:
    """Unknown kinds, foreign parameters and impossible values are refused at once."""
    emu = TwinneEmulator()
    with pytest.raises(error):
        emu.inject(kind, **params)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="count"):
        emu.inject("drop", count=0)
