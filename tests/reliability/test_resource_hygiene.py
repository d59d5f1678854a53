"""Resource hygiene: a thousand concurrent callbacks through one client with a pool of 100."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections import Counter

import aiohttp
from relsupport import Figures, Sampler, SecretWatch, open_fds, scaled
from websupport import CALLBACK, LOGIN, NAVIGATE, build_app, start_site

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import TwinneEmulator

LIMIT = 100


async def test_concurrent_callbacks_stay_within_the_pool_and_leave_nothing_open(
    emu: TwinneEmulator, app_secret: str, watch: SecretWatch, figures: Figures
) -> None:
    """At most `limit` sockets to Twinne at once; descriptors back to baseline; no warnings."""
    logins = scaled(1_000, 5_000)
    app = emu.add_app(name="Hygiene", secret=app_secret)
    users = emu.add_users(logins)
    await asyncio.sleep(0)
    baseline = open_fds()

    # Thousands of callbacks, the site and Twinne share one event loop here: generous
    # timeouts, so that what is measured is sockets and descriptors, not a slow machine.
    client = TwinneClient(
        app.app_id,
        app.secret,
        base_url=emu.base_url,
        limit=LIMIT,
        timeout=120,
        retry=RetryPolicy.no_wait(deadline=240),
    )
    site = await start_site(build_app(client, clock=emu.now), app, client)
    connector = aiohttp.TCPConnector(limit=0)
    browsers = [
        aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        for _ in range(logins)
    ]
    statuses: Counter[int] = Counter()
    try:

        async def start(browser: aiohttp.ClientSession) -> None:
            async with browser.get(
                site(f"{LOGIN}?next=/dashboard"), headers=NAVIGATE, allow_redirects=False
            ) as r:
                assert r.status == 302

        await asyncio.gather(*(start(browser) for browser in browsers))
        keys = [emu.authorize(user, app) for user in users]
        watch.add_all(keys)
        # Slow exchanges pile the callbacks up against the pool's limit.
        emu.inject("latency", endpoint="authorize", delay=0.02, count=logins)

        async def finish(browser: aiohttp.ClientSession, key: str) -> None:
            url = site(f"{CALLBACK}?auth_key={key}")
            async with browser.get(url, allow_redirects=False) as answer:
                statuses[answer.status] += 1
                assert answer.headers.get("Location") == "/dashboard"

        with Sampler(interval=0.01, port=emu.port) as sampler:
            await asyncio.gather(*(finish(b, k) for b, k in zip(browsers, keys, strict=True)))
        peak_sockets, samples = sampler.peak_sockets, sampler.samples
        during = open_fds()
    finally:
        for browser in browsers:
            await browser.close()
        await connector.close()
        await site.runner.cleanup()  # closes the client too (setup ties it to the app)

    assert client.closed
    for _ in range(200):  # closed transports release their descriptors on the next loop turns
        if open_fds() <= baseline:
            break
        await asyncio.sleep(0.01)
    after = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]

    assert statuses == {303: logins}
    assert emu.count("authorize") == logins
    assert peak_sockets <= LIMIT
    assert emu.peak_concurrency <= LIMIT
    assert after <= baseline
    assert unclosed == []
    figures.record(
        "Resource hygiene",
        **{
            "concurrent callbacks (exchange + user info each)": logins,
            "answered 303": statuses[303],
            "client pool limit": LIMIT,
            "peak sockets to Twinne (psutil, sampled every 10 ms)": peak_sockets,
            "sampler readings": samples,
            "peak requests in flight at Twinne": emu.peak_concurrency,
            "open descriptors: baseline / during / after": f"{baseline} / {during} / {after}",
            "ResourceWarnings at shutdown": len(unclosed),
        },
    )
