"""Several instances sharing sessions through RedisStorage and a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from websupport import (
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    RedisServer,
    Site,
    SiteFactory,
    log_in,
)

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, redis_storage
from aiotwinne.web._middleware import WAIT_FOR_OTHER_TAB

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A redis.asyncio client for the private server, closed after the sites."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _two_instances(
    site_factory: SiteFactory, emu: TwinneEmulator, redis: aioredis.Redis
) -> tuple[Site, Site]:
    first = await site_factory(storage=redis_storage(redis, secure=False))
    second = await site_factory(
        emu_app=emu.add_app(name="unused"),
        client=TwinneClient(
            first.app.app_id,
            first.app.secret,
            base_url=emu.base_url,
            retry=RetryPolicy.no_wait(attempts=2),
        ),
        storage=redis_storage(redis, secure=False),
    )
    return first, second


async def test_login_on_one_instance_works_on_another_and_logout_is_shared(
    redis_client: aioredis.Redis,
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Login on A, guarded page on B, logout on B seen by A."""
    a, b = await _two_instances(site_factory, emu, redis_client)
    await log_in(visitor, a, emu, user)
    emu.reset_stats()
    async with visitor.get(b("/dashboard"), headers=NAVIGATE, allow_redirects=False) as page:
        assert page.status == 200
        assert await page.text() == "dashboard:user1:Ada Lovelace"
    assert emu.count() == 0
    async with visitor.post(b(LOGOUT), headers=SAME_ORIGIN_POST, allow_redirects=False) as answer:
        assert answer.status == 303
    async with visitor.get(a("/dashboard"), headers=NAVIGATE, allow_redirects=False) as page:
        assert page.status == 302


async def test_logout_empties_the_server_side_record(
    redis_client: aioredis.Redis,
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Even a copy of the old cookie finds nothing after logout: the record is gone from Redis."""
    a, b = await _two_instances(site_factory, emu, redis_client)
    await log_in(visitor, a, emu, user)
    session_id = next(c.value for c in visitor.cookie_jar if c.key == DEFAULT_COOKIE_NAME)
    assert b"auth" in (await redis_client.get(f"{DEFAULT_COOKIE_NAME}_{session_id}") or b"")
    async with visitor.post(b(LOGOUT), headers=SAME_ORIGIN_POST, allow_redirects=False):
        pass
    stored = await redis_client.get(f"{DEFAULT_COOKIE_NAME}_{session_id}")
    assert stored is None or b"auth" not in stored


async def test_login_starts_a_new_server_side_session(
    redis_client: aioredis.Redis,
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """The pre-login session id is not promoted: the signed-in session has a new id."""
    a, _ = await _two_instances(site_factory, emu, redis_client)
    async with visitor.get(a("/dashboard"), headers=NAVIGATE, allow_redirects=False):
        pass
    before = next(c.value for c in visitor.cookie_jar if c.key == DEFAULT_COOKIE_NAME)
    emu.advance(WAIT_FOR_OTHER_TAB)  # that login was abandoned: no tab waits for it
    await log_in(visitor, a, emu, user)
    after = next(c.value for c in visitor.cookie_jar if c.key == DEFAULT_COOKIE_NAME)
    assert after != before
    old = await redis_client.get(f"{DEFAULT_COOKIE_NAME}_{before}")
    assert old is None or b"auth" not in old


async def test_redis_down_gives_503_not_500(
    redis_client: aioredis.Redis,
    redis_server: RedisServer,
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """With the session store unreachable, a guarded page answers a 503 page."""
    a, _ = await _two_instances(site_factory, emu, redis_client)
    await log_in(visitor, a, emu, user)
    await redis_server.stop()
    async with visitor.get(a("/dashboard"), headers=NAVIGATE, allow_redirects=False) as page:
        assert page.status == 503
        assert "Sessions are unavailable" in await page.text()
