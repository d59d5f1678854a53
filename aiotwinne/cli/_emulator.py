"""``emulator``: run the Twinne emulator for a person, until Ctrl-C.

It prints the app's credentials, secret included, on purpose: the emulator is
a local fake, and pointing a site at it needs them.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin

from ._common import ENV_APP_ID, ENV_BASE_URL, ENV_SECRET, EXIT_OK, UsageError, reason

if TYPE_CHECKING:
    from ..testing import TwinneEmulator

__all__ = ["SNGINE_VERSIONS", "emulator", "import_testing"]

#: aiotwinne.testing.SNGINE_VERSIONS, spelled here so that building the parser
#: does not load the emulator (a test checks they agree).
SNGINE_VERSIONS: Final = ("2", "3", "4")


def import_testing() -> ModuleType:
    """:mod:`aiotwinne.testing`, loaded when a command needs the emulator."""
    try:
        from .. import testing
    except ImportError as exc:  # pragma: no cover - the emulator needs only aiohttp
        raise UsageError(f"the emulator cannot be loaded: {exc}") from None
    return testing


async def emulator(args: argparse.Namespace) -> int:
    """``aiotwinne emulator``: serve one app and some users until Ctrl-C."""
    testing = import_testing()

    def announce(emu: TwinneEmulator) -> None:
        app = emu.default_app
        last = f", …, user{args.users}" if args.users > 1 else ""
        print(
            f"Twinne emulator running at {emu.base_url} (Sngine {emu.sngine}.x)\n"
            "  (a local fake: its app secret is printed on purpose, to point a site at it)\n"
            f"  app id        {app.app_id}\n"
            f"  app secret    {app.secret}\n"
            f"  redirect URL  {urljoin(emu.base_url, app.redirect_url)}\n"
            f"  login link    {emu.login_url(app)}\n"
            f"  sign in at    {emu.login_page_url} as user1{last} (no password)\n"
            "\n"
            f"  export {ENV_BASE_URL}={emu.base_url} {ENV_APP_ID}={app.app_id} "
            f"{ENV_SECRET}={app.secret}\n"
            "\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )

    try:
        await testing.run_emulator(
            host=args.host,
            port=args.port,
            users=args.users,
            redirect_url=args.redirect_url,
            on_ready=announce,
            sngine=args.sngine,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {reason(exc)}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK  # pragma: no cover - runs until Ctrl-C
