"""Choosing the visitor's language and merging a site's texts (no sockets)."""

from __future__ import annotations

import pytest

from aiotwinne.web import DEFAULT_TEXTS
from aiotwinne.web._i18n import merge_texts, pick_language

LANGS = ("en", "fr")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("fr", "fr"),
        ("FR-ca", "fr"),
        ("de-DE,de;q=0.9,fr;q=0.8,en;q=0.7", "fr"),
        ("en;q=0.4, fr;q=0.6", "fr"),
        ("fr;q=0, en", "en"),
        ("*", "en"),
        ("fr;q=abc, de", "en"),
        ("es, pt", "en"),
    ],
)
def test_pick_language(header: str | None, expected: str) -> None:
    """Quality values rank; a region matches its language; anything else is the default."""
    assert pick_language(header, LANGS, "en") == expected


def test_a_language_with_a_region_matches_a_bare_header() -> None:
    """A site's 'pt-br' texts serve a visitor asking for 'pt'."""
    assert pick_language("pt", ("en", "pt-br"), "en") == "pt-br"


def test_every_language_has_every_key() -> None:
    """English and French carry the same keys, so no French page falls back silently."""
    assert set(DEFAULT_TEXTS["fr"]) == set(DEFAULT_TEXTS["en"])


def test_merge_keeps_defaults_and_copies() -> None:
    """Overrides change a copy; the defaults stay as they were."""
    merged = merge_texts({"fr": {"error.retry": "Encore"}})
    assert merged["fr"]["error.retry"] == "Encore"
    assert DEFAULT_TEXTS["fr"]["error.retry"] == "Réessayer"
    assert merged["en"] == dict(DEFAULT_TEXTS["en"])
