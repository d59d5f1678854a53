"""A library user's stderr: nothing from aiotwinne or stamina unless the application logs.

Each case runs in its own interpreter, as an application does: Python's
last-resort handler (what prints a bare "stamina.retry_scheduled") only acts
when no handler is configured anywhere.
"""

from __future__ import annotations

import asyncio
import sys

from aiotwinne.testing import TwinneEmulator

APPLICATION = """
import asyncio, logging, sys
from aiotwinne import RetryPolicy, TwinneClient

if sys.argv[4] == "configured":
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")

async def main():
    retry = RetryPolicy(wait_initial=0.01, wait_jitter=0)
    async with TwinneClient(sys.argv[2], "s" * 32, base_url=sys.argv[1], retry=retry) as twinne:
        print((await twinne.get_user_info(sys.argv[3])).username)

asyncio.run(main())
"""


async def _run(emu: TwinneEmulator, logging_setup: str) -> tuple[str, str]:
    """Fetch a profile after one retried 503, in a fresh interpreter."""
    app = emu.default_app
    token = emu.issue_token(emu.default_user, app)
    emu.inject("http_error", status=503, endpoint="user_info", count=1)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        APPLICATION,
        emu.base_url,
        app.app_id,
        token,
        logging_setup,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert emu.count("user_info") == 2  # the retry happened
    return out.decode(), err.decode()


async def test_an_application_without_logging_sees_nothing_on_stderr() -> None:
    """A retry prints nothing when the application configured no logging."""
    async with TwinneEmulator() as emu:
        emu.add_app()
        emu.add_user(user_name="ada")
        out, err = await _run(emu, "none")
    assert out == "ada\n"
    assert err == ""


async def test_an_application_that_logs_still_gets_stamina_s_record() -> None:
    """With logging configured, stamina's retry record reaches the application's handler."""
    async with TwinneEmulator() as emu:
        emu.add_app()
        emu.add_user(user_name="ada")
        out, err = await _run(emu, "configured")
    assert out == "ada\n"
    assert err == "stamina stamina.retry_scheduled\n"
