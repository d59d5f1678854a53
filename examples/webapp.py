"""A small site with "Log in with Twinne": a home page, a protected profile, logout.

Run it against Twinne (or the emulator: ``aiotwinne emulator``)::

    export TWINNE_APP_ID=... TWINNE_APP_SECRET=...
    export TWINNE_BASE_URL=https://twinne.eu          # optional
    export WEBAPP_SESSION_KEY=...   # optional: a Fernet key, sessions survive restarts
    python examples/webapp.py                           # http://localhost:8080

Register ``http://localhost:8080/auth/twinne/callback`` as the app's redirect
URL in Twinne's developer dashboard. Plain http is for localhost only: in
production serve https and keep ``secure_cookies=True``.

The site itself (its pages and :func:`create_app`) is
``aiotwinne/cli/_site.py``: ``aiotwinne demo`` serves the same site on the
emulator, from an installed wheel too, so it lives in the package and this
file only runs it. Read it there, and copy what you need into your own site.
"""

from __future__ import annotations

import logging
import os

from aiohttp import web

from aiotwinne import TwinneClient
from aiotwinne.cli._site import create_app, home, profile
from aiotwinne.web import RedactingAccessLogger

__all__ = ["create_app", "home", "main", "profile"]


def main() -> None:
    """Serve the site on http://localhost:8080 with the credentials from the environment."""
    logging.basicConfig(level=logging.INFO)
    client = TwinneClient(
        os.environ["TWINNE_APP_ID"],
        os.environ["TWINNE_APP_SECRET"],
        base_url=os.environ.get("TWINNE_BASE_URL", "https://twinne.eu"),
    )
    key = os.environ.get("WEBAPP_SESSION_KEY")
    port = int(os.environ.get("WEBAPP_PORT", "8080"))
    app = create_app(
        client,
        # http://localhost only; behind https, drop this line.
        secure_cookies=False,
        session_key=key.encode() if key else None,
    )
    # The access log would record the callback's auth_key: this logger hides it.
    web.run_app(app, host="localhost", port=port, access_log_class=RedactingAccessLogger)


if __name__ == "__main__":
    main()
