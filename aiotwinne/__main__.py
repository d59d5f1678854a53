"""``python -m aiotwinne``: the same as the ``aiotwinne`` command."""

from __future__ import annotations

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
