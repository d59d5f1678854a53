"""Unit-test support: no sockets here.

aioresponses 0.7.9 builds ``ClientResponse`` without the ``stream_writer``
argument that aiohttp 3.14 made required (pnuckowski/aioresponses#289, open).
aiohttp 3.14 is a security release we will not pin below, so the mock's
response class gets that one argument supplied, here and nowhere else.
"""

from __future__ import annotations

import inspect
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse


class _SentWriter:
    """What ClientResponse reads from the writer of a request already sent."""

    output_size = 0


class _CompatResponse(ClientResponse):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(*args, **kwargs)


_NEEDS_SHIM = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


@pytest.fixture(autouse=True)
def _aioresponses_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    if _NEEDS_SHIM:
        monkeypatch.setattr(aioresponses.core, "ClientResponse", _CompatResponse)
