"""A byte-order mark (U+FEFF) in an identifier is refused like other invisible characters."""

from __future__ import annotations

import pytest

from aiotwinne import TwinneClient
from aiotwinne import _protocol as p


@pytest.mark.parametrize("value", ["\ufeff" + "a" * 32, "a" * 16 + "\ufeff" + "a" * 16])
def test_check_identifier_refuses_a_byte_order_mark(value: str) -> None:
    """A secret read from a file saved with a BOM is refused locally, the value never echoed."""
    with pytest.raises(ValueError, match="app_secret contains") as info:
        p.check_identifier("app_secret", value)
    assert "a" * 16 not in str(info.value)


def test_the_client_refuses_a_secret_with_a_byte_order_mark() -> None:
    """TwinneClient checks its credentials with the same rule, before any request."""
    with pytest.raises(ValueError, match="app_secret"):
        TwinneClient("1", "\ufeff" + "b" * 32)
