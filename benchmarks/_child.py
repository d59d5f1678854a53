"""Benchmark child processes: started together, ready when they say so, gone with stdin.

A child prints one JSON line when it is ready, answers JSON commands on stdin
if it has any, and exits when its stdin closes. So the parent stops it by
closing the pipe, and a parent that dies takes its children with it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack, suppress
from types import TracebackType
from typing import Any, TypeVar

from ._env import REPO_ROOT, child_env

__all__ = ["ChildProcess", "serve_commands", "start_together"]

_C = TypeVar("_C", bound="ChildProcess")


class ChildProcess:
    """``python -m <module> <args>`` in the repository, driven over its stdin and stdout.

    Use as a context manager (start, wait until ready, stop at exit), or
    :func:`start_together` to start several at once.

    Attributes:
        info: The JSON object the child printed once ready.
    """

    def __init__(self, name: str, module: str, args: list[str]) -> None:
        self.name = name
        self._command = [sys.executable, "-m", module, *args]
        self._process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._running().pid

    def start(self) -> None:
        """Start the child (does not wait for it)."""
        self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=child_env(),
        )

    def wait_ready(self) -> dict[str, Any]:
        """Wait for the child's first line and keep it as :attr:`info`."""
        self.info = self._read()
        return self.info

    def command(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command and return its answer (blocking: call it between measurements).

        Raises:
            RuntimeError: The child is not running or reports an error.
        """
        stdin = self._running().stdin
        if stdin is None:  # pragma: no cover - started with stdin=PIPE
            raise RuntimeError(f"{self.name} has no stdin")
        stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"{self.name}: command {cmd!r} failed: {reply['error']}")
        return reply

    def stop(self) -> None:
        """Close the child's stdin and wait for it to exit (killed after 10 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with suppress(OSError):  # the child is gone already
                    stream.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self: _C) -> _C:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> subprocess.Popen[str]:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process

    def _read(self) -> dict[str, Any]:
        process = self._running()
        line = process.stdout.readline() if process.stdout is not None else ""
        if not line:
            raise RuntimeError(f"{self.name} exited (code {process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply


def start_together(stack: ExitStack, *children: ChildProcess) -> None:
    """Start every child, then wait until all are ready; *stack* stops them."""
    for child in children:
        child.start()
        stack.callback(child.stop)
    for child in children:
        child.wait_ready()


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_commands(ready: dict[str, Any], handle: Handler | None = None) -> None:
    """In a child: announce *ready*, answer commands with *handle*, return at stdin's end."""
    print(json.dumps(ready), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        try:
            if handle is None:
                raise ValueError("this child takes no commands")
            reply = await handle(request)
        except Exception as exc:  # reported to the parent, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
