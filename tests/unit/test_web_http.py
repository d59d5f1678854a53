"""aiotwinne.web._http: safe return paths, the callback's auth_key, navigation detection."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from aiotwinne.web import safe_return_path
from aiotwinne.web._http import (
    auth_key_from_query,
    from_this_site,
    is_navigation,
    prefers_json,
    request_source,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::aiohttp.web_exceptions.NotAppKeyWarning:aiohttp_session"
)

KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/dashboard",
        "/account/settings?tab=2&x=%20y",
        "/caf%C3%A9",
        "/a/b/../c",
        "/search?q=a%2Fb",
        "/path:with:colons",
        "/#fragment",
    ],
)
def test_same_origin_paths_are_kept(path: str) -> None:
    """A same-origin relative path comes back unchanged."""
    assert safe_return_path(path) == path


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "dashboard",
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "https://evil.example/",
        "http:/evil.example",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " /dashboard",
        "/dash board",
        "/ok\r\nSet-Cookie: x=1",
        "/ok\nLocation: //evil",
        "/tab\t/evil",
        "/%2F%2Fevil.example",
        "/%2f%2fevil.example",
        "/%252F%252Fevil.example",
        "/%25252F%25252Fevil.example",
        "/%5Cevil.example",
        "/%5C%5Cevil.example",
        "/%0d%0aSet-Cookie:x=1",
        "/%ff",
        "/é",
        "/" + "a" * 5000,
        "/%2525252525252F%2525252525252Fevil",
    ],
)
def test_unsafe_return_paths_fall_back_to_root(value: str | None) -> None:
    """Absolute, protocol-relative, backslash, scripted, encoded and CR/LF values give '/'."""
    assert safe_return_path(value) == "/"


def test_the_fallback_can_be_chosen() -> None:
    """A refused value gives the default the caller names."""
    assert safe_return_path("//evil", default="/home") == "/home"


@given(st.text(max_size=60))
def test_return_path_never_leaves_the_site(value: str) -> None:
    """Whatever the input, the result is the input or '/', and never names another host."""
    result = safe_return_path(value)
    assert result in (value, "/")
    assert result.startswith("/")
    assert not result.startswith(("//", "/\\"))
    assert not any(ch in result for ch in "\r\n\t\\ ")


@given(st.sampled_from(["/", "//", "/\\", "%2F", "%5C", "%252F", "evil", ":", "%0A"]).map(str))
def test_encoded_slash_prefixes_are_refused(prefix: str) -> None:
    """Any spelling that decodes to '//' or '/\\' at the start is refused."""
    value = "/" + prefix + "evil.example"
    result = safe_return_path(value)
    decoded = value
    for _ in range(4):
        decoded = unquote(decoded)
    if decoded.startswith(("//", "/\\")):
        assert result == "/"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"auth_key={KEY}", KEY),
        (f"x=1?auth_key={KEY}", KEY),
        (f"x=1&y=2?auth_key={KEY}", KEY),
        (f"a=b&auth_key={KEY}&c=d", KEY),
        ("auth_key=not-hex-but-fine", "not-hex-but-fine"),
        ("auth_key=abc%2Bdef", "abc+def"),
    ],
)
def test_auth_key_is_found(query: str, expected: str) -> None:
    """The one auth_key is read, also when Twinne appended it after an existing '?'."""
    assert auth_key_from_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "",
        "x=1",
        "auth_key=",
        "auth_key",
        f"auth_key={KEY}&auth_key={KEY}",
        f"auth_key={KEY}?auth_key=other",
        "auth_key=" + "a" * 257,
        "auth_key=abc%20def",
        "auth_key=abc+def",
        "auth_key=abc%0Adef",
        "auth_key=abc%00",
        "auth_key=%ff%fe",
        "auth_key=abc%26app_id%3D1",
        "auth_key=abc%23def",
        "auth_key=abc%3Fx%3D1",
        "auth_key=abc%25",
        "auth_key=%22%3E%3Cscript%3E",
        "auth_key=%C3%A9t%C3%A9",
    ],
)
def test_bad_auth_keys_are_refused(query: str) -> None:
    """Missing, repeated, empty, over-long, or holding what Twinne never appends: refused."""
    assert auth_key_from_query(query) is None


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("*/*", False),
        ("text/html,application/xhtml+xml,*/*;q=0.8", False),
        ("application/json", True),
        ("application/json, text/plain, */*", True),
        ("application/problem+json", True),
        ("text/html;q=0.5, application/json", True),
        ("application/json;q=0.5, text/html", False),
        ("application/json;q=0", False),
        ("application/json;q=oops", False),
    ],
)
def test_prefers_json(accept: str | None, expected: bool) -> None:
    """JSON wins only when ranked above HTML."""
    assert prefers_json(accept) is expected


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, True),
        ("HEAD", {}, True),
        ("GET", {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, True),
        ("POST", {"Sec-Fetch-Mode": "navigate"}, False),
        ("PUT", {}, False),
        ("GET", {"Sec-Fetch-Mode": "cors"}, False),
        ("GET", {"Sec-Fetch-Mode": "no-cors"}, False),
        ("GET", {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}, False),
        ("GET", {"X-Requested-With": "XMLHttpRequest"}, False),
        ("GET", {"Accept": "application/json"}, False),
        ("GET", {"Accept": "text/html"}, True),
    ],
)
def test_is_navigation(method: str, headers: dict[str, str], expected: bool) -> None:
    """Only a top-level GET/HEAD navigation may be redirected through a login."""
    assert is_navigation(method, CIMultiDict(headers)) is expected


HOST = "shop.example:8443"


@pytest.mark.parametrize(
    ("headers", "source"),
    [
        ({"Sec-Fetch-Site": "same-origin"}, "same-origin"),
        ({"Sec-Fetch-Site": "none"}, "none"),
        ({"Sec-Fetch-Site": " Same-Origin "}, "same-origin"),
        ({"Sec-Fetch-Site": "same-site"}, "cross-site"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ({"Sec-Fetch-Site": "something-new"}, "cross-site"),
        # Fetch Metadata wins over whatever else the request says.
        ({"Sec-Fetch-Site": "cross-site", "Referer": f"https://{HOST}/"}, "cross-site"),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"}, "same-origin"),
        # Older browsers: the Origin of a form post, else the Referer.
        ({"Origin": f"https://{HOST}"}, "same-origin"),
        ({"Origin": "https://SHOP.example:8443"}, "same-origin"),
        ({"Origin": "https://shop.example"}, "cross-site"),  # another port: another origin
        ({"Origin": "https://evil.example"}, "cross-site"),
        ({"Origin": "null"}, "cross-site"),
        ({"Origin": "null", "Referer": f"https://{HOST}/"}, "cross-site"),
        ({"Referer": f"https://{HOST}/cart?x=1"}, "same-origin"),
        ({"Referer": "https://evil.example/shop.example:8443"}, "cross-site"),
        ({"Referer": f"https://{HOST}.evil.example/"}, "cross-site"),
        ({"Referer": "not a url"}, "cross-site"),
        ({}, "unknown"),
        ({"Origin": "", "Referer": ""}, "unknown"),
    ],
)
def test_request_source(headers: dict[str, str], source: str) -> None:
    """Sec-Fetch-Site decides; then Origin, then Referer; with none of them: unknown."""
    assert request_source(CIMultiDict(headers), HOST) == source


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "none"}, True),
        ({"Referer": f"http://{HOST}/"}, True),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({}, False),
    ],
)
def test_from_this_site(headers: dict[str, str], expected: bool) -> None:
    """This site's pages and the user (typed URL, bookmark) count; unknown does not."""
    assert from_this_site(CIMultiDict(headers), HOST) is expected
