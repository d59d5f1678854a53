"""The emulator's records (apps, users, approvals, tokens) driven directly, without HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from aiotwinne._protocol import MESSAGES
from aiotwinne.testing import EmulatorFactory, TwinneEmulator

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]


def test_chosen_user_id_is_kept_and_skipped_by_generated_ones() -> None:
    """``user_id="2"`` is honoured, and generated ids step over it."""
    emu = TwinneEmulator()
    chosen = emu.add_user(user_id="2")
    assert chosen.id == 2
    assert chosen.fields["user_id"] == "2"
    assert [u.id for u in emu.add_users(2)] == [1, 3]
    with pytest.raises(ValueError, match="taken"):
        emu.add_user(user_id="3")


def test_user_names_must_be_usable() -> None:
    """Empty or taken usernames are refused, at creation and on rename."""
    emu = TwinneEmulator()
    with pytest.raises(ValueError, match="user_name"):
        emu.add_user(user_name="")
    first, second = emu.add_users(2)
    with pytest.raises(ValueError, match="user_name"):
        emu.update_user(second, user_name=first.username)


async def test_issue_token_replaces_the_previous_one(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """Each (user, app) holds one token: issuing a new one voids the old one."""
    emu = twinne_emulator
    old = emu.issue_token(emu.default_user, emu.default_app)
    new = emu.issue_token(emu.default_user, emu.default_app)
    url = f"{emu.base_url}/api/get_user_info"
    async with browser.get(url, params={"access_token": old}) as answer:
        assert (await answer.json())["message"] == MESSAGES.INVALID_ACCESS_TOKEN
    async with browser.get(url, params={"access_token": new}) as answer:
        assert "user_info" in await answer.json()


def test_revoke_without_approval_is_harmless() -> None:
    """Revoking an app the user never approved changes nothing."""
    emu = TwinneEmulator()
    app, user = emu.add_app(), emu.add_user()
    emu.revoke(user, app)
    assert not emu.is_approved(user, app)


def test_redirect_url_must_fit_in_a_header() -> None:
    """A redirect URL with a line break or a space is refused when the app is registered."""
    emu = TwinneEmulator()
    for bad in ("", "https://a.example/\r\nSet-Cookie: x=1", "https://a.example/ cb"):
        with pytest.raises(ValueError, match="redirect_url"):
            emu.add_app(redirect_url=bad)


def test_app_secret_is_not_in_repr() -> None:
    """An app's ``repr()`` never shows its secret."""
    app = TwinneEmulator().add_app()
    assert app.secret not in repr(app)


async def test_unusual_status_is_served(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """An injected 599 arrives as 599 with an HTML body."""
    emu = twinne_emulator
    emu.inject("http_error", status=599)
    async with browser.get(f"{emu.base_url}/api/authorize") as answer:
        assert answer.status == 599
        assert "599 Error" in await answer.text()


async def test_unknown_endpoint_with_feature_off(
    twinne_emulator: TwinneEmulator, browser: aiohttp.ClientSession
) -> None:
    """An unknown endpoint answers "invalid parameters" even with the module off (no check)."""
    emu = twinne_emulator
    emu.set_feature_enabled(False)
    async with browser.get(f"{emu.base_url}/api/whatever") as answer:
        assert answer.headers["Content-Type"] == "application/json"
        assert (await answer.json())["message"] == MESSAGES.INVALID_PARAMETERS


async def test_taken_port_fails_cleanly(
    twinne_emulator: TwinneEmulator, twinne_emulator_factory: EmulatorFactory
) -> None:
    """Starting on a port in use raises OSError and leaves the emulator stopped."""
    with pytest.raises(OSError, match="address"):
        await twinne_emulator_factory(port=twinne_emulator.port)
    assert twinne_emulator.running
    assert twinne_emulator.in_flight == 0
