"""A connection dropped after Twinne read /api/authorize: sent once, reported spent, re-login."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
from relsupport import Figures, SecretWatch
from websupport import NAVIGATE, Site, follow

from aiotwinne import AccessToken, InvalidAuthKeyError, RetryPolicy, TransportError, TwinneClient
from aiotwinne.testing import EmulatedUser, TwinneEmulator

ROW = "Connection dropped after /api/authorize was read"


@pytest.mark.parametrize("connection", ["new", "reused"])
async def test_a_dropped_exchange_is_sent_once_and_reported_as_spent(
    emu: TwinneEmulator,
    user: EmulatedUser,
    app_secret: str,
    watch: SecretWatch,
    figures: Figures,
    connection: str,
) -> None:
    """The exchange reaches Twinne once (no hidden resend) and says the key may be spent."""
    app = emu.add_app(secret=app_secret)
    async with TwinneClient(
        app.app_id, app.secret, base_url=emu.base_url, retry=RetryPolicy.no_wait()
    ) as client:
        if connection == "reused":
            # aiohttp's hidden one-shot resend only applies to a reused keep-alive connection.
            await client.get_user_info(emu.issue_token(user, app))
        key = emu.authorize(user, app)
        emu.inject("drop", endpoint="authorize", after_processing=True)
        with pytest.raises(TransportError) as caught:
            await client.exchange(key)
        watch.exception(caught.value)
        assert caught.value.auth_key_may_be_spent
        assert "auth_key may have been spent" in str(caught.value)
        assert emu.count("authorize") == 1
        (seen,) = [r for r in emu.requests if r.endpoint == "authorize"]
        assert seen.fault == "drop"
        assert seen.processed
        # The key really is gone on Twinne's side: the user needs a new login.
        with pytest.raises(InvalidAuthKeyError):
            await client.exchange(key)
    figures.record(
        ROW,
        **{
            f"times /api/authorize reached ({connection} connection)": 1,
            "caller got": "TransportError, auth_key_may_be_spent=True",
        },
    )


async def test_a_dropped_exchange_sends_the_browser_through_one_fresh_login(
    emu: TwinneEmulator,
    user: EmulatedUser,
    site_factory: Callable[..., Site],
    twinne_browser: Callable[[], aiohttp.ClientSession],
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """The middleware answers a spent key with a fresh round trip, never "invalid auth_key"."""
    site = await site_factory()
    emu.approve(user, site.app)
    emu.inject("drop", endpoint="authorize", after_processing=True)
    browser = twinne_browser()
    hops = await follow(browser, site("/dashboard"), headers=NAVIGATE)
    for hop in hops:
        watch.page(hop.text)
    statuses = [hop.status for hop in hops]
    # guard -> Twinne -> callback (dropped) -> Twinne again -> callback -> the page
    assert statuses == [302, 302, 302, 302, 303, 200], statuses
    assert hops[-1].text.startswith("dashboard:user1")
    assert not any("invalid auth_key" in hop.text for hop in hops)
    assert emu.count("authorize") == 2
    figures.record(
        ROW,
        **{
            "browser path": " -> ".join(map(str, statuses)),
            "'invalid auth_key' pages shown": 0,
        },
    )


async def test_an_exchange_that_timed_out_waiting_for_the_pool_is_not_reported_spent(
    emu: TwinneEmulator, app_secret: str, watch: SecretWatch, figures: Figures
) -> None:
    """Queued in a full pool until its timeout, an exchange never left: retried, not 'spent'."""
    app = emu.add_app(secret=app_secret)
    users = emu.add_users(3)
    keys = [emu.authorize(user, app) for user in users]
    # One connection, three exchanges of 0.25 s each, 0.3 s per attempt: the second
    # is sent and times out (its key really is spent), the third waits in the pool.
    emu.inject("latency", endpoint="authorize", delay=0.25, count=3)
    async with TwinneClient(
        app.app_id,
        app.secret,
        base_url=emu.base_url,
        limit=1,
        timeout=0.3,
        retry=RetryPolicy.no_wait(attempts=3),
    ) as client:
        results = await asyncio.gather(*(client.exchange(k) for k in keys), return_exceptions=True)
        await emu.wait_idle()
        wrongly_spent = wrongly_unspent = 0
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, AccessToken):
                continue
            assert isinstance(result, TransportError), result
            watch.exception(result)
            try:
                await client.exchange(key)
            except InvalidAuthKeyError:
                wrongly_unspent += not result.auth_key_may_be_spent
            else:
                wrongly_spent += result.auth_key_may_be_spent
    assert wrongly_unspent == 0  # the safety property: never call a spent key unspent
    assert wrongly_spent == 0
    figures.record(
        ROW,
        **{
            "exchanges queued past their timeout: reported spent although never sent": (
                wrongly_spent
            ),
            "exchanges reported unspent although spent": wrongly_unspent,
        },
    )
