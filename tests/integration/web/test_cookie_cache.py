"""The encrypted-cookie storage that decrypts each cookie value once, over real sockets.

``cookie_storage()`` returns :class:`aiotwinne.web._storage.CachedCookieStorage`:
a repeat of a cookie value is served from a bounded memory instead of being
decrypted again. These tests hold it to what a decryption would answer: a
logout ends the session, ``max_age`` is checked on every hit, a tampered
cookie is refused and never kept, the memory is bounded, and a handler that
changes a loaded session in place changes nothing for the next request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import aiohttp_session
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.fernet import Fernet
from websupport import (
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    Site,
    SiteFactory,
    free_port,
    log_in,
)
from yarl import URL

from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, SESSION_KEY, cookie_storage, redis_storage
from aiotwinne.web._storage import DEFAULT_CACHE_SIZE, CachedCookieStorage

JSON = {"Accept": "application/json"}


class CountingFernet(Fernet):
    """A Fernet that counts its decryptions (every one, successful or not)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.decrypts = 0

    def decrypt(self, token: bytes | str, ttl: int | None = None) -> bytes:
        self.decrypts += 1
        return super().decrypt(token, ttl)

    def decrypt_at_time(self, token: bytes | str, ttl: int, current_time: int) -> bytes:
        self.decrypts += 1
        return super().decrypt_at_time(token, ttl, current_time)


class Clock:
    """Wall-clock time moved by hand: what the storage checks ``max_age`` against."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def cached_storage(
    fernet: Fernet, *, cache_size: int = DEFAULT_CACHE_SIZE, max_age: int = 3600, **extra: Any
) -> CachedCookieStorage:
    """The storage as cookie_storage() sets it up, with a chosen clock or size."""
    return CachedCookieStorage(
        fernet,
        cache_size=cache_size,
        cookie_name=DEFAULT_COOKIE_NAME,
        max_age=max_age,
        secure=False,
        httponly=True,
        samesite="Lax",
        **extra,
    )


def session_cookie(visitor: aiohttp.ClientSession, site: Site) -> str:
    """The visitor's session cookie value for *site*."""
    morsel = visitor.cookie_jar.filter_cookies(URL(site.url)).get(DEFAULT_COOKIE_NAME)
    assert morsel is not None
    assert morsel.value
    return morsel.value


async def guarded_status(site: Site, cookie: str) -> int:
    """The status of a script's request to a guarded page with exactly this cookie."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw,
        raw.get(
            site("/dashboard"), headers={**JSON, "Cookie": f"{DEFAULT_COOKIE_NAME}={cookie}"}
        ) as answer,
    ):
        return answer.status


async def signed_in_with(
    site_factory: SiteFactory,
    storage: CachedCookieStorage,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> tuple[Site, str]:
    """A site on *storage*, the visitor logged in, and its settled session cookie.

    The first page served after a login writes the session once more (the
    count of logins in a row is reset), so one more page settles the cookie.
    """
    site = await site_factory(storage=storage)
    await log_in(visitor, site, emu, user)
    async with visitor.get(site("/dashboard"), headers=NAVIGATE) as page:
        assert page.status == 200
        assert "Set-Cookie" not in page.headers
    return site, session_cookie(visitor, site)


# -- the cache itself ---------------------------------------------------------------


async def test_cookie_storage_is_the_cached_storage_and_redis_is_not() -> None:
    """cookie_storage() decrypts each value once; redis_storage() keeps nothing across requests."""
    storage = cookie_storage(Fernet.generate_key())
    assert isinstance(storage, CachedCookieStorage)
    assert storage.cache_size == DEFAULT_CACHE_SIZE
    assert cookie_storage(Fernet.generate_key(), cache_size=7).cache_size == 7
    redis = aioredis.Redis()  # never connected: the storage is only built
    try:
        assert not isinstance(redis_storage(redis), CachedCookieStorage)
    finally:
        await redis.aclose()


def test_a_negative_cache_size_is_refused() -> None:
    """cache_size=-1 is a mistake, not "unbounded"."""
    with pytest.raises(ValueError, match="cache_size"):
        cookie_storage(Fernet.generate_key(), cache_size=-1)


async def test_a_repeated_cookie_is_decrypted_once(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """Five pages with the same cookie: one decryption, the same signed-in user every time."""
    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet)
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    storage.forget()
    fernet.decrypts = 0
    for _ in range(5):
        async with visitor.get(
            site("/dashboard"), headers=NAVIGATE, allow_redirects=False
        ) as page:
            assert page.status == 200
            assert await page.text() == "dashboard:user1:Ada Lovelace"
    assert fernet.decrypts == 1
    assert storage.cached == 1
    assert session_cookie(visitor, site) == cookie


async def test_cache_size_zero_decrypts_every_request(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """cache_size=0 behaves as aiohttp-session's EncryptedCookieStorage: one decryption each."""
    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet, cache_size=0)
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    fernet.decrypts = 0
    for _ in range(3):
        assert await guarded_status(site, cookie) == 200
    assert fernet.decrypts == 3
    assert storage.cached == 0


# -- logout ---------------------------------------------------------------------------


async def test_logout_ends_the_session_and_forgets_its_cookie(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """After a logout the browser is logged out, and the old value is no longer in memory."""
    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet)
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, cookie) == 200  # cached now
    async with visitor.post(site(LOGOUT), headers=SAME_ORIGIN_POST, allow_redirects=False) as out:
        assert out.status == 303
    async with visitor.get(site("/dashboard"), headers=JSON) as answer:
        assert answer.status == 401
    assert DEFAULT_COOKIE_NAME not in {
        name
        for name, morsel in visitor.cookie_jar.filter_cookies(URL(site.url)).items()
        if morsel.value
    }
    # The logout's save forgot the old value: a copy replayed now is decrypted again,
    # exactly as without the cache (a stateless cookie's documented limit: accepted
    # until max_age or the token's hour), never served from memory.
    fernet.decrypts = 0
    assert await guarded_status(site, cookie) == 200
    assert fernet.decrypts == 1


async def test_a_changed_session_forgets_the_value_it_replaces(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """A login replaces the cookie: the value it replaced is decrypted again if it comes back."""
    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet)
    site, first = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, first) == 200
    async with visitor.get(site("/auth/twinne/login?next=/dashboard"), headers=NAVIGATE) as page:
        assert page.status == 200
    second = session_cookie(visitor, site)
    assert second != first
    fernet.decrypts = 0
    assert await guarded_status(site, first) == 200  # an older copy: decrypted, not remembered
    assert fernet.decrypts == 1


# -- max_age --------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [61.0, -90.0], ids=["older than max_age", "from the future"])
async def test_max_age_is_checked_on_every_hit(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    offset: float,
) -> None:
    """A remembered value past max_age (or stamped too far ahead) is refused and forgotten."""
    fernet = CountingFernet(Fernet.generate_key())
    clock = Clock()
    storage = cached_storage(fernet, max_age=60, clock=clock)
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, cookie) == 200
    remembered = storage.cached
    fernet.decrypts = 0
    # With the storage's clock 61 s later, max_age (60 s) is over: Fernet's own rule,
    # checked on the hit without decrypting. 90 s earlier, the token is from the future
    # by more than Fernet's minute of clock skew: refused too.
    clock.offset = offset
    assert await guarded_status(site, cookie) == 401
    assert fernet.decrypts == 0
    assert storage.cached == remembered - 1
    # The value is gone from memory: a decryption on the same clock refuses it as well.
    assert await guarded_status(site, cookie) == 401
    assert fernet.decrypts == 1
    clock.offset = 0.0
    assert await guarded_status(site, cookie) == 200


async def test_max_age_on_the_wall_clock_by_default(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a clock the check reads time.time at each request, as Fernet does."""
    storage = cached_storage(CountingFernet(Fernet.generate_key()), max_age=60)
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, cookie) == 200
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    assert await guarded_status(site, cookie) == 401


async def test_the_records_own_expiry_still_applies_to_a_remembered_cookie(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """The session's token expires within max_age: a cached cookie stops working with it."""
    storage = cached_storage(CountingFernet(Fernet.generate_key()))
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, cookie) == 200
    emu.advance(3601)  # the web layer's clock: the token's hour is over
    assert await guarded_status(site, cookie) == 401


# -- tampering ------------------------------------------------------------------------


def _tampered(cookie: str) -> str:
    middle = len(cookie) // 2
    swapped = "A" if cookie[middle] != "A" else "B"
    return cookie[:middle] + swapped + cookie[middle + 1 :]


async def test_a_tampered_cookie_is_refused_and_never_remembered(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """One changed character: logged out, each time decrypted (and refused) again, never kept."""
    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet)
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, cookie) == 200
    remembered = storage.cached
    fernet.decrypts = 0
    forged = _tampered(cookie)
    for _ in range(3):
        assert await guarded_status(site, forged) == 401
    assert fernet.decrypts == 3
    assert storage.cached == remembered
    assert await guarded_status(site, cookie) == 200


async def test_another_keys_cookie_is_refused(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """A cookie made with another key (another site, a rotated key) never reads as a session."""
    storage = cached_storage(CountingFernet(Fernet.generate_key()))
    site, _ = await signed_in_with(site_factory, storage, visitor, emu, user)
    foreign = Fernet(Fernet.generate_key()).encrypt(
        json.dumps({"created": 1, "session": {SESSION_KEY: {"b": "x" * 22}}}).encode()
    )
    assert await guarded_status(site, foreign.decode()) == 401


# -- a bounded memory, and copies -------------------------------------------------------


async def _set_value(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session["cart"] = {"items": [request.match_info["value"]], "count": 1}
    return web.Response(text="set")


async def _get_value(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    return web.json_response(session.get("cart"))


async def _mutate_in_place(request: web.Request) -> web.Response:
    # Nested changes that aiohttp-session does not notice (no save): they must stay
    # in this request's copy and never reach the next request through the cache.
    session = await aiohttp_session.get_session(request)
    cart = session["cart"]
    cart["items"].append("injected")
    cart["count"] = 99
    return web.Response(text="mutated")


async def _mutate_record(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session[SESSION_KEY]["auth"]["u"]["un"] = "mallory"
    session[SESSION_KEY]["auth"]["u"]["fn"] = "Mallory"
    return web.Response(text="mutated")


async def cart_site(storage: CachedCookieStorage) -> tuple[str, web.AppRunner]:
    """A bare aiohttp-session site on a real port: /set/{value}, /get, /mutate."""
    app = web.Application()
    aiohttp_session.setup(app, storage)
    app.router.add_get("/set/{value}", _set_value)
    app.router.add_get("/get", _get_value)
    app.router.add_get("/mutate", _mutate_in_place)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}", runner


async def _cart_cookie(base: str, value: str) -> str:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
        browser.get(f"{base}/set/{value}") as answer,
    ):
        assert answer.status == 200
        morsel = answer.cookies[DEFAULT_COOKIE_NAME]
        return morsel.value


async def _cart(base: str, cookie: str, path: str = "/get") -> Any:
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw,
        raw.get(base + path, headers={"Cookie": f"{DEFAULT_COOKIE_NAME}={cookie}"}) as answer,
    ):
        assert answer.status == 200
        assert "Set-Cookie" not in answer.headers
        return await answer.json() if path == "/get" else await answer.text()


async def test_the_memory_is_bounded_least_recently_used_first() -> None:
    """cache_size=3 and ten visitors: never more than three kept, every answer still right."""
    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet, cache_size=3)
    base, runner = await cart_site(storage)
    try:
        cookies = [await _cart_cookie(base, str(n)) for n in range(10)]
        for n, cookie in enumerate(cookies):
            assert await _cart(base, cookie) == {"items": [str(n)], "count": 1}
            assert storage.cached <= 3
        assert storage.cached == 3
        # The three most recent are served from memory; the first is decrypted again.
        fernet.decrypts = 0
        for n in (9, 8, 7):
            assert await _cart(base, cookies[n]) == {"items": [str(n)], "count": 1}
        assert fernet.decrypts == 0
        assert await _cart(base, cookies[0]) == {"items": ["0"], "count": 1}
        assert fernet.decrypts == 1
        assert storage.cached == 3
    finally:
        await runner.cleanup()


async def test_changing_a_loaded_session_in_place_does_not_reach_the_cache() -> None:
    """A handler appends to a nested list and changes a number without saving: nothing sticks."""
    storage = cached_storage(CountingFernet(Fernet.generate_key()))
    base, runner = await cart_site(storage)
    try:
        cookie = await _cart_cookie(base, "book")
        assert await _cart(base, cookie) == {"items": ["book"], "count": 1}
        for _ in range(2):
            assert await _cart(base, cookie, "/mutate") == "mutated"
            assert await _cart(base, cookie) == {"items": ["book"], "count": 1}
    finally:
        await runner.cleanup()


async def test_changing_the_login_record_in_place_does_not_sign_anyone_else_in(
    site_factory: SiteFactory,
    visitor_factory: Callable[[], aiohttp.ClientSession],
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """A handler rewrites the loaded record's user in place: the next page still shows user1."""
    storage = cached_storage(CountingFernet(Fernet.generate_key()))
    visitor = visitor_factory()
    visitor.cookie_jar.update_cookies(emu.sign_in(user))
    site = await site_factory(storage=storage, routes={"/mutate-record": _mutate_record})
    await log_in(visitor, site, emu, user)
    for _ in range(2):
        async with visitor.get(site("/mutate-record"), headers=NAVIGATE) as answer:
            assert await answer.text() == "mutated"
        async with visitor.get(
            site("/dashboard"), headers=NAVIGATE, allow_redirects=False
        ) as page:
            assert page.status == 200
            assert await page.text() == "dashboard:user1:Ada Lovelace"


async def test_other_cookies_around_the_session_cookie() -> None:
    """The same value in different Cookie headers decrypts once; a header without it is nobody."""
    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet)
    base, runner = await cart_site(storage)
    try:
        cookie = await _cart_cookie(base, "tea")
        fernet.decrypts = 0
        headers = [
            f"{DEFAULT_COOKIE_NAME}={cookie}",
            f"theme=dark; {DEFAULT_COOKIE_NAME}={cookie}",
            f"{DEFAULT_COOKIE_NAME}={cookie}; lang=fr; theme=light",
        ]
        for header in headers * 2:
            async with (
                aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw,
                raw.get(base + "/get", headers={"Cookie": header}) as answer,
            ):
                assert await answer.json() == {"items": ["tea"], "count": 1}
        assert fernet.decrypts == 1
        for header in ("theme=dark", f"{DEFAULT_COOKIE_NAME}X={cookie}", "lang=fr; theme=light"):
            async with (
                aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw,
                raw.get(base + "/get", headers={"Cookie": header}) as answer,
            ):
                assert await answer.json() is None
        assert fernet.decrypts == 1
    finally:
        await runner.cleanup()


async def test_a_custom_decoder_decodes_the_plaintext_again_on_every_hit() -> None:
    """With a decoder of the site's own, each hit decodes the kept plaintext: a fresh copy."""
    decoded: list[str] = []

    def decoder(text: str) -> Any:
        decoded.append(text)
        return json.loads(text)

    fernet = CountingFernet(Fernet.generate_key())
    storage = cached_storage(fernet, decoder=decoder)
    base, runner = await cart_site(storage)
    try:
        cookie = await _cart_cookie(base, "pen")
        decoded.clear()
        fernet.decrypts = 0
        for _ in range(3):
            assert await _cart(base, cookie, "/mutate") == "mutated"
            assert await _cart(base, cookie) == {"items": ["pen"], "count": 1}
        assert fernet.decrypts == 1
        assert len(decoded) == 6
        assert len(set(decoded)) == 1
    finally:
        await runner.cleanup()
