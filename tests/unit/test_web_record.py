"""aiotwinne.web._record: the session record, pending logins and their caps."""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path

import pytest

from aiotwinne import AccessToken, UserInfo
from aiotwinne.web import _record
from aiotwinne.web._middleware import WAIT_AFTER_LOGIN, WAIT_FOR_OTHER_TAB, LoginsInFlight
from aiotwinne.web._record import (
    MAX_PENDING_NEXT,
    PENDING_BUDGET,
    SESSION_KEY,
    Pending,
    Record,
    SignedIn,
    add_pending,
    live_pending,
    read_auto,
    read_signed_in,
    signed_in_record,
    write_auto,
    write_pending,
)

UTC = dt.timezone.utc


def _token(lifetime: float = 3600.0) -> AccessToken:
    issued = dt.datetime(2024, 1, 1, tzinfo=UTC)
    return AccessToken("f" * 32, issued, issued + dt.timedelta(seconds=lifetime))


def _user(**overrides: object) -> UserInfo:
    fields: dict[str, object] = {
        "id": 42,
        "username": "jdoe",
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "j@example.com",
        "picture_url": "https://twinne.example/content/uploads/p.jpg",
        "biography": "x" * 3000,
    }
    fields.update(overrides)
    return UserInfo(**fields)  # type: ignore[arg-type]


def test_markers_are_random_and_long() -> None:
    """Each pending login gets its own marker of at least 128 random bits."""
    markers = {Pending.new(0.0, "/").marker for _ in range(100)}
    assert len(markers) == 100
    assert all(len(m) >= 22 for m in markers)  # 16 bytes, urlsafe base64


def test_signed_in_record_anchors_expiry_to_the_web_clock() -> None:
    """The token's lifetime is counted from the web clock's now, not the client's clock."""
    record = signed_in_record(_token(600), _user(), now=1000.0)
    assert record["iat"] == 1000.0
    assert record["exp"] == 1600.0


def test_signed_in_record_is_small_and_round_trips() -> None:
    """Only the summary is kept (no e-mail, no biography) and it reads back as a UserInfo."""
    record = signed_in_record(_token(), _user(), now=0.0)
    encoded = json.dumps({"auth": record})
    assert len(encoded) < 400
    assert "j@example.com" not in encoded
    signed_in = read_signed_in({"auth": record})
    assert signed_in is not None
    assert signed_in.user.id == 42
    assert signed_in.user.username == "jdoe"
    assert signed_in.user.full_name == "Jane Doe"
    assert signed_in.user.picture_url == "https://twinne.example/content/uploads/p.jpg"
    assert signed_in.user.email is None
    assert signed_in.access_token().value == "f" * 32


def test_overlong_fields_are_dropped_not_stored() -> None:
    """A huge name or picture URL is left out so the cookie stays under its size limit."""
    record = signed_in_record(
        _token(), _user(first_name="n" * 5000, picture_url="https://x/" + "p" * 5000), now=0.0
    )
    assert "fn" not in record["u"]
    assert "pic" not in record["u"]
    assert len(json.dumps(record)) < 400


_GOOD: dict[str, object] = {
    "tk": "f" * 32,
    "iat": 1704067200.0,
    "exp": 1704070800.0,
    "u": {"id": 42, "un": "jdoe"},
}
# Damage a corrupted store or another layout could leave: the client would
# refuse the token, or a time is one no datetime can hold.
_DAMAGE: list[dict[str, object]] = [
    {"tk": ""},
    {"tk": "abc def"},
    {"tk": "abc\x00"},
    {"tk": "abc\u2028"},
    {"exp": float("nan")},
    {"exp": float("inf")},
    {"exp": 1e300},
    {"exp": 10**400},
    {"iat": float("nan")},
    {"iat": -1.0},
]


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"auth": "x"},
        {"auth": {"tk": 1, "iat": 0, "exp": 0, "u": {"id": 1, "un": "a"}}},
        {"auth": {"tk": "t", "iat": 0, "exp": "soon", "u": {"id": 1, "un": "a"}}},
        {"auth": {"tk": "t", "iat": 0, "exp": 0, "u": {"id": "1", "un": "a"}}},
        {"auth": {"tk": "t", "iat": 0, "exp": 0, "u": []}},
        *({"auth": {**_GOOD, **damage}} for damage in _DAMAGE),
        {"auth": {key: value for key, value in _GOOD.items() if key != "tk"}},
        {"auth": {key: value for key, value in _GOOD.items() if key != "u"}},
        {"auth": {**_GOOD, "u": {"id": 1}}},
    ],
)
def test_malformed_records_read_as_anonymous(data: object) -> None:
    """A record that is not ours (or tampered with in a plain cookie) means nobody is signed in."""
    assert read_signed_in(data) is None


def test_a_well_formed_record_reads_back() -> None:
    """The record the damaged ones above start from is itself a signed-in user."""
    signed_in = read_signed_in({"auth": _GOOD})
    assert signed_in is not None
    assert signed_in.token == "f" * 32
    assert signed_in.access_token().expires_at == dt.datetime(2024, 1, 1, 1, tzinfo=UTC)


def test_a_token_the_client_accepts_is_kept_even_if_not_printable() -> None:
    """The token rule is the client's: a zero-width space is neither whitespace nor control."""
    signed_in = read_signed_in({"auth": {**_GOOD, "tk": "ab\u200bcd"}})
    assert signed_in is not None
    assert signed_in.token == "ab\u200bcd"


def test_live_pending_drops_expired_and_malformed_entries() -> None:
    """Only well-formed logins younger than the TTL count, oldest first."""
    record = {
        "pending": [
            Pending("b", 90.0, "/b").to_json(),
            Pending("old", 0.0, "/old").to_json(),
            {"m": 1},
            "junk",
            Pending("a", 50.0, "/a").to_json(),
            Pending("future", 500.0, "/f").to_json(),
        ]
    }
    live = live_pending(record, now=100.0, ttl=60.0)
    assert [p.marker for p in live] == ["a", "b"]


def test_pending_logins_are_capped_keeping_the_newest() -> None:
    """Many tabs keep at most `cap` pending logins; the oldest go first."""
    pending: list[Pending] = []
    for i in range(8):
        pending, _ = add_pending(
            pending, Pending(str(i), float(i), f"/{i}"), cap=5, reuse_within=1
        )
    assert [p.marker for p in pending] == ["3", "4", "5", "6", "7"]


def test_pending_logins_stay_within_the_cookie_budget() -> None:
    """Long return paths evict the oldest pending logins before the cookie outgrows browsers."""
    pending: list[Pending] = []
    for i in range(5):
        pending, entry = add_pending(
            pending, Pending.new(float(i), f"/{i}?q=" + "x" * 480), cap=5, reuse_within=1
        )
    assert pending[-1] is entry
    assert 1 < len(pending) < 5
    assert len(json.dumps([p.to_json() for p in pending])) <= PENDING_BUDGET


def test_an_overlong_return_path_keeps_its_path_or_falls_back_to_home() -> None:
    """A return path beyond MAX_PENDING_NEXT drops its query; an overlong path itself gives '/'."""
    assert Pending.new(0.0, "/search?q=" + "x" * 2000).next == "/search"
    assert Pending.new(0.0, "/" + "p" * 2000).next == "/"
    short = "/search?q=" + "x" * (MAX_PENDING_NEXT - 20)
    assert Pending.new(0.0, short).next == short


def test_a_recent_login_to_the_same_page_is_reused() -> None:
    """A burst of requests for one page shares one pending login."""
    first = Pending("first", 100.0, "/page")
    pending, entry = add_pending([], first, cap=5, reuse_within=30)
    pending, entry = add_pending(
        pending, Pending("second", 110.0, "/page"), cap=5, reuse_within=30
    )
    assert entry is first
    assert pending == [first]
    pending, entry = add_pending(pending, Pending("third", 200.0, "/page"), cap=5, reuse_within=30)
    assert entry.marker == "third"
    assert len(pending) == 2


def test_write_pending_and_auto_drop_empty_keys() -> None:
    """Empty lists and zero counts leave no key behind."""
    record: dict[str, object] = {"pending": [], "auto": 3}
    write_pending(record, [])
    write_auto(record, 0)
    assert record == {}
    write_auto(record, 2)
    assert read_auto(record) == 2
    assert read_auto({"auto": "2"}) == 0
    assert read_auto(None) == 0


# -- expiry counts from when Twinne issued the token (issue 11, row 4) ---------------------


def _held(token: str = "f" * 32, iat: float = 1000.0, exp: float = 4600.0) -> SignedIn:
    return SignedIn(token, iat, exp, _user())


def test_a_token_handed_back_keeps_its_issue_and_expiry_times() -> None:
    """The session's own token, handed back by Twinne inside its window: no new hour."""
    record = signed_in_record(_token(), _user(), now=2800.0, previous=_held(), leeway=30)
    assert (record["iat"], record["exp"]) == (1000.0, 4600.0)


def test_a_new_token_gets_a_lifetime_from_now() -> None:
    """Another token value (a new one, or the previous login's was another): counted from now."""
    record = signed_in_record(
        _token(), _user(), now=2800.0, previous=_held(token="e" * 32), leeway=30
    )
    assert (record["iat"], record["exp"]) == (2800.0, 6400.0)


def test_a_token_handed_back_in_its_last_seconds_lasts_to_its_real_end() -> None:
    """Inside the guard's leeway: the expiry moves by the leeway, so pages last to the real end."""
    record = signed_in_record(_token(), _user(), now=4590.0, previous=_held(), leeway=30)
    assert record["iat"] == 1000.0
    assert record["exp"] == 4630.0  # the guard subtracts 30: pages until 4600


def test_a_token_handed_back_after_its_expiry_here_gets_a_lifetime_from_now() -> None:
    """Past our expiry yet handed back: Twinne's window is longer; a new lifetime, never a loop."""
    record = signed_in_record(_token(), _user(), now=5000.0, previous=_held(), leeway=30)
    assert (record["iat"], record["exp"]) == (5000.0, 8600.0)


# -- Record: the one owner of the layout ----------------------------------------------------


class _Session(dict[str, object]):
    """Enough of aiohttp_session.Session for Record: a mapping."""


def test_record_is_a_copy_until_saved() -> None:
    """Changes stay in the Record until save(): a refusal leaves the session as it was."""
    session = _Session({SESSION_KEY: {"auto": 2}})
    record = Record.of(session)  # type: ignore[arg-type]
    record.auto = 0
    record.add_pending(Pending.new(10.0, "/a"), now=10.0, ttl=600, cap=5, reuse_within=300)
    assert session[SESSION_KEY] == {"auto": 2}
    record.save(session)  # type: ignore[arg-type]
    saved = session[SESSION_KEY]
    assert isinstance(saved, dict)
    assert "auto" not in saved
    assert [p["next"] for p in saved["pending"]] == ["/a"]


def test_a_login_keeps_the_pending_ones_and_the_login_held() -> None:
    """Starting a login does not drop the login held (an abandoned login takes nothing away)."""
    record = Record()
    record.sign_in(_token(), _user(), now=100.0, previous=None, leeway=30)
    record.add_pending(Pending.new(200.0, "/a"), now=200.0, ttl=600, cap=5, reuse_within=300)
    held = record.signed_in()
    assert held is not None
    assert held.token == "f" * 32
    assert [p.next for p in record.pending(now=200.0, ttl=600)] == ["/a"]
    record.drop_login()
    assert record.signed_in() is None


def test_the_session_name_is_shared_until_a_login_completes() -> None:
    """Tabs sending one session share its name; the session after a login gets a new one."""
    record = Record()
    assert record.login_key() is None  # a first visit: nothing to share
    name = record.ensure_name()
    assert record.ensure_name() == name
    assert len(name) >= 22
    same = Record({"b": name, "auth": {"whatever": 1}})
    assert same.login_key() == record.login_key() == name
    following = record.successor()
    assert following.login_key() not in (None, name)
    assert following.signed_in() is None
    assert following.pending(now=0.0, ttl=600) == []


@pytest.mark.parametrize(
    "bad", [None, 12, "", "short", "x" * 65, "has space in it here", "é" * 22]
)
def test_a_malformed_session_name_counts_as_none(bad: object) -> None:
    """A name that secrets.token_urlsafe() could not have written is ignored (and replaced)."""
    record = Record({"b": bad})
    assert record.login_key() is None
    assert record.ensure_name() != bad


def test_only_the_record_module_knows_the_session_layout() -> None:
    """No other module of aiotwinne.web reads or writes the session's record or its keys."""
    package = Path(_record.__file__).parent
    offenders = []
    layout_keys = {"auth", "pending", "auto", "b", "tk", "iat", "exp", "u", "m", "t", "r"}
    for path in sorted(package.glob("*.py")):
        if path.name in ("_record.py", "__init__.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "SESSION_KEY":
                offenders.append(f"{path.name}:{node.lineno}: SESSION_KEY")
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.slice, ast.Constant)
                and node.slice.value in layout_keys
            ):
                offenders.append(f"{path.name}:{node.lineno}: [{node.slice.value!r}]")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "pop", "setdefault")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in layout_keys
            ):
                offenders.append(
                    f"{path.name}:{node.lineno}: .{node.func.attr}({node.args[0].value!r})"
                )
    assert offenders == []


# -- logins in flight, keyed by the record's name -----------------------------------------


def test_tabs_wait_while_a_login_is_in_flight_and_just_after() -> None:
    """A started login makes other tabs wait 4 s at most; a completed one 3 s more."""
    logins = LoginsInFlight()
    assert not logins.should_wait("s", 100.0)
    logins.start("s", 100.0)
    assert logins.should_wait("s", 100.0)
    assert logins.should_wait("s", 100.0 + WAIT_FOR_OTHER_TAB - 0.01)
    assert not logins.should_wait("s", 100.0 + WAIT_FOR_OTHER_TAB)  # then each tab goes
    assert not logins.should_wait("other session", 100.5)
    logins.finish("s", 101.0)
    assert logins.should_wait("s", 101.0 + WAIT_AFTER_LOGIN - 0.01)
    assert not logins.should_wait("s", 101.0 + WAIT_AFTER_LOGIN)


def test_another_login_since_a_pending_one() -> None:
    """A later start or any finish since a login began means another tab took over."""
    logins = LoginsInFlight()
    logins.start("s", 100.0)
    assert not logins.other_since("s", 100.0)  # only this login itself
    logins.start("s", 100.5)
    assert logins.other_since("s", 100.0)
    logins.finish("s", 101.0)
    assert logins.other_since("s", 100.0)
    assert not logins.other_since("s", 102.0)


def test_logins_in_flight_forget_old_and_surplus_entries() -> None:
    """Entries older than a minute go, and at most 10,000 sessions are remembered."""
    logins = LoginsInFlight()
    logins.start("old", 0.0)
    logins.start("new", 61.0)
    assert not logins.other_since("old", -1.0)
    for i in range(10_050):
        logins.start(f"s{i}", 100.0)
    assert not logins.other_since("s0", 99.0)
    assert logins.other_since("s10049", 99.0)
