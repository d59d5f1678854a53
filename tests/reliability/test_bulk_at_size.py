"""Bulk at size: tens of thousands of tokens with 10 % injected faults, one right result each."""

from __future__ import annotations

import gc
import random
import resource
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from relsupport import Figures, Sampler, SecretWatch, mib, rss, scaled

from aiotwinne import (
    AccessToken,
    InvalidTokenError,
    ProtocolError,
    RetryPolicy,
    TokenExpiredError,
    TwinneClient,
    UserInfo,
    UserNotFoundError,
)
from aiotwinne.testing import TwinneEmulator

CONCURRENCY = 64
#: One fault every FAULT_EVERY inputs, the kinds in turn.
FAULT_EVERY = 10
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("http_error", {"status": 503, "retry_after": 1}),  # retried after Retry-After (capped)
    ("drop", {}),  # connection cut: retried (get_user_info is idempotent)
    ("html", {}),  # a PHP error page with status 200: not retried, a ProtocolError
    ("latency", {"delay": 0.05}),  # a slow answer: waited for
]
RETRIED = {"http_error", "drop"}
#: What each kind of token must give (None: a profile).
INTRINSIC: dict[str, type[Exception] | None] = {
    "ok": None,
    "expired": TokenExpiredError,
    "invalid": InvalidTokenError,
    "deleted": UserNotFoundError,
}
_CODES = {kind: code for code, kind in enumerate(INTRINSIC, start=1)}


def _tokens(emu: TwinneEmulator, total: int) -> tuple[list[str], bytearray]:
    """*total* tokens, 94 % good and 2 % each expired, unknown, of a deleted user; shuffled."""
    app = emu.default_app
    small = total // 50
    labelled: list[tuple[int, str]] = []
    labelled += [(_CODES["expired"], t) for t in emu.issue_tokens(small, app)]
    emu.advance(3601)
    doomed = emu.add_users(small)
    labelled += [(_CODES["deleted"], emu.issue_token(user, app)) for user in doomed]
    for user in doomed:
        emu.delete_user(user)
    labelled += [(_CODES["invalid"], secrets.token_hex(16)) for _ in range(small)]
    labelled += [(_CODES["ok"], t) for t in emu.issue_tokens(total - 3 * small, app)]
    random.Random(7).shuffle(labelled)
    return [token for _, token in labelled], bytearray(code for code, _ in labelled)


async def test_bulk_with_ten_percent_faults_gives_one_right_result_per_token(
    watch: SecretWatch, figures: Figures
) -> None:
    """Every token gets exactly one result, classified as planned; in flight stays bounded."""
    total = scaled(20_000, 100_000)
    async with TwinneEmulator(fast=True) as emu:
        app = emu.add_app(name="Bulk")
        watch.add(app.secret)
        tokens, kinds = _tokens(emu, total)
        watch.add_all(tokens)
        # Injection stops well before the end so that every fault is used.
        last_fault = total - 10 * CONCURRENCY
        injected: Counter[str] = Counter()

        def source() -> Iterator[str]:
            for index, token in enumerate(tokens):
                if index % FAULT_EVERY == 0 and index < last_fault:
                    kind, params = FAULTS[(index // FAULT_EVERY) % len(FAULTS)]
                    emu.inject(kind, endpoint="user_info", **params)  # type: ignore[arg-type]
                    injected[kind] += 1
                yield token

        retry = RetryPolicy(
            attempts=10,
            deadline=120,
            wait_initial=0.001,
            wait_max=0.005,
            wait_jitter=0.001,
            retry_after_max=0.005,
        )
        async with TwinneClient(
            app.app_id, app.secret, base_url=emu.base_url, retry=retry, timeout=30
        ) as client:
            in_flight = peak = 0
            fetch = client.get_user_info

            async def counted(token: AccessToken | str) -> UserInfo:
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    return await fetch(token)
                finally:
                    in_flight -= 1

            client.get_user_info = counted  # type: ignore[method-assign]
            seen = bytearray(total)
            outcome: Counter[str] = Counter()
            misclassified: list[str] = []
            baseline = rss()
            started = time.perf_counter()
            with Sampler(interval=0.05) as sampler:
                async for result in client.fetch_profiles(source(), concurrency=CONCURRENCY):
                    seen[result.index] += 1
                    if result.token != tokens[result.index]:
                        misclassified.append(f"{result.index}: not its token")
                    expected = list(INTRINSIC.values())[kinds[result.index] - 1]
                    if isinstance(result.error, ProtocolError):
                        outcome["ProtocolError (HTML page)"] += 1
                    elif (result.error is None and expected is None and result.user) or (
                        expected is not None and type(result.error) is expected
                    ):
                        outcome["as planned"] += 1
                    else:
                        misclassified.append(f"{result.index}: {result.error!r}")
                    if result.error is not None and outcome["exceptions scanned"] < 200:
                        outcome["exceptions scanned"] += 1
                        watch.exception(result.error)
            elapsed = time.perf_counter() - started

        requests = emu.count("user_info")
        # Fast mode keeps each token's encoded answer: part of the growth is the emulator's.
        cache = sum(len(conn.body or b"") for conn in emu._connections.values())
        assert misclassified == []
        assert seen == bytearray([1]) * total  # one result per input: none lost, none twice
        assert emu.pending_faults == 0
        # Each HTML page fails exactly one token; every other fault is absorbed.
        assert outcome["ProtocolError (HTML page)"] == injected["html"]
        assert outcome["as planned"] == total - injected["html"]
        # One request per token plus exactly one retry per retried fault.
        assert requests == total + sum(injected[kind] for kind in RETRIED)
        assert peak <= CONCURRENCY
        assert emu.peak_concurrency <= CONCURRENCY

    figures.record(
        "Bulk at size",
        **{
            "tokens": total,
            "faults injected (10 %)": sum(injected.values()),
            "faults by kind": dict(injected),
            "results": int(sum(seen)),
            "lost / duplicated": f"{seen.count(0)} / {sum(1 for n in seen if n > 1)}",
            "results as planned": outcome["as planned"],
            "ProtocolError results (= HTML pages injected)": outcome["ProtocolError (HTML page)"],
            "requests to Twinne (tokens + retried faults)": requests,
            "concurrency bound": CONCURRENCY,
            "peak in flight, client side": peak,
            "peak in flight, emulator side": emu.peak_concurrency,
            "wall time (s)": round(elapsed, 2),
            "tokens/s": round(total / elapsed),
            "RSS before the run (MiB; emulator with all users included)": mib(baseline),
            "peak RSS during the run (MiB)": mib(max(sampler.peak_rss, baseline)),
            "growth during the run (MiB)": mib(max(0, sampler.peak_rss - baseline)),
            "... of which the emulator's answer cache (MiB)": mib(cache),
            "process max RSS so far (ru_maxrss, MiB)": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
        },
    )


async def test_the_bulk_run_holds_the_same_memory_whatever_the_input_size(
    watch: SecretWatch, figures: Figures
) -> None:
    """The RSS a run adds is flat in the number of tokens: results stream, nothing piles up."""
    large = scaled(5_000, 100_000)
    async with TwinneEmulator(fast=True) as emu:
        app = emu.add_app(name="Memory")
        watch.add(app.secret)
        tokens = emu.issue_tokens(large, app)
        watch.add_all(tokens)
        async with TwinneClient(
            app.app_id, app.secret, base_url=emu.base_url, retry=RetryPolicy.no_wait()
        ) as client:
            # A first pass fills the emulator's per-token answer cache (its memory, not ours).
            async for _ in client.fetch_profiles(tokens, concurrency=CONCURRENCY):
                pass
            growth: dict[int, int] = {}
            for size in (large // 10, large):
                gc.collect()
                before = rss()
                count = 0
                with Sampler(interval=0.05) as sampler:
                    async for result in client.fetch_profiles(
                        tokens[:size], concurrency=CONCURRENCY
                    ):
                        count += result.ok
                growth[size] = max(0, sampler.peak_rss - before)
                assert count == size
    # Keeping every result would take over 1 KiB per token (7 MiB for 5,000).
    assert growth[large] < 4 * 2**20
    figures.record(
        "Bulk at size",
        **{
            f"RSS added by a run of {size:,} tokens (MiB, emulator cache warm)": mib(added)
            for size, added in growth.items()
        },
    )
