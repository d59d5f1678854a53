"""The types of the factory fixtures, importable without loading the pytest plugin.

Annotate with these from :mod:`aiotwinne.testing`; importing
:mod:`aiotwinne.testing.pytest_plugin` yourself would stop pytest from
rewriting its asserts (pytest warns about it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..client import TwinneClient
    from ._emulator import TwinneEmulator
    from ._model import EmulatedApp

__all__ = ["ClientFactory", "EmulatorFactory"]


class EmulatorFactory(Protocol):
    """The type of the ``twinne_emulator_factory`` fixture."""

    async def __call__(self, **options: Any) -> TwinneEmulator:
        """Start an emulator with these :class:`TwinneEmulator` options; closed at teardown."""


class ClientFactory(Protocol):
    """The type of the ``twinne_client_factory`` fixture."""

    def __call__(
        self,
        app: EmulatedApp | None = None,
        *,
        emulator: TwinneEmulator | None = None,
        **options: Any,
    ) -> TwinneClient:
        """Build a client for *app* on *emulator*; closed at teardown.

        Args:
            app: Whose credentials to use (default: the emulator's default app).
            emulator: Which emulator (default: ``twinne_emulator``).
            **options: :class:`TwinneClient` options. ``retry`` defaults to
                ``RetryPolicy.no_wait()``; ``app_secret=`` overrides the secret.
        """
