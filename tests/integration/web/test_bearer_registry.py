"""Bearer mode bound to this site, flood-proof, Redis-shared; setup() refuses forgeable sessions.

Rows 5, 6 and 7 of issue 11, over real sockets: the emulator, real aiohttp
sites and (for the shared registry) a real redis-server.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis
from bearersupport import bearer, own_token, token_routes
from websupport import RedisServer, Site, SiteFactory, log_in, plain_storage

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import redis_storage

Visitors = Callable[[], aiohttp.ClientSession]


async def _me(api: aiohttp.ClientSession, site: Site, token: str) -> tuple[int, dict[str, object]]:
    async with api.get(site("/api/me"), headers=bearer(token)) as answer:
        return answer.status, await answer.json()


async def _flood(api: aiohttp.ClientSession, site: Site, n: int) -> list[int]:
    """*n* concurrent requests, each with a new random token; their statuses."""

    async def one() -> int:
        status, _ = await _me(api, site, secrets.token_hex(16))
        return status

    return list(await asyncio.gather(*(one() for _ in range(n))))


# -- row 5: only this site's tokens -----------------------------------------------


async def test_a_token_issued_to_another_app_is_refused_without_a_call(
    visitor_factory: Visitors, site_factory: SiteFactory, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A token the user gave another Twinne app is refused here, and Twinne is not asked."""
    site = await site_factory()
    other = emu.add_app(name="Another app")
    emu.approve(user, other)
    foreign = emu.issue_token(user, other)
    status, body = await _me(visitor_factory(), site, foreign)
    assert (status, body) == (401, {"error": "invalid_token"})
    assert emu.count("user_info") == 0


async def test_a_token_of_this_app_not_obtained_by_the_callback_is_refused(
    visitor_factory: Visitors, site_factory: SiteFactory, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Even a token of the site's own app is refused unless this site's callback obtained it."""
    site = await site_factory()
    status, _ = await _me(visitor_factory(), site, emu.issue_token(user, site.app))
    assert status == 401
    assert emu.count("user_info") == 0


async def test_foreign_tokens_are_accepted_only_with_the_opt_in(
    visitor_factory: Visitors, site_factory: SiteFactory, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """bearer_accept_foreign_tokens=True: any token Twinne accepts, whichever app it names."""
    site = await site_factory(bearer_accept_foreign_tokens=True)
    foreign = emu.issue_token(user, emu.add_app(name="Another app"))
    status, body = await _me(visitor_factory(), site, foreign)
    assert (status, body) == (200, {"id": user.id, "username": "user1"})
    assert emu.count("user_info") == 1


async def test_bearer_mode_follows_twinnes_60_second_window(
    visitor: aiohttp.ClientSession,
    visitor_factory: Visitors,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Stock Sngine expires tokens after 60 s (client: 3600): Bearer answers 401 once it does."""
    emu.token_lifetime = 60
    site = await site_factory(routes=token_routes())
    token = await own_token(visitor, site, emu, user)
    emu.reset_stats()
    api = visitor_factory()
    assert (await _me(api, site, token))[0] == 200
    assert emu.count("user_info") == 0
    emu.advance(61)
    assert await _me(api, site, token) == (401, {"error": "invalid_token"})
    assert emu.count("user_info") == 1
    # Refused and forgotten: no further calls for it.
    emu.advance(61)
    assert (await _me(api, site, token))[0] == 401
    assert emu.count("user_info") == 1


# -- row 6: flooding ------------------------------------------------------------------


async def test_a_flood_of_random_tokens_costs_no_call_and_keeps_good_tokens(
    visitor: aiohttp.ClientSession,
    visitor_factory: Visitors,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Default mode: 300 random tokens get 401 with no upstream call; a good token stays cached."""
    site = await site_factory(routes=token_routes(), bearer_max_entries=8)
    token = await own_token(visitor, site, emu, user)
    emu.reset_stats()
    api = visitor_factory()
    assert set(await _flood(api, site, 300)) == {401}
    assert emu.count("user_info") == 0
    assert (await _me(api, site, token))[0] == 200
    assert emu.count("user_info") == 0


async def test_a_flood_in_foreign_mode_is_capped_and_keeps_good_tokens(
    visitor_factory: Visitors, site_factory: SiteFactory, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """Foreign mode: a slow Twinne and 100 random tokens make at most bearer_max_checks calls."""
    site = await site_factory(
        bearer_accept_foreign_tokens=True, bearer_max_checks=4, bearer_max_entries=8
    )
    api = visitor_factory()
    good = emu.issue_token(user, site.app)
    assert (await _me(api, site, good))[0] == 200
    emu.reset_stats()
    emu.inject("latency", endpoint="user_info", delay=2.0, count=1000)
    statuses = await _flood(api, site, 100)
    emu.clear_faults()
    assert emu.count("user_info") <= 4
    assert set(statuses) <= {401, 503}
    assert statuses.count(503) >= 96
    # The refused ones are cached apart: the good token is still served from the cache.
    assert (await _me(api, site, good))[0] == 200
    assert emu.count("user_info") <= 4


async def test_refused_tokens_are_cached_briefly(
    visitor_factory: Visitors, site_factory: SiteFactory, emu: TwinneEmulator
) -> None:
    """Foreign mode: a refused token is not checked again for bearer_invalid_ttl seconds."""
    site = await site_factory(bearer_accept_foreign_tokens=True, bearer_invalid_ttl=10)
    api = visitor_factory()
    junk = "e" * 32
    for _ in range(3):
        assert (await _me(api, site, junk))[0] == 401
    assert emu.count("user_info") == 1
    emu.advance(11)
    assert (await _me(api, site, junk))[0] == 401
    assert emu.count("user_info") == 2


# -- the registry in Redis, shared by several instances ------------------------------


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A redis.asyncio client for the private server."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _instance(
    site_factory: SiteFactory, emu: TwinneEmulator, redis: aioredis.Redis, of: Site | None
) -> Site:
    """A site on *redis*; with *of*, a second instance of the same Twinne app."""
    storage = redis_storage(redis, secure=False)
    if of is None:
        return await site_factory(storage=storage, routes=token_routes())
    client = TwinneClient(
        of.app.app_id, of.app.secret, base_url=emu.base_url, retry=RetryPolicy.no_wait(attempts=2)
    )
    return await site_factory(emu_app=emu.add_app(name="unused"), client=client, storage=storage)


@pytest.mark.redis
async def test_the_registry_is_shared_through_redis(
    redis_client: aioredis.Redis,
    redis_server: RedisServer,
    visitor: aiohttp.ClientSession,
    visitor_factory: Visitors,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """A login on instance A makes its token good on B; other apps' tokens stay refused."""
    a = await _instance(site_factory, emu, redis_client, None)
    b = await _instance(site_factory, emu, redis_client, a)
    other_app = await _instance(site_factory, emu, redis_client, None)
    token = await own_token(visitor, a, emu, user)
    emu.reset_stats()
    api = visitor_factory()
    assert await _me(api, b, token) == (200, {"id": user.id, "username": "user1"})
    assert emu.count("user_info") == 1
    # Another Twinne app's site on the same Redis does not take A's token.
    assert (await _me(api, other_app, token))[0] == 401
    foreign = emu.issue_token(user, emu.add_app(name="Another app"))
    assert (await _me(api, b, foreign))[0] == 401
    # A flood of random tokens is refused from the registry: still no call to Twinne.
    assert set(await _flood(api, b, 100)) == {401}
    assert emu.count("user_info") == 1

    # One key per token: prefix + SHA-256, the user id as value, the token's lifetime as TTL.
    names = [name.decode() async for name in redis_client.scan_iter("*")]
    prefix = f"aiotwinne:bearer:{a.app.app_id}:"
    registered = [name for name in names if name.startswith("aiotwinne:bearer:")]
    assert registered == [prefix + hashlib.sha256(token.encode()).hexdigest()]
    assert await redis_client.get(registered[0]) == str(user.id).encode()
    assert 3500 < await redis_client.ttl(registered[0]) <= 3600
    assert not [name for name in names if token in name]

    # Redis gone: a check that needs the registry answers 503, never 500 or a 401.
    await redis_server.stop()
    status, body = await _me(api, b, secrets.token_hex(16))
    assert (status, body) == (503, {"error": "provider_unavailable"})


@pytest.mark.redis
async def test_a_token_twinne_refuses_leaves_the_shared_registry(
    redis_client: aioredis.Redis,
    visitor: aiohttp.ClientSession,
    visitor_factory: Visitors,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Revoked at Twinne: refused on B and deleted from Redis, so A needs no call for it either."""
    a = await _instance(site_factory, emu, redis_client, None)
    b = await _instance(site_factory, emu, redis_client, a)
    token = await own_token(visitor, a, emu, user)
    emu.revoke(user, a.app)
    api = visitor_factory()
    assert (await _me(api, b, token))[0] == 401
    assert [name async for name in redis_client.scan_iter("aiotwinne:bearer:*")] == []
    emu.reset_stats()
    emu.advance(61)  # past A's cache of the login
    assert (await _me(api, a, token))[0] == 401
    assert emu.count("user_info") == 0


# -- row 7: setup() refuses a session storage a visitor can edit -------------------


async def test_simple_cookie_storage_is_refused_without_the_opt_in(
    visitor: aiohttp.ClientSession,
    site_factory: SiteFactory,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """SimpleCookieStorage: setup() refuses it, naming the opt-in; with it, the site works."""
    with pytest.raises(ValueError, match="allow_unauthenticated_storage=True"):
        await site_factory(storage=plain_storage(), allow_unauthenticated_storage=False)
    site = await site_factory(storage=plain_storage(), allow_unauthenticated_storage=True)
    await log_in(visitor, site, emu, user)
