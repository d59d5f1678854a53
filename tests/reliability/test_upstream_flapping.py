"""Upstream flapping: Twinne goes away and comes back mid-run; one client rides it out."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from relsupport import Figures, SecretWatch, ms, open_fds, percentile, scaled

from aiotwinne import RetryPolicy, TransportError, TwinneClient, TwinneError
from aiotwinne.testing import EmulatedUser, TwinneEmulator

WORKERS = 16
DEADLINE = 1.0
#: A call still running this long after its deadline counts as hung (a detector, not a timing).
HANG = DEADLINE + 10


async def test_the_client_recovers_from_restarts_without_being_recreated(
    emu: TwinneEmulator,
    user: EmulatedUser,
    app_secret: str,
    watch: SecretWatch,
    figures: Figures,
) -> None:
    """During outages calls fail with TransportError by the deadline, none hang; then all work."""
    flaps = scaled(3, 20)
    app = emu.add_app(secret=app_secret)
    tokens = [emu.issue_token(user, app), *emu.issue_tokens(WORKERS - 1, app)]
    watch.add_all(tokens)
    retry = RetryPolicy(
        attempts=4, deadline=DEADLINE, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01
    )
    outcomes: Counter[str] = Counter()
    failed_after: list[float] = []
    others: list[str] = []
    stop = asyncio.Event()
    baseline = open_fds()

    async with TwinneClient(
        app.app_id, app.secret, base_url=emu.base_url, retry=retry, timeout=0.5
    ) as client:

        async def worker(token: str) -> None:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(client.get_user_info(token), HANG)
                except TransportError as exc:
                    outcomes["TransportError"] += 1
                    failed_after.append(time.perf_counter() - started)
                    if outcomes["TransportError"] <= 50:
                        watch.exception(exc)
                except TwinneError as exc:
                    others.append(repr(exc))
                except asyncio.TimeoutError:
                    outcomes["hung"] += 1
                else:
                    outcomes["ok"] += 1
                await asyncio.sleep(0.005)

        workers = [asyncio.create_task(worker(token)) for token in tokens]
        exchange_outcomes: Counter[str] = Counter()
        for _ in range(flaps):
            await asyncio.sleep(0.3)
            await emu.stop()
            # An exchange during the outage. On a pooled connection the server already
            # closed it reports the key as possibly spent: from the client's side that
            # cannot be told from a drop after processing, so it is the safe answer.
            key = emu.authorize(user, app)
            with pytest.raises(TransportError) as caught:
                await client.exchange(key)
            watch.exception(caught.value)
            spent = caught.value.auth_key_may_be_spent
            exchange_outcomes[
                "may be spent (stale pooled connection)" if spent else "not spent"
            ] += 1
            await asyncio.sleep(0.4)
            await emu.start()
            # The same key works once Twinne is back: nothing reached it before.
            await client.exchange(key)
        ok_before_last = outcomes["ok"]
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*workers)
        recovered = outcomes["ok"] - ok_before_last
        assert not client.closed
    for _ in range(200):  # closed transports release their descriptors on the next loop turns
        if open_fds() <= baseline:
            break
        await asyncio.sleep(0.01)
    leaked = open_fds() - baseline

    assert leaked <= 0
    assert others == []
    assert outcomes["hung"] == 0
    assert outcomes["TransportError"] > 0  # the outages really were seen
    assert recovered > 0  # and the very same client works again afterwards
    assert exchange_outcomes.total() == flaps
    figures.record(
        "Upstream flapping",
        **{
            "restarts of the emulator": flaps,
            "workers calling get_user_info": WORKERS,
            "calls that succeeded": outcomes["ok"],
            "calls that failed with TransportError (outages)": outcomes["TransportError"],
            "calls that failed otherwise / hung": f"{len(others)} / {outcomes['hung']}",
            "configured deadline (s)": DEADLINE,
            "time to fail, p50 / max (ms)": (
                f"{ms(percentile(failed_after, 50))} / {ms(max(failed_after))}"
            ),
            "exchanges during an outage (all TransportError; key exchanged after)": flaps,
            "... reported as": dict(exchange_outcomes),
            "client recreated": "no",
            "descriptors left open after close": max(0, leaked),
        },
    )
