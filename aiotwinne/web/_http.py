"""Pure request hygiene: safe return paths, the callback's auth_key, navigation vs API calls,
and where a request comes from.

Nothing here touches a session or Twinne; every function is tested by feeding it
strings or a few headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = [
    "MAX_AUTH_KEY_LENGTH",
    "MAX_RETURN_PATH_LENGTH",
    "auth_key_from_query",
    "from_this_site",
    "is_navigation",
    "prefers_json",
    "request_source",
    "safe_return_path",
]

#: Longest return path kept; a longer one falls back to ``/``.
MAX_RETURN_PATH_LENGTH: Final = 2048
#: Longest auth_key accepted (stock Sngine sends 32 characters).
MAX_AUTH_KEY_LENGTH: Final = 256

# Printable ASCII without space and backslash. Paths that come from a request
# URL are already percent-encoded, so a legitimate path never needs more.
_PATH_CHARS: Final = re.compile(r"[!-\[\]-~]*")
# What a query value can hold literally (RFC 3986 "query" characters) without
# the separators split on below ("+" reaches the check only as %2B: a literal
# one is a space). Twinne appends the key as plain text, so a key holding
# anything else (&, #, ?, %, quotes, non-ASCII, whitespace) is not Twinne's.
_KEY_CHARS: Final = re.compile(r"[A-Za-z0-9\-._~!$'()*+,=:@/]+")
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")
_DECODE_ROUNDS: Final = 4


def safe_return_path(value: str | None, *, default: str = "/") -> str:
    """Return *value* if it is a same-origin relative path, else *default*.

    The page a login returns to arrives from the outside (the ``next``
    parameter, or the URL of a request that needed a login), and a redirect to
    it after login must never leave the site. Accepted: a path that starts with
    exactly one ``/``, made of printable ASCII without spaces or backslashes,
    at most :data:`MAX_RETURN_PATH_LENGTH` characters, and which still
    satisfies the same rules after each round of percent-decoding (so
    ``/%2F%2Fevil.example`` and its double-encoded spellings are refused as
    well). Everything else — absolute URLs, ``//host``, ``/\\host``,
    ``javascript:``, CR/LF, empty — gives *default*.

    Args:
        value: The candidate path, query string allowed.
        default: What to return for a refused value.

    Returns:
        *value* unchanged, or *default*.

    Example:
        >>> safe_return_path("/account?tab=2")
        '/account?tab=2'
        >>> safe_return_path("//evil.example/")
        '/'
    """
    if not value or len(value) > MAX_RETURN_PATH_LENGTH:
        return default
    if _PATH_CHARS.fullmatch(value) is None or not _is_local_path(value):
        return default
    candidate = value
    for _ in range(_DECODE_ROUNDS):
        try:
            decoded = unquote(candidate, errors="strict")
        except UnicodeDecodeError:
            return default
        if decoded == candidate:
            return value
        # Decoded forms may hold any text (an encoded UTF-8 path is fine), but
        # must not turn into another host or a header injection.
        if _CONTROL_CHARS.search(decoded) or not _is_local_path(decoded):
            return default
        candidate = decoded
    # Still changing after several rounds of decoding: nobody needs that.
    return default


def _is_local_path(text: str) -> bool:
    if not text.startswith("/") or text.startswith(("//", "/\\")):
        return False
    parts = urlsplit(text)
    return not parts.scheme and not parts.netloc


def auth_key_from_query(raw_query: str) -> str | None:
    """Find the one ``auth_key`` in a callback's raw query string.

    Twinne appends ``?auth_key=KEY`` as plain text, even when the registered
    redirect URL already has a query (``/cb?x=1?auth_key=KEY``), so the
    query is split on both ``&`` and ``?`` rather than read with a standard
    parser. The key is not required to be hex, because other Sngine sites may
    differ; but since Twinne appends it as plain text, a key that decodes to a
    character a URL query cannot hold literally (``&``, ``#``, ``?``, ``%``,
    quotes, non-ASCII, whitespace, controls) cannot be Twinne's and is refused
    here, before anything is sent.

    Args:
        raw_query: The query string as received, still percent-encoded.

    Returns:
        The decoded key, or ``None`` when it is missing, given more than
        once, empty, longer than :data:`MAX_AUTH_KEY_LENGTH`, or holds a
        character outside those a query can carry literally.
    """
    found: list[str] = []
    for part in re.split(r"[&?;]", raw_query):
        name, sep, value = part.partition("=")
        if sep and unquote(name) == "auth_key":
            found.append(value)
    if len(found) != 1:
        return None
    try:
        key = unquote(found[0].replace("+", " "), errors="strict")
    except UnicodeDecodeError:
        return None
    if len(key) > MAX_AUTH_KEY_LENGTH or not _KEY_CHARS.fullmatch(key):
        return None
    return key


def prefers_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header ranks ``application/json`` above ``text/html``.

    A missing header, ``*/*`` alone, or a tie count as HTML: a browser's plain
    navigation must get pages.
    """
    if not accept:
        return False
    json_q = html_q = -1.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        q = _quality(params)
        if media in ("application/json", "application/problem+json") or media.endswith("+json"):
            json_q = max(json_q, q)
        elif media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
    return json_q > 0 and json_q > html_q


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def is_navigation(method: str, headers: Mapping[str, str]) -> bool:
    """Whether a request is a top-level browser navigation that may be redirected.

    Only a ``GET``/``HEAD`` is replayed after a login (a ``POST`` never is).
    Fetch metadata decides when present (``Sec-Fetch-Mode: navigate`` with
    ``Sec-Fetch-Dest: document``); ``X-Requested-With`` marks a script; an
    ``Accept`` header that prefers JSON over HTML marks an API caller.

    Args:
        method: The request method.
        headers: The request headers (case-insensitive mapping).
    """
    if method not in ("GET", "HEAD"):
        return False
    mode = headers.get("Sec-Fetch-Mode")
    if mode is not None and mode != "navigate":
        return False
    dest = headers.get("Sec-Fetch-Dest")
    if dest is not None and dest != "document":
        return False
    if "X-Requested-With" in headers:
        return False
    return not prefers_json(headers.get("Accept"))


#: ``Sec-Fetch-Site`` values that mean "this site's own page, or the user
#: (typed URL, bookmark)"; everything else (``same-site`` included: a sibling
#: subdomain or another port is not this site) is another site.
_OWN_SOURCES: Final = frozenset({"same-origin", "none"})


def request_source(headers: Mapping[str, str], host: str) -> str:
    """Where a request comes from: ``same-origin``, ``none``, ``cross-site`` or ``unknown``.

    Browsers say it in ``Sec-Fetch-Site`` (Fetch Metadata; Chrome 76+,
    Firefox 90+, Safari 16.4+), which a page cannot forge: ``same-origin``
    for this site's own pages, ``none`` for a typed URL, a bookmark or a
    reload of one, anything else for another site (``same-site`` counts as
    another site). Older browsers do not send it; then an ``Origin``
    header (sent with form posts) or a ``Referer`` that names another host
    means another site, and one that names *host* means this one. With none
    of the three the answer is ``"unknown"``: an old browser's typed URL, a
    script like curl, or another site that suppressed the referrer
    (``referrerpolicy="no-referrer"``), which look the same.

    Args:
        headers: The request headers (case-insensitive mapping).
        host: The ``Host`` this site is reached under (``request.host``).
    """
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        value = fetch_site.strip().lower()
        return value if value in _OWN_SOURCES else "cross-site"
    for name in ("Origin", "Referer"):
        given = headers.get(name)
        if given:
            # "null" (an opaque origin: a sandboxed frame, a data: URL) has no host.
            netloc = urlsplit(given).netloc if given != "null" else ""
            return "same-origin" if netloc and netloc.lower() == host.lower() else "cross-site"
    return "unknown"


def from_this_site(headers: Mapping[str, str], host: str) -> bool:
    """Whether this site's own pages or the user made a request (see :func:`request_source`).

    ``"unknown"`` is not: in a browser without Fetch Metadata an attack
    looks exactly like that, so such a request gets one more click (the
    login page's button, the logout form) instead of acting at once.
    """
    return request_source(headers, host) in _OWN_SOURCES
