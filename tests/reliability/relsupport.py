"""Helpers for the reliability suite: sizes, figures, a secret watch, samplers (and start_redis).

The suite runs at two sizes: the default keeps ``make test`` short; with
``AIOTWINNE_SOAK=1`` (``make soak``) the same tests run at the sizes the README
reports. Figures (counts, latencies, memory) are collected by every test and
written only when ``AIOTWINNE_FIGURES=path.json`` asks for them (plus a
Markdown twin next to it), so a plain ``make test`` leaves no file behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import psutil

# websupport (the web tests' site, log_in, follow, start_redis) lives beside
# their conftest; pytest puts that folder on sys.path only when it collects it,
# so this suite puts it there itself (and then shares the very same module).
_WEB_TESTS = str(Path(__file__).resolve().parents[1] / "integration" / "web")
if _WEB_TESTS not in sys.path:
    sys.path.insert(0, _WEB_TESTS)

# start_redis: the web tests' own; the tests here import it from relsupport.
from websupport import NAVIGATE, Site, follow  # noqa: E402
from websupport import start_redis as start_redis  # noqa: E402

from aiotwinne.testing import EmulatedUser, TwinneEmulator  # noqa: E402

SOAK = os.environ.get("AIOTWINNE_SOAK", "") == "1"


async def signed_in_browser(
    make_browser: Callable[[], aiohttp.ClientSession],
    site: Site,
    emu: TwinneEmulator,
    user: EmulatedUser,
) -> aiohttp.ClientSession:
    """A new browser (from ``twinne_browser``) signed in on *site* as *user*.

    The user approved the site's app before, so a typed URL to the guarded
    ``/dashboard`` goes through Twinne and back and ends on the page.
    """
    emu.approve(user, site.app)
    browser = make_browser()
    assert (await follow(browser, site("/dashboard"), headers=NAVIGATE))[-1].status == 200
    return browser


FIGURES_ENV = "AIOTWINNE_FIGURES"


def scaled(normal: int, soak: int) -> int:
    """*normal* in ``make test``, *soak* under ``make soak``."""
    return soak if SOAK else normal


def percentile(values: list[float], q: float) -> float:
    """The *q*-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for a report."""
    return round(seconds * 1000, 2)


# -- figures ------------------------------------------------------------------


class Figures:
    """What each row of the suite measured, written at the end of the session on request."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def record(self, row: str, **values: Any) -> None:
        """Add (or extend) a row's figures."""
        self.rows.setdefault(row, {}).update(values)

    def write(self, path: Path) -> None:
        """Write ``path`` (JSON) and ``path`` with ``.md`` (a table per row)."""
        meta = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "mode": "soak" if SOAK else "test",
            "command": " ".join(sys.argv),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "aiohttp": aiohttp.__version__,
        }
        document = {"meta": meta, "rows": dict(sorted(self.rows.items()))}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        lines = [
            f"# aiotwinne reliability figures ({meta['mode']})",
            "",
            f"{meta['date']} · Python {meta['python']} · aiohttp {meta['aiohttp']} · "
            f"{meta['cpus']} CPUs · {meta['platform']}",
            "",
        ]
        for row, values in document["rows"].items():
            lines += [f"## {row}", "", "| figure | value |", "|---|---|"]
            lines += [f"| {key} | {value} |" for key, value in values.items()]
            lines.append("")
        path.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


FIGURES = Figures()


# -- the secret watch ---------------------------------------------------------

#: Every logger the suite turns to DEBUG: ours, aiohttp's, asyncio's, stamina's, the storages'.
WATCHED_LOGGERS = (
    "",
    "aiotwinne",
    "aiotwinne.web",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "aiohttp_session",
    "asyncio",
    "stamina",
    "redis",
)
# Loggers whose ERROR records mean a crash somewhere: an unhandled exception in a
# handler ("Error handling request"), a task or an unclosed session.
_CRASH_LOGGERS = ("aiohttp", "asyncio")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
_PROC_TCP = Path("/proc/net/tcp")  # IPv4: the suite listens on 127.0.0.1 only


class SecretWatch(logging.Handler):
    """Scans every log record, page and exception for known secret values.

    Secrets are registered as they come into being (the emulator's keys and
    tokens, the app secrets); hex-shaped ones are found by looking up every
    32-character hex run of a text in a set, so a run with 100,000 tokens
    costs no more per record than a run with one.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._hex: set[str] = set()
        self._other: set[str] = set()
        self.leaks: list[str] = []
        self.crashes: list[str] = []
        self.records = 0
        self.pages = 0
        self.exceptions = 0
        self._lock_ = threading.Lock()
        self._levels: dict[str, int] = {}

    # registration

    def add(self, *secrets: str) -> None:
        """Watch for these values."""
        for secret in secrets:
            self._add(secret)

    def add_all(self, secrets: Iterable[str]) -> None:
        """Watch for every value of *secrets*."""
        for secret in secrets:
            self._add(secret)

    def _add(self, secret: str) -> None:
        if len(secret) == 32 and all(c in "0123456789abcdef" for c in secret):
            self._hex.add(secret)
        else:
            self._other.add(secret)

    @property
    def watched(self) -> int:
        """How many secret values are watched."""
        return len(self._hex) + len(self._other)

    # scanning

    def _found(self, text: str) -> list[str]:
        hits = [s for s in self._other if s in text]
        for match in _HEX_RUN.finditer(text):
            run = match.group().lower()
            hits += [run[i : i + 32] for i in range(len(run) - 31) if run[i : i + 32] in self._hex]
        return hits

    def scan(self, where: str, text: str) -> None:
        """Record a leak if *text* holds a watched secret."""
        hits = self._found(text)
        if hits:
            self.leaks.append(f"{where}: {len(hits)} secret(s) in {text[:300]!r}")

    def page(self, text: str) -> None:
        """Scan a page (or any answer body) the suite received."""
        self.pages += 1
        self.scan("page", text)

    def exception(self, exc: BaseException) -> None:
        """Scan an exception, its str/repr/args and its whole chain, traceback included."""
        self.exceptions += 1
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            parts = [str(current), repr(current), repr(current.args)]
            parts += (
                [repr(v) for v in vars(current).values()] if hasattr(current, "__dict__") else []
            )
            parts += traceback.format_exception(type(current), current, current.__traceback__)
            self.scan(f"exception {type(current).__name__}", "\n".join(parts))
            current = current.__cause__ or current.__context__

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_:
            self.records += 1
            try:
                text = record.getMessage()
            except Exception:  # a record whose args do not fit its format
                text = f"{record.msg!r} % {record.args!r}"
            parts = [text, repr(record.__dict__)]
            if record.exc_info and record.exc_info[1] is not None:
                parts += traceback.format_exception(*record.exc_info)
            self.scan(f"log {record.name}:{record.levelname}", "\n".join(parts))
            if record.levelno >= logging.ERROR and record.name.startswith(_CRASH_LOGGERS):
                cause = (
                    record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
                )
                self.crashes.append(f"{record.name}: {text} ({cause})")

    # installation

    def install(self) -> None:
        """Turn every watched logger to DEBUG and listen on the root logger."""
        for name in WATCHED_LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        """Put the loggers back as they were."""
        logging.getLogger().removeHandler(self)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)


# -- samplers -----------------------------------------------------------------


class Sampler:
    """A thread that samples this process every *interval* seconds while running.

    It reads ``/proc`` through psutil, so it neither runs on nor slows the
    event loop it watches. ``peak_rss`` is the largest resident set seen;
    ``peak_sockets`` the most established TCP connections to *port* (this
    process's client side of them) seen at once.
    """

    def __init__(self, *, interval: float = 0.005, port: int | None = None) -> None:
        self._interval = interval
        self._port = port
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reliability-sampler", daemon=True)
        self.peak_rss = 0
        self.peak_sockets = 0
        self.samples = 0

    def client_sockets(self) -> int:
        """Established connections to the watched port (its peers: this process's client side).

        On Linux the kernel's table is read directly: psutil would also map
        every socket to its descriptor, which with thousands of sockets open
        holds the GIL long enough to slow the event loop being measured.
        """
        if _PROC_TCP.exists():
            wanted = f":{self._port:04X}"
            count = 0
            for line in _PROC_TCP.read_text().splitlines()[1:]:
                fields = line.split(None, 4)
                # fields: sl, local_address, rem_address, st (01 = ESTABLISHED), ...
                count += fields[2].endswith(wanted) and fields[3] == "01"
            return count
        return sum(
            1
            for conn in self._process.net_connections(kind="tcp4")
            if conn.status == psutil.CONN_ESTABLISHED
            and conn.raddr
            and conn.raddr.port == self._port
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples += 1
            self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
            if self._port is not None:
                self.peak_sockets = max(self.peak_sockets, self.client_sockets())
            self._stop.wait(self._interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss() -> int:
    """This process's resident set size right now, in bytes."""
    return int(psutil.Process().memory_info().rss)


def open_fds() -> int:
    """File descriptors this process holds right now."""
    return psutil.Process().num_fds()


def mib(size: int) -> float:
    """Bytes as MiB, rounded for a report."""
    return round(size / 2**20, 1)
