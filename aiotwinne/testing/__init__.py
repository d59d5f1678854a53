"""What aiotwinne's users import in their own tests: a faithful Twinne emulator.

:class:`TwinneEmulator` is a real Twinne ("Sngine") server on a local port,
with a controllable clock and fault injection. The pytest fixtures live in
:mod:`aiotwinne.testing.pytest_plugin`, opted into with
``pytest_plugins = ["aiotwinne.testing.pytest_plugin"]``.
"""

from ._emulator import SESSION_COOKIE, TwinneEmulator, run_emulator
from ._factories import ClientFactory, EmulatorFactory
from ._faults import FaultKind
from ._model import USER_FIELDS, EmulatedApp, EmulatedUser, Endpoint, RequestRecord

__all__ = [
    "SESSION_COOKIE",
    "USER_FIELDS",
    "ClientFactory",
    "EmulatedApp",
    "EmulatedUser",
    "EmulatorFactory",
    "Endpoint",
    "FaultKind",
    "RequestRecord",
    "TwinneEmulator",
    "run_emulator",
]
