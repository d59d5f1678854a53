"""The bulk fetch's refusal of an item that is not a string reads as English."""

from __future__ import annotations

import pytest

from aiotwinne import MalformedTokenError, RetryPolicy, TwinneClient


@pytest.mark.parametrize(
    ("item", "words"), [(7, "an int, not a str"), (None, "a NoneType, not a str")]
)
async def test_an_item_that_is_not_a_string_is_named_with_the_right_article(
    item: object, words: str
) -> None:
    """An int or None is refused before sending, named with the right article."""
    async with TwinneClient(
        "1", "s" * 32, base_url="http://127.0.0.1:9", retry=RetryPolicy.no_wait()
    ) as twinne:
        (result,) = await twinne.gather_profiles([item])  # type: ignore[list-item]
    assert isinstance(result.error, MalformedTokenError)
    assert str(result.error).endswith(words)
