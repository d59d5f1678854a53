"""Keep-alive connections closed by the server while idle: calls across the gaps still succeed.

The real server closes idle keep-alive connections after a second or so; here
the emulator closes them after 0.2 s, and the client goes idle for gaps just
under, at and over that, so that some requests race the server's close.
"""

from __future__ import annotations

import asyncio

from relsupport import Figures, Sampler, SecretWatch, scaled

from aiotwinne import RetryPolicy, TwinneClient
from aiotwinne.testing import TwinneEmulator

KEEPALIVE = 0.2
GAPS = [0.1, 0.18, 0.19, 0.2, 0.2, 0.21, 0.22, 0.25, 0.3]
CONCURRENCY = 16


async def test_user_info_calls_succeed_across_idle_gaps(
    app_secret: str, watch: SecretWatch, figures: Figures
) -> None:
    """10,000 calls in bursts separated by idle gaps around the keep-alive timeout: all succeed."""
    total = scaled(10_000, 100_000)
    bursts = len(GAPS) + 1
    async with TwinneEmulator(fast=True, keepalive_timeout=KEEPALIVE) as emu:
        app = emu.add_app(secret=app_secret)
        tokens = emu.issue_tokens(total, app)
        watch.add_all(tokens)
        sampler = Sampler(port=emu.port)
        open_after_gap: list[int] = []
        failures: list[str] = []
        async with TwinneClient(
            app.app_id, app.secret, base_url=emu.base_url, retry=RetryPolicy.no_wait()
        ) as client:
            size = -(-total // bursts)
            for burst in range(bursts):
                if burst:
                    await asyncio.sleep(GAPS[burst - 1])
                    open_after_gap.append(sampler.client_sockets())
                chunk = tokens[burst * size : (burst + 1) * size]
                results = await client.gather_profiles(chunk, concurrency=CONCURRENCY)
                failures += [repr(r.error) for r in results if not r.ok]
        requests = emu.count("user_info")

    assert failures == []
    # The server did close idle connections during the longer gaps (the fault happened).
    assert min(open_after_gap) == 0
    figures.record(
        "Keep-alive closed by the server while idle",
        **{
            "calls": total,
            "failed": len(failures),
            "server keep-alive timeout (s)": KEEPALIVE,
            "idle gaps (s)": GAPS,
            "total idle time (s)": round(sum(GAPS), 2),
            "client connections still open after each gap": open_after_gap,
            "requests sent (retries = requests - calls)": requests,
            "retries needed": requests - total,
        },
    )


async def test_without_retries_calls_racing_the_close_are_counted(
    app_secret: str, figures: Figures
) -> None:
    """With retries off, calls that race the server's close may fail: counted for the report."""
    async with TwinneEmulator(fast=True, keepalive_timeout=KEEPALIVE) as emu:
        app = emu.add_app(secret=app_secret)
        tokens = emu.issue_tokens(CONCURRENCY * 4, app)
        failures = 0
        async with TwinneClient(
            app.app_id, app.secret, base_url=emu.base_url, retry=RetryPolicy.none()
        ) as client:
            for gap in [*GAPS, 0.0]:
                results = await client.gather_profiles(tokens, concurrency=CONCURRENCY)
                failures += sum(not r.ok for r in results)
                await asyncio.sleep(gap)
    # Not asserted: this measures what the retry policy absorbs in the test above.
    figures.record(
        "Keep-alive closed by the server while idle",
        **{"without retries: calls / failed": f"{len(tokens) * (len(GAPS) + 1)} / {failures}"},
    )
