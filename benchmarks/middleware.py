"""Benchmark 4: what the login guard costs a page, served to a separate load process.

Four sites (see :mod:`benchmarks._webapps`) answer the same tiny page: bare
aiohttp; aiohttp-session with aiotwinne's encrypted-cookie storage (the
handler loads the session); the same behind ``@login_required``; and, for
reference, aiohttp-session's own ``EncryptedCookieStorage``, which decrypts
the cookie on every request (``session-plain``). Each runs in its own child
process on uvloop; the load comes from wrk (or the aiohttp stand-in) in
another, always with the cookie of a real logged-in session, obtained once by
going through the login against the emulator. The sites are loaded
interleaved, round by round; besides requests per second, the server's own
CPU time per request is read from the OS (psutil), which other processes on
the machine disturb far less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, Final

import aiohttp
import psutil  # type: ignore[import-untyped]  # no stubs in the bench extra
from cryptography.fernet import Fernet
from yarl import URL

from aiotwinne.web import DEFAULT_COOKIE_NAME

from ._child import start_together
from ._load import run_load
from ._loops import run_on
from ._stats import Sample, interleave_sync, ratio_summary, summarize
from ._upstream import UpstreamProcess
from ._webapps import PAGE, WebAppProcess, free_port

__all__ = ["PAIRS", "SITES", "login_cookie", "run"]

#: The sites, as named in the results.
SITES: Final = ("bare", "session", "guarded", "session-plain")
#: The ratios reported: the targets (guarded against bare and against session),
#: the session's share, and what the cached storage saves.
PAIRS: Final = (
    ("guarded", "bare"),
    ("guarded", "session"),
    ("session", "bare"),
    ("session", "session-plain"),
)
_PATH: Final = "/page"
_TYPED_URL: Final = {
    "Sec-Fetch-Site": "none",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}


async def login_cookie(site: str, emulator: UpstreamProcess, app_id: str) -> str:
    """Log in to *site* as a browser would; return the session cookie's value.

    The emulator provides a user already signed in at Twinne who approved the
    app, so ``GET /page`` goes: the guard's redirect to Twinne, Twinne's
    redirect back with an auth_key, the callback's exchange and profile
    fetch, and the redirect back to ``/page``, which is then served.
    """
    browser = await asyncio.to_thread(emulator.command, "browser", app_id=app_id)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1 are refused by default
    jar.update_cookies(browser["cookies"], URL(emulator.base_url))
    async with aiohttp.ClientSession(cookie_jar=jar) as browser_session:
        # A typed URL, as a browser marks it: a login starts only from this site
        # or from the user (aiotwinne.web answers other navigations with a button).
        async with browser_session.get(site + _PATH, headers=_TYPED_URL) as resp:
            if resp.status != 200 or await resp.text() != PAGE:
                raise RuntimeError(f"the login did not end on the page: HTTP {resp.status}")
            if len(resp.history) < 3:
                raise RuntimeError("the page was served without a login round trip")
        cookie = jar.filter_cookies(URL(site)).get(DEFAULT_COOKIE_NAME)
    if cookie is None:
        raise RuntimeError("no session cookie after the login")
    return cookie.value


async def _check_steady(site: str, cookie: str) -> None:
    """The page answers 200 with this cookie and sets no new one (nothing rewritten)."""
    headers = {"Cookie": f"{DEFAULT_COOKIE_NAME}={cookie}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.get(site + _PATH, headers=headers, allow_redirects=False) as resp:
                if resp.status != 200 or await resp.text() != PAGE:
                    raise RuntimeError(f"{site}{_PATH} answered HTTP {resp.status}")
                if "Set-Cookie" in resp.headers:
                    raise RuntimeError(f"{site}{_PATH} rewrites the session on every request")


def _measure(
    site: WebAppProcess, headers: dict[str, str], seconds: float, connections: int, tool: str
) -> Sample:
    process = psutil.Process(site.pid)
    before = process.cpu_times()
    result = run_load(
        site.url + _PATH, seconds=seconds, connections=connections, headers=headers, tool=tool
    )
    after = process.cpu_times()
    cpu = (after.user + after.system) - (before.user + before.system)
    return Sample(result["rps"], cpu / result["requests"] * 1e6)


def run(
    emulator: UpstreamProcess,
    *,
    rounds: int,
    seconds: float,
    warmup: float = 1.0,
    connections: int = 64,
    tool: str = "auto",
) -> dict[str, Any]:
    """Benchmark 4 against the emulator upstream (used for the login only)."""
    key = Fernet.generate_key().decode()
    guarded_port = free_port()
    app = emulator.command(
        "app", redirect_url=f"http://127.0.0.1:{guarded_port}/auth/twinne/callback"
    )
    common = {
        "base_url": emulator.base_url,
        "app_id": app["app_id"],
        "app_secret": app["app_secret"],
        "session_key": key,
    }
    sites = {
        name: WebAppProcess(
            name, port=guarded_port if name == "guarded" else free_port(), **common
        )
        for name in SITES
    }
    with ExitStack() as stack:
        start_together(stack, *sites.values())
        guarded = sites["guarded"]
        cookie = run_on(asyncio.new_event_loop, login_cookie(guarded.url, emulator, app["app_id"]))
        for site in sites.values():
            run_on(asyncio.new_event_loop, _check_steady(site.url, cookie))
        headers = {"Cookie": f"{DEFAULT_COOKIE_NAME}={cookie}"}
        upstream_before = emulator.stats()
        if warmup > 0:
            for site in sites.values():
                _measure(site, headers, warmup, connections, tool)

        def measure(site: WebAppProcess) -> Callable[[], Sample]:
            return lambda: _measure(site, headers, seconds, connections, tool)

        samples = interleave_sync({name: measure(site) for name, site in sites.items()}, rounds)
        upstream_after = emulator.stats()
    rps = {name: [s.rate for s in values] for name, values in samples.items()}
    cpu = {name: [s.cpu_us for s in values] for name, values in samples.items()}
    pairs = PAIRS
    return {
        "tool": tool if tool != "auto" else _tool_used(),
        "connections": connections,
        "rounds": rounds,
        "slice_seconds": seconds,
        "server_loop": "uvloop",
        "requests_per_second": {name: summarize(values) for name, values in rps.items()},
        "server_cpu_us_per_request": {name: summarize(values) for name, values in cpu.items()},
        "ratios": {f"{a}/{b}": ratio_summary(rps[a], rps[b]) for a, b in pairs},
        "cpu_ratios": {f"{a}/{b}": ratio_summary(cpu[b], cpu[a]) for a, b in pairs},
        # Best round against best round: the intrinsic costs (see _stats.compare).
        "cpu_best_ratios": {f"{a}/{b}": round(min(cpu[b]) / min(cpu[a]), 4) for a, b in pairs},
        "upstream_calls_during_load": upstream_after["requests"] - upstream_before["requests"],
        "cookie_bytes": len(cookie),
    }


def _tool_used() -> str:
    from ._load import wrk_path

    return "wrk" if wrk_path() else "python"
