"""The demo's scripted browser sends what a real browser sends, over real sockets.

Three servers record every request's headers: the site at 127.0.0.1:A, a
sibling at 127.0.0.1:B (another port of the same host: ``same-site``, as
browsers compare an IP address's site without the port) and another site at
127.0.0.2 (``cross-site``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import attrs
import pytest
from aiohttp import web
from yarl import URL

from aiotwinne.cli._browser import Browser, BrowserError, Hop

_FETCH = ("Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User")


@attrs.frozen
class Seen:
    """One request a server saw."""

    method: str
    url: str
    headers: dict[str, str]
    form: dict[str, str]


@attrs.define
class Servers:
    """The three servers' addresses and everything they saw, in order."""

    site: str = ""
    sibling: str = ""
    other: str = ""
    seen: list[Seen] = attrs.field(factory=list)

    def page(self) -> str:
        """The site's page: links to itself, through redirects to the others, and a form."""
        links = [
            "/next",
            f"/go?to={self.sibling}/go?to={self.site}/next",
            f"/go?to={self.other}/next",
            "/loop",
        ]
        anchors = "".join(f'<a href="{href}">link</a>' for href in links)
        return (
            f"<html><head><title>Page</title></head><body>{anchors}"
            '<form method="post" action="/post"><input type="hidden" name="h" value="1">'
            '<input name="typed"></form></body></html>'
        )


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    """The site, its sibling port and another host, all recording."""
    state = Servers()

    async def handle(request: web.Request) -> web.StreamResponse:
        posted = await request.post() if request.method == "POST" else {}
        form = {key: value for key, value in posted.items() if isinstance(value, str)}
        state.seen.append(Seen(request.method, str(request.url), dict(request.headers), form))
        if request.path == "/go":
            raise web.HTTPFound(request.query["to"])
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if request.path == "/post":
            raise web.HTTPSeeOther("/page")
        if request.path == "/search":
            return web.Response(
                text='<form action="/next"><input type="hidden" name="q" value="a b"></form>',
                content_type="text/html",
            )
        if request.path == "/bare":
            return web.Response(text="<html><body>no form, no link</body></html>")
        return web.Response(text=state.page(), content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for host in ("127.0.0.1", "127.0.0.1", "127.0.0.2"):
        await web.TCPSite(runner, host, 0).start()
    state.site, state.sibling, state.other = (
        f"http://{host}:{port}" for host, port, *_ in runner.addresses
    )
    yield state
    await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[tuple[Browser, list[Hop]]]:
    """A browser and the hops it reported."""
    hops: list[Hop] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(session, on_hop=hops.append), hops


def fetch_site(seen: list[Seen]) -> list[str]:
    """The Sec-Fetch-Site of each request."""
    return [request.headers["Sec-Fetch-Site"] for request in seen]


async def test_a_typed_url_is_none_with_no_referrer_even_through_redirects(
    servers: Servers, browser: tuple[Browser, list[Hop]]
) -> None:
    """The address bar: none on every hop (as Chromium keeps it), a user navigation, no Referer."""
    tab, hops = browser
    await tab.open(f"{servers.site}/go?to={servers.other}/page")
    assert fetch_site(servers.seen) == ["none", "none"]
    for request in servers.seen:
        assert request.headers["Sec-Fetch-Mode"] == "navigate"
        assert request.headers["Sec-Fetch-Dest"] == "document"
        assert request.headers["Sec-Fetch-User"] == "?1"
        assert "text/html" in request.headers["Accept"]
        assert "Referer" not in request.headers
        assert "Origin" not in request.headers
    assert [hop.fetch_site for hop in hops] == ["none", "none"]
    assert tab.page == URL(f"{servers.other}/page")


async def test_a_link_on_the_site_is_same_origin_with_the_page_as_referer(
    servers: Servers, browser: tuple[Browser, list[Hop]]
) -> None:
    """Following one of the page's own links: same-origin, Referer the whole page URL."""
    tab, _ = browser
    await tab.open(f"{servers.site}/page")
    await tab.click("/next")
    last = servers.seen[-1]
    assert last.url == f"{servers.site}/next"
    assert last.headers["Sec-Fetch-Site"] == "same-origin"
    assert last.headers["Referer"] == f"{servers.site}/page"
    assert "Origin" not in last.headers


async def test_the_redirect_chain_keeps_its_furthest_relation(
    servers: Servers, browser: tuple[Browser, list[Hop]]
) -> None:
    """Site -> sibling port -> back to the site: same-origin, then same-site to the end."""
    tab, _ = browser
    await tab.open(f"{servers.site}/page")
    del servers.seen[:]
    await tab.click(f"/go?to={servers.sibling}/go?to={servers.site}/next")
    assert fetch_site(servers.seen) == ["same-origin", "same-site", "same-site"]
    # strict-origin-when-cross-origin: the whole URL at home, only the origin elsewhere.
    assert [request.headers["Referer"] for request in servers.seen] == [
        f"{servers.site}/page",
        f"{servers.site}/",
        f"{servers.site}/page",
    ]


async def test_a_redirect_to_another_host_is_cross_site(
    servers: Servers, browser: tuple[Browser, list[Hop]]
) -> None:
    """A link through a redirect to another host arrives there as cross-site."""
    tab, _ = browser
    await tab.open(f"{servers.site}/page")
    del servers.seen[:]
    await tab.click(f"/go?to={servers.other}/next")
    assert fetch_site(servers.seen) == ["same-origin", "cross-site"]
    assert servers.seen[-1].headers["Referer"] == f"{servers.site}/"


async def test_a_form_posts_its_hidden_fields_with_origin_then_follows_the_303(
    servers: Servers, browser: tuple[Browser, list[Hop]]
) -> None:
    """submit() posts the hidden fields and what was typed, with Origin; the GET after has none."""
    tab, hops = browser
    await tab.open(f"{servers.site}/page")
    del servers.seen[:]
    await tab.submit({"typed": "ada"})
    post, after = servers.seen
    assert (post.method, post.url) == ("POST", f"{servers.site}/post")
    assert post.form == {"h": "1", "typed": "ada"}
    assert post.headers["Origin"] == servers.site
    assert post.headers["Sec-Fetch-Site"] == "same-origin"
    assert (after.method, after.url) == ("GET", f"{servers.site}/page")
    assert "Origin" not in after.headers
    assert after.headers["Sec-Fetch-Site"] == "same-origin"
    assert [(hop.method, hop.status) for hop in hops[-2:]] == [("POST", 303), ("GET", 200)]


async def test_a_get_form_sends_its_fields_in_the_query(
    servers: Servers, browser: tuple[Browser, list[Hop]]
) -> None:
    """A form without method="post" is a GET with the fields as the query string."""
    tab, _ = browser
    await tab.open(f"{servers.site}/search")
    await tab.submit({"more": "1"})
    last = servers.seen[-1]
    assert last.method == "GET"
    assert URL(last.url).query == {"q": "a b", "more": "1"}
    assert last.headers["Sec-Fetch-Site"] == "same-origin"


async def test_what_the_page_does_not_offer_is_refused(
    servers: Servers, browser: tuple[Browser, list[Hop]]
) -> None:
    """No page yet, a link the page lacks, no form, or a redirect loop: a BrowserError."""
    tab, _ = browser
    with pytest.raises(BrowserError, match="no page is open"):
        await tab.click("/next")
    await tab.open(f"{servers.site}/page")
    with pytest.raises(BrowserError, match="no link to /elsewhere on the page"):
        await tab.click("/elsewhere")
    with pytest.raises(BrowserError, match="too many redirects"):
        await tab.click("/loop")
    await tab.open(f"{servers.site}/bare")
    with pytest.raises(BrowserError, match="no form on the page"):
        await tab.submit({})
