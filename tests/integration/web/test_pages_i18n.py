"""aiotwinne's pages (issue 14): English or French, texts the site overrides, its renderer.

Over real sockets: each page is reached the way a browser reaches it (another
site's navigation, a GET of the logout path, a failed callback, a tab waiting).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websupport import CALLBACK, CROSS_SITE, JSON, LOGIN, LOGOUT, NAVIGATE, SiteFactory

from aiotwinne.testing import TwinneEmulator
from aiotwinne.web import DEFAULT_TEXTS, Page

FRENCH = {"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"}


async def _get(
    visitor: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, str, Any]:
    async with visitor.get(url, headers=headers, allow_redirects=False) as answer:
        return answer.status, await answer.text(), answer.headers


async def test_pages_speak_french_to_a_french_browser(
    site_factory: SiteFactory, visitor_factory: Any
) -> None:
    """Continue, logout and error pages in French for Accept-Language: fr-CA."""
    site = await site_factory()
    visitor = visitor_factory()
    status, text, _ = await _get(visitor, site(LOGIN), {**CROSS_SITE, **FRENCH})
    assert status == 200
    assert '<html lang="fr">' in text
    assert "Continuer avec Twinne" in text
    status, text, _ = await _get(visitor, site(LOGOUT), FRENCH)
    assert "Se déconnecter" in text
    status, text, _ = await _get(visitor, site(f"{CALLBACK}?auth_key=abc"), {**NAVIGATE, **FRENCH})
    assert status == 400
    assert "La connexion avec Twinne a échoué" in text
    assert "Réessayer" in text


async def test_pages_speak_english_by_default(
    site_factory: SiteFactory, visitor_factory: Any
) -> None:
    """No Accept-Language, or one naming no language of ours: English."""
    site = await site_factory()
    visitor = visitor_factory()
    for extra in ({}, {"Accept-Language": "de-DE,de;q=0.9"}, {"Accept-Language": "fr;q=0"}):
        _, text, _ = await _get(visitor, site(LOGIN), {**CROSS_SITE, **extra})
        assert '<html lang="en">' in text
        assert "Continue with Twinne" in text


async def test_json_callers_keep_the_error_code(
    site_factory: SiteFactory, visitor_factory: Any
) -> None:
    """A JSON caller gets the same code in any language; only the message is translated."""
    site = await site_factory()
    visitor = visitor_factory()
    status, text, _ = await _get(visitor, site(f"{CALLBACK}?auth_key=abc"), {**JSON, **FRENCH})
    assert status == 400
    answer = json.loads(text)
    assert answer["error"] == "no_pending_login"
    assert answer["message"] == DEFAULT_TEXTS["fr"]["error.no_session_cookie.detail"]  # no cookie


async def test_the_site_overrides_texts_and_adds_a_language(
    site_factory: SiteFactory, visitor_factory: Any
) -> None:
    """texts= replaces any text per language, and a new language falls back to English."""
    site = await site_factory(
        texts={
            "en": {"continue.button": "Sign in with your Twinne account"},
            "fr": {"continue.button": "Se connecter"},
            "de": {"continue.button": "Weiter mit Twinne"},
        }
    )
    visitor = visitor_factory()
    _, text, _ = await _get(visitor, site(LOGIN), CROSS_SITE)
    assert "Sign in with your Twinne account" in text
    _, text, _ = await _get(visitor, site(LOGIN), {**CROSS_SITE, **FRENCH})
    assert "Se connecter</a>" in text
    _, text, _ = await _get(visitor, site(LOGIN), {**CROSS_SITE, "Accept-Language": "de"})
    assert '<html lang="de">' in text
    assert "Weiter mit Twinne" in text
    assert DEFAULT_TEXTS["en"]["continue.message"] in text


@pytest.mark.parametrize(
    ("texts", "default_language", "message"),
    [
        ({"en": {"continue.buton": "x"}}, "en", "unknown key 'continue.buton'"),
        ({"en": {"continue.button": 3}}, "en", "must be a string"),
        ({"e n": {}}, "en", "not a language tag"),
        (None, "de", "has no texts"),
    ],
)
async def test_bad_texts_fail_at_setup(
    site_factory: SiteFactory, texts: Any, default_language: str, message: str
) -> None:
    """A typo in a key, a non-string text, a bad tag or a language without texts: ValueError."""
    with pytest.raises(ValueError, match=message):
        await site_factory(texts=texts, default_language=default_language)


def _renderer(seen: list[Page]) -> Any:
    def render(request: web.Request, page: Page) -> web.Response:
        seen.append(page)
        body = (
            f"<!DOCTYPE html><html lang='{page.lang}'><body class='site-layout'>"
            f"<h1>{page.title}</h1><p>{page.message}</p>"
            f"<a id='go' href='{page.link or ''}'>{page.link_text or ''}</a>"
            f"<form action='{page.form_action or ''}'><button>{page.button or ''}</button></form>"
            "</body></html>"
        )
        response = web.Response(text=body, content_type="text/html", status=299)
        response.headers["Set-Cookie"] = "planted=1"
        response.headers["Content-Security-Policy"] = "default-src 'self'"
        response.headers["X-Site"] = "mine"
        return response

    return render


async def test_the_sites_renderer_draws_every_page_and_keeps_our_guarantees(
    site_factory: SiteFactory, visitor_factory: Any, emu: TwinneEmulator
) -> None:
    """Error, continue, logout and wait pages use the renderer; status and headers stay ours."""
    seen: list[Page] = []
    site = await site_factory(renderer=_renderer(seen))
    visitor = visitor_factory()
    status, text, headers = await _get(visitor, site(LOGIN), CROSS_SITE)
    assert status == 200
    assert "site-layout" in text
    assert "Set-Cookie" not in headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Site"] == "mine"
    status, text, headers = await _get(visitor, site(f"{CALLBACK}?auth_key=abc"), NAVIGATE)
    assert status == 400
    assert "site-layout" in text
    status, _, _ = await _get(visitor, site(LOGOUT), FRENCH)
    assert status == 200
    # A tab that needs a login while another tab's is in flight: the waiting page.
    async with visitor.get(site("/dashboard"), headers=NAVIGATE, allow_redirects=False) as first:
        assert first.status == 302
    status, _, headers = await _get(visitor, site("/settings"), NAVIGATE)
    assert status == 200
    assert headers["Refresh"] == "1; url=/settings"
    assert [(p.kind, p.status, p.lang) for p in seen] == [
        ("continue", 200, "en"),
        ("error", 400, "en"),
        ("logout", 200, "fr"),
        ("wait", 200, "en"),
    ]
    assert seen[1].code == "no_pending_login"
    assert seen[2].form_action == LOGOUT
    assert seen[2].button == "Se déconnecter"
    assert seen[3].refresh == 1
    assert seen[3].link == "/settings"


@pytest.mark.parametrize("failure", ["raise", "wrong type"])
async def test_a_failing_renderer_falls_back_to_our_page(
    site_factory: SiteFactory,
    visitor_factory: Any,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    """A renderer that raises or returns no Response: our own page, and an ERROR record."""

    def render(request: web.Request, page: Page) -> Any:
        if failure == "raise":
            raise KeyError("template missing")
        return "<p>not a response</p>"

    site = await site_factory(renderer=render)
    status, text, _ = await _get(visitor_factory(), site(LOGIN), CROSS_SITE)
    assert status == 200
    assert "Continue with Twinne" in text
    assert "Traceback" not in text
    assert [r.levelno for r in caplog.records if r.name.startswith("aiotwinne")] == [logging.ERROR]
