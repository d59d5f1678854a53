"""The aiohttp server around the emulated site: faults, drops, streaming, counters, records.

:class:`EmulatorServer` turns each HTTP request into a
:class:`~._sngine.SiteRequest`, lets the :class:`~._sngine.Site` answer it, and
applies what the wire adds: injected faults (:mod:`._faults`), dropped
connections, chunked streaming, request counts and records (secrets masked),
the concurrency peak, and waiting for in-flight requests.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Final

import attrs
from aiohttp import web

from .._protocol import FORM_CONTENT_TYPE
from ._faults import Fault, render_fault
from ._model import Answer, Endpoint, RequestRecord
from ._sngine import Site, SiteRequest

__all__ = ["EmulatorServer"]

_SECRET_PARAMS: Final = frozenset({"app_secret", "auth_key", "access_token"})
_MASK: Final = "***"
_CHUNK: Final = 64 * 1024
# What PHP reads into $_POST, and only for a POST.
_FORM_TYPES: Final = frozenset({FORM_CONTENT_TYPE, "multipart/form-data"})


def _masked(params: dict[str, str]) -> dict[str, str]:
    return {key: _MASK if key in _SECRET_PARAMS else value for key, value in params.items()}


async def _read_form(request: web.Request) -> dict[str, str] | None:
    """``$_POST``: a POST form body's text fields (the last of a repeated name), else ``None``."""
    if request.method != "POST" or request.content_type not in _FORM_TYPES:
        return None
    try:
        posted = await request.post()
    except ValueError:
        return {}  # a body PHP could not parse either: an empty $_POST
    return {key: value for key, value in posted.items() if isinstance(value, str)}


@attrs.define
class _Queued:
    fault: Fault
    remaining: int


class EmulatorServer:
    """Serves a :class:`Site` on a local port.

    Args:
        site: What answers.
        host: The address to listen on.
        port: The port; ``0`` picks a free one, kept across :meth:`stop` and
            :meth:`start`.
        keepalive_timeout: Seconds an idle keep-alive connection stays open.
        shutdown_timeout: Seconds :meth:`stop` waits for in-flight requests.
        record: Keep a :class:`RequestRecord` per request (off in fast mode).

    Attributes:
        requests: What the server saw, oldest first.
        peak_concurrency: The most requests in flight at once since the start
            or :meth:`reset_stats`.
    """

    def __init__(
        self,
        site: Site,
        *,
        host: str,
        port: int,
        keepalive_timeout: float,
        shutdown_timeout: float,
        record: bool,
    ) -> None:
        self._site = site
        self._host = host
        self.port = port
        self._keepalive_timeout = keepalive_timeout
        self._shutdown_timeout = shutdown_timeout
        self._record_requests = record
        self._runner: web.AppRunner | None = None
        self._faults: list[_Queued] = []
        self.requests: list[RequestRecord] = []
        self._counts: Counter[str] = Counter()
        self.in_flight = 0
        self._idle: asyncio.Event | None = None  # set when in_flight drops to 0
        self.peak_concurrency = 0

    # -- lifecycle ----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    @property
    def base_url(self) -> str:
        """``http://host:port``.

        Raises:
            RuntimeError: Never started, so no port yet.
        """
        if not self.port:
            raise RuntimeError("the emulator has no port yet: start it first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start listening (on the same port as before after a :meth:`stop`).

        Raises:
            RuntimeError: Already running.
            OSError: The port is taken.
        """
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        app = web.Application()
        # One route: the site does its own routing, as Apache's rewrite rules do.
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            # aiohttp's access log prints query strings, which hold secrets here.
            access_log=None,
            keepalive_timeout=self._keepalive_timeout,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._site.base_url = self.base_url

    async def stop(self) -> None:
        """Stop listening and drop open connections (does nothing when stopped)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- faults -------------------------------------------------------------

    def inject(self, fault: Fault, count: int) -> None:
        """Queue *fault* for the next *count* matching requests."""
        self._faults.append(_Queued(fault, count))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many requests queued faults will still hit."""
        return sum(queued.remaining for queued in self._faults)

    def _take_fault(self, endpoint: Endpoint) -> Fault | None:
        for index, queued in enumerate(self._faults):
            if queued.fault.endpoint in (None, endpoint):
                queued.remaining -= 1
                if queued.remaining <= 0:
                    del self._faults[index]
                return queued.fault
        return None

    # -- stats ----------------------------------------------------------------

    def count(self, endpoint: Endpoint | None = None) -> int:
        """Requests that reached *endpoint* (``None``: all), faults included."""
        if endpoint is None:
            return sum(self._counts.values())
        return self._counts[endpoint]

    async def wait_idle(self) -> None:
        """Wait until no request is in flight."""
        while self.in_flight:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()

    def reset_stats(self) -> None:
        """Forget records, counts and the concurrency peak (not faults)."""
        self.requests.clear()
        self._counts.clear()
        self.peak_concurrency = self.in_flight

    # -- serving --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        endpoint, _ = self._site.route(request.path)
        self.in_flight += 1
        if self.in_flight > self.peak_concurrency:
            self.peak_concurrency = self.in_flight
        self._counts[endpoint] += 1
        fault = self._take_fault(endpoint) if self._faults else None
        status: int | None = None
        answer: Answer | None = None
        form: dict[str, str] | None = None
        try:
            form = await _read_form(request)
            if fault is not None and fault.kind == "latency":
                await asyncio.sleep(float(fault.params["delay"]))
            if fault is None or fault.after_processing:
                answer = self._site.handle(
                    SiteRequest(
                        method=request.method,
                        path=request.path,
                        query=request.query,
                        form=form,
                        cookies=request.cookies,
                        query_string=request.query_string,
                    )
                )
            if fault is not None and fault.kind == "drop":
                self._drop(request, partial=bool(fault.params["partial_headers"]))
                return web.Response()
            if fault is not None and fault.kind != "latency":
                if fault.kind == "oversized" and fault.params["chunked"] and answer is not None:
                    sent = render_fault(fault, answer)
                    status = sent.status
                    return await self._stream(request, sent)
                answer = render_fault(fault, answer)
            if answer is None:  # pragma: no cover - every path above sets it
                raise AssertionError("no answer")
            status = answer.status
            # Content-Type exactly as the site chose it: Sngine's JSON has no charset.
            headers = {**answer.headers, "Content-Type": answer.content_type}
            return web.Response(status=answer.status, body=answer.body, headers=headers)
        finally:
            self.in_flight -= 1
            if not self.in_flight and self._idle is not None:
                self._idle.set()
                self._idle = None
            if self._record_requests:
                self._record(request, endpoint, status, fault, form, processed=answer is not None)

    @staticmethod
    def _drop(request: web.Request, *, partial: bool) -> None:
        transport = request.transport
        if transport is None:  # pragma: no cover - already gone
            return
        if partial:
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: appli")
        transport.close()

    @staticmethod
    async def _stream(request: web.Request, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.headers["Content-Type"] = answer.content_type
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            for start in range(0, len(answer.body), _CHUNK):
                await response.write(answer.body[start : start + _CHUNK])
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading (its size cap): expected
        return response

    def _record(
        self,
        request: web.Request,
        endpoint: Endpoint,
        status: int | None,
        fault: Fault | None,
        form: dict[str, str] | None,
        *,
        processed: bool,
    ) -> None:
        self.requests.append(
            RequestRecord(
                endpoint=endpoint,
                method=request.method,
                path=request.path,
                query=_masked(dict(request.query.items())),
                status=status,
                fault=fault.kind if fault is not None else None,
                processed=processed,
                form=_masked(form) if form else {},
            )
        )
