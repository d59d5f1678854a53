"""The emulated Sngine site's rules, called directly (no sockets), for every version.

Sections follow issue 10's numbered points for the emulator: 1 order of checks,
2 where /api/authorize reads its parameters, 3 the token window, 4 removed apps
and revoked approvals, 5 routing, 6 /api/oauth, 7 the user as each version
sends it, 8 MySQL lookups, 9 the JSON's form; then the 2.7 bug and the pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import pytest

from aiotwinne._protocol import MESSAGES
from aiotwinne.testing import (
    DOCUMENTED_TOKEN_LIFETIME,
    SESSION_COOKIE,
    SNGINE_VERSIONS,
    STOCK_TOKEN_LIFETIME,
    EmulatedApp,
    EmulatedUser,
)
from aiotwinne.testing._database import Database, mysql_int, mysql_text
from aiotwinne.testing._model import Answer
from aiotwinne.testing._sngine import Site, SiteRequest, php_params, safe_next

BASE = "http://twinne.test"
APP_ID = "1001"
SECRET = "5a" * 16


def make_site(version: str, **options: Any) -> Site:
    """A site of *version* with one app (id 1001) and its address set."""
    made = Site(sngine=version, **options)
    made.base_url = BASE
    add_app(made, APP_ID)
    return made


@pytest.fixture(params=SNGINE_VERSIONS, ids=lambda v: f"sngine{v}")
def site(request: pytest.FixtureRequest) -> Site:
    """A site of each version in turn."""
    return make_site(request.param)


def add_app(site: Site, app_id: str, redirect_url: str = "https://shop.example/cb") -> EmulatedApp:
    return site.db.add_app(
        EmulatedApp(app_id=app_id, secret=SECRET, name="Shop", redirect_url=redirect_url)
    )


def app_of(site: Site) -> EmulatedApp:
    return site.db.apps[APP_ID]


def new_user(site: Site, **fields: Any) -> EmulatedUser:
    return site.db.add_user(fields)


def body(answer: Answer) -> Any:
    assert answer.status == 200
    assert answer.content_type == "application/json"
    return json.loads(answer.body)


def error(message: str) -> dict[str, object]:
    return {"error": True, "message": message}


def exchange(site: Site, **params: str) -> Answer:
    """/api/authorize the way this version reads it: 4.x a POST form, older the query."""
    if site.sngine == "4":
        return site.handle(SiteRequest("POST", "/api/authorize", form=params))
    return site.handle(SiteRequest("GET", "/api/authorize", query=params))


def credentials(key: str, **overrides: str) -> dict[str, str]:
    return {"app_id": APP_ID, "app_secret": SECRET, "auth_key": key, **overrides}


def user_info(site: Site, token: str, path: str = "/api/get_user_info") -> Answer:
    return site.handle(SiteRequest("GET", path, query={"access_token": token}))


def login(site: Site, user: EmulatedUser) -> str:
    """Approve, exchange, and return the token."""
    token: str = body(exchange(site, **credentials(site.authorize(user, app_of(site)))))[
        "access_token"
    ]
    return token


def signed_in(site: Site, user: EmulatedUser) -> Mapping[str, str]:
    return {SESSION_COOKIE: site.db.open_session(user)}


def oauth(
    site: Site,
    query: str,
    cookies: Mapping[str, str] | None = None,
    method: str = "GET",
    form: Mapping[str, str] | None = None,
) -> Answer:
    params = parse_qsl(query, keep_blank_values=True)
    return site.handle(
        SiteRequest(
            method,
            "/api/oauth",
            query=params,
            form=form,
            cookies=cookies or {},
            query_string=query,
        )
    )


# -- 1. order of checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("app_id", MESSAGES.INVALID_APP_ID),
        ("app_secret", MESSAGES.INVALID_APP_SECRET),
        ("auth_key", MESSAGES.INVALID_AUTH_KEY),
    ],
)
@pytest.mark.parametrize("blank", [None, "", " ", "\t\r\n", "\xa0", "\x00"])
def test_authorize_checks_each_parameter_first(
    site: Site, missing: str, message: str, blank: str | None
) -> None:
    """A missing or blank parameter is reported before the module switch and the app."""
    site.feature_message = MESSAGES.FEATURE_DISABLED
    params = credentials("k" * 32, app_id="999")
    if blank is None:
        del params[missing]
    else:
        params[missing] = blank
    assert body(exchange(site, **params)) == error(message)


def test_authorize_presence_goes_in_parameter_order(site: Site) -> None:
    """With all three missing, app_id is reported; then app_secret; then auth_key."""
    assert body(exchange(site)) == error(MESSAGES.INVALID_APP_ID)
    assert body(exchange(site, app_id="9")) == error(MESSAGES.INVALID_APP_SECRET)
    assert body(exchange(site, app_id="9", app_secret="x")) == error(MESSAGES.INVALID_AUTH_KEY)


def test_authorize_module_switch_comes_before_the_app(site: Site) -> None:
    """With every parameter present, the module switch answers even for an unknown app."""
    site.feature_message = MESSAGES.DEVELOPERS_DISABLED
    answer = exchange(site, **credentials("k", app_id="999"))
    assert body(answer) == error(MESSAGES.DEVELOPERS_DISABLED)


def test_authorize_app_then_secret_then_key(site: Site) -> None:
    """Unknown app beats a wrong secret, a wrong secret beats an unknown key; nothing is spent."""
    user = new_user(site)
    key = site.authorize(user, app_of(site))
    unknown_app = exchange(site, **credentials("nope", app_id="999", app_secret="wrong"))
    assert body(unknown_app) == error(MESSAGES.APP_DISABLED)
    wrong_secret = exchange(site, **credentials(key, app_secret=SECRET.upper()))
    assert body(wrong_secret) == error(MESSAGES.INVALID_APP_SECRET)
    assert body(exchange(site, **credentials("f" * 32))) == error(MESSAGES.INVALID_AUTH_KEY)
    assert "access_token" in body(exchange(site, **credentials(key)))


def test_key_is_looked_up_by_app_and_key(site: Site) -> None:
    """Another app's key answers "invalid auth_key" with this app's credentials."""
    other = add_app(site, "2002")
    key = site.authorize(new_user(site), other)
    assert body(exchange(site, **credentials(key))) == error(MESSAGES.INVALID_AUTH_KEY)


def test_user_info_order_of_checks(site: Site) -> None:
    """Token presence, module, lookup, age, then the user: each answers in that order."""
    user = new_user(site)
    token = login(site, user)
    site.feature_message = MESSAGES.FEATURE_DISABLED
    assert body(user_info(site, " ")) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    missing = site.handle(SiteRequest("GET", "/api/get_user_info"))
    assert body(missing) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    assert body(user_info(site, "f" * 32)) == error(MESSAGES.FEATURE_DISABLED)
    site.feature_message = None
    assert body(user_info(site, "f" * 32)) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    user.deleted = True
    assert user_info(site, token).body == b"[]"
    site.db.clock.advance(DOCUMENTED_TOKEN_LIFETIME + 1)
    assert body(user_info(site, token)) == error(MESSAGES.EXPIRED_ACCESS_TOKEN)


def test_unknown_endpoint_has_no_module_check(site: Site) -> None:
    """An unknown endpoint answers "invalid parameters" even with the module off."""
    site.feature_message = MESSAGES.FEATURE_DISABLED
    for method in ("GET", "POST"):
        answer = site.handle(SiteRequest(method, "/api/get_friends"))
        assert body(answer) == error(MESSAGES.INVALID_PARAMETERS)


# -- 2. where /api/authorize reads its parameters ---------------------------------


def test_4x_reads_only_a_post_form() -> None:
    """4.x: a GET or a query string finds no app_id and spends nothing; the POST form works."""
    site = make_site("4")
    key = site.authorize(new_user(site), app_of(site))
    for method, form in (("GET", None), ("POST", None), ("GET", credentials(key))):
        request = SiteRequest(method, "/api/authorize", query=credentials(key), form=form)
        assert body(site.handle(request)) == error(MESSAGES.INVALID_APP_ID)
    # A wrong secret in the query is ignored: only the form counts.
    request = SiteRequest(
        "POST",
        "/api/authorize",
        query=credentials(key, app_secret="wrong"),
        form=credentials(key),
    )
    assert "access_token" in body(site.handle(request))


@pytest.mark.parametrize("version", ["2", "3"])
def test_2x_3x_read_only_the_query_string(version: str) -> None:
    """2.x/3.x: the query string, whatever the method; a form body is ignored."""
    site = make_site(version)
    user = new_user(site)
    only_form = SiteRequest("POST", "/api/authorize", form=credentials("k"))
    assert body(site.handle(only_form)) == error(MESSAGES.INVALID_APP_ID)
    for method in ("GET", "POST", "PUT", "DELETE"):
        key = site.authorize(user, app_of(site))
        request = SiteRequest(
            method, "/api/authorize", query=credentials(key), form=credentials(key, app_id="9")
        )
        assert "access_token" in body(site.handle(request)), method


def test_user_info_reads_the_query_string_on_every_version(site: Site) -> None:
    """get_user_info finds a token in the query string only, whatever the method."""
    token = login(site, new_user(site))
    in_form = SiteRequest("POST", "/api/get_user_info", form={"access_token": token})
    assert body(site.handle(in_form)) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    in_query = SiteRequest("POST", "/api/get_user_info", query={"access_token": token})
    assert "user_info" in body(site.handle(in_query))


def test_a_repeated_parameter_takes_its_last_value(site: Site) -> None:
    """As PHP builds $_GET and $_POST: the last of a repeated name wins."""
    token = login(site, new_user(site))
    last = [("access_token", "bad"), ("access_token", token)]
    first = [("access_token", token), ("access_token", "bad")]
    assert "user_info" in body(site.handle(SiteRequest("GET", "/api/get_user_info", query=last)))
    answer = site.handle(SiteRequest("GET", "/api/get_user_info", query=first))
    assert body(answer) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    assert php_params([("a", "1"), ("b", "2"), ("a", "3")]) == {"a": "3", "b": "2"}


# -- 3. the token window ------------------------------------------------------------


def test_window_constants() -> None:
    """The documented hour and the stock 60 s are exported by name."""
    assert (DOCUMENTED_TOKEN_LIFETIME, STOCK_TOKEN_LIFETIME) == (3600.0, 60.0)
    assert Site().token_lifetime == DOCUMENTED_TOKEN_LIFETIME
    assert Site().sngine == SNGINE_VERSIONS[-1] == "4"


def test_stock_window_expires_after_sixty_seconds(site: Site) -> None:
    """With the stock window a token is expired past 60 s, as strtotime("-1 minutes") says."""
    site.token_lifetime = STOCK_TOKEN_LIFETIME
    token = login(site, new_user(site))
    site.db.clock.advance(59)
    assert "user_info" in body(user_info(site, token))
    site.db.clock.advance(2)
    assert body(user_info(site, token)) == error(MESSAGES.EXPIRED_ACCESS_TOKEN)


def test_reuse_keeps_the_original_date(site: Site) -> None:
    """Inside the window an exchange hands back the same token, not renewed; past it, a new one."""
    site.token_lifetime = STOCK_TOKEN_LIFETIME
    user = new_user(site)
    first = login(site, user)
    site.db.clock.advance(40)
    assert login(site, user) == first
    site.db.clock.advance(21)  # 61 s after it was issued, 21 s after it was handed back
    assert body(user_info(site, first)) == error(MESSAGES.EXPIRED_ACCESS_TOKEN)
    fresh = login(site, user)
    assert fresh != first
    assert "user_info" in body(user_info(site, fresh))
    assert body(user_info(site, first)) == error(MESSAGES.INVALID_ACCESS_TOKEN)


def test_documented_window_is_an_hour(site: Site) -> None:
    """With the documented window the same token comes back for an hour."""
    user = new_user(site)
    first = login(site, user)
    site.db.clock.advance(3599)
    assert login(site, user) == first
    site.db.clock.advance(2)
    assert login(site, user) != first


def test_reuse_can_be_turned_off(site: Site) -> None:
    """reuse_valid_tokens=False issues a new token on each exchange; the old one dies."""
    site.reuse_valid_tokens = False
    user = new_user(site)
    first = login(site, user)
    assert login(site, user) != first
    assert body(user_info(site, first)) == error(MESSAGES.INVALID_ACCESS_TOKEN)


# -- 4. removed apps and revoked approvals ----------------------------------------


def test_removed_app_deletes_its_connections(site: Site) -> None:
    """remove_app: the app is unknown and its tokens answer "invalid access_token"."""
    user = new_user(site)
    token = login(site, user)
    app = app_of(site)
    key = site.authorize(user, app)
    site.db.remove_app(app)
    site.db.remove_app(app)  # twice is harmless
    assert site.db.connection(user, app) is None
    assert body(user_info(site, token)) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    assert body(exchange(site, **credentials(key))) == error(MESSAGES.APP_DISABLED)


def test_revoked_approval_deletes_the_connection(site: Site) -> None:
    """A user removing the app: its key and token die; other users keep theirs."""
    app = app_of(site)
    alice, bob = new_user(site), new_user(site)
    alice_token, bob_token = login(site, alice), login(site, bob)
    key = site.authorize(alice, app)
    conn = site.db.connection(alice, app)
    assert conn is not None
    site.db.disconnect(conn)
    assert body(user_info(site, alice_token)) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    assert body(exchange(site, **credentials(key))) == error(MESSAGES.INVALID_AUTH_KEY)
    assert "user_info" in body(user_info(site, bob_token))


def test_disabled_app_is_a_removed_app(site: Site) -> None:
    """enabled=False: unknown app, approvals deleted; enabled again, it has no approvals."""
    app = app_of(site)
    user = new_user(site)
    token = login(site, user)
    app.enabled = False
    assert body(user_info(site, token)) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    assert body(exchange(site, **credentials("k"))) == error(MESSAGES.APP_DISABLED)
    app.enabled = True
    assert site.db.connection(user, app) is None
    assert body(user_info(site, token)) == error(MESSAGES.INVALID_ACCESS_TOKEN)
    # A token given to a disabled app's row is never accepted either.
    app.enabled = False
    site.db.set_token(site.db.connect(user, app), "e" * 32, site.db.clock.now())
    assert body(user_info(site, "e" * 32)) == error(MESSAGES.INVALID_ACCESS_TOKEN)


def test_deleted_user_keeps_connections(site: Site) -> None:
    """A deleted user's token still passes and answers ``[]``."""
    user = new_user(site)
    token = login(site, user)
    user.deleted = True
    assert user_info(site, token) == Answer(200, b"[]", "application/json")


# -- 5. routing ----------------------------------------------------------------------


def test_trailing_slash_is_the_same_endpoint(site: Site) -> None:
    """``/api/x/`` is served like ``/api/x`` (Apache's ``^api/([^/]+)/?$``)."""
    token = login(site, new_user(site))
    assert "user_info" in body(user_info(site, token, "/api/get_user_info/"))
    unknown = site.handle(SiteRequest("GET", "/api/whatever/"))
    assert body(unknown) == error(MESSAGES.INVALID_PARAMETERS)
    assert Site.route("/api/authorize/") == ("authorize", "authorize")
    assert Site.route("/api/oauth/") == ("oauth", "oauth")
    # Like PCRE's $, a final line break still matches: an unknown endpoint, not a 404.
    assert Site.route("/api/x\n") == ("other", "api")


@pytest.mark.parametrize(
    "path", ["/api/", "/api", "/api//", "/api/authorize/x", "/api/a/b/", "/nothing"]
)
def test_other_paths_are_the_html_404(site: Site, path: str) -> None:
    """``/api/``, deeper paths and unknown pages are the site's HTML 404."""
    answer = site.handle(SiteRequest("GET", path))
    assert (answer.status, answer.content_type) == (404, "text/html; charset=utf-8")
    assert b"Page not found" in answer.body
    assert Site.route(path) == ("other", "missing")


# -- 6. /api/oauth ---------------------------------------------------------------------


def test_oauth_checks_the_login_first(site: Site) -> None:
    """Not signed in: a 200 sign-in page at the same URL, whatever else is wrong."""
    site.feature_message = MESSAGES.FEATURE_DISABLED
    for query in (f"app_id={APP_ID}", "app_id=999", ""):
        answer = oauth(site, query)
        assert (answer.status, answer.content_type) == (200, "text/html; charset=utf-8")
        page = answer.body.decode()
        assert "Sign in to Twinne" in page
        target = "/api/oauth" + (f"?{query}" if query else "")
        assert f'name="next" value="{target}"' in page


def test_oauth_after_login(site: Site) -> None:
    """Signed in: module off → its page; no app_id → 404; unknown app → 200 error page."""
    cookies = signed_in(site, new_user(site))
    site.feature_message = MESSAGES.FEATURE_DISABLED
    assert MESSAGES.FEATURE_DISABLED.encode() in oauth(site, f"app_id={APP_ID}", cookies).body
    site.feature_message = None
    assert oauth(site, "", cookies).status == 404
    assert oauth(site, "app_id=%20", cookies).status == 404
    unknown = oauth(site, "app_id=999", cookies)
    assert unknown.status == 200
    assert b"doesn&#x27;t exist or has been disabled" in unknown.body


def test_oauth_approval_then_bounces(site: Site) -> None:
    """The approval page first; Approve or a later visit: 302 with a new key each time."""
    user = new_user(site)
    cookies = signed_in(site, user)
    page = oauth(site, f"app_id={APP_ID}", cookies)
    assert b"Log in With Twinne" in page.body
    csrf = site.db.sessions[cookies[SESSION_COOKIE]].csrf
    approve = {"csrf": csrf, "action": "approve"}
    first = oauth(site, f"app_id={APP_ID}", cookies, "POST", approve)
    assert first.status == 302
    location = first.headers["Location"]
    assert location.startswith("https://shop.example/cb?auth_key=")
    older = location.split("?auth_key=", 1)[1]
    second = oauth(site, f"app_id={APP_ID}", cookies)
    newer = second.headers["Location"].split("?auth_key=", 1)[1]
    assert newer != older
    # Each bounce replaces the unexchanged key: the older one is dead.
    assert body(exchange(site, **credentials(older))) == error(MESSAGES.INVALID_AUTH_KEY)
    assert "access_token" in body(exchange(site, **credentials(newer)))


def test_oauth_appends_to_an_existing_query_as_plain_text(site: Site) -> None:
    """``redirect_url . "?auth_key=" . key``, even after an existing ``?``."""
    app = add_app(site, "3003", redirect_url="/cb?x=1")
    user = new_user(site)
    site.db.connect(user, app)
    answer = oauth(site, "app_id=3003", signed_in(site, user))
    assert answer.headers["Location"].startswith("/cb?x=1?auth_key=")


def test_oauth_cancel_and_expired_form(site: Site) -> None:
    """Cancel approves nothing; a post without the session's CSRF value is a 400."""
    user = new_user(site)
    cookies = signed_in(site, user)
    csrf = site.db.sessions[cookies[SESSION_COOKIE]].csrf
    cancel = oauth(site, f"app_id={APP_ID}", cookies, "POST", {"csrf": csrf, "action": "cancel"})
    assert b"Login cancelled" in cancel.body
    assert oauth(site, f"app_id={APP_ID}", cookies, "POST", {"action": "approve"}).status == 400
    assert site.db.connection(user, app_of(site)) is None


# -- 7. the user as each version sends it -------------------------------------------


@pytest.mark.parametrize(
    ("stored", "legacy", "named"),
    [
        ("male", "male", "Male"),
        ("female", "female", "Female"),
        ("other", "other", "Other"),
        ("2", "2", "Female"),
        (None, None, "N/A"),
        ("", "", "N/A"),
        ("unknown", "unknown", "N/A"),
    ],
)
def test_gender_as_each_version_sends_it(
    site: Site, stored: str | None, legacy: str | None, named: str
) -> None:
    """2.x/3.x send the stored text; 4.x the gender's name, ``"N/A"`` when unset."""
    user = new_user(site, user_gender=stored)
    sent = body(user_info(site, login(site, user)))["user_info"]["user_gender"]
    assert sent == (named if site.sngine == "4" else legacy)
    assert user.fields["user_gender"] == stored  # the stored row is version-neutral


def test_site_defined_gender(site: Site) -> None:
    """A gender of the site's own: 4.x sends its name, older versions its stored id."""
    gender_id = site.db.add_gender("Nonbinary")
    with pytest.raises(ValueError, match="already defined"):
        site.db.add_gender("nonbinary")
    with pytest.raises(ValueError, match="empty"):
        site.db.add_gender(" ")
    user = new_user(site, user_gender=gender_id)
    sent = body(user_info(site, login(site, user)))["user_info"]["user_gender"]
    assert sent == ("Nonbinary" if site.sngine == "4" else gender_id)


def test_pictures_and_cover(site: Site) -> None:
    """4.x sends the uploaded picture; 2.x/3.x the default one; the cover is always the folder."""
    with_picture = new_user(site, user_picture="photos/a.jpg", user_gender="female")
    without = new_user(site, user_picture="", user_gender="male")
    neutral = new_user(site, user_picture=None, user_gender=None)
    default = f"{BASE}/content/themes/default/images/blank_profile"
    sent = {
        user.id: body(user_info(site, login(site, user)))["user_info"]
        for user in (with_picture, without, neutral)
    }
    expected = (
        f"{BASE}/content/uploads/photos/a.jpg" if site.sngine == "4" else f"{default}_female.png"
    )
    assert sent[with_picture.id]["profile_picture"] == expected
    assert sent[with_picture.id]["user_picture"] == "photos/a.jpg"
    assert sent[without.id]["profile_picture"] == f"{default}_male.png"
    assert sent[neutral.id]["profile_picture"] == f"{default}.png"
    assert {info["profile_cover"] for info in sent.values()} == {f"{BASE}/content/uploads/"}


def test_cached_answers_follow_the_address(site: Site) -> None:
    """With cached bodies, a new base URL (the first start) is not served stale."""
    site.cache_bodies = True
    assert site.base_url == BASE
    token = login(site, new_user(site))
    assert BASE.replace("/", "\\/").encode() in user_info(site, token).body
    site.base_url = "http://127.0.0.1:8080"
    assert b"127.0.0.1:8080" in user_info(site, token).body


# -- 8. lookups as MySQL does them ---------------------------------------------------


@pytest.mark.parametrize("app_id", ["1001", "0001001", "1001abc", " 1001", "+1001", "1001.9"])
def test_app_id_is_read_as_an_integer(site: Site, app_id: str) -> None:
    """``"0001001"`` and ``"1001abc"`` find app 1001."""
    key = site.authorize(new_user(site), app_of(site))
    assert "access_token" in body(exchange(site, **credentials(key, app_id=app_id)))


def test_app_id_without_digits_is_unknown(site: Site) -> None:
    """No leading digit reads as 0: an unknown app."""
    assert body(exchange(site, **credentials("k", app_id="abc"))) == error(MESSAGES.APP_DISABLED)


def test_key_and_token_compare_like_mysql(site: Site) -> None:
    """Case does not matter and trailing spaces are ignored; a leading space is another value."""
    user = new_user(site)
    key = site.authorize(user, app_of(site))
    assert body(exchange(site, **credentials(" " + key))) == error(MESSAGES.INVALID_AUTH_KEY)
    token = body(exchange(site, **credentials(key.upper() + "  ")))["access_token"]
    assert "user_info" in body(user_info(site, token.upper() + " "))
    assert body(user_info(site, " " + token)) == error(MESSAGES.INVALID_ACCESS_TOKEN)


def test_mysql_helpers() -> None:
    """The casts behind the lookups."""
    assert [mysql_int(s) for s in ("42", "042", "42abc", "\t-7x", "abc", "")] == [
        42,
        42,
        42,
        -7,
        0,
        0,
    ]
    assert mysql_int("١٢") == 0  # only ASCII digits count
    assert mysql_text("AbC  ") == "abc"
    assert mysql_text(" a") == " a"


def test_app_ids_must_be_distinct_numbers(site: Site) -> None:
    """``"042"`` and ``"42"`` are the same app to MySQL; a non-decimal id is refused."""
    add_app(site, "42")
    with pytest.raises(ValueError, match="already registered"):
        add_app(site, "042")
    with pytest.raises(ValueError, match="decimal"):
        add_app(site, "app-1")


# -- 9. the JSON's form -----------------------------------------------------------


def test_compact_json_without_charset(site: Site) -> None:
    """Compact ``json_encode`` output, ``/`` as ``\\/``, ``Content-Type: application/json``."""
    answer = exchange(site)
    assert answer.content_type == "application/json"
    assert answer.body == b'{"error":true,"message":"Bad Request, invalid app_id"}'
    user = new_user(site, user_website="https://a.example/")
    info = user_info(site, login(site, user))
    assert info.content_type == "application/json"
    assert b'"user_website":"https:\\/\\/a.example\\/"' in info.body
    assert b", " not in info.body
    assert b'":' in info.body
    assert b'": ' not in info.body


# -- the 2.7 bug, opt-in ------------------------------------------------------------


def test_27_bug_writes_the_new_token_everywhere() -> None:
    """Opted in on 2.x: a new token lands on every connection; it answers with the first user."""
    site = make_site("2", sngine27_token_bug=True)
    app = app_of(site)
    alice, bob, carol = new_user(site), new_user(site), new_user(site)
    alice_token = login(site, alice)
    carol_row = site.db.connect(carol, app)  # approved, never exchanged: no token yet
    shared = login(site, bob)
    assert shared != alice_token
    assert carol_row.access_token == shared
    assert body(user_info(site, alice_token)) == error(MESSAGES.INVALID_ACCESS_TOKEN)

    def owner() -> str:
        return str(body(user_info(site, shared))["user_info"]["user_id"])

    assert owner() == str(alice.id)  # MySQL finds the first row
    alice_row = site.db.connection(alice, app)
    assert alice_row is not None
    site.db.disconnect(alice_row)
    assert owner() == str(carol.id)  # the next row holding it
    bob_row = site.db.connection(bob, app)
    assert bob_row is not None
    site.db.set_token(bob_row, "b" * 32, site.db.clock.now())  # Bob's own: Carol keeps it
    assert owner() == str(carol.id)
    site.db.set_token(carol_row, "c" * 32, site.db.clock.now())  # nobody holds it now
    assert body(user_info(site, shared)) == error(MESSAGES.INVALID_ACCESS_TOKEN)


def test_27_bug_is_off_by_default_and_only_for_2x() -> None:
    """The bug is opt-in, and refused on a version that fixed it; versions are checked."""
    assert Site(sngine="2").sngine27_token_bug is False
    with pytest.raises(ValueError, match="sngine27_token_bug"):
        Site(sngine="4", sngine27_token_bug=True)
    with pytest.raises(ValueError, match="sngine must be one of"):
        Site(sngine="5")


def test_27_bug_with_no_connection_left() -> None:
    """The bug's UPDATE on an empty table changes nothing."""
    db = Site(sngine="2", sngine27_token_bug=True).db
    db.set_token_everywhere("a" * 32, 0.0)
    assert db.connections == {}


# -- the sign-in pages ------------------------------------------------------------


def test_sign_in_form_and_session(site: Site) -> None:
    """The form, an unknown name, a good name (cookie + redirect to next), sign out."""
    user = new_user(site, user_name="jdoe")
    form = site.handle(SiteRequest("GET", "/login", query={"next": "/api/oauth?app_id=1"}))
    assert b'value="/api/oauth?app_id=1"' in form.body
    wrong = site.handle(SiteRequest("POST", "/login", form={"username": "nobody"}))
    assert b"No Twinne user has that username." in wrong.body
    user.deleted = True
    gone = site.handle(SiteRequest("POST", "/login", form={"username": "jdoe"}))
    assert b"No Twinne user" in gone.body
    user.deleted = False
    good = site.handle(
        SiteRequest("POST", "/login", form={"username": " jdoe ", "next": "/callback"})
    )
    assert (good.status, good.headers["Location"]) == (302, "/callback")
    session_id = good.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    cookies = {SESSION_COOKIE: session_id}
    home = site.handle(SiteRequest("GET", "/", cookies=cookies))
    assert b"jdoe" in home.body
    assert f"{BASE}/api/oauth?app_id={APP_ID}".encode() in home.body
    assert site.handle(SiteRequest("GET", "/logout", cookies=cookies)).status == 405
    out = site.handle(SiteRequest("POST", "/logout", cookies=cookies))
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    assert b"Not signed in" in site.handle(SiteRequest("GET", "/", cookies=cookies)).body


def test_callback_page_hides_the_key(site: Site) -> None:
    """The default redirect target says a key arrived without showing it."""
    arrived = site.handle(
        SiteRequest(
            "GET", "/callback", query={"auth_key": "k" * 32}, query_string="auth_key=" + "k" * 32
        )
    )
    assert b"An auth_key arrived" in arrived.body
    assert b"k" * 32 not in arrived.body
    assert b"No auth_key" in site.handle(SiteRequest("GET", "/callback")).body


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("/profile?x=1", "/profile?x=1"),
        ("/\t/evil.example/", "/"),
        ("/\n/evil.example/", "/"),
        ("/\r\n/evil.example/", "/"),
        ("//evil.example/", "/"),
        ("\x00//evil.example/", "/"),
        (" /ok", "/ok"),
        ("/\\evil.example", "/"),
        ("/a\\b", "/"),
        ("https://evil.example/", "/"),
        ("evil.example", "/"),
        ("", "/"),
        (None, "/"),
        ("/a b\x7f\u00e9", "/a%20b%7F%C3%A9"),
        ("/x\r\nSet-Cookie: a=1", "/xSet-Cookie:%20a=1"),
    ],
)
def test_safe_next(given: str | None, sent: str) -> None:
    """Only a local path survives, judged as a browser reads it, and always header-safe."""
    assert safe_next(given) == sent


def test_database_refuses_bad_users() -> None:
    """Users: string values, a decimal free id, a free non-empty name; renames checked."""
    db = Site().db
    assert isinstance(db, Database)
    with pytest.raises(TypeError):
        db.add_user({"user_verified": 1})
    for bad in ("abc", None, "٣"):
        with pytest.raises(ValueError, match="user_id"):
            db.add_user({"user_id": bad})
    first = db.add_user({"user_id": "5"})
    with pytest.raises(ValueError, match="taken"):
        db.add_user({"user_id": "5"})
    with pytest.raises(ValueError, match="user_name"):
        db.add_user({"user_name": ""})
    with pytest.raises(ValueError, match="taken"):
        db.add_user({"user_name": first.username})
    second = db.add_user({})
    with pytest.raises(ValueError, match="user_name"):
        db.update_user(second, {"user_name": first.username})
    with pytest.raises(ValueError, match="user_id"):
        db.update_user(second, {"user_id": "9"})
    db.update_user(second, {"user_name": "renamed"})
    assert db.users_by_name["renamed"] is second
    assert db.session_user("nope") is None
