"""What aiotwinne's users import in their own tests: a faithful Twinne emulator.

:class:`TwinneEmulator` is a real Twinne ("Sngine") server on a local port,
with a controllable clock and fault injection, behaving as any Sngine version
in :data:`SNGINE_VERSIONS`. The pytest fixtures live in
:mod:`aiotwinne.testing.pytest_plugin`, opted into with
``pytest_plugins = ["aiotwinne.testing.pytest_plugin"]``.
"""

from ._emulator import TwinneEmulator
from ._factories import ClientFactory, EmulatorFactory
from ._faults import FaultKind
from ._model import USER_FIELDS, EmulatedApp, EmulatedUser, Endpoint, RequestRecord
from ._run import run_emulator
from ._sngine import (
    DOCUMENTED_TOKEN_LIFETIME,
    SESSION_COOKIE,
    SNGINE_VERSIONS,
    STOCK_TOKEN_LIFETIME,
    SngineVersion,
)

__all__ = [
    "DOCUMENTED_TOKEN_LIFETIME",
    "SESSION_COOKIE",
    "SNGINE_VERSIONS",
    "STOCK_TOKEN_LIFETIME",
    "USER_FIELDS",
    "ClientFactory",
    "EmulatedApp",
    "EmulatedUser",
    "EmulatorFactory",
    "Endpoint",
    "FaultKind",
    "RequestRecord",
    "SngineVersion",
    "TwinneEmulator",
    "run_emulator",
]
