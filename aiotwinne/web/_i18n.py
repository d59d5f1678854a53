"""The texts of the pages aiotwinne writes, in English and French, and the visitor's language.

Every text has a key (``"continue.button"``, ``"error.invalid_auth_key.detail"``);
``setup(..., texts={"fr": {"continue.button": "Se connecter"}})`` replaces any
of them, per language, and a language of its own (``"de"``) adds a language
(keys it leaves out fall back to English). A text may hold ``{twinne}``:
Twinne's own message, which the page escapes like every other text.

The language is chosen from ``Accept-Language`` (RFC 9110: quality values,
``fr-CA`` matching ``fr``), falling back to the first language of
``setup(..., default_language=...)`` (English by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_TEXTS", "Texts", "merge_texts", "pick_language"]

_EN: Final = {
    # "Continue with Twinne": a navigation from another site that needs a login.
    "continue.title": "Log in with Twinne",
    "continue.message": "To continue, log in with your Twinne account.",
    "continue.button": "Continue with Twinne",
    # Another tab of this browser is logging in.
    "wait.title": "Signing you in",
    "wait.message": "Signing you in…",
    "wait.link": "continue",
    # The logout button.
    "logout.title": "Log out",
    "logout.button": "Log out",
    # A form post or script whose session ended.
    "login_required.title": "Please log in again",
    "login_required.message": (
        "Your session has ended. Log in again, then repeat what you were doing."
    ),
    "login_required.button": "Log in with Twinne",
    # Error pages: a title, a sentence, and the "try again" link.
    "error.retry": "Try again",
    "error.login_failed.title": "Logging in with Twinne failed",
    "error.no_pending_login.detail": (
        "This login was not started from this browser, or it took too long."
    ),
    # The callback came with no session cookie at all: the likely causes.
    "error.no_session_cookie.detail": (
        "This login was not started from this browser, or it took too long. The browser "
        "sent no session cookie: the address Twinne sends you back to must use the same "
        "host as the page where the login started (localhost and 127.0.0.1 are different "
        "sites)."
    ),
    "error.insecure_cookie.detail": (
        "The browser sent no session cookie: this site's session cookie is Secure, and a "
        "Secure cookie is never sent over plain http. Serve the site over https (for local "
        "development over http, turn the cookie's Secure flag off). Also check that the "
        "address Twinne sends you back to uses the same host as the page where the login "
        "started (localhost and 127.0.0.1 are different sites)."
    ),
    "error.login_already_used.detail": "This login was already completed.",
    "error.bad_auth_key.detail": "Twinne's answer did not carry a usable login key.",
    "error.invalid_auth_key.detail": ("This login link is no longer valid. Twinne said: {twinne}"),
    "error.user_not_found.detail": "This Twinne account no longer exists.",
    "error.provider_refused.detail": "Twinne refused the login. Twinne said: {twinne}",
    "error.provider_unreachable.detail": (
        "Twinne could not be reached. Please try again in a moment."
    ),
    "error.provider_error.detail": "Twinne answered with an error. Please try again in a moment.",
    "error.login_refused.title": "You cannot log in here",
    "error.login_refused.detail": "This site refused the login.",
    "error.internal.title": "Something went wrong",
    "error.internal.detail": (
        "The login could not be completed because of an error on this site. "
        "Please try again later."
    ),
    "error.login_loop.title": "Logging in keeps failing",
    "error.login_loop.detail": "Twinne did not complete the login after several attempts.",
    "error.session_unavailable.title": "Sessions are unavailable",
    "error.session_unavailable.detail": (
        "The site cannot reach its session store right now. Please retry shortly."
    ),
    "error.provider_unavailable.title": "Twinne is unavailable",
    "error.provider_unavailable.detail": (
        "Your profile could not be loaded from Twinne. Please retry shortly."
    ),
}

_FR: Final = {
    "continue.title": "Se connecter avec Twinne",
    "continue.message": "Pour continuer, connectez-vous avec votre compte Twinne.",
    "continue.button": "Continuer avec Twinne",
    "wait.title": "Connexion en cours",
    "wait.message": "Connexion en cours…",
    "wait.link": "continuer",
    "logout.title": "Se déconnecter",
    "logout.button": "Se déconnecter",
    "login_required.title": "Veuillez vous reconnecter",
    "login_required.message": (
        "Votre session a pris fin. Reconnectez-vous, puis refaites ce que vous faisiez."
    ),
    "login_required.button": "Se connecter avec Twinne",
    "error.retry": "Réessayer",
    "error.login_failed.title": "La connexion avec Twinne a échoué",
    "error.no_pending_login.detail": (
        "Cette connexion n'a pas été commencée dans ce navigateur, ou elle a pris trop de temps."
    ),
    "error.no_session_cookie.detail": (
        "Cette connexion n'a pas été commencée dans ce navigateur, ou elle a pris trop de "
        "temps. Le navigateur n'a envoyé aucun cookie de session : l'adresse de retour "
        "depuis Twinne doit utiliser le même hôte que la page où la connexion a commencé "
        "(localhost et 127.0.0.1 sont deux sites différents)."
    ),
    "error.insecure_cookie.detail": (
        "Le navigateur n'a envoyé aucun cookie de session : le cookie de session de ce site "
        "est Secure, et un cookie Secure n'est jamais envoyé en http simple. Servez le site "
        "en https (pour le développement local en http, désactivez l'attribut Secure du "
        "cookie). Vérifiez aussi que l'adresse de retour depuis Twinne utilise le même hôte "
        "que la page où la connexion a commencé (localhost et 127.0.0.1 sont deux sites "
        "différents)."
    ),
    "error.login_already_used.detail": "Cette connexion a déjà été effectuée.",
    "error.bad_auth_key.detail": (
        "La réponse de Twinne ne contenait pas de clé de connexion valable."
    ),
    "error.invalid_auth_key.detail": (
        "Ce lien de connexion n'est plus valable. Réponse de Twinne : {twinne}"
    ),
    "error.user_not_found.detail": "Ce compte Twinne n'existe plus.",
    "error.provider_refused.detail": "Twinne a refusé la connexion. Réponse de Twinne : {twinne}",
    "error.provider_unreachable.detail": (
        "Impossible de joindre Twinne. Veuillez réessayer dans un instant."
    ),
    "error.provider_error.detail": (
        "Twinne a répondu par une erreur. Veuillez réessayer dans un instant."
    ),
    "error.login_refused.title": "Vous ne pouvez pas vous connecter ici",
    "error.login_refused.detail": "Ce site a refusé la connexion.",
    "error.internal.title": "Une erreur est survenue",
    "error.internal.detail": (
        "La connexion n'a pas pu aboutir à cause d'une erreur sur ce site. "
        "Veuillez réessayer plus tard."
    ),
    "error.login_loop.title": "La connexion échoue à répétition",
    "error.login_loop.detail": "Twinne n'a pas terminé la connexion après plusieurs essais.",
    "error.session_unavailable.title": "Sessions indisponibles",
    "error.session_unavailable.detail": (
        "Le site ne peut pas joindre son stockage de sessions. Veuillez réessayer sous peu."
    ),
    "error.provider_unavailable.title": "Twinne est indisponible",
    "error.provider_unavailable.detail": (
        "Votre profil n'a pas pu être chargé depuis Twinne. Veuillez réessayer sous peu."
    ),
}

#: Every text aiotwinne shows, by language and key (read-only): the keys a
#: site may override with ``setup(..., texts=...)``.
DEFAULT_TEXTS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {"en": MappingProxyType(_EN), "fr": MappingProxyType(_FR)}
)

#: Texts by language, then key.
Texts = Mapping[str, Mapping[str, str]]


def merge_texts(
    overrides: Texts | None, default_language: str = "en"
) -> dict[str, dict[str, str]]:
    """The defaults with a site's *overrides* applied, checked.

    Raises:
        ValueError: An unknown key (a typo would otherwise be silently
            ignored), a text that is not a string, a malformed language tag,
            or a *default_language* without texts.
    """
    merged = {lang: dict(texts) for lang, texts in DEFAULT_TEXTS.items()}
    for lang, texts in (overrides or {}).items():
        tag = lang.lower()
        if not tag or not all(part.isalnum() for part in tag.split("-")):
            raise ValueError(f"texts: {lang!r} is not a language tag")
        target = merged.setdefault(tag, dict(_EN))
        for key, value in texts.items():
            if key not in _EN:
                raise ValueError(f"texts[{lang!r}]: unknown key {key!r} (see DEFAULT_TEXTS)")
            if not isinstance(value, str):
                raise ValueError(f"texts[{lang!r}][{key!r}] must be a string")
            target[key] = value
    if default_language.lower() not in merged:
        raise ValueError(f"default_language {default_language!r} has no texts")
    return merged


def pick_language(header: str | None, available: Iterable[str], default: str) -> str:
    """The best of *available* for an ``Accept-Language`` header, else *default*.

    Quality values rank the visitor's choices; ``fr-CA`` matches ``fr`` and
    ``fr`` matches ``fr-ca``; ``*`` and unknown languages give *default*.
    """
    if not header:
        return default
    languages = {lang.lower() for lang in available}
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if quality > 0:
            ranked.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag in languages:
            return tag
        primary = tag.split("-", 1)[0]
        if primary in languages:
            return primary
        for lang in sorted(languages):
            if lang.split("-", 1)[0] == primary:
                return lang
    return default
