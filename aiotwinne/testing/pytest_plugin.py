"""pytest fixtures for code that talks to Twinne: a running emulator and a client for it.

Opt in from your top-level ``conftest.py`` (or a test module)::

    pytest_plugins = ["aiotwinne.testing.pytest_plugin"]

There is no auto-loading entry point, so these fixture names never clash with
yours unless you ask for them. The fixtures are async and need pytest-asyncio
(they are declared with ``pytest_asyncio.fixture``, so strict mode works too);
all are function-scoped.

Fixtures:

* ``twinne_sngine``: the Sngine version the emulators behave as (see
  "Every Sngine version" below).
* ``twinne_emulator``: a running :class:`~aiotwinne.testing.TwinneEmulator`
  with one app (:attr:`~aiotwinne.testing.TwinneEmulator.default_app`, named
  ``"Test App"``, redirect URL ``/callback``) and one user
  (:attr:`~aiotwinne.testing.TwinneEmulator.default_user`, username
  ``"user1"``).
* ``twinne_client``: a :class:`~aiotwinne.TwinneClient` for that app, whose
  retries never sleep (``RetryPolicy.no_wait()``).
* ``twinne_emulator_factory``: ``await factory(**options)`` starts another
  emulator (options as for :class:`~aiotwinne.testing.TwinneEmulator`), with no
  app or user.
* ``twinne_client_factory``: ``factory(app=None, *, emulator=None, **options)``
  builds another client (e.g. a wrong secret, a short timeout), for
  ``twinne_emulator`` and its default app unless told otherwise.

Every Sngine version: Twinne does not publish the version it runs, and the
versions differ on the wire. Run your suite against each with the
``--twinne-sngine {2,3,4}`` option, or the ``twinne_sngine`` ini setting
(default: the newest, ``4``); the option wins. It sets the ``sngine`` of every
emulator the fixtures start, unless a factory call passes its own. pytest
reads command-line options before test modules load, so the option needs the
plugin loaded early: from your top-level ``conftest.py``, or with
``-p aiotwinne.testing.pytest_plugin``; the ini setting works either way::

    for v in 2 3 4; do pytest -p aiotwinne.testing.pytest_plugin --twinne-sngine $v; done

Everything is closed at teardown. Annotate the factories with
:class:`aiotwinne.testing.EmulatorFactory` and
:class:`aiotwinne.testing.ClientFactory`; do not import this module yourself
(pytest would then not rewrite its asserts, and warns).

Example::

    async def test_login(twinne_emulator, twinne_client):
        emu = twinne_emulator
        auth_key = emu.authorize(emu.default_user, emu.default_app)
        token = await twinne_client.exchange(auth_key)
        user = await twinne_client.get_user_info(token)
        assert user.username == emu.default_user.username
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
import pytest_asyncio

from ..client import RetryPolicy, TwinneClient
from ._emulator import TwinneEmulator
from ._factories import ClientFactory, EmulatorFactory
from ._model import EmulatedApp
from ._sngine import SNGINE_VERSIONS

__all__ = [
    "pytest_addoption",
    "twinne_client",
    "twinne_client_factory",
    "twinne_emulator",
    "twinne_emulator_factory",
    "twinne_sngine",
]

_OPTION: Final = "--twinne-sngine"
_INI: Final = "twinne_sngine"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--twinne-sngine`` and the ``twinne_sngine`` ini setting."""
    help_text = "the Sngine version the Twinne emulator fixtures behave as: " + ", ".join(
        SNGINE_VERSIONS
    )
    parser.getgroup("aiotwinne").addoption(
        _OPTION, dest=_INI, choices=SNGINE_VERSIONS, default=None, help=help_text
    )
    parser.addini(_INI, help_text + " (default: the newest)", default=SNGINE_VERSIONS[-1])


@pytest.fixture
def twinne_sngine(pytestconfig: pytest.Config) -> str:
    """The Sngine version for this run: ``--twinne-sngine``, else the ini setting, else the newest.

    Raises:
        pytest.UsageError: The ini setting names no known version.
    """
    chosen = pytestconfig.getoption(_INI, default=None) or pytestconfig.getini(_INI)
    version = str(chosen).strip()
    if version not in SNGINE_VERSIONS:
        raise pytest.UsageError(
            f"{_INI} must be one of {', '.join(SNGINE_VERSIONS)}, not {version!r}"
        )
    return version


@pytest_asyncio.fixture
async def twinne_emulator_factory(twinne_sngine: str) -> AsyncIterator[EmulatorFactory]:
    """Start emulators on demand (``await factory(**options)``); all closed at teardown.

    Their ``sngine`` is the run's (``twinne_sngine``) unless *options* say otherwise.
    """
    started: list[TwinneEmulator] = []

    async def factory(**options: Any) -> TwinneEmulator:
        options.setdefault("sngine", twinne_sngine)
        emulator = TwinneEmulator(**options)
        await emulator.start()
        started.append(emulator)
        return emulator

    try:
        yield factory
    finally:
        for emulator in reversed(started):
            await emulator.close()


@pytest_asyncio.fixture
async def twinne_emulator(twinne_emulator_factory: EmulatorFactory) -> TwinneEmulator:
    """A running emulator with one app (``.default_app``) and one user (``.default_user``)."""
    emulator = await twinne_emulator_factory()
    emulator.add_app(name="Test App", redirect_url="/callback")
    emulator.add_user()
    return emulator


@pytest_asyncio.fixture
async def twinne_client_factory(twinne_emulator: TwinneEmulator) -> AsyncIterator[ClientFactory]:
    """Build more clients: ``factory(app=None, *, emulator=None, **options)``."""
    clients: list[TwinneClient] = []

    def factory(
        app: EmulatedApp | None = None,
        *,
        emulator: TwinneEmulator | None = None,
        **options: Any,
    ) -> TwinneClient:
        target = emulator if emulator is not None else twinne_emulator
        registered = app if app is not None else target.default_app
        options.setdefault("base_url", target.base_url)
        options.setdefault("retry", RetryPolicy.no_wait())
        secret = options.pop("app_secret", registered.secret)
        client = TwinneClient(registered.app_id, secret, **options)
        clients.append(client)
        return client

    try:
        yield factory
    finally:
        for client in reversed(clients):
            await client.close()


@pytest_asyncio.fixture
async def twinne_client(twinne_client_factory: ClientFactory) -> TwinneClient:
    """A :class:`TwinneClient` for ``twinne_emulator``'s default app, retrying without sleeps."""
    return twinne_client_factory()
