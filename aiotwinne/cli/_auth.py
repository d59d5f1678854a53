"""``login-url``, ``exchange`` and ``me``: one request each, one answer printed.

``exchange`` prints the access token itself (that is its purpose) with its
fingerprint and times; ``me`` prints the token's user as the library's model
(:func:`~aiotwinne.models.user_info_to_json`) or, with ``--wire``, as Twinne
sent it. The auth_key and the token are read from the environment or stdin
(:func:`._common.secret_input`), and neither appears in an error.
"""

from __future__ import annotations

import argparse
from typing import Any

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

__all__ = ["exchange", "login_url", "me"]


async def login_url(args: argparse.Namespace) -> int:
    """``aiotwinne login-url``: print the link that starts a login (needs the app id only)."""
    async with client_from_args(args, needs_id=True, needs_secret=False) as client:
        print(client.login_url())
    return EXIT_OK


async def exchange(args: argparse.Namespace) -> int:
    """``aiotwinne exchange``: spend an auth_key, print the token as JSON."""
    async with client_from_args(args, needs_id=True, needs_secret=True) as client:
        auth_key = secret_input(args.auth_key, "auth_key", ENV_AUTH_KEY)
        try:
            token = await client.exchange(auth_key)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    print_json(_token_json(token))
    return EXIT_OK


async def me(args: argparse.Namespace) -> int:
    """``aiotwinne me``: print the user an access token belongs to."""
    async with client_from_args(args, needs_id=False, needs_secret=False) as client:
        token = secret_input(args.token, "token", ENV_TOKEN)
        try:
            user = await client.get_user_info(token)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    print_json(user_info_to_wire(user) if args.wire else user_info_to_json(user))
    return EXIT_OK


def _token_json(token: AccessToken) -> dict[str, Any]:
    return {
        "access_token": token.value,
        "fingerprint": token.fingerprint,
        "issued_at": token.issued_at.isoformat(),
        "expires_at": token.expires_at.isoformat(),
    }
