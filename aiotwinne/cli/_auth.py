"""``login-url``, ``exchange`` and ``me``: one request each, one answer printed.

``exchange`` prints the access token itself (that is its purpose) with its
fingerprint and times; ``me`` prints the token's user as the library's model
(:func:`~aiotwinne.models.user_info_to_json`) or, with ``--wire``, as Twinne
sent it. The auth_key and the token are read from the environment or stdin
(:func:`._common.secret_input`), and neither appears in an error.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Final

from ..models import AccessToken, user_info_to_json, user_info_to_wire
from ._common import (
    ENV_AUTH_KEY,
    ENV_TOKEN,
    EXIT_OK,
    UsageError,
    client_from_args,
    print_json,
    secret_input,
)

__all__ = ["TOKEN_FIELDS", "exchange", "login_url", "me", "prepare_exchange", "prepare_me"]

#: What ``exchange`` prints, and what its ``--field`` may pick.
TOKEN_FIELDS: Final = ("access_token", "fingerprint", "issued_at", "expires_at")


async def login_url(args: argparse.Namespace) -> int:
    """``aiotwinne login-url``: print the link that starts a login (needs the app id only)."""
    async with client_from_args(args, needs_id=True, needs_secret=False) as client:
        print(client.login_url())
    return EXIT_OK


def prepare_exchange(args: argparse.Namespace) -> None:
    """Check the configuration, then read the auth_key, before the event loop starts.

    The configuration first, so that nobody types a key for a command that
    cannot run; the read outside the loop, so that the first Ctrl-C ends it.
    """
    key_from_stdin = args.auth_key == "-" or (
        args.auth_key is None and not os.environ.get(ENV_AUTH_KEY)
    )
    secret_from_stdin = args.app_secret_file == "-"  # noqa: S105 - a path, not a secret
    if secret_from_stdin and key_from_stdin:
        raise UsageError(
            f"the app secret and the auth_key cannot both come from stdin: set {ENV_AUTH_KEY}"
        )
    args.client = client_from_args(args, needs_id=True, needs_secret=True)
    args.secret = secret_input(args.auth_key, "auth_key", ENV_AUTH_KEY)


def prepare_me(args: argparse.Namespace) -> None:
    """Check the configuration, then read the token, before the event loop starts."""
    args.client = client_from_args(args, needs_id=False, needs_secret=False)
    args.secret = secret_input(args.token, "token", ENV_TOKEN)


async def exchange(args: argparse.Namespace) -> int:
    """``aiotwinne exchange``: spend an auth_key, print the token as JSON (or one field)."""
    async with args.client as client:
        try:
            token = await client.exchange(args.secret)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    _print(_token_json(token), args.field)
    return EXIT_OK


async def me(args: argparse.Namespace) -> int:
    """``aiotwinne me``: print the user an access token belongs to (or one field)."""
    async with args.client as client:
        try:
            user = await client.get_user_info(args.secret)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    _print(user_info_to_wire(user) if args.wire else user_info_to_json(user), args.field)
    return EXIT_OK


def _print(answer: dict[str, Any], field: str | None) -> None:
    """The answer as JSON, or one field of it as plain text for ``$(...)``."""
    if field is None:
        print_json(answer)
        return
    if field not in answer:
        raise UsageError(f"no field {field!r} in the answer; the fields are {', '.join(answer)}")
    value = answer[field]
    print(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _token_json(token: AccessToken) -> dict[str, Any]:
    return {
        "access_token": token.value,
        "fingerprint": token.fingerprint,
        "issued_at": token.issued_at.isoformat(),
        "expires_at": token.expires_at.isoformat(),
    }
