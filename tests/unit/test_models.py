"""The attrs models and the cattrs converter for Twinne's string payloads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotwinne import AccessToken, InvalidTokenError, ProfileResult, UserInfo
from aiotwinne.models import (
    _fast_user_info,
    _general_user_info,
    user_info_from_wire,
    user_info_to_wire,
)

BASE = "https://twinne.eu"
UTC = dt.timezone.utc
SECRET = "0123456789abcdef0123456789abcdef"


def wire(**fields: Any) -> dict[str, Any]:
    return {"user_id": "1", "user_name": "u", **fields}


def build(**fields: Any) -> UserInfo:
    return user_info_from_wire(wire(**fields), base_url=BASE)


# -- AccessToken ------------------------------------------------------------


def test_token_repr_and_str_hide_the_value() -> None:
    """repr() and str() show a fingerprint and the expiry, never the token."""
    now = dt.datetime.now(UTC)
    token = AccessToken(SECRET, now, now + dt.timedelta(hours=1))
    for text in (repr(token), str(token), f"{token}", repr([token])):
        assert SECRET not in text
        assert token.fingerprint in text


def test_token_expiry_with_leeway() -> None:
    """A token counts as expired from expires_at minus the leeway."""
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    token = AccessToken(SECRET, now, now + dt.timedelta(seconds=3600))
    assert not token.is_expired(now=now)
    assert not token.is_expired(30, now=now + dt.timedelta(seconds=3569))
    assert token.is_expired(30, now=now + dt.timedelta(seconds=3570))
    assert token.is_expired(now=now + dt.timedelta(seconds=3600))


def test_expires_in_counts_down() -> None:
    """expires_in is the seconds left, negative once expired."""
    now = dt.datetime.now(UTC)
    assert 3590 < AccessToken(SECRET, now, now + dt.timedelta(hours=1)).expires_in <= 3600
    assert AccessToken(SECRET, now, now - dt.timedelta(seconds=5)).expires_in < 0


def test_token_is_frozen() -> None:
    """Tokens are immutable values."""
    now = dt.datetime.now(UTC)
    token = AccessToken(SECRET, now, now)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        token.value = "x"  # type: ignore[misc]


# -- UserInfo fields --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("0", False), ("", False), (None, False), (True, True), (1, True)],
)
def test_verified(raw: object, expected: bool) -> None:
    """user_verified "0"/"1" (and empty/null) become a bool."""
    assert build(user_verified=raw).verified is expected


def test_verified_garbage_is_refused() -> None:
    """A user_verified that is neither 0 nor 1 cannot be read."""
    with pytest.raises(ValueError, match="user_verified"):
        build(user_verified="maybe")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1990-05-17", dt.date(1990, 5, 17)),
        ("0000-00-00", None),
        ("", None),
        (None, None),
        ("1990-00-17", None),
        ("1990-02-30", None),
        (19900517, None),
        ("19900517", None),
        ("1990-05-17 00:00:00", dt.date(1990, 5, 17)),
        ("1990-05-170", None),
    ],
)
def test_birthdate(raw: object, expected: dt.date | None) -> None:
    """Dates parse; empty, zero and impossible dates are None."""
    assert build(user_birthdate=raw).birthdate == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-03-04 10:11:12", dt.datetime(2021, 3, 4, 10, 11, 12)),
        ("0000-00-00 00:00:00", None),
        ("", None),
        (None, None),
        ("yesterday", None),
        ("2021-03-04T10:11:12", dt.datetime(2021, 3, 4, 10, 11, 12)),
        ("2021-03-04 10:11:12.5", dt.datetime(2021, 3, 4, 10, 11, 12)),
        ("2021-03-04T10:11:12Z", dt.datetime(2021, 3, 4, 10, 11, 12)),
        ("2021-03-04 10:11:12+02:00", dt.datetime(2021, 3, 4, 10, 11, 12)),
        ("2021-03-04", None),
    ],
)
def test_registered_is_naive_site_time(raw: object, expected: dt.datetime | None) -> None:
    """user_registered is a naive datetime (site-local, no zone) or None."""
    registered = build(user_registered=raw).registered
    assert registered == expected
    assert registered is None or registered.tzinfo is None


@pytest.mark.parametrize(
    ("raw", "picture", "url"),
    [
        ("photos/2021/a.jpg", "photos/2021/a.jpg", f"{BASE}/content/uploads/photos/2021/a.jpg"),
        ("/photos/a.jpg", "/photos/a.jpg", f"{BASE}/content/uploads/photos/a.jpg"),
        ("https://cdn.example/a.jpg", "https://cdn.example/a.jpg", "https://cdn.example/a.jpg"),
        ("http://old.example/a.jpg", "http://old.example/a.jpg", "http://old.example/a.jpg"),
        ("", None, None),
        (None, None, None),
    ],
)
def test_picture_and_cover_urls(raw: str | None, picture: str | None, url: str | None) -> None:
    """Relative upload paths get the public URL; full URLs are left alone."""
    user = build(user_picture=raw, user_cover=raw)
    assert (user.picture, user.picture_url) == (picture, url)
    assert (user.cover, user.cover_url) == (picture, url)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("male", "male"),
        ("Female", "female"),
        ("other", "other"),
        ("1", "male"),
        ("2", "female"),
        ("3", "other"),
        ("9", "other"),
        ("", None),
        (None, None),
        # Sngine 4.x: the gender table's names, "N/A" when unset, site-defined names.
        ("Male", "male"),
        ("Other", "other"),
        ("N/A", None),
        (" n/a ", None),
        ("Non-binary", "other"),
        ("Femme", "female"),
        ("Homme", "male"),
        ("   ", None),
    ],
)
def test_gender_keeps_raw_text_and_offers_a_normalised_view(
    raw: str | None, normalized: str | None
) -> None:
    """gender is the raw text (None when empty); gender_normalized reads old and new sites."""
    user = build(user_gender=raw)
    assert user.gender == (raw or None)
    assert user.gender_normalized == normalized


@given(st.one_of(st.none(), st.text(max_size=12)))
def test_gender_normalized_never_raises(raw: str | None) -> None:
    """Whatever a site sends as user_gender, the normalised view is one of four answers."""
    assert build(user_gender=raw).gender_normalized in (None, "male", "female", "other")


UPLOADS = f"{BASE}/content/uploads"
DEFAULT_PICTURE = f"{BASE}/content/themes/default/images/blank_profile_male.png"


@pytest.mark.parametrize(
    ("wire", "picture_url", "display"),
    [
        # 4.x: profile_picture is the uploads URL of user_picture.
        (
            {"user_picture": "photos/a.jpg", "profile_picture": f"{UPLOADS}/photos/a.jpg"},
            f"{UPLOADS}/photos/a.jpg",
            f"{UPLOADS}/photos/a.jpg",
        ),
        # 2.x/3.x: profile_picture is always the default picture (a server bug).
        (
            {"user_picture": "photos/a.jpg", "profile_picture": DEFAULT_PICTURE},
            f"{UPLOADS}/photos/a.jpg",
            f"{UPLOADS}/photos/a.jpg",
        ),
        # No own picture: the default is recognisable, and only shown as a fallback.
        ({"user_picture": "", "profile_picture": DEFAULT_PICTURE}, None, DEFAULT_PICTURE),
        (
            {"user_picture": None, "profile_picture": f"{DEFAULT_PICTURE}?v=2"},
            None,
            f"{DEFAULT_PICTURE}?v=2",
        ),
        # A real picture URL that only profile_picture carries is used.
        (
            {"user_picture": "", "profile_picture": "https://cdn.example/me.webp"},
            "https://cdn.example/me.webp",
            "https://cdn.example/me.webp",
        ),
        ({"user_picture": "", "profile_picture": "not a url"}, None, None),
        ({"user_picture": "", "profile_picture": None}, None, None),
    ],
)
def test_picture_reads_every_version(
    wire: dict[str, Any], picture_url: str | None, display: str | None
) -> None:
    """picture_url is the user's own picture on every version; the default one is told apart."""
    user = build(**wire)
    assert (user.picture_url, user.display_picture_url) == (picture_url, display)


@pytest.mark.parametrize(
    ("cover", "profile_cover", "cover_url"),
    [
        # Every version sends the bare uploads folder: no cover.
        ("", f"{UPLOADS}/", None),
        (None, f"{UPLOADS}/", None),
        ("covers/c.jpg", f"{UPLOADS}/", f"{UPLOADS}/covers/c.jpg"),
        ("", f"{UPLOADS}/covers/c.jpg", f"{UPLOADS}/covers/c.jpg"),
    ],
)
def test_cover_treats_the_bare_uploads_folder_as_none(
    cover: str | None, profile_cover: str, cover_url: str | None
) -> None:
    """profile_cover equal to the bare uploads folder means "no cover"."""
    assert build(user_cover=cover, profile_cover=profile_cover).cover_url == cover_url


def test_empty_texts() -> None:
    """Empty optional texts are None; empty or null names are ""."""
    user = build(
        user_email="",
        user_firstname=None,
        user_lastname="",
        user_relationship="",
        user_biography=None,
        user_website="",
    )
    assert user.email is None
    assert (user.first_name, user.last_name) == ("", "")
    assert user.relationship is user.biography is user.website is None
    assert user.full_name == "u"


def test_numbers_from_newer_servers_are_accepted() -> None:
    """A server that sends real numbers still works."""
    user = user_info_from_wire({"user_id": 42, "user_name": 7}, base_url=BASE)
    assert (user.id, user.username) == (42, "7")


@pytest.mark.parametrize("raw", [None, 4.2, True, "4 2", [], {}])
def test_user_id_must_be_a_number(raw: object) -> None:
    """A user_id that is not a decimal number cannot be read."""
    with pytest.raises(ValueError, match="user_id"):
        build(user_id=raw)


def test_structured_value_in_a_text_field_is_refused() -> None:
    """A list where text belongs cannot be read."""
    with pytest.raises(ValueError, match="user_email"):
        build(user_email=["x"])


def test_unknown_keys_are_kept_read_only() -> None:
    """Keys Twinne adds are kept as sent, in a read-only mapping."""
    user = build(profile_picture="p.jpg", user_group="3", nested={"a": [1]})
    assert user.extra == {"profile_picture": "p.jpg", "user_group": "3", "nested": {"a": [1]}}
    with pytest.raises(TypeError):
        user.extra["x"] = 1  # type: ignore[index]


def test_user_info_pickles() -> None:
    """A UserInfo survives pickling (caches, multiprocessing), extra included."""
    import pickle

    user = build(user_birthdate="1990-05-17", profile_picture="p.jpg")
    copy = pickle.loads(pickle.dumps(user))  # noqa: S301 - our own bytes
    assert copy == user
    assert copy.extra == {"profile_picture": "p.jpg"}


def test_full_name() -> None:
    """full_name joins first and last name."""
    assert build(user_firstname="Jane", user_lastname="Doe").full_name == "Jane Doe"


# -- round trips ------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
_opt_text = st.one_of(st.none(), _text.filter(bool))
_date = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1))
_datetime = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1))

canonical_wire = st.fixed_dictionaries(
    {
        "user_id": st.integers(min_value=1, max_value=10**12).map(str),
        "user_name": _text,
        "user_email": _opt_text,
        "user_firstname": _text,
        "user_lastname": _text,
        "user_gender": _opt_text,
        "user_birthdate": st.one_of(st.none(), _date.map(dt.date.isoformat)),
        "user_picture": _opt_text,
        "user_cover": _opt_text,
        "user_registered": st.one_of(
            st.none(), _datetime.map(lambda d: d.replace(microsecond=0).isoformat(sep=" "))
        ),
        "user_verified": st.sampled_from(["0", "1"]),
        "user_relationship": _opt_text,
        "user_biography": _opt_text,
        "user_website": _opt_text,
    },
    optional={"profile_picture": _opt_text, "profile_cover": _opt_text, "user_group": _text},
)


@given(canonical_wire)
def test_wire_model_wire_round_trips(data: dict[str, Any]) -> None:
    """Canonical wire data survives wire -> model -> wire unchanged, unknown keys included."""
    assert user_info_to_wire(user_info_from_wire(data, base_url=BASE)) == data


@given(canonical_wire)
def test_model_wire_model_round_trips(data: dict[str, Any]) -> None:
    """Every model survives model -> wire -> model unchanged."""
    user = user_info_from_wire(data, base_url=BASE)
    assert user_info_from_wire(user_info_to_wire(user), base_url=BASE) == user


# -- ProfileResult ----------------------------------------------------------


def test_profile_result_repr_hides_the_token() -> None:
    """A bulk result's repr shows a fingerprint, never the token."""
    now = dt.datetime.now(UTC)
    ok = ProfileResult(token=SECRET, user=build(), index=3)
    bad = ProfileResult(
        token=AccessToken(SECRET, now, now), error=InvalidTokenError("no"), index=4
    )
    assert ok.ok
    assert not bad.ok
    for result in (ok, bad):
        assert SECRET not in repr(result)
    assert "user_id=1" in repr(ok)
    for item in (123, None, b"abc"):
        assert "error=" in repr(ProfileResult(token=item, error=InvalidTokenError("no")))  # type: ignore[arg-type]
    assert "InvalidTokenError" in repr(bad)


# -- the fast path ------------------------------------------------------------

_odd_text = st.sampled_from(
    [
        "",
        " ",
        "0",
        "1",
        " 1",
        "1 ",
        "+42",
        "4_2",
        "-7",
        "yes",
        "TRUE",
        "2",
        "٣",
        "1990-05-17",
        " 1990-05-17",
        "1990-05-17 10:11",
        "1990-5-17",
        "0000-00-00",
        "1990-00-17",
        "2021-W01-1",
        "1990-05-1٣",
        "2021-03-04 10:11:12",
        "2021-03-04T10:11:12",
        "2021-03-04 10:11:12.5",
        "2021-03-04 25:11:12",
        "2021-03-04 10:11:1Z",
        "2021-03-04 10:11:12+01:00",
        "0000-00-00 00:00:00",
        "photos/a.jpg",
        "https://cdn.example/a.jpg",
        f"{BASE}/content/themes/default/images/blank_profile_male.png",
        f"{BASE}/content/uploads/",
    ]
)
_any_value = st.one_of(
    st.none(),
    _odd_text,
    _text,
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
_WIRE_KEYS = [
    *(f"user_{name}" for name in ("id", "name", "email", "firstname", "lastname", "gender")),
    *(f"user_{name}" for name in ("birthdate", "picture", "cover", "registered", "verified")),
    *(f"user_{name}" for name in ("relationship", "biography", "website")),
    *("profile_picture", "profile_cover", "user_group"),
]
any_wire = st.dictionaries(st.sampled_from(_WIRE_KEYS), _any_value, max_size=len(_WIRE_KEYS))
# Real answers with a few odd values mixed in: the fast path answers most of these.
mixed_wire = st.builds(
    lambda real, odd: {**real, **odd},
    canonical_wire,
    st.dictionaries(st.sampled_from(_WIRE_KEYS), _any_value, max_size=3),
)


@settings(max_examples=400)
@given(st.one_of(any_wire, mixed_wire))
def test_fast_path_equals_the_general_converter(data: dict[str, Any]) -> None:
    """Wherever the fast path answers, it answers exactly what the cattrs converter does."""
    fast = _fast_user_info(data, BASE)
    if fast is None:
        return
    assert fast == _general_user_info(data, BASE)
    assert type(fast.extra) is type(_general_user_info(data, BASE).extra)


@given(canonical_wire)
def test_fast_path_takes_every_canonical_answer(data: dict[str, Any]) -> None:
    """What Sngine really sends (strings or null, a decimal user_id) never needs the slow path."""
    assert _fast_user_info(data, BASE) is not None


@given(canonical_wire, st.randoms(use_true_random=False))
def test_extra_keeps_the_order_sent_whatever_the_fields_order(
    data: dict[str, Any], random: Any
) -> None:
    """``extra`` lists the unmapped keys as sent, on Sngine's order and on any other."""
    keys = list(data)
    for wire in (data, {key: data[key] for key in random.sample(keys, len(keys))}):
        unmapped = [key for key in wire if not key.startswith("user_") or key == "user_group"]
        assert list(user_info_from_wire(wire, base_url=BASE).extra) == unmapped
        fast = _fast_user_info(wire, BASE)
        assert fast is not None
        assert list(fast.extra) == unmapped


def test_a_field_missing_still_takes_the_fast_path() -> None:
    """A wire object without some optional field reads it as empty, as the converter does."""
    wire = {"user_id": "7", "user_name": "ada", "user_verified": "1", "profile_cover": "x"}
    fast = _fast_user_info(wire, BASE)
    assert fast is not None
    assert fast == _general_user_info(wire, BASE)
    assert (fast.id, fast.verified, fast.email) == (7, True, None)
    assert dict(fast.extra) == {"profile_cover": "x"}
