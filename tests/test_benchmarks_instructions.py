"""benchmarks.instructions: callgrind's total is read right, every contender calls, a count runs.

The last test runs one contender under a real ``valgrind --tool=callgrind``
(installed by ``.ci/run``; in CI a missing valgrind fails, never skips). It
asserts only what any machine gives: a positive count that grows with the
calls, never a figure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks import instructions
from benchmarks._child import start_together
from benchmarks._upstream import UpstreamProcess

# require_binary (skip locally, fail in CI) is the web tests' own, in websupport
# beside their conftest: put that folder on sys.path, as tests/reliability does.
_WEB_TESTS = str(Path(__file__).resolve().parent / "integration" / "web")
if _WEB_TESTS not in sys.path:
    sys.path.insert(0, _WEB_TESTS)

from websupport import require_binary  # noqa: E402

_REPORT = """\
==4242== Callgrind, a call-graph generating cache profiler
==4242== Command: python -m benchmarks.instructions --child dict --calls 3
==4242==
==4242== Events    : Ir
==4242== Collected : 912345678
==4242==
==4242== I   refs:      912,345,678
"""


@pytest.fixture(scope="module")
def static() -> Iterator[UpstreamProcess]:
    """The static replay upstream the counted children call, in its own process."""
    upstream = UpstreamProcess("static")
    with ExitStack() as stack:
        start_together(stack, upstream)
        yield upstream


def test_parse_collected_reads_callgrinds_total() -> None:
    assert instructions.parse_collected(_REPORT) == 912_345_678


def test_parse_collected_without_a_total_says_what_valgrind_said() -> None:
    report = "==1== Callgrind\nvalgrind: failed to start tool 'callgrind'\n"
    with pytest.raises(RuntimeError, match="failed to start tool"):
        instructions.parse_collected(report)


@pytest.mark.parametrize("name", instructions.CONTENDERS)
async def test_each_contender_makes_the_calls_it_is_asked(
    static: UpstreamProcess, name: str
) -> None:
    """What a counted child runs: exactly *calls* requests reach the upstream."""
    static.command("reset")
    await instructions.run_calls(static.info, name, 5)
    assert static.stats()["requests"] == 5


def test_report_and_markdown_put_every_contender_against_the_dict(tmp_path: Path) -> None:
    per_call = dict(zip(instructions.CONTENDERS, (1000, 1100, 1010, 1050, 1250), strict=True))
    result = instructions.report(per_call, calls=7)
    assert result["added_to_dict"] == {
        "dict": 0,
        "dict, json twice": 100,
        "dict, client's session": 10,
        "+ model": 50,
        "aiotwinne": 250,
    }
    assert result["dict_over_aiotwinne"] == 0.8
    assert result["command"] == "python -m benchmarks.instructions --calls 7"
    text = instructions.markdown(result)
    assert "| aiotwinne | 1,250 | +250 |" in text
    assert "dict / aiotwinne: **0.800**" in text


def test_a_contender_counted_under_valgrind(static: UpstreamProcess) -> None:
    """Two real callgrind runs of one child: counts are positive and grow with the calls."""
    valgrind = require_binary("valgrind")
    one = instructions.count_calls(static.info, "dict", 1, valgrind=valgrind)
    many = instructions.count_calls(static.info, "dict", 21, valgrind=valgrind)
    assert 0 < one < many
