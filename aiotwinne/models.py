"""The data the library hands out: attrs classes built by one private cattrs converter.

Twinne sends every user-info value as a string or ``null``, the way MySQL hands
them to PHP (PROTOCOL.md, "User info fields"). The converter's hooks turn those
into real Python types; keys we do not map are kept in :attr:`UserInfo.extra`.

Why this module is long: the models, their one converter with its hooks, and the
converter's fast path for the wire shape Sngine sends must agree field by field,
so they are read (and changed) together.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Mapping
from itertools import islice
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._redact import fingerprint

if TYPE_CHECKING:
    from .errors import TwinneError

__all__ = [
    "AccessToken",
    "ProfileResult",
    "UserInfo",
    "user_info_from_wire",
    "user_info_to_json",
    "user_info_to_wire",
]

_UTC = dt.timezone.utc


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


@attrs.frozen(repr=False)
class AccessToken:
    """A Twinne access token and the window in which it is valid.

    Twinne has no refresh token: when :meth:`is_expired` says so, a new token
    needs a new login. The expiry is computed from our clock and is a hint;
    Twinne's "expired access_token" answer is the truth and raises
    :class:`~aiotwinne.TokenExpiredError` all the same.

    ``str()`` and ``repr()`` never show the value, only a short fingerprint.
    Use :attr:`value` where the real token is needed.

    Attributes:
        value: The token itself (a secret).
        issued_at: When it was obtained (timezone-aware UTC).
        expires_at: ``issued_at`` plus the client's ``token_lifetime``.
    """

    value: str
    issued_at: dt.datetime
    expires_at: dt.datetime

    def is_expired(self, leeway: float = 0.0, *, now: dt.datetime | None = None) -> bool:
        """Whether the token is expired, or will be within *leeway* seconds.

        Args:
            leeway: Seconds of margin: a token this close to its expiry counts
                as expired, so a request does not race the deadline.
            now: The time to judge by (default: the current UTC time).
        """
        now = now or _utcnow()
        return now + dt.timedelta(seconds=leeway) >= self.expires_at

    @property
    def expires_in(self) -> float:
        """Seconds until expiry (negative once expired)."""
        return (self.expires_at - _utcnow()).total_seconds()

    @property
    def fingerprint(self) -> str:
        """8 hex characters that identify the token in logs without revealing it."""
        return fingerprint(self.value)

    def __repr__(self) -> str:
        return (
            f"AccessToken(fingerprint={self.fingerprint!r}, "
            f"expires_at={self.expires_at.isoformat()!r})"
        )

    __str__ = __repr__


_GENDERS: Final[Mapping[str, str]] = {
    # Sngine 2.x/3.x store this text; 4.x sends the gender's name from its table.
    "male": "male",
    "female": "female",
    "other": "other",
    # Site-defined names of French-speaking sites such as Twinne.
    "homme": "male",
    "femme": "female",
    "autre": "other",
    # Sites that send the gender table's stock ids.
    "1": "male",
    "2": "female",
    "3": "other",
}
# 4.x sends "N/A" for a user who chose no gender.
_NO_GENDER: Final = frozenset({"", "n/a", "na", "none"})
# Sngine's stock default pictures: .../content/themes/THEME/images/blank_profile[_GENDER].png
_DEFAULT_PICTURE: Final = re.compile(
    r"/images/blank_profile(?:_[^/]*)?\.(?:png|jpe?g|gif|svg|webp)$", re.IGNORECASE
)


def _frozen_mapping(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@attrs.frozen(eq=True, hash=False)
class UserInfo:
    """A Twinne user's profile, with Twinne's strings turned into Python types.

    Attributes:
        id: ``user_id``.
        username: ``user_name``, the handle.
        email: ``user_email``; ``None`` when empty.
        first_name: ``user_firstname`` (may be ``""``).
        last_name: ``user_lastname`` (may be ``""``).
        gender: ``user_gender`` exactly as sent: ``"male"``/``"female"`` on
            Sngine 2.x/3.x, the gender's name on 4.x (``"Male"``, ``"Other"``,
            a site-defined name, ``"N/A"`` when unset), a numeric id on some
            sites; ``None`` when empty. See :attr:`gender_normalized`.
        birthdate: ``user_birthdate``; ``None`` for empty, ``0000-00-00`` or an
            impossible date.
        picture: ``user_picture`` as sent: a path under the site's uploads
            folder or a full URL; ``None`` when empty.
        picture_url: The public URL of the user's own picture, or ``None``
            when they have none. Built from ``picture``, else taken from
            Sngine's ``profile_picture`` unless that is the site's default
            picture (see :attr:`display_picture_url`).
        cover: ``user_cover``, like ``picture``.
        cover_url: The public URL of the cover, or ``None``. Sngine's
            ``profile_cover`` is the bare uploads folder on every version (a
            server bug), which means "no cover".
        registered: ``user_registered``, naive (site-local time, no zone).
        verified: ``user_verified`` (``"1"``).
        relationship: ``user_relationship``; ``None`` when empty.
        biography: ``user_biography``; ``None`` when empty.
        website: ``user_website``; ``None`` when empty.
        extra: Every wire key not mapped above, kept exactly as sent.
    """

    id: int
    username: str
    email: str | None = None
    first_name: str = ""
    last_name: str = ""
    gender: str | None = None
    birthdate: dt.date | None = None
    picture: str | None = None
    picture_url: str | None = None
    cover: str | None = None
    cover_url: str | None = None
    registered: dt.datetime | None = None
    verified: bool = False
    relationship: str | None = None
    biography: str | None = None
    website: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The read-only view of ``extra`` cannot be pickled; its dict can.
        values = {f.name: getattr(self, f.name) for f in attrs.fields(UserInfo)}
        values["extra"] = dict(self.extra)
        return _restore_user_info, (values,)

    @property
    def full_name(self) -> str:
        """First and last name joined, or the username when both are empty."""
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.username

    @property
    def gender_normalized(self) -> str | None:
        """``"male"``, ``"female"``, ``"other"`` or ``None``, whatever the site's spelling.

        ``None`` when unset (empty, or 4.x's ``"N/A"``); any name or id the
        site defined beyond the stock ones is ``"other"``. Never raises.
        """
        if self.gender is None:
            return None
        text = self.gender.strip().lower()
        if text in _NO_GENDER:
            return None
        return _GENDERS.get(text, "other")

    @property
    def display_picture_url(self) -> str | None:
        """The picture a site shows for this user: their own, else Sngine's default one.

        The default is the ``profile_picture`` URL Sngine sends for users
        without a picture (on 2.x/3.x always, a server bug); ``None`` when
        the site sent neither.
        """
        if self.picture_url is not None:
            return self.picture_url
        sent = self.extra.get("profile_picture")
        return sent if isinstance(sent, str) and _is_url(sent) else None


def _restore_user_info(values: dict[str, Any]) -> UserInfo:
    return UserInfo(**values)


@attrs.frozen(repr=False)
class ProfileResult:
    """One outcome of a bulk fetch: exactly one per input token.

    Attributes:
        token: The input item, as given (its ``repr()`` is redacted here).
        user: The profile, or ``None`` on failure.
        error: The failure, or ``None`` on success.
        index: The input's position (0-based) in the iterable given.
    """

    token: AccessToken | str
    user: UserInfo | None = None
    error: TwinneError | None = None
    index: int = 0

    @property
    def ok(self) -> bool:
        """True when the profile was fetched."""
        return self.error is None

    def __repr__(self) -> str:
        value = self.token.value if isinstance(self.token, AccessToken) else self.token
        # Bulk keeps whatever item it was given, tokens or not.
        label = fingerprint(value) if isinstance(value, str) else f"<{type(value).__name__}>"
        outcome = f"user_id={self.user.id}" if self.user else f"error={self.error!r}"
        return f"ProfileResult(index={self.index}, token={label!r}, {outcome})"


# -- the converter ----------------------------------------------------------

# model field -> wire key; picture_url, cover_url and extra are derived.
_WIRE_NAMES: Final[Mapping[str, str]] = {
    "id": "user_id",
    "username": "user_name",
    "email": "user_email",
    "first_name": "user_firstname",
    "last_name": "user_lastname",
    "gender": "user_gender",
    "birthdate": "user_birthdate",
    "picture": "user_picture",
    "cover": "user_cover",
    "registered": "user_registered",
    "verified": "user_verified",
    "relationship": "user_relationship",
    "biography": "user_biography",
    "website": "user_website",
}
_MAPPED_KEYS: Final = frozenset(_WIRE_NAMES.values())
_DERIVED: Final = ("picture_url", "cover_url", "extra")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}(?![\d:])", re.ASCII)
_DATETIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}", re.ASCII)
_TRUE: Final = frozenset({"1", "true", "yes"})
_FALSE: Final = frozenset({"0", "", "false", "no"})

_converter = cattrs.Converter()


def _structure_int(value: object, _: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    return int(value)


def _structure_str(value: object, _: object) -> str:
    # NOT NULL text columns: a null becomes "", a number its text.
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected text, got {type(value).__name__}")


def _structure_optional_str(value: object, _: object) -> str | None:
    text = _structure_str(value, _)
    return text or None


def _structure_bool(value: object, _: object) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected '0' or '1', got {text[:20]!r}")


def _structure_date(value: object, _: object) -> dt.date | None:
    # MySQL's DATE text only; fromisoformat alone accepts more on 3.11+ than 3.10.
    match = _DATE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match.group())
    except ValueError:
        # MySQL accepts 0000-00-00 and partial dates such as 1990-00-17; they name no day.
        return None


def _structure_datetime(value: object, _: object) -> dt.datetime | None:
    # MySQL's DATETIME text: site-local time, so always naive (a zone, if any, is dropped).
    match = _DATETIME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        return dt.datetime.fromisoformat(match.group())
    except ValueError:
        return None


def _unstructure_date(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _unstructure_datetime(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(sep=" ")


_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(str | None, _structure_optional_str)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(dt.date | None, _structure_date)
_converter.register_structure_hook(dt.datetime | None, _structure_datetime)
_converter.register_unstructure_hook(int, str)
_converter.register_unstructure_hook(bool, lambda v: "1" if v else "0")
_converter.register_unstructure_hook(dt.date | None, _unstructure_date)
_converter.register_unstructure_hook(dt.datetime | None, _unstructure_datetime)

_overrides = {name: override(rename=wire) for name, wire in _WIRE_NAMES.items()}
_overrides.update({name: override(omit=True) for name in _DERIVED})
# cattrs types **kwargs as its flag arguments; the overrides are per-field.
_structure_user = make_dict_structure_fn(UserInfo, _converter, **_overrides)  # type: ignore[arg-type]
_unstructure_user = make_dict_unstructure_fn(UserInfo, _converter, **_overrides)  # type: ignore[arg-type]


def _public_url(base_url: str, path: str | None) -> str | None:
    if not path:
        return None
    if _is_url(path):
        return path
    return f"{base_url}/content/uploads/{path.lstrip('/')}"


def user_info_from_wire(wire: Mapping[str, Any], *, base_url: str) -> UserInfo:
    """Build a :class:`UserInfo` from Twinne's ``user_info`` object.

    Args:
        wire: The object as decoded from JSON.
        base_url: The site's base URL, for the picture and cover URLs.

    Raises:
        ValueError: A field that cannot be read, e.g. a non-numeric ``user_id``.
        KeyError: ``user_id`` or ``user_name`` is missing.
    """
    fast = _fast_user_info(wire, base_url)
    if fast is not None:
        return fast
    return _general_user_info(wire, base_url)


def _general_user_info(wire: Mapping[str, Any], base_url: str) -> UserInfo:
    """The cattrs path: any wire dict, with errors that name the wire fields."""
    for key in ("user_id", "user_name"):
        if key not in wire:
            raise KeyError(f"{key} is missing")
    try:
        base = _structure_user(wire, UserInfo)
    except cattrs.BaseValidationError as exc:
        # An exception group; flatten it to one line naming the wire fields.
        problems = "; ".join(_wire_paths(cattrs.transform_error(exc)))
        raise ValueError(problems) from None
    return attrs.evolve(
        base,
        picture_url=_public_url(base_url, base.picture)
        or _sent_url(wire.get("profile_picture"), _is_default_picture),
        cover_url=_public_url(base_url, base.cover)
        or _sent_url(wire.get("profile_cover"), _is_bare_folder),
        extra=_extra_items(wire),
    )


def _fast_user_info(wire: Mapping[str, Any], base_url: str) -> UserInfo | None:
    """The wire shape Sngine really sends, converted without the general converter.

    Every value must be a string or ``None`` (what MySQL hands PHP) and read
    exactly as the converter's hooks would read it; anything else (a number,
    a list, a bad ``user_id``...) returns ``None`` and takes the general path,
    which also words the errors. A property-based test holds the two paths equal
    on arbitrary wire dicts. This path exists for speed: the general converter
    plus :func:`attrs.evolve` cost three times as much per profile, and in a
    real call (between two network round trips, caches cold) every Python step
    here costs two to three times what it costs in a tight loop, so the steps
    run in C where they can: one ``itemgetter`` for the 14 fields, one type
    check over all of them, one slice for ``extra``.
    """
    try:
        values = _wire_values(wire)
    except KeyError:  # a field missing: Sngine always sends all 14, so this is rare
        values = tuple(map(wire.get, _WIRE_KEYS))
    if not _STR_OR_NONE.issuperset(map(type, values)):
        return None
    (
        user_id,
        username,
        email,
        first,
        last,
        gender,
        birth,
        picture,
        cover,
        registered,
        verified,
        relationship,
        biography,
        website,
    ) = values
    if user_id is None or username is None:
        return None
    try:
        number = int(user_id)
        flag = _VERIFIED.get(verified)
        if flag is None:
            flag = _structure_bool(verified, bool)
    except ValueError:
        return None
    # Every key but the mapped ones, in the order sent. Sngine sends the 14
    # fields first, in this order: then the rest is a slice, copied in C.
    if tuple(islice(wire, len(_WIRE_KEYS))) == _WIRE_KEYS:
        extra = dict(islice(wire.items(), len(_WIRE_KEYS), None))
    else:
        extra = {key: value for key, value in wire.items() if key not in _MAPPED_KEYS}
    picture_url = _public_url(base_url, picture) or _sent_url(
        extra.get("profile_picture"), _is_default_picture
    )
    cover_url = _public_url(base_url, cover) or _sent_url(
        extra.get("profile_cover"), _is_bare_folder
    )
    return UserInfo(
        number,
        username,
        email or None,
        first or "",
        last or "",
        gender or None,
        _fast_date(birth),
        picture or None,
        picture_url,
        cover or None,
        cover_url,
        _fast_datetime(registered),
        flag,
        relationship or None,
        biography or None,
        website or None,
        extra,
    )


# The 14 wire keys, in UserInfo's field order.
_WIRE_KEYS: Final = (
    "user_id",
    "user_name",
    "user_email",
    "user_firstname",
    "user_lastname",
    "user_gender",
    "user_birthdate",
    "user_picture",
    "user_cover",
    "user_registered",
    "user_verified",
    "user_relationship",
    "user_biography",
    "user_website",
)
_wire_values: Final = operator.itemgetter(*_WIRE_KEYS)
_STR_OR_NONE: Final = frozenset({str, type(None)})
_VERIFIED: Final[Mapping[str | None, bool]] = {"0": False, "1": True, None: False, "": False}


def _fast_date(value: str | None) -> dt.date | None:
    # "YYYY-MM-DD" exactly is what MySQL sends; anything else goes through the hook.
    if value is not None and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:  # 0000-00-00, 1990-00-17, non-digits: no day, as the hook says
            return None
    return _structure_date(value, None)


def _fast_datetime(value: str | None) -> dt.datetime | None:
    # "YYYY-MM-DD HH:MM:SS" exactly is what MySQL sends; anything else goes through the hook.
    if (
        value is not None
        and len(value) == 19
        and value[10] == " "
        and value[4] == value[7] == "-"
        and value[13] == value[16] == ":"
    ):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return _structure_datetime(value, None)


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "//"))


def _is_default_picture(url: str) -> bool:
    return _DEFAULT_PICTURE.search(url.split("?", 1)[0]) is not None


def _is_bare_folder(url: str) -> bool:
    # Sngine 2.x-4.x send "{uploads}/" as profile_cover whatever the user has.
    return url.split("?", 1)[0].endswith("/")


def _sent_url(value: object, means_none: Callable[[str], bool]) -> str | None:
    """A full URL Sngine computed (profile_picture/profile_cover), unless it means "none"."""
    if isinstance(value, str) and _is_url(value) and not means_none(value):
        return value
    return None


def _wire_paths(problems: list[str]) -> list[str]:
    # cattrs names model fields ("@ $.id"); a Twinne reader knows the wire keys.
    out = []
    for problem in problems:
        text, _, path = problem.rpartition(" @ $.")
        out.append(f"{_WIRE_NAMES.get(path, path)}: {text}" if text else problem)
    return out


def _extra_items(wire: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wire.items() if k not in _MAPPED_KEYS}


def user_info_to_wire(user: UserInfo) -> dict[str, Any]:
    """Turn a :class:`UserInfo` back into Twinne's wire form (strings or null).

    ``extra`` keys are merged back as they were received. Empty values come back
    as ``null`` (text columns as ``""``), so wire → model → wire is exact for
    canonical wire data and model → wire → model is exact for every model.
    """
    wire: dict[str, Any] = _unstructure_user(user)
    wire.update(user.extra)
    return wire


def user_info_to_json(user: UserInfo) -> dict[str, Any]:
    """Turn a :class:`UserInfo` into plain JSON values, keeping the model's types.

    Unlike :func:`user_info_to_wire`, which gives back Twinne's strings, this is
    the model as JSON: keys are the field names (``id``, ``username``,
    ``first_name``...), numbers stay numbers and booleans booleans, dates and
    times are ISO 8601 text, and ``extra`` holds the wire keys the model does
    not map, as sent. The result goes straight into :func:`json.dumps`; it is
    what ``aiotwinne me`` and ``aiotwinne profiles`` print.

    Example:
        >>> user = UserInfo(id=7, username="ada", birthdate=dt.date(1990, 5, 17))
        >>> data = user_info_to_json(user)
        >>> data["id"], data["birthdate"], data["verified"], data["extra"]
        (7, '1990-05-17', False, {})
    """
    out: dict[str, Any] = {}
    for field in attrs.fields(UserInfo):
        value = getattr(user, field.name)
        if isinstance(value, (dt.date, dt.datetime)):  # a datetime is a date too
            value = value.isoformat()
        elif isinstance(value, Mapping):  # extra: a read-only view, not JSON-able as is
            value = dict(value)
        out[field.name] = value
    return out
