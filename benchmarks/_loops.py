"""The event loops benchmarks run on, and running a coroutine on a chosen one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._env import have_uvloop

__all__ = ["LoopFactory", "available_loops", "run_on"]

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def available_loops(names: tuple[str, ...] = ("asyncio", "uvloop")) -> dict[str, LoopFactory]:
    """Name to loop factory for each of *names* that is installed (asyncio always is)."""
    loops: dict[str, LoopFactory] = {}
    for name in names:
        if name == "asyncio":
            loops[name] = asyncio.new_event_loop
        elif name == "uvloop" and have_uvloop():
            import uvloop

            loops[name] = uvloop.new_event_loop
    return loops


def run_on(factory: LoopFactory, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a loop made by *factory* (Python 3.10's lack of Runner)."""
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        task = loop.create_task(main)
        try:
            return loop.run_until_complete(task)
        finally:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
