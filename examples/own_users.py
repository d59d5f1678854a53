"""A site with users of its own: Twinne signs them in, sqlite3 keeps their accounts.

At each login (the first one, and the silent re-login every hour) ``on_login``
finds or creates the visitor's row in the site's own ``accounts`` table and
returns the account's id and role. aiotwinne keeps that small mapping in the
session, so every page reads it with ``get_login(request)``, without a query.
A suspended account is refused with ``LoginRefused``; ``on_logout`` notes the
time. Every page aiotwinne shows itself (errors, "Continue with Twinne",
"Signing you in", the logout button) is drawn by this site's jinja2 template
``templates/aiotwinne_page.html`` through aiohttp-jinja2, in English or French.

Run it against Twinne (or ``aiotwinne emulator``)::

    pip install aiotwinne[web] aiohttp-jinja2
    export TWINNE_APP_ID=... TWINNE_APP_SECRET=...
    python examples/own_users.py        # http://localhost:8080, accounts in ./accounts.db
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from cryptography.fernet import Fernet

from aiotwinne import AccessToken, TwinneClient, UserInfo
from aiotwinne.web import (
    DEFAULT_LOGIN_PATH,
    DEFAULT_LOGOUT_PATH,
    Login,
    LoginRefused,
    Page,
    RedactingAccessLogger,
    cookie_storage,
    get_login,
    login_required,
    setup,
)

__all__ = ["Accounts", "create_app", "main"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


class Accounts:
    """The site's own user table (sqlite3: one connection per call, in a worker thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS accounts ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " twinne_id INTEGER UNIQUE NOT NULL,"
                " name TEXT NOT NULL,"
                " role TEXT NOT NULL DEFAULT 'member',"
                " suspended INTEGER NOT NULL DEFAULT 0,"
                " logins INTEGER NOT NULL DEFAULT 0,"
                " last_logout REAL)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per call: commits on success, always closed.
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            yield db

    async def _run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            with self._connect() as db:
                return work(db)

        return await asyncio.to_thread(run)

    async def sign_in(self, user: UserInfo) -> tuple[int, str, bool]:
        """Find or create *user*'s account, count the login: (id, role, suspended)."""

        def work(db: sqlite3.Connection) -> tuple[int, str, bool]:
            db.execute(
                "INSERT INTO accounts (twinne_id, name) VALUES (?, ?)"
                " ON CONFLICT (twinne_id) DO UPDATE SET name = excluded.name",
                (user.id, user.full_name or user.username),
            )
            db.execute("UPDATE accounts SET logins = logins + 1 WHERE twinne_id = ?", (user.id,))
            row = db.execute(
                "SELECT id, role, suspended FROM accounts WHERE twinne_id = ?", (user.id,)
            ).fetchone()
            return int(row[0]), str(row[1]), bool(row[2])

        result: tuple[int, str, bool] = await self._run(work)
        return result

    async def signed_out(self, account_id: int, when: float) -> None:
        """Note when the account last logged out."""
        await self._run(
            lambda db: db.execute(
                "UPDATE accounts SET last_logout = ? WHERE id = ?", (when, account_id)
            )
        )


ACCOUNTS_KEY = web.AppKey("accounts", Accounts)


# -- the hooks: ten lines that tie Twinne's user to ours ------------------------------


async def on_login(request: web.Request, user: UserInfo, token: AccessToken) -> dict[str, Any]:
    """Find or create the account; refuse a suspended one; keep its id and role in the session."""
    account_id, role, suspended = await request.app[ACCOUNTS_KEY].sign_in(user)
    if suspended:
        raise LoginRefused("This account is suspended. Contact us to restore it.")
    return {"account_id": account_id, "role": role}


async def on_logout(request: web.Request, login: Login) -> None:
    """Note the logout in the account."""
    await request.app[ACCOUNTS_KEY].signed_out(login.data["account_id"], time.time())


# -- the site's pages --------------------------------------------------------------------


def render_page(request: web.Request, page: Page) -> web.Response:
    """aiotwinne's pages, drawn by this site's template (its layout, its language)."""
    return aiohttp_jinja2.render_template(
        "aiotwinne_page.html", request, {"page": page}, status=page.status
    )


@aiohttp_jinja2.template("home.html")
async def home(request: web.Request) -> dict[str, Any]:
    """The public home page: a login button, or a greeting and the logout button."""
    return {
        "login": await get_login(request),
        "login_url": f"{DEFAULT_LOGIN_PATH}?next=/profile",
        "logout_url": DEFAULT_LOGOUT_PATH,
    }


@login_required
@aiohttp_jinja2.template("profile.html")
async def profile(request: web.Request) -> dict[str, Any]:
    """The protected profile: the site's own account id and role, Twinne's name and picture."""
    return {"login": await get_login(request), "logout_url": DEFAULT_LOGOUT_PATH}


def create_app(
    client: TwinneClient,
    *,
    database: str | Path = "accounts.db",
    session_key: bytes | None = None,
    secure_cookies: bool = True,
    **setup_options: Any,
) -> web.Application:
    """The site: sessions, jinja2 templates, aiotwinne with the hooks, three pages.

    Args:
        client: The Twinne client.
        database: The sqlite3 file of the accounts.
        session_key: A Fernet key (default: a new one: sessions end at restart).
        secure_cookies: ``False`` only for plain http://localhost.
        **setup_options: More options for :func:`aiotwinne.web.setup`.
    """
    app = web.Application()
    app[ACCOUNTS_KEY] = Accounts(database)
    aiohttp_session.setup(
        app, cookie_storage(session_key or Fernet.generate_key(), secure=secure_cookies)
    )
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape()
    )
    setup(
        app,
        client,
        on_login=on_login,
        on_logout=on_logout,
        renderer=render_page,
        secure_cookies=secure_cookies,
        **setup_options,
    )
    app.router.add_get("/", home)
    app.router.add_get("/profile", profile)
    return app


def main() -> None:
    """Serve the site on http://localhost:8080 with the credentials from the environment."""
    logging.basicConfig(level=logging.INFO)
    client = TwinneClient(
        os.environ["TWINNE_APP_ID"],
        os.environ["TWINNE_APP_SECRET"],
        base_url=os.environ.get("TWINNE_BASE_URL", "https://twinne.eu"),
    )
    # http://localhost only; behind https, drop secure_cookies=False.
    app = create_app(client, secure_cookies=False)
    web.run_app(app, host="localhost", port=8080, access_log_class=RedactingAccessLogger)


if __name__ == "__main__":
    main()
