"""The sans-I/O protocol module, fed recorded Twinne bodies."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotwinne import (
    APIError,
    FeatureDisabledError,
    HTTPStatusError,
    InvalidAppError,
    InvalidAuthKeyError,
    InvalidSecretError,
    InvalidTokenError,
    ProtocolError,
    TokenExpiredError,
    TransportError,
    TwinneError,
    UserNotFoundError,
)
from aiotwinne import _protocol as p

SAMPLES = Path(__file__).parent / "samples"
BASE = "https://twinne.eu"
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
JSON = {"Content-Type": "application/json"}
HTML = {"Content-Type": "text/html; charset=UTF-8"}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def error_body(message: str) -> bytes:
    return json.dumps({"error": True, "message": message}).encode()


# -- URLs -------------------------------------------------------------------


def test_login_url_carries_only_the_app_id() -> None:
    """The login link is {base}/api/oauth?app_id=ID, with no redirect_uri or state."""
    assert p.login_url(BASE, "123") == "https://twinne.eu/api/oauth?app_id=123"


def test_secret_urls_percent_encode_their_values() -> None:
    """Values are percent-encoded so a stray & or # cannot add parameters."""
    url, _ = p.authorize_request(BASE, "1", "s&x=1", "k#y")
    assert url.endswith("app_id=1&app_secret=s%26x%3D1&auth_key=k%23y")
    assert p.user_info_url(BASE, "t/ö").endswith("access_token=t%2F%C3%B6")


def test_the_exchange_carries_its_parameters_in_the_query_and_the_form() -> None:
    """Sngine 2.x/3.x read the query, 4.x the POST form: one request carries both, equal."""
    url, form = p.authorize_request(BASE, "7", "s3cr+t", "k/ö")
    assert url == f"{BASE}{p.AUTHORIZE_PATH}?" + form.decode("ascii")
    assert urllib.parse.parse_qs(form.decode("ascii"), strict_parsing=True) == {
        "app_id": ["7"],
        "app_secret": ["s3cr+t"],
        "auth_key": ["k/ö"],
    }


@pytest.mark.parametrize("value", ["", " ", "abc def", "abc\n", "a\x00b", "\t", "x\x7f"])
def test_check_identifier_rejects_blank_and_control_characters(value: str) -> None:
    """Empty, whitespace or control characters are a caller's mistake, refused before sending."""
    with pytest.raises(ValueError, match="auth_key") as info:
        p.check_identifier("auth_key", value)
    assert value.strip() == "" or value not in str(info.value)


def test_check_identifier_accepts_what_other_sites_may_use() -> None:
    """Not over-validated: long, non-hex and numeric identifiers pass."""
    assert p.check_identifier("app_id", 123456789012345) == "123456789012345"
    assert p.check_identifier("auth_key", "Z" * 64) == "Z" * 64


@given(st.text(max_size=12))
def test_check_identifier_quick_path_keeps_the_rule(value: str) -> None:
    """On any text, accepted exactly when not empty and free of blanks, controls and U+FEFF."""
    refused = not value or re.search(r"[\s\x00-\x1f\x7f\ufeff]", value) is not None
    if refused:
        with pytest.raises(ValueError, match="auth_key"):
            p.check_identifier("auth_key", value)
    else:
        assert p.check_identifier("auth_key", value) == value


def test_user_info_url_quotes_only_what_needs_it() -> None:
    """A plain alphanumeric token goes as it is; anything else is percent-encoded."""
    assert p.user_info_url(BASE, "ab12CD").endswith("?access_token=ab12CD")
    assert p.user_info_url(BASE, "a-b.c").endswith("?access_token=a-b.c")
    assert p.user_info_url(BASE, "a+b").endswith("?access_token=a%2Bb")
    assert p.user_info_url(BASE, "\u0661\u0662").endswith("?access_token=%D9%A1%D9%A2")


@pytest.mark.parametrize("value", [None, 1.5, b"abc", True])
def test_check_identifier_rejects_wrong_types(value: object) -> None:
    """A non-string identifier is a TypeError."""
    with pytest.raises(TypeError):
        p.check_identifier("app_secret", value)


@pytest.mark.parametrize(
    "url",
    [
        "http://twinne.eu",
        "ftp://twinne.eu",
        "twinne.eu",
        "https://",
        "https://t.eu/?a=1",
        "https://t.eu/#x",
        # Names that merely look like loopback resolve wherever their owner wants.
        "http://127.attacker.example",
        "http://127.0.0.1.nip.io:8080",
        "http://localhost.attacker.example",
        "http://[::ffff:8.8.8.8]",
    ],
)
def test_check_base_url_refuses_unusable_urls(url: str) -> None:
    """Plain http to a remote host, non-http schemes, queries and fragments are refused."""
    with pytest.raises(ValueError, match="base_url"):
        p.check_base_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://twinne.eu/", "https://twinne.eu"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:1/sub/", "http://localhost:1/sub"),
        ("http://[::1]:9", "http://[::1]:9"),
        ("http://127.0.0.2", "http://127.0.0.2"),
        ("http://127.255.0.1:5", "http://127.255.0.1:5"),
    ],
)
def test_check_base_url_allows_https_and_loopback(url: str, expected: str) -> None:
    """https anywhere and http on loopback are fine; the trailing slash goes."""
    assert p.check_base_url(url) == expected


def test_check_base_url_insecure_opt_in() -> None:
    """An explicit opt-in allows plain http to another host."""
    assert p.check_base_url("http://sngine.test", allow_insecure=True) == "http://sngine.test"


# -- exchange ---------------------------------------------------------------


def test_exchange_success_builds_a_token_with_its_window() -> None:
    """A successful exchange gives the token, issued now, expiring after the lifetime."""
    token = p.parse_exchange(200, JSON, sample("authorize_ok.json"), now=NOW, lifetime=3600)
    assert token.value == "5f4dcc3b5aa765d61d8327deb882cf99"
    assert token.issued_at == NOW
    assert token.expires_at == NOW + dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (p.MESSAGES.INVALID_APP_ID, InvalidAppError),
        (p.MESSAGES.APP_DISABLED, InvalidAppError),
        (p.MESSAGES.INVALID_APP_SECRET, InvalidSecretError),
        (p.MESSAGES.INVALID_AUTH_KEY, InvalidAuthKeyError),
        (p.MESSAGES.INVALID_ACCESS_TOKEN, InvalidTokenError),
        (p.MESSAGES.EXPIRED_ACCESS_TOKEN, TokenExpiredError),
        (p.MESSAGES.FEATURE_DISABLED, FeatureDisabledError),
        (p.MESSAGES.DEVELOPERS_DISABLED, FeatureDisabledError),
        (p.MESSAGES.INVALID_PARAMETERS, APIError),
        ("Mauvaise requête, clé invalide", APIError),
    ],
)
def test_every_twinne_message_maps_to_its_error(message: str, error: type[APIError]) -> None:
    """HTTP 200 {"error": true} answers raise the error class of their message."""
    for parse in (
        lambda b: p.parse_exchange(200, JSON, b, now=NOW, lifetime=3600),
        lambda b: p.parse_user_info(200, JSON, b, base_url=BASE),
    ):
        with pytest.raises(error) as info:
            parse(error_body(message))
        assert type(info.value) is error
        assert info.value.message == message
        assert info.value.status == 200


def test_error_with_non_string_message_is_still_an_api_error() -> None:
    """A malformed error object is an APIError, not a crash."""
    with pytest.raises(APIError, match="unknown error"):
        p.parse_user_info(200, JSON, b'{"error": "1", "message": 5}', base_url=BASE)


@pytest.mark.parametrize(
    "body",
    [b'{"access_token": ""}', b'{"access_token": 12}', b"{}", b"[]", b'{"access_token": "a b"}'],
)
def test_exchange_without_usable_token_is_a_protocol_error(body: bytes) -> None:
    """An answer without a usable access_token is a ProtocolError."""
    with pytest.raises(ProtocolError, match="access_token"):
        p.parse_exchange(200, JSON, body, now=NOW, lifetime=3600)


# -- user info --------------------------------------------------------------


def test_user_info_success_is_typed() -> None:
    """Twinne's strings become Python types; unknown keys are kept in extra."""
    user = p.parse_user_info(200, JSON, sample("user_info_ok.json"), base_url=BASE)
    assert user.id == 42
    assert user.username == "jdoe"
    assert user.email == "j@example.com"
    assert user.birthdate == dt.date(1990, 5, 17)
    assert user.registered == dt.datetime(2021, 3, 4, 10, 11, 12)
    assert user.verified is True
    assert user.picture_url == "https://twinne.eu/content/uploads/photos/2021/03/abc.jpg"
    assert user.cover_url == "https://cdn.example.com/cover.jpg"
    assert user.extra == {
        "profile_picture": "https://twinne.eu/content/uploads/photos/2021/03/abc.jpg",
        "profile_cover": None,
    }


def test_deleted_user_is_user_not_found() -> None:
    """PHP's empty array `[]` means the user no longer exists."""
    with pytest.raises(UserNotFoundError):
        p.parse_user_info(200, JSON, sample("user_info_deleted.json"), base_url=BASE)


def test_json_after_php_warnings_is_recovered() -> None:
    """A body with PHP warnings printed before the JSON still yields the answer."""
    user = p.parse_user_info(200, HTML, sample("php_warning_user_info.html"), base_url=BASE)
    assert user.id == 42
    assert user.cover is None


def test_content_type_is_not_trusted() -> None:
    """JSON labelled text/html is read as JSON."""
    user = p.parse_user_info(200, HTML, sample("user_info_ok.json"), base_url=BASE)
    assert user.username == "jdoe"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("php_fatal_200.html", "HTML page"), ("truncated_json.json", "malformed JSON")],
)
def test_non_json_200_is_a_redacted_protocol_error(name: str, kind: str) -> None:
    """HTML or truncated JSON with status 200 is a ProtocolError with a redacted snippet."""
    with pytest.raises(ProtocolError, match=kind) as info:
        p.parse_user_info(200, HTML, sample(name), base_url=BASE)
    assert info.value.snippet
    assert "0123456789abcdef0123456789abcdef" not in info.value.snippet
    assert "0123456789abcdef0123456789abcdef" not in repr(info.value)


@pytest.mark.parametrize(
    "body", [b'"just a string"', b"42", b"null", b'{"user_info": []}', b'{"user_info": "x"}']
)
def test_wrong_json_shapes_are_protocol_errors(body: bytes) -> None:
    """JSON that is not the expected shape is a ProtocolError."""
    with pytest.raises(ProtocolError):
        p.parse_user_info(200, JSON, body, base_url=BASE)


@pytest.mark.parametrize("body", [b'{"user_info": {"user_id": "abc", "user_name": "x"}}'])
def test_unreadable_field_is_a_protocol_error(body: bytes) -> None:
    """A user_id that is not a number is a ProtocolError naming the problem."""
    with pytest.raises(ProtocolError, match="cannot be read"):
        p.parse_user_info(200, JSON, body, base_url=BASE)


def test_missing_required_field_is_a_protocol_error() -> None:
    """A user_info without user_id is a ProtocolError."""
    with pytest.raises(ProtocolError, match="user_id"):
        p.parse_user_info(200, JSON, b'{"user_info": {"user_name": "x"}}', base_url=BASE)


def test_invalid_utf8_does_not_crash() -> None:
    """Bytes that are not UTF-8 give a ProtocolError, not a UnicodeDecodeError."""
    with pytest.raises(ProtocolError):
        p.parse_user_info(200, HTML, b"\xff\xfe<html>", base_url=BASE)


def test_many_brackets_before_json_stop_the_search() -> None:
    """A pathological body full of brackets is refused quickly, not searched forever."""
    with pytest.raises(ProtocolError):
        p.parse_user_info(200, HTML, b"{[" * 5000, base_url=BASE)


# -- statuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name"), [(500, "html_500.html"), (503, "proxy_503.html"), (502, "html_500.html")]
)
def test_non_2xx_is_an_http_status_error(status: int, name: str) -> None:
    """A non-2xx answer is an HTTPStatusError with the status and a snippet."""
    with pytest.raises(HTTPStatusError) as info:
        p.parse_user_info(status, HTML, sample(name), base_url=BASE)
    assert info.value.status == status
    assert "Error" in info.value.snippet or "Unavailable" in info.value.snippet


def test_non_2xx_with_a_twinne_error_body_is_still_a_status_error() -> None:
    """The status decides first: a proxy's 429 is not read as Twinne's answer."""
    with pytest.raises(HTTPStatusError) as info:
        p.parse_user_info(
            429, {"retry-after": "7"}, error_body(p.MESSAGES.INVALID_APP_ID), base_url=BASE
        )
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 3 ", 3.0),
        ("soon", None),
        ("Fri, 02 Jan 2026 03:05:05 GMT", 60.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),
    ],
)
def test_retry_after_reads_seconds_and_dates(header: str | None, expected: float | None) -> None:
    """Retry-After is delta-seconds or an HTTP date; anything else is ignored."""
    assert p.parse_retry_after(header, now=NOW) == expected


def test_too_large_names_the_cap() -> None:
    """The oversized-body error names the cap and the status."""
    error = p.too_large(1024, status=200)
    assert isinstance(error, ProtocolError)
    assert "1024" in str(error)


# -- the spent-key rule -------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "spent"),
    [
        (InvalidAuthKeyError("Bad Request, invalid auth_key"), False),
        (InvalidSecretError("Bad Request, invalid app_secret"), False),
        (TransportError("refused", request_sent=False), False),
        (TransportError("reset after sending", request_sent=True), True),
        (HTTPStatusError("HTTP 502", status=502), True),
        (HTTPStatusError("HTTP 302", status=302), True),
        (ProtocolError("an HTML page", status=200), True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_auth_key_may_be_spent_is_one_rule_over_the_facts(error: TwinneError, spent: bool) -> None:
    """Twinne's own refusal or a request that never left spent nothing; anything else may have."""
    assert p.auth_key_may_be_spent(error) is spent
