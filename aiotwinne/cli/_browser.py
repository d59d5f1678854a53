"""The demo's scripted browser: cookies, redirects hop by hop, and the headers a browser sends.

The site only starts a login for a navigation its own pages or the user made
(README, "Security"), and it tells them apart by what browsers send, so the
demo's browser must send the same:

* ``Sec-Fetch-Mode: navigate``, ``Sec-Fetch-Dest: document`` and
  ``Sec-Fetch-User: ?1`` on every hop of a navigation a person caused;
* ``Sec-Fetch-Site`` as Fetch Metadata computes it: ``none`` for a URL typed
  into the address bar (kept across its redirects, as Chromium does, see
  w3c/webappsec-fetch-metadata#39); for a link or a form, the initiating
  page's relation to every URL of the redirect chain so far, the furthest
  winning (``same-origin``, then ``same-site``, then ``cross-site``), so
  Twinne's bounce back to the site arrives as another site's navigation;
* ``Origin`` on a form ``POST`` and ``Referer`` under the default
  ``strict-origin-when-cross-origin`` policy (the whole page URL to its own
  origin, only the origin elsewhere, nothing for a typed URL).

Sites are compared the way browsers do for an IP address or ``localhost``
(scheme and host, any port): the demo runs Twinne and the site on two ports of
127.0.0.1, which a browser calls ``same-site`` and the site counts as another
site. A registrable domain would need the public suffix list, which the demo
never meets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from typing import Final

import aiohttp
import attrs
from yarl import URL

__all__ = ["Browser", "BrowserError", "Hop"]

_MAX_REDIRECTS: Final = 12
_DOCUMENT: Final = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-User": "?1",
}
_RELATIONS: Final = ("same-origin", "same-site", "cross-site")


class BrowserError(Exception):
    """The page did not offer what the script wanted to do (a link, a form), or looped."""


@attrs.frozen
class Hop:
    """One request of a navigation and its answer.

    Attributes:
        method: The request method.
        url: The requested URL.
        status: The answer's status.
        location: The answer's ``Location``, if any.
        body: The answer's text.
        fetch_site: The ``Sec-Fetch-Site`` the browser sent.
    """

    method: str
    url: str
    status: int
    location: str | None
    body: str
    fetch_site: str


def _relation(initiator: URL, target: URL) -> str:
    if initiator.origin() == target.origin():
        return "same-origin"
    if initiator.scheme == target.scheme and initiator.host == target.host:
        return "same-site"
    return "cross-site"


def _referer(page: URL, target: URL) -> str:
    # strict-origin-when-cross-origin (no https -> http downgrade on loopback).
    if page.origin() == target.origin():
        return str(page.with_fragment(None))
    return str(page.origin()) + "/"


class Browser:
    """A browser tab driven by a script: it opens URLs, clicks links and submits forms.

    Args:
        session: The HTTP session (its cookie jar is the browser's).
        on_hop: Called with each hop as it arrives (the demo prints it).

    Attributes:
        page: The URL of the page the tab shows, ``None`` before the first.
        body: That page's text.
    """

    def __init__(self, session: aiohttp.ClientSession, on_hop: Callable[[Hop], None]) -> None:
        self._session = session
        self._on_hop = on_hop
        self.page: URL | None = None
        self.body = ""

    async def open(self, url: str) -> list[Hop]:
        """Type *url* into the address bar: ``Sec-Fetch-Site: none``, no referrer."""
        return await self._navigate("GET", URL(url), None, initiator=None)

    async def click(self, href: str) -> list[Hop]:
        """Follow the link to *href* on the current page.

        Raises:
            BrowserError: The page has no such link.
        """
        page = self._here()
        if href not in _Page.parse(self.body).links:
            raise BrowserError(f"no link to {href} on the page")
        return await self._navigate("GET", page.join(URL(href)), None, initiator=page)

    async def submit(self, fields: Mapping[str, str]) -> list[Hop]:
        """Fill in the page's first form with *fields* and submit it.

        Its hidden fields go with it, as a browser sends them; *fields* adds
        to them (what a person types, the button pressed).

        Raises:
            BrowserError: The page has no form.
        """
        page = self._here()
        forms = _Page.parse(self.body).forms
        if not forms:
            raise BrowserError("no form on the page")
        form = forms[0]
        data = {**form.hidden, **fields}
        target = page.join(URL(form.action))
        if form.method != "POST":  # a GET form sends its fields as the query
            return await self._navigate("GET", target.with_query(data), None, initiator=page)
        return await self._navigate("POST", target, data, initiator=page)

    def _here(self) -> URL:
        if self.page is None:
            raise BrowserError("no page is open")
        return self.page

    async def _navigate(
        self, method: str, url: URL, data: dict[str, str] | None, *, initiator: URL | None
    ) -> list[Hop]:
        """Follow redirects one by one, as a browser does, reporting each hop.

        Args:
            method: The first request's method (a redirect turns it into GET).
            url: Where the navigation goes.
            data: A form's fields, sent as the body of a POST.
            initiator: The page that started the navigation, ``None`` for a
                typed URL.
        """
        hops: list[Hop] = []
        furthest = 0  # index into _RELATIONS: the chain's furthest relation so far
        for _ in range(_MAX_REDIRECTS):
            headers = dict(_DOCUMENT)
            if initiator is None:
                fetch_site = "none"
            else:
                furthest = max(furthest, _RELATIONS.index(_relation(initiator, url)))
                fetch_site = _RELATIONS[furthest]
                headers["Referer"] = _referer(initiator, url)
                if method == "POST":
                    headers["Origin"] = str(initiator.origin())
            headers["Sec-Fetch-Site"] = fetch_site
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                hop = Hop(method, str(url), resp.status, location, await resp.text(), fetch_site)
            hops.append(hop)
            self._on_hop(hop)
            if location is None or not 300 <= hop.status < 400:
                self.page, self.body = url, hop.body
                return hops
            url = url.join(URL(location))
            method, data = "GET", None
        raise BrowserError("too many redirects")


@attrs.frozen
class _Form:
    method: str
    action: str
    hidden: dict[str, str]


class _Page(HTMLParser):
    """The links and forms of a page, read with the standard library's parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.forms: list[_Form] = []

    @classmethod
    def parse(cls, text: str) -> _Page:
        page = cls()
        page.feed(text)
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        elif tag == "form":
            method = values.get("method", "get").upper()
            self.forms.append(_Form(method, values.get("action", ""), {}))
        elif tag == "input" and self.forms and values.get("type") == "hidden":
            name = values.get("name")
            if name:
                self.forms[-1].hidden[name] = values.get("value", "")
