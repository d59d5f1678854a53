"""examples/bulk_profiles.py, run as a user would, against the emulator."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from pathlib import Path

from aiotwinne.testing import TwinneEmulator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bulk_profiles.py"


async def test_the_bulk_example_writes_one_csv_row_per_token(tmp_path: Path) -> None:
    """Every token line becomes one CSV row; a deleted user and an unknown token are marked."""
    async with TwinneEmulator() as emu:
        app = emu.add_app()
        tokens = emu.issue_tokens(50, app)
        gone = emu.add_users(1)
        tokens.append(emu.issue_token(gone[0], app))
        emu.delete_user(gone[0])
        tokens.append("f" * 32)
        source = tmp_path / "tokens.txt"
        source.write_text("\n".join(tokens) + "\n")
        env = {
            **os.environ,
            "TWINNE_BASE_URL": emu.base_url,
            "TWINNE_APP_ID": app.app_id,
            "TWINNE_APP_SECRET": app.secret,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            str(source),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1, err.decode()
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert sorted(int(row["line"]) for row in rows) == list(range(1, 53))
    outcomes = {int(row["line"]): row["outcome"] for row in rows}
    assert [outcomes[n] for n in range(1, 51)] == ["ok"] * 50
    assert outcomes[51] == "the user was deleted"
    assert outcomes[52].startswith("failed: ")
    assert "f" * 32 not in out.decode()
