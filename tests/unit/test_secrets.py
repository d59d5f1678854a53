"""No secret leaks: every failure path at DEBUG, scanned for the sentinel secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from aiotwinne import RetryPolicy, TwinneClient, TwinneError
from aiotwinne._redact import fingerprint, redact_text, redact_url

# Sentinels: 32 hex characters like Sngine's, and a non-hex one that only an
# exact-value redaction can catch.
SECRET = "5ec12e7a5ec12e7a5ec12e7a5ec12e7a"
KEY = "ae5c0de4ae5c0de4ae5c0de4ae5c0de4"
TOKEN = "70ce70ce70ce70ce70ce70ce70ce70ce"
ODD_TOKEN = "Tok_sentinel-NOT-hex-zz"
SENTINELS = (SECRET, KEY, TOKEN, ODD_TOKEN)
BASE = "https://twinne.test"
ANY = __import__("re").compile(r"^https://twinne\.test/.*$")


def leaky_url() -> URL:
    return URL(f"{BASE}/api/authorize?app_id=1&app_secret={SECRET}&auth_key={KEY}")


def response_error() -> aiohttp.ClientResponseError:
    info = aiohttp.RequestInfo(leaky_url(), "GET", CIMultiDictProxy(CIMultiDict()), leaky_url())
    return aiohttp.ClientResponseError(info, (), status=500, message=f"boom {TOKEN}")


FAULTS: list[dict[str, Any]] = [
    {"exception": aiohttp.ClientConnectionError(f"reset while GET {leaky_url()}")},
    {"exception": aiohttp.ServerDisconnectedError(f"closed {leaky_url()}")},
    {"exception": asyncio.TimeoutError()},
    {"exception": aiohttp.ClientPayloadError(f"payload {TOKEN}")},
    {"exception": response_error()},
    {"exception": aiohttp.InvalidURL(leaky_url())},
    {"status": 503, "body": f"<html>proxy saw {leaky_url()}</html>"},
    {"status": 429, "body": f"token={TOKEN}", "headers": {"Retry-After": "0"}},
    # OWN stands for the secret of the call at hand, which a server may echo.
    {"status": 500, "body": f"<pre>SELECT * WHERE auth_key='{KEY}' AND t='OWN'</pre>"},
    {"status": 200, "body": f"<html>Fatal: {SECRET}</html>"},
    {"status": 200, "body": '{"access_token": '},
    {"status": 200, "payload": {"error": True, "message": f"invalid access_token {TOKEN}"}},
    {"status": 200, "payload": {"user_info": {"user_id": TOKEN, "user_name": "x"}}},
    {"status": 200, "body": "x" * 5000},
    {"status": 302, "headers": {"Location": f"https://evil.test/?t={TOKEN}"}},
]


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def assert_clean(text: str) -> None:
    for sentinel in SENTINELS:
        assert sentinel not in text


@pytest.mark.parametrize(
    "fault", FAULTS, ids=lambda f: str(f.get("status") or f["exception"].__class__.__name__)
)
async def test_no_failure_path_leaks_a_secret(
    fault: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Exchange and user-info failures log and raise nothing that holds a secret."""
    caplog.set_level(logging.DEBUG)  # every logger: ours, aiohttp's, stamina's, asyncio's
    texts: list[str] = []
    async with TwinneClient(
        "1", SECRET, base_url=BASE, retry=RetryPolicy.no_wait(attempts=3), max_body_size=4096
    ) as twinne:
        texts.append(repr(twinne))
        for call, arg in (
            (twinne.exchange, KEY),
            (twinne.get_user_info, TOKEN),
            (twinne.get_user_info, ODD_TOKEN),
        ):
            with aioresponses() as mocked:
                for _ in range(3):
                    mocked.get(ANY, **fault)
                    mocked.post(ANY, **fault)  # the exchange is a form POST
                with pytest.raises(TwinneError) as info:
                    await call(arg)
            for exc in chain(info.value):
                texts.extend([str(exc), repr(exc), *map(str, exc.args)])
                texts.extend(str(v) for v in vars(exc).values())
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(repr(record.__dict__) for record in caplog.records)
    if fault.get("status") in (429, 503) or isinstance(
        fault.get("exception"), (aiohttp.ClientConnectionError, asyncio.TimeoutError)
    ):
        # Retried faults log each retry: make sure there was something to scan.
        assert any(r.name == "aiotwinne" for r in caplog.records)
    for text in texts:
        assert_clean(text)


def test_redact_url_masks_every_secret_parameter() -> None:
    """redact_url masks app_secret, auth_key and access_token values, nothing else."""
    url = f"{BASE}/api/authorize?app_id=12&app_secret={SECRET}&auth_key={KEY}#x"
    assert redact_url(url) == f"{BASE}/api/authorize?app_id=12&app_secret=***&auth_key=***#x"
    assert redact_url(f"/cb?x=1?auth_key={KEY}") == "/cb?x=1?auth_key=***"
    assert redact_url(f"/t?ACCESS_TOKEN%3D{ODD_TOKEN}") == "/t?ACCESS_TOKEN%3D***"


def test_redact_text_masks_known_values_pairs_and_hex_runs() -> None:
    """Known values, name=value pairs, JSON pairs and long hex runs are all masked."""
    text = (
        f'{ODD_TOKEN} "access_token": "{ODD_TOKEN}x" key {KEY} '
        f"auth_key: {SECRET} user 1234 id deadbeef"
    )
    out = redact_text(text, [ODD_TOKEN, ""])
    assert_clean(out)
    assert "user 1234 id deadbeef" in out


def test_fingerprint_is_short_stable_and_not_the_secret() -> None:
    """A fingerprint identifies a secret without revealing it."""
    assert fingerprint(TOKEN) == fingerprint(TOKEN)
    assert fingerprint(TOKEN) != fingerprint(KEY)
    assert len(fingerprint(TOKEN)) == 8
    assert fingerprint(TOKEN) not in TOKEN
