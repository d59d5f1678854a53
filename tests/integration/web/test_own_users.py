"""The site's own user at login (issue 14): on_login, get_login, LoginRefused, on_logout, the log.

Every test runs the real round trip: a site on a loopback port, the emulator
as Twinne, a cookie-keeping client as the browser.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from websupport import (
    CALLBACK,
    CROSS_SITE,
    JSON,
    LOGIN,
    LOGOUT,
    NAVIGATE,
    SAME_ORIGIN_POST,
    Site,
    SiteFactory,
    follow,
    log_in,
)

from aiotwinne import AccessToken, UserInfo
from aiotwinne.testing import EmulatedUser, TwinneEmulator
from aiotwinne.web import (
    DEFAULT_COOKIE_NAME,
    MAX_LOGIN_DATA,
    Login,
    LoginRefused,
    cookie_storage,
    get_login,
    login_required,
)
from aiotwinne.web._middleware import WAIT_FOR_OTHER_TAB

OnLogin = Callable[[web.Request, UserInfo, AccessToken], Any]


@login_required
async def _whoami(request: web.Request) -> web.Response:
    login = await get_login(request)
    assert login is not None
    return web.json_response(
        {
            "id": login.user.id,
            "name": login.user.full_name,
            "data": dict(login.data),
            "expires_at": login.expires_at.isoformat(),
        }
    )


async def _maybe(request: web.Request) -> web.Response:
    login = await get_login(request)
    return web.Response(text="anonymous" if login is None else f"login:{login.user.id}")


ROUTES = {"/whoami": _whoami, "/maybe": _maybe}


class Hooks:
    """on_login / on_logout recorders; each test sets what on_login answers."""

    def __init__(self) -> None:
        self.logins: list[tuple[int, str, Login | None]] = []
        self.logouts: list[Login] = []
        self.answer: Callable[[UserInfo, AccessToken], Mapping[str, Any] | None] = lambda u, t: {
            "account": 1000 + u.id,
            "role": "member",
        }

    async def on_login(
        self, request: web.Request, user: UserInfo, token: AccessToken
    ) -> Mapping[str, Any] | None:
        self.logins.append((user.id, token.value, await get_login(request)))
        return self.answer(user, token)

    async def on_logout(self, request: web.Request, login: Login) -> None:
        self.logouts.append(login)


@pytest.fixture
def hooks() -> Hooks:
    """Fresh hooks for one test."""
    return Hooks()


@pytest.fixture
async def own_site(site_factory: SiteFactory, hooks: Hooks) -> Site:
    """The test site with on_login/on_logout and the /whoami and /maybe routes."""
    return await site_factory(routes=ROUTES, on_login=hooks.on_login, on_logout=hooks.on_logout)


async def _whoami_json(visitor: aiohttp.ClientSession, site: Site) -> dict[str, Any]:
    async with visitor.get(site("/whoami"), headers=NAVIGATE) as page:
        assert page.status == 200, await page.text()
        data: dict[str, Any] = await page.json()
        return data


def _outcomes(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "outcome")]


async def test_on_login_data_is_read_on_every_request_without_a_call(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
) -> None:
    """What on_login returned comes back from get_login on each request: no hook, no Twinne."""
    await log_in(visitor, own_site, emu, user)
    calls = emu.count("user_info")
    for _ in range(3):
        answer = await _whoami_json(visitor, own_site)
        assert answer["data"] == {"account": 1000 + user.id, "role": "member"}
        assert answer["id"] == user.id
        assert answer["name"] == "Ada Lovelace"
    assert len(hooks.logins) == 1
    assert emu.count("user_info") == calls


async def test_on_login_tells_a_first_login_from_a_relogin(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Inside on_login, get_login is None at first, the login held (with its data) after."""
    caplog.set_level(logging.INFO, logger="aiotwinne")
    await log_in(visitor, own_site, emu, user)
    emu.advance(3601)
    hooks.answer = lambda u, t: {"account": 2000 + u.id, "role": "member"}
    assert (await _whoami_json(visitor, own_site))["data"]["account"] == 2000 + user.id
    (first_id, _, first_previous), (second_id, _, second_previous) = hooks.logins
    assert first_id == second_id == user.id
    assert first_previous is None
    assert second_previous is not None
    assert second_previous.user.id == user.id
    assert dict(second_previous.data) == {"account": 1000 + user.id, "role": "member"}
    assert [r.outcome for r in _outcomes(caplog)] == ["signed_in", "relogin"]  # type: ignore[attr-defined]


async def test_the_profile_summary_is_refreshed_at_each_login(
    own_site: Site, visitor: aiohttp.ClientSession, emu: TwinneEmulator, user: EmulatedUser
) -> None:
    """A name changed at Twinne shows after the next (silent) re-login."""
    await log_in(visitor, own_site, emu, user)
    emu.update_user(user, user_firstname="Augusta")
    assert (await _whoami_json(visitor, own_site))["name"] == "Ada Lovelace"
    emu.advance(3601)
    assert (await _whoami_json(visitor, own_site))["name"] == "Augusta Lovelace"


async def test_login_refused_signs_nobody_in_and_shows_the_message(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """LoginRefused: a 403 page with the site's message (escaped), no login, token not usable."""
    caplog.set_level(logging.INFO, logger="aiotwinne")

    def refuse(user: UserInfo, token: AccessToken) -> None:
        raise LoginRefused("Your account <b>is suspended</b>.")

    hooks.answer = refuse
    emu.approve(user, own_site.app)
    hops = await follow(visitor, own_site("/whoami"), headers=NAVIGATE)
    assert hops[-1].status == 403
    assert "Your account &lt;b&gt;is suspended&lt;/b&gt;." in hops[-1].text
    assert "<b>" not in hops[-1].text
    async with visitor.get(own_site("/maybe")) as page:
        assert await page.text() == "anonymous"
    token = hooks.logins[0][1]
    assert token not in hops[-1].text
    # The refused login's token was never registered for Bearer use.
    async with visitor.get(
        own_site("/api/me"), headers={"Authorization": f"Bearer {token}"}
    ) as api:
        assert api.status == 401
    refused = [r for r in _outcomes(caplog) if r.outcome == "refused"]  # type: ignore[attr-defined]
    assert len(refused) == 1
    assert refused[0].levelno == logging.INFO


async def test_a_relogin_refused_ends_the_login_held(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
) -> None:
    """A user banned since their last login: a new login is refused and the old one dropped."""
    await log_in(visitor, own_site, emu, user)

    def refuse(user: UserInfo, token: AccessToken) -> None:
        raise LoginRefused("Banned.")

    hooks.answer = refuse
    # Logging in again while the login held is still valid: refused, and the old one is gone.
    hops = await follow(visitor, own_site(f"{LOGIN}?next=/maybe"), headers=NAVIGATE)
    assert hops[-1].status == 403
    async with visitor.get(own_site("/maybe")) as page:
        assert await page.text() == "anonymous"


async def test_login_refused_gives_json_callers_a_code(
    own_site: Site, visitor: aiohttp.ClientSession, emu: TwinneEmulator, hooks: Hooks
) -> None:
    """A JSON caller at the callback gets {"error": "login_refused", "message": ...}."""

    def refuse(user: UserInfo, token: AccessToken) -> None:
        raise LoginRefused("Not here.")

    hooks.answer = refuse
    emu.approve(emu.users[0], own_site.app)
    async with visitor.get(own_site(LOGIN), headers=NAVIGATE, allow_redirects=False) as start:
        assert start.status == 302
    key = emu.authorize(emu.users[0], own_site.app)
    async with visitor.get(own_site(f"{CALLBACK}?auth_key={key}"), headers=JSON) as answer:
        assert answer.status == 403
        assert await answer.json() == {"error": "login_refused", "message": "Not here."}


async def test_an_on_login_crash_is_a_clean_500_logged_once(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any other exception: a 500 page without traceback or secret, one ERROR record."""
    caplog.set_level(logging.DEBUG)

    def crash(user: UserInfo, token: AccessToken) -> None:
        raise RuntimeError("database is locked")

    hooks.answer = crash
    emu.approve(user, own_site.app)
    hops = await follow(visitor, own_site("/whoami"), headers=NAVIGATE)
    page = hops[-1]
    assert page.status == 500
    assert "Something went wrong" in page.text
    assert "Traceback" not in page.text
    assert "database is locked" not in page.text
    assert "Try again" in page.text
    token = hooks.logins[0][1]
    for secret in (token, own_site.app.secret):
        assert secret not in page.text
        assert secret not in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].outcome == "on_login_failed"  # type: ignore[attr-defined]
    assert errors[0].exc_info is not None
    async with visitor.get(own_site("/maybe")) as maybe:
        assert await maybe.text() == "anonymous"


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"blob": "x" * MAX_LOGIN_DATA}, f"the limit is {MAX_LOGIN_DATA}"),
        ({"when": object()}, "not JSON"),
        (["not", "a", "mapping"], "mapping or None"),
        ({"nan": float("nan")}, "not JSON"),
    ],
)
async def test_login_data_that_cannot_be_kept_is_refused_clearly(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
    caplog: pytest.LogCaptureFixture,
    answer: Any,
    said: str,
) -> None:
    """Too large, not JSON or not a mapping: a 500 page, and the log says what and the limit."""
    hooks.answer = lambda u, t: answer
    emu.approve(user, own_site.app)
    hops = await follow(visitor, own_site("/whoami"), headers=NAVIGATE)
    assert hops[-1].status == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert said in errors[0].getMessage()


async def test_login_data_at_the_limit_is_kept(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
) -> None:
    """A mapping of exactly MAX_LOGIN_DATA bytes of JSON is stored and read back whole."""
    filler = MAX_LOGIN_DATA - len(json.dumps({"blob": ""}))
    hooks.answer = lambda u, t: {"blob": "é" * (filler // 6)}  # \u00e9: 6 bytes of JSON each
    await log_in(visitor, own_site, emu, user)
    assert (await _whoami_json(visitor, own_site))["data"]["blob"] == "é" * (filler // 6)


async def test_on_logout_sees_the_login_before_it_is_removed(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """on_logout gets the Login with its data; afterwards nobody is signed in; one INFO record."""
    caplog.set_level(logging.INFO, logger="aiotwinne")
    await log_in(visitor, own_site, emu, user)
    async with visitor.post(own_site(LOGOUT), headers=SAME_ORIGIN_POST) as answer:
        assert answer.status == 200
    assert [dict(login.data) for login in hooks.logouts] == [
        {"account": 1000 + user.id, "role": "member"}
    ]
    assert hooks.logouts[0].user.id == user.id
    async with visitor.get(own_site("/maybe")) as page:
        assert await page.text() == "anonymous"
    signed_out = [r for r in _outcomes(caplog) if r.outcome == "signed_out"]  # type: ignore[attr-defined]
    assert len(signed_out) == 1
    assert signed_out[0].twinne_user_id == user.id  # type: ignore[attr-defined]


async def test_a_failing_on_logout_still_logs_out(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """on_logout raising is logged; the user is logged out all the same."""

    async def on_logout(request: web.Request, login: Login) -> None:
        raise RuntimeError("audit log unavailable")

    site = await site_factory(routes=ROUTES, on_logout=on_logout)
    await log_in(visitor, site, emu, user)
    async with visitor.post(site(LOGOUT), headers=SAME_ORIGIN_POST) as answer:
        assert answer.status == 200
    async with visitor.get(site("/maybe")) as page:
        assert await page.text() == "anonymous"


async def test_without_on_login_get_login_has_empty_data(
    site_factory: SiteFactory,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> None:
    """get_login works without hooks: Twinne's summary and an empty mapping."""
    site = await site_factory(routes=ROUTES)
    async with visitor.get(site("/maybe")) as page:
        assert await page.text() == "anonymous"
    await log_in(visitor, site, emu, user)
    answer = await _whoami_json(visitor, site)
    assert answer["data"] == {}
    assert answer["id"] == user.id


async def test_login_outcomes_are_structured_records_without_secrets(
    own_site: Site,
    visitor: aiohttp.ClientSession,
    emu: TwinneEmulator,
    user: EmulatedUser,
    hooks: Hooks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """signed_in / signed_out at INFO, a Twinne failure at WARNING, each with its extra fields."""
    caplog.set_level(logging.DEBUG)
    await log_in(visitor, own_site, emu, user)
    token = hooks.logins[0][1]
    async with visitor.post(own_site(LOGOUT), headers=SAME_ORIGIN_POST) as answer:
        assert answer.status == 200
    # Twinne's HTML error page twice: the spent key's one retry fails too.
    emu.inject("html", endpoint="authorize", count=2)
    hops = await follow(visitor, own_site("/whoami"), headers=NAVIGATE)
    assert hops[-1].status == 502
    records = _outcomes(caplog)
    assert [(r.outcome, r.levelname) for r in records] == [  # type: ignore[attr-defined]
        ("signed_in", "INFO"),
        ("signed_out", "INFO"),
        ("provider_error", "WARNING"),
        ("provider_error", "WARNING"),
    ]
    for record in records:
        assert record.name.startswith("aiotwinne")
        assert isinstance(record.duration, float)  # type: ignore[attr-defined]
        assert record.duration >= 0  # type: ignore[attr-defined]
    signed_in = records[0]
    assert signed_in.twinne_user_id == user.id  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9a-f]{8}", signed_in.token_fingerprint)  # type: ignore[attr-defined]
    assert records[2].twinne_user_id is None  # type: ignore[attr-defined]
    for secret in (token, own_site.app.secret):
        assert secret not in caplog.text


async def test_the_cookie_stays_under_4kb_with_login_data_at_its_limit(
    site_factory: SiteFactory,
    visitor_factory: Callable[[], aiohttp.ClientSession],
    emu: TwinneEmulator,
    hooks: Hooks,
) -> None:
    """Data at MAX_LOGIN_DATA, long names, five tabs with long paths: every cookie under 4 KB."""
    filler = MAX_LOGIN_DATA - len(json.dumps({"blob": ""}))
    hooks.answer = lambda u, t: {"blob": "x" * filler}
    site = await site_factory(
        routes=ROUTES,
        on_login=hooks.on_login,
        storage=cookie_storage(Fernet.generate_key(), secure=False),
    )
    user = emu.add_user(
        user_name="u" * 200,
        user_firstname="F" * 200,
        user_lastname="L" * 200,
        user_picture="photos/" + "p" * 400 + ".jpg",
    )
    emu.approve(user, site.app)
    browser = visitor_factory()
    browser.cookie_jar.update_cookies(emu.sign_in(user))
    sizes: list[int] = []

    async def get(path: str) -> int:
        async with browser.get(site(path), headers=NAVIGATE, allow_redirects=False) as answer:
            for header in answer.headers.getall("Set-Cookie", []):
                morsel = SimpleCookie(header).get(DEFAULT_COOKIE_NAME)
                if morsel is not None:
                    sizes.append(len(DEFAULT_COOKIE_NAME) + len(morsel.value))
            return answer.status

    assert (await follow(browser, site("/whoami"), headers=NAVIGATE))[-1].status == 200
    emu.advance(3601)
    tabs = [f"/whoami?tab={n}&q=" + "x" * 480 for n in range(4)]
    tabs.append("/whoami?q=" + "y" * 2000)
    for path in tabs:
        emu.advance(WAIT_FOR_OTHER_TAB)
        assert await get(path) == 302
    for _ in tabs:
        await get(f"{CALLBACK}?auth_key={emu.authorize(user, site.app)}")
    assert sizes
    assert max(sizes) <= 4096, sizes
    assert (await _whoami_json(browser, site))["data"] == {"blob": "x" * filler}


async def test_get_login_for_another_sites_navigation_changes_nothing(
    own_site: Site, visitor: aiohttp.ClientSession, emu: TwinneEmulator, hooks: Hooks
) -> None:
    """A cross-site navigation to the login route runs no hook (issue 11's rule holds)."""
    async with visitor.get(own_site(LOGIN), headers=CROSS_SITE) as page:
        assert page.status == 200
        assert "Set-Cookie" not in page.headers
    assert hooks.logins == []
