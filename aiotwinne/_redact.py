"""The one place that knows what a secret looks like, and hides it.

Twinne's protocol puts ``app_secret``, ``auth_key`` and ``access_token`` in URL
query strings (see PROTOCOL.md, "Secrets travel in URLs"). Anything the library
logs, raises or prints passes through here first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["SECRET_PARAMS", "fingerprint", "redact_text", "redact_url", "scrub"]

#: Query parameters whose values are secrets.
SECRET_PARAMS = frozenset({"app_secret", "auth_key", "access_token"})

_MASK = "***"

# name=value pairs for the secret parameters, in URLs, form bodies or prose;
# also their percent-encoded and JSON-quoted spellings ("access_token": "...").
_PAIR = re.compile(
    r"""(?P<name>app_secret|auth_key|access_token)(?P<sep>["']?\s*(?:=|:|%3D)\s*["']?)(?P<value>[^&#\s"'<>,;]+)""",
    re.IGNORECASE,
)
# Stock Sngine secrets are 32 hex characters; any long hex run in text we did
# not write (a server's body, a foreign exception) is treated as one.
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{24,}(?![0-9A-Za-z])")


def redact_url(url: str) -> str:
    """Return *url* with the values of secret query parameters masked.

    Args:
        url: An absolute or relative URL, as text.

    Returns:
        The same URL with ``app_secret``, ``auth_key`` and ``access_token``
        values replaced by ``***``.
    """
    return _PAIR.sub(_mask_pair, url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask secrets in arbitrary text.

    Masks every value given in *secrets* (exact occurrences), every
    ``name=value`` pair of a secret parameter, and every long hex run.

    Args:
        text: Text from anywhere: a server body, an exception message.
        secrets: Known secret values to remove wherever they appear.

    Returns:
        The text with secrets replaced by ``***``.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    text = _PAIR.sub(_mask_pair, text)
    return _HEX_RUN.sub(_MASK, text)


_E = TypeVar("_E", bound=BaseException)


def scrub(error: _E, secrets: Iterable[str]) -> _E:
    """Mask *secrets* in an exception's text fields, in place; return it.

    The client calls this on every error it raises, with the secrets of the
    call at hand: a server's page may quote them (a SQL error echoing the
    auth_key), and only the caller knows their exact values.
    """
    secrets = tuple(secrets)
    for name in ("message", "snippet"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, redact_text(value, secrets))
    error.args = tuple(
        redact_text(arg, secrets) if isinstance(arg, str) else arg for arg in error.args
    )
    return error


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible label for a secret (8 hex characters).

    Lets logs and ``repr()`` tell two tokens apart without showing either.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _mask_pair(match: re.Match[str]) -> str:
    return f"{match['name']}{match['sep']}{_MASK}"
