"""Guarded routes under load: many browsers at once, every kind of visitor, no 500 ever."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
from cryptography.fernet import Fernet
from relsupport import Figures, SecretWatch, ms, percentile, scaled
from websupport import JSON, NAVIGATE, Site, follow
from yarl import URL

from aiotwinne.testing import TwinneEmulator
from aiotwinne.web import DEFAULT_COOKIE_NAME, cookie_storage

ROW = "Guarded routes under load"
MAX_PENDING = 5

# What each browser sends, all at once: (kind, method, path, headers).
REQUESTS = [
    ("navigation", "GET", "/dashboard", NAVIGATE),
    ("navigation", "GET", "/dashboard?tab=1", NAVIGATE),
    ("navigation", "GET", "/settings", NAVIGATE),
    ("navigation", "GET", "/account/home", NAVIGATE),
    ("json", "GET", "/dashboard", JSON),
    ("json", "GET", "/settings", JSON),
    ("post", "POST", "/dashboard", {"Accept": "text/html"}),
    ("post", "POST", "/settings", JSON),
    ("public", "GET", "/", NAVIGATE),
    ("navigation", "GET", "/dashboard", NAVIGATE),
]


def _expected(group: str, kind: str) -> set[int]:
    if kind == "public" or group == "fresh":
        return {200}
    # A logged-out navigation goes to Twinne, or (another request of the same
    # session being on its way there) gets a page that reloads it a second later.
    return {302, 200} if kind == "navigation" else {401}


def _pending_markers(browser: aiohttp.ClientSession, site: Site, fernet: Fernet) -> int:
    """The pending logins in a browser's (encrypted) session cookie."""
    morsel = browser.cookie_jar.filter_cookies(URL(site.url)).get(DEFAULT_COOKIE_NAME)
    if morsel is None or not morsel.value:
        return 0
    data = json.loads(fernet.decrypt(morsel.value.encode()))
    return len(data.get("session", {}).get("aiotwinne", {}).get("pending", []))


async def test_thousands_of_guarded_requests_from_hundreds_of_browsers(
    emu: TwinneEmulator,
    site_factory: Callable[..., Any],
    browser_factory: Callable[..., aiohttp.ClientSession],
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """Fresh/expired/anonymous browsers at once: no 500, one login redirect or 401 each."""
    # Every expired or anonymous navigation gets exactly one redirect to Twinne's
    # login or a page waiting for the session's login in flight, every JSON call
    # or POST a 401, fresh sessions their pages; no call reaches Twinne; each
    # session keeps at most max_pending pending logins.
    browsers_n = scaled(200, 1000)
    key = Fernet.generate_key()
    fernet = Fernet(key)
    site = await site_factory(storage=cookie_storage(key, secure=False))
    twinne_login = site.client.login_url()
    groups = ["expired", "fresh", "anonymous"]
    sizes = {"expired": browsers_n * 7 // 20, "fresh": browsers_n * 7 // 20}
    sizes["anonymous"] = browsers_n - sizes["expired"] - sizes["fresh"]
    # Browsers behave like browsers: a few connections each.
    browsers = {
        group: [
            browser_factory(connector=aiohttp.TCPConnector(limit_per_host=6), connector_owner=True)
            for _ in range(sizes[group])
        ]
        for group in groups
    }

    async def log_in(browser: aiohttp.ClientSession) -> None:
        user = emu.add_user()
        emu.approve(user, site.app)
        browser.cookie_jar.update_cookies(emu.sign_in(user))
        hops = await follow(browser, site("/dashboard"), headers=NAVIGATE)
        assert hops[-1].status == 200

    await asyncio.gather(*(log_in(b) for b in browsers["expired"]))
    emu.advance(3601)  # their hour is over; the next group logs in afterwards
    await asyncio.gather(*(log_in(b) for b in browsers["fresh"]))
    emu.reset_stats()

    latencies: dict[str, list[float]] = {kind: [] for kind, *_ in REQUESTS}
    statuses: Counter[int] = Counter()
    wrong: list[tuple[str, str, str, int]] = []
    login_redirects = waits = 0

    async def visit(group: str, browser: aiohttp.ClientSession, request: tuple[Any, ...]) -> None:
        nonlocal login_redirects, waits
        kind, method, path, headers = request
        started = time.perf_counter()
        async with browser.request(
            method, site(path), headers=headers, allow_redirects=False
        ) as answer:
            body = await answer.text()
            latencies[kind].append(time.perf_counter() - started)
            statuses[answer.status] += 1
            if answer.status not in _expected(group, kind):
                wrong.append((group, kind, path, answer.status))
            if answer.status == 302:
                # Exactly one redirect, and it goes straight to Twinne's login link.
                login_redirects += answer.headers.get("Location") == twinne_login
            elif answer.status == 200 and kind == "navigation" and group != "fresh":
                waits += answer.headers.get("Refresh") == f"1; url={path}"
            if answer.status >= 400:
                watch.page(body)

    started = time.perf_counter()
    await asyncio.gather(
        *(
            visit(group, browser, request)
            for group in groups
            for browser in browsers[group]
            for request in REQUESTS
        )
    )
    elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    navigations = sum(kind == "navigation" for kind, *_ in REQUESTS)
    logged_out = sizes["expired"] + sizes["anonymous"]
    markers = [
        _pending_markers(browser, site, fernet)
        for group in ("expired", "anonymous")
        for browser in browsers[group]
    ]

    assert wrong == []
    assert statuses[500] == 0
    assert total == browsers_n * len(REQUESTS)
    assert login_redirects + waits == logged_out * navigations
    assert emu.count() == 0  # the guard never asks Twinne
    assert max(markers) <= MAX_PENDING
    assert min(markers) >= 1
    everything = [value for values in latencies.values() for value in values]
    figures.record(
        ROW,
        **{
            "browsers (cookie jars)": browsers_n,
            "browsers fresh / expired / anonymous": (
                f"{sizes['fresh']} / {sizes['expired']} / {sizes['anonymous']}"
            ),
            "requests, all in flight at once": total,
            "answers with status 500": statuses[500],
            "answers by status": dict(sorted(statuses.items())),
            "expired/anonymous navigations": logged_out * navigations,
            "... answered with one redirect to Twinne's login": login_redirects,
            "... answered with a page waiting for the session's login": waits,
            "JSON calls and POSTs of logged-out browsers answered 401": statuses[401],
            "calls to Twinne during the load": emu.count(),
            "pending-login markers per session (max, cap)": f"{max(markers)}, {MAX_PENDING}",
            "wall time (s)": round(elapsed, 2),
            "p50 latency (ms)": ms(percentile(everything, 50)),
            "p99 latency (ms)": ms(percentile(everything, 99)),
            **{
                f"p50/p99 {kind} (ms)": f"{ms(percentile(v, 50))} / {ms(percentile(v, 99))}"
                for kind, v in latencies.items()
            },
        },
    )
