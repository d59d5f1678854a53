"""aiotwinne: async client, aiohttp integration and emulator for Twinne's "Log in With" API.

The public surface is what ``__all__`` lists; everything else is private to its
module. The web integration lives in :mod:`aiotwinne.web` (extra ``web``) and the
emulator with its pytest fixtures in :mod:`aiotwinne.testing`.
"""

from __future__ import annotations

from .client import RetryPolicy, TwinneClient
from .errors import (
    APIError,
    FeatureDisabledError,
    HTTPStatusError,
    InvalidAppError,
    InvalidAuthKeyError,
    InvalidSecretError,
    InvalidTokenError,
    MalformedTokenError,
    ProtocolError,
    TokenExpiredError,
    TransportError,
    TwinneError,
    UserNotFoundError,
)
from .models import AccessToken, ProfileResult, UserInfo

__all__ = [
    "APIError",
    "AccessToken",
    "FeatureDisabledError",
    "HTTPStatusError",
    "InvalidAppError",
    "InvalidAuthKeyError",
    "InvalidSecretError",
    "InvalidTokenError",
    "MalformedTokenError",
    "ProfileResult",
    "ProtocolError",
    "RetryPolicy",
    "TokenExpiredError",
    "TransportError",
    "TwinneClient",
    "TwinneError",
    "UserInfo",
    "UserNotFoundError",
    "__version__",
]

__version__ = "0.1.0"
