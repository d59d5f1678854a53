"""Helpers for the emulator's integration tests: a browser-like session and a form reader."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser

import aiohttp
import attrs
import pytest


@attrs.define
class Form:
    """A form as a browser sees it: where it posts, its fields and its buttons."""

    action: str
    method: str
    fields: dict[str, str] = attrs.field(factory=dict)
    buttons: dict[str, tuple[str, str]] = attrs.field(factory=dict)  # label -> (name, value)

    def submit(self, button: str | None = None, **values: str) -> dict[str, str]:
        """The body a browser posts: the fields, *values* typed in, and the clicked button."""
        data = {**self.fields, **values}
        if button is not None:
            name, value = self.buttons[button]
            data[name] = value
        return data


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._button: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs_}
        if tag == "form":
            self.forms.append(Form(attributes.get("action", ""), attributes.get("method", "get")))
        elif tag == "input" and self.forms and "name" in attributes:
            self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and self.forms:
            self._button = (attributes.get("name", ""), attributes.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._button is not None and data.strip():
            self.forms[-1].buttons[data.strip()] = self._button
            self._button = None


def read_forms(html: str) -> list[Form]:
    """Every form on a page, in order."""
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


@pytest.fixture
def read_form() -> Callable[[str], Form]:
    """Return a function that reads the only form of a page."""

    def read(html: str) -> Form:
        forms = read_forms(html)
        assert len(forms) == 1, f"expected one form, found {len(forms)}"
        return forms[0]

    return read


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A cookie-keeping HTTP session, like a browser (cookies from 127.0.0.1 accepted)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session
