"""The login note kept with each decrypted cookie: a guarded page without loading the session.

``CachedCookieStorage`` keeps, next to a decrypted cookie value, the guard's
reading of the login that value holds, and the guard asks for it before
loading the session. These tests hold the note to what loading the session
would answer: it is used only while the value would load the same session
(aiohttp-session's ``created`` check here; Fernet's ``max_age`` and the
token's own expiry in ``test_cookie_cache.py``, whose guarded pages now take
the note), never for a session already loaded (and perhaps changed) in this
request, never attached to a session that is not the value's, never with a
storage that must run on every request (a subclass's own load, a custom
decoder), and it goes with its value (a login Twinne refused, the cache's
bound, ``cache_size=0``, ``forget()``; a logout in ``test_cookie_cache.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import aiohttp_session
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.fernet import Fernet
from test_cookie_cache import (
    CountingFernet,
    cached_storage,
    guarded_status,
    session_cookie,
    signed_in_with,
)
from websupport import JSON, NAVIGATE, Site, SiteFactory, log_in

from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, SESSION_KEY, get_user
from aiotwinne.web._record import SignedIn
from aiotwinne.web._storage import CachedCookieStorage


class Loads:
    """Counts the sessions really loaded (aiohttp_session.get_session reaching the storage)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = aiohttp_session.get_session

        async def counting(request: web.Request) -> aiohttp_session.Session:
            if aiohttp_session.SESSION_KEY not in request:
                self.count += 1
            return await real(request)

        monkeypatch.setattr(aiohttp_session, "get_session", counting)

    async def of_pages(self, site: Site, cookies: list[str]) -> int:
        """Serve the guarded page once per cookie (each a 200); how many sessions were loaded."""
        before = self.count
        for cookie in cookies:
            assert await guarded_status(site, cookie) == 200
        return self.count - before


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    return Loads(monkeypatch)


def counting_storage(**options: Any) -> CachedCookieStorage:
    """The storage as cookie_storage() sets it up."""
    return cached_storage(CountingFernet(Fernet.generate_key()), **options)


class RevokingStorage(CachedCookieStorage):
    """A subclass with its own load_session (a site's list of revoked sessions, say)."""

    async def load_session(self, request: web.Request) -> aiohttp_session.Session:
        return await super().load_session(request)  # where a site would check its list


async def settled(
    visitor: aiohttp.ClientSession, site: Site, emu: TwinneEmulator, user: EmulatedUser
) -> str:
    """Log *user* in to *site* and serve one more page; the settled cookie (as signed_in_with)."""
    await log_in(visitor, site, emu, user)
    async with visitor.get(site("/dashboard"), headers=NAVIGATE) as page:
        assert page.status == 200
        assert "Set-Cookie" not in page.headers
    return session_cookie(visitor, site)


async def _forget_login_in_place(request: web.Request) -> web.Response:
    # Loads the session itself and drops the login from it in place, then asks
    # aiotwinne who is signed in: the answer must come from this session.
    session = await aiohttp_session.get_session(request)
    session.pop(SESSION_KEY, None)
    user = await get_user(request)
    return web.Response(text="nobody" if user is None else user.username)


async def test_a_settled_cookie_serves_guarded_pages_without_loading_the_session(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    loads: Loads,
) -> None:
    """The page that reads the cookie keeps a note; the next pages load no session at all."""
    storage = counting_storage()
    site, _ = await signed_in_with(site_factory, storage, visitor, emu, user)
    loads.count = 0
    for _ in range(4):
        async with visitor.get(
            site("/dashboard"), headers=NAVIGATE, allow_redirects=False
        ) as page:
            assert page.status == 200
            assert "Set-Cookie" not in page.headers
            assert await page.text() == "dashboard:user1:Ada Lovelace"
    assert loads.count == 0  # signed_in_with's last page left the note
    assert storage.cached == 1


async def test_a_new_cookie_is_read_once_then_noted(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    loads: Loads,
) -> None:
    """The login's last page changed the session (the count of logins in a row went).

    That page saved a new cookie and kept no note (the save forgot the value it
    replaced); the next page reads the new value once and notes it.
    """
    storage = counting_storage()
    site = await site_factory(storage=storage)
    await log_in(visitor, site, emu, user)
    before = loads.count
    for _ in range(3):
        async with visitor.get(site("/dashboard"), headers=NAVIGATE) as page:
            assert page.status == 200
            assert "Set-Cookie" not in page.headers
    assert loads.count == before + 1
    assert storage.cached == 1


def _subclassed() -> CachedCookieStorage:
    model = counting_storage()
    return RevokingStorage(model._fernet, cookie_name=model.cookie_name, **model.cookie_params)


def _custom_decoder() -> CachedCookieStorage:
    # A decoder of the site's own (not json.loads itself), as a custom one would be.
    return counting_storage(encoder=json.dumps, decoder=lambda text: json.loads(text))


@pytest.mark.parametrize(
    "make_storage",
    [lambda: counting_storage(cache_size=0), _subclassed, _custom_decoder],
    ids=["cache_size=0", "a subclass's own load_session", "a custom decoder"],
)
async def test_no_notes_where_every_load_must_run(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    loads: Loads,
    make_storage: Callable[[], CachedCookieStorage],
) -> None:
    """No cache, a subclass's load_session (which may refuse what the cache would
    accept) or a custom decoder: every guarded page loads its session."""
    site, cookie = await signed_in_with(site_factory, make_storage(), visitor, emu, user)
    assert await loads.of_pages(site, [cookie] * 3) == 3


async def test_forget_drops_the_notes(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    loads: Loads,
) -> None:
    """forget(): the next page loads its session again (and keeps a new note)."""
    storage = counting_storage()
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    storage.forget()
    assert await loads.of_pages(site, [cookie] * 3) == 1


async def test_the_memory_bound_drops_notes_with_their_values(
    site_factory: SiteFactory,
    visitor_factory: Callable[[], aiohttp.ClientSession],
    emu: TwinneEmulator,
    user: EmulatedUser,
    loads: Loads,
) -> None:
    """cache_size=1 and two browsers in turn: each page loads its own session again."""
    storage = counting_storage(cache_size=1)
    site = await site_factory(storage=storage)
    cookies = []
    for _ in range(2):  # two browsers of the same user: two sessions, two values
        visitor = visitor_factory()
        visitor.cookie_jar.update_cookies(emu.sign_in(user))
        cookies.append(await settled(visitor, site, emu, user))
    assert cookies[0] != cookies[1]
    assert await loads.of_pages(site, cookies * 2) == 4
    assert storage.cached == 1


async def test_aiohttp_sessions_created_check_applies_to_a_noted_cookie(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fernet's stamp still fresh, the session's created past max_age: nobody, as on a load."""
    # The storage's own clock (Fernet's age check) stays on real time; aiohttp-session
    # reads time.time for its created check, which goes 61 s ahead.
    real_time = time.time
    storage = counting_storage(max_age=60, clock=lambda: real_time())
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, cookie) == 200
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    assert await guarded_status(site, cookie) == 401
    monkeypatch.setattr(time, "time", real_time)
    assert await guarded_status(site, cookie) == 200


async def test_a_session_loaded_and_changed_in_this_request_wins_over_the_note(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """A handler drops the login from its loaded session, then asks: nobody is signed in."""
    storage = counting_storage()
    site = await site_factory(storage=storage, routes={"/forget": _forget_login_in_place})
    cookie = await settled(visitor, site, emu, user)
    assert await guarded_status(site, cookie) == 200  # the note is kept
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as raw,
        raw.get(site("/forget"), headers={"Cookie": f"{DEFAULT_COOKIE_NAME}={cookie}"}) as answer,
    ):
        assert await answer.text() == "nobody"


async def test_a_login_refused_by_twinne_ends_the_note(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    loads: Loads,
) -> None:
    """get_user(fresh=True) finds the token revoked: the login goes, and its note with it."""
    storage = counting_storage()
    site, cookie = await signed_in_with(site_factory, storage, visitor, emu, user)
    assert await guarded_status(site, cookie) == 200  # noted
    emu.revoke(user, site.app)
    async with visitor.get(site("/fresh"), headers=JSON, allow_redirects=False) as answer:
        assert answer.status == 401
        assert "Set-Cookie" in answer.headers  # the login was dropped from the session
    # The old value replayed: loaded again (a stateless cookie's documented limit),
    # never answered from a note.
    assert await loads.of_pages(site, [cookie]) == 1


async def test_keep_note_refuses_a_session_that_is_not_the_cookies() -> None:
    """keep_note() attaches a note only to the unchanged session of a kept cookie value."""
    fernet = Fernet(Fernet.generate_key())
    storage = CachedCookieStorage(fernet, cookie_name="s", max_age=3600)
    now = int(time.time())
    cookie = fernet.encrypt(b'{"created": %d, "session": {"cart": [1]}}' % now).decode()
    request = _request({"Cookie": f"s={cookie}"})
    session = await storage.load_session(request)
    note = SignedIn("t" * 32, now, now + 3600, None)  # type: ignore[arg-type]
    assert storage.note(request) is None
    changed = await storage.load_session(request)
    changed["cart"] = [2]
    assert not storage.keep_note(request, changed, note)
    assert storage.note(request) is None
    assert not storage.keep_note(_request({}), session, note)
    assert not storage.keep_note(_request({"Cookie": "s=other"}), session, note)
    # A new session with the very same content is still not the cookie's.
    fresh = aiohttp_session.Session(
        None, data={"created": now, "session": {"cart": [1]}}, new=True, max_age=3600
    )
    assert not storage.keep_note(request, fresh, note)
    other_age = aiohttp_session.Session(
        None, data={"created": now - 10, "session": {"cart": [1]}}, new=False, max_age=3600
    )
    assert not storage.keep_note(request, other_age, note)
    assert storage.keep_note(request, session, note)
    assert storage.note(request) is note
    await storage.save_session(request, web.Response(), changed)  # a save forgets the value
    assert storage.note(request) is None


def _request(headers: dict[str, str]) -> web.Request:
    return make_mocked_request("GET", "/", headers=headers)
