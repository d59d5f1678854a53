"""Client behaviour only a real HTTP server shows (compression, chunking, the exchange form)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import attrs
import pytest
from aiohttp import web

from aiotwinne import ProtocolError, RetryPolicy, TwinneClient

TOKEN = "70c70c70c70c70c70c70c70c70c70ccc"
INFLATED = b'{"user_info": {"user_id": "1", "user_name": "' + b"a" * 50_000 + b'"}}'


async def gzip_answer(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(INFLATED),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


async def chunked_answer(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(INFLATED), 4096):
        await response.write(INFLATED[start : start + 4096])
    await response.write_eof()
    return response


@attrs.define
class Seen:
    """What the exchange endpoint received, request by request."""

    method: str
    content_type: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]


SEEN: list[Seen] = []


async def exchange_answer(request: web.Request) -> web.Response:
    body = (await request.read()).decode("ascii")
    SEEN.append(
        Seen(request.method, request.content_type, parse_qs(request.query_string), parse_qs(body))
    )
    return web.json_response({"access_token": TOKEN})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    SEEN.clear()
    app = web.Application()
    app.router.add_get("/gzip/api/get_user_info", gzip_answer)
    app.router.add_get("/chunked/api/get_user_info", chunked_answer)
    app.router.add_route("*", "/api/authorize", exchange_answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/gzip", "/chunked"])
async def test_body_cap_counts_decoded_bytes(server: str, path: str) -> None:
    """A gzip body that inflates past the cap, or a chunked one that grows past it, is refused."""
    async with TwinneClient(
        "1", "s" * 32, base_url=server + path, max_body_size=10_000, retry=RetryPolicy.none()
    ) as twinne:
        with pytest.raises(ProtocolError, match="10000-byte cap"):
            await twinne.get_user_info(TOKEN)


@pytest.mark.parametrize("path", ["/gzip", "/chunked"])
async def test_body_under_the_cap_is_read_whole(server: str, path: str) -> None:
    """The same answers under a larger cap are read and decoded whole."""
    async with TwinneClient("1", "s" * 32, base_url=server + path) as twinne:
        user = await twinne.get_user_info(TOKEN)
    assert len(user.username) == 50_000


async def test_exchange_is_one_post_with_the_parameters_in_query_and_form(server: str) -> None:
    """One request per exchange, readable by a $_GET (2.x/3.x) and a $_POST (4.x) server."""
    async with TwinneClient("17", "s" * 32, base_url=server) as twinne:
        token = await twinne.exchange("k" * 32)
    assert token.value == TOKEN
    expected = {"app_id": ["17"], "app_secret": ["s" * 32], "auth_key": ["k" * 32]}
    assert [Seen("POST", "application/x-www-form-urlencoded", expected, expected)] == SEEN
