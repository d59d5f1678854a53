"""aiotwinne's benchmark suite: the library's cost next to raw aiohttp and httpx.

Run everything with ``python -m benchmarks`` (``make bench``); see
``benchmarks/README.md`` for what is measured and how to read the results.
Every comparison runs its contenders interleaved in the same run (A B A B ...)
and reports ratios, so machine noise cancels out.
"""

from __future__ import annotations

__all__: list[str] = []
