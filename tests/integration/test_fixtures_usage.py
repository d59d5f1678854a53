"""The pytest fixtures used exactly as the README shows a library user."""

import pytest

from aiotwinne import InvalidAuthKeyError, RetryPolicy, TokenExpiredError
from aiotwinne.testing import SNGINE_VERSIONS, ClientFactory, EmulatorFactory, TwinneEmulator

pytest_plugins = ["aiotwinne.testing.pytest_plugin", "pytester"]


async def test_login_round_trip(twinne_emulator, twinne_client):
    """A user approves the app, the key becomes a token, the token a profile."""
    user = twinne_emulator.default_user
    auth_key = twinne_emulator.authorize(user, twinne_emulator.default_app)

    token = await twinne_client.exchange(auth_key)
    profile = await twinne_client.get_user_info(token)

    assert profile.id == user.id
    assert profile.username == user.username


async def test_keys_are_single_use(twinne_emulator, twinne_client):
    """Exchanging the same auth_key twice fails the second time."""
    auth_key = twinne_emulator.authorize(twinne_emulator.default_user, twinne_emulator.default_app)
    await twinne_client.exchange(auth_key)
    with pytest.raises(InvalidAuthKeyError):
        await twinne_client.exchange(auth_key)


async def test_tokens_expire_on_the_server_clock(twinne_emulator, twinne_client):
    """Moving the emulator's clock past an hour expires the token."""
    token = twinne_emulator.issue_token(twinne_emulator.default_user, twinne_emulator.default_app)
    twinne_emulator.advance(3601)
    with pytest.raises(TokenExpiredError):
        await twinne_client.get_user_info(token)


async def test_a_user_of_my_own(twinne_emulator: TwinneEmulator, twinne_client):
    """Users with chosen fields come back typed."""
    user = twinne_emulator.add_user(user_name="jdoe", user_firstname="Jane", user_verified="1")
    token = twinne_emulator.issue_token(user, twinne_emulator.default_app)

    profile = await twinne_client.get_user_info(token)

    assert (profile.username, profile.first_name, profile.verified) == ("jdoe", "Jane", True)


async def test_surviving_a_flaky_server(twinne_emulator, twinne_client):
    """Two 503s in a row are retried without sleeping, and the call succeeds."""
    twinne_emulator.inject("http_error", status=503, endpoint="user_info", count=2)
    token = twinne_emulator.issue_token(twinne_emulator.default_user, twinne_emulator.default_app)

    await twinne_client.get_user_info(token)

    assert twinne_emulator.count("user_info") == 3


async def test_factories(
    twinne_emulator_factory: EmulatorFactory, twinne_client_factory: ClientFactory
):
    """Factories give a second emulator with other settings and a client for it."""
    emulator = await twinne_emulator_factory(token_lifetime=60)
    app = emulator.add_app(name="Other app")
    user = emulator.add_user()
    client = twinne_client_factory(app, emulator=emulator, retry=RetryPolicy.none())

    token = await client.exchange(emulator.authorize(user, app))

    emulator.advance(61)
    with pytest.raises(TokenExpiredError):
        await client.get_user_info(token)


async def test_the_newest_version_by_default(twinne_emulator, twinne_sngine):
    """Without a setting the fixtures' emulator is the newest Sngine."""
    assert twinne_emulator.sngine == twinne_sngine == SNGINE_VERSIONS[-1]


_SUITE = """
pytest_plugins = ["aiotwinne.testing.pytest_plugin"]

async def test_version(twinne_emulator, twinne_emulator_factory, twinne_sngine):
    assert twinne_emulator.sngine == twinne_sngine == "{expected}"
    other = await twinne_emulator_factory(sngine="2")
    assert other.sngine == "2"
"""


def _run_suite(pytester: pytest.Pytester, ini: str, expected: str, *args: str):
    pytester.makeini(
        f"[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n{ini}"
    )
    pytester.makepyfile(test_suite=_SUITE.format(expected=expected))
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("version", SNGINE_VERSIONS)
def test_a_suite_runs_against_each_version(pytester: pytest.Pytester, version: str):
    """``--twinne-sngine`` sets every fixture emulator's version (a factory may still choose)."""
    result = _run_suite(
        pytester, "", version, "-p", "aiotwinne.testing.pytest_plugin", "--twinne-sngine", version
    )
    result.assert_outcomes(passed=1)


def test_the_ini_setting_and_the_option_winning(pytester: pytest.Pytester):
    """The ``twinne_sngine`` ini value applies; the command-line option beats it."""
    _run_suite(pytester, "twinne_sngine = 3", "3").assert_outcomes(passed=1)
    result = _run_suite(
        pytester,
        "twinne_sngine = 3",
        "2",
        "-p",
        "aiotwinne.testing.pytest_plugin",
        "--twinne-sngine",
        "2",
    )
    result.assert_outcomes(passed=1)


def test_an_unknown_version_is_a_usage_error(pytester: pytest.Pytester):
    """A bad ini value stops the tests that need an emulator, with the versions listed."""
    result = _run_suite(pytester, "twinne_sngine = 5", "5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*twinne_sngine must be one of 2, 3, 4, not '5'*"])
