"""The settings :func:`aiotwinne.web.setup` stores on the application, and their keys."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import web

from ..client import TwinneClient
from ..models import AccessToken, UserInfo
from ._i18n import DEFAULT_TEXTS

if TYPE_CHECKING:
    from ._bearer import BearerValidator
    from ._login import Login
    from ._pages import Page

__all__ = [
    "SETTINGS_KEY",
    "TWINNE_CLIENT_KEY",
    "OnLogin",
    "OnLogout",
    "Settings",
    "UsedMarkers",
]

#: ``setup(..., on_login=...)``: ``async (request, user, token) -> mapping | None``.
OnLogin = Callable[[web.Request, UserInfo, AccessToken], Awaitable[Mapping[str, Any] | None]]
#: ``setup(..., on_logout=...)``: ``async (request, login) -> None``.
OnLogout = Callable[[web.Request, "Login"], Awaitable[None]]

_USED_MARKERS_CAP: Final = 10_000


class UsedMarkers:
    """The markers of pending logins this process already consumed.

    A cookie-stored session can be replayed from an old copy that still holds a
    consumed pending login; remembering consumed markers until their login
    would have expired anyway refuses such a replay without a call to Twinne.
    The memory is per process: across instances, Twinne's single-use auth_key
    still stops a replayed callback.
    """

    def __init__(self, ttl: float, cap: int = _USED_MARKERS_CAP) -> None:
        self._ttl = ttl
        self._cap = cap
        self._seen: OrderedDict[str, float] = OrderedDict()

    def add(self, marker: str, now: float) -> None:
        """Remember *marker* as consumed at *now*."""
        self._prune(now)
        self._seen[marker] = now + self._ttl
        while len(self._seen) > self._cap:
            self._seen.popitem(last=False)

    def __contains__(self, marker: object) -> bool:
        return marker in self._seen

    def _prune(self, now: float) -> None:
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[oldest]


@attrs.define(eq=False)
class Settings:
    """Everything the middleware and the routes need, set once by ``setup()``."""

    client: TwinneClient
    login_path: str
    callback_path: str
    logout_path: str
    logout_redirect: str
    protect: tuple[str, ...]
    bearer_prefixes: tuple[str, ...]
    leeway: float
    pending_ttl: float
    max_pending: int
    max_auto_logins: int
    clock: Callable[[], float] = time.time
    bearer: BearerValidator | None = None
    on_login: OnLogin | None = None
    on_logout: OnLogout | None = None
    renderer: Callable[[web.Request, Page], web.Response] | None = None
    #: Page texts by language, then key (see ._i18n), and the fallback language.
    texts: Mapping[str, Mapping[str, str]] = DEFAULT_TEXTS
    default_language: str = "en"
    used_markers: UsedMarkers = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.used_markers = UsedMarkers(self.pending_ttl)

    @property
    def own_paths(self) -> tuple[str, str, str]:
        """The paths of the routes ``setup()`` adds (never guarded)."""
        return (self.login_path, self.callback_path, self.logout_path)


#: The :class:`~aiotwinne.TwinneClient` given to ``setup()``:
#: ``request.app[TWINNE_CLIENT_KEY]`` (or ``request.config_dict[...]`` in a sub-app).
TWINNE_CLIENT_KEY: Final = web.AppKey("aiotwinne_client", TwinneClient)

SETTINGS_KEY: Final = web.AppKey("aiotwinne_settings", Settings)
