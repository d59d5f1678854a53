"""user_info_to_json: a UserInfo as typed JSON values (what the CLI prints)."""

from __future__ import annotations

import datetime as dt
import doctest
import json

import attrs

from aiotwinne import models
from aiotwinne.models import UserInfo, user_info_from_wire, user_info_to_json

BASE = "https://twinne.example"


def test_every_field_is_a_key_with_its_typed_value() -> None:
    """Numbers, booleans, ISO dates and times, text and None, under the model's names."""
    user = UserInfo(
        id=42,
        username="ada",
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        birthdate=dt.date(1815, 12, 10),
        registered=dt.datetime(2021, 3, 4, 10, 11, 12),
        verified=True,
        website=None,
    )
    data = user_info_to_json(user)
    assert list(data) == [field.name for field in attrs.fields(UserInfo)]
    assert data["id"] == 42
    assert data["verified"] is True
    assert data["birthdate"] == "1815-12-10"
    assert data["registered"] == "2021-03-04T10:11:12"
    assert data["first_name"] == "Ada"
    assert data["website"] is None


def test_extra_holds_the_unmapped_wire_keys_as_sent() -> None:
    """Keys the model does not map come out under "extra", as Twinne sent them."""
    wire = {"user_id": "7", "user_name": "bob", "user_level": "3", "badges": ["a", None]}
    data = user_info_to_json(user_info_from_wire(wire, base_url=BASE))
    assert data["extra"] == {"user_level": "3", "badges": ["a", None]}
    assert type(data["extra"]) is dict


def test_the_result_survives_json_and_reads_back_the_same() -> None:
    """json.dumps takes it as is; the text decodes to the same values."""
    wire = {
        "user_id": "9",
        "user_name": "zoë",
        "user_birthdate": "0000-00-00",
        "user_registered": "2020-01-02 03:04:05",
        "user_verified": "1",
        "user_picture": "photos/z.jpg",
    }
    data = user_info_to_json(user_info_from_wire(wire, base_url=BASE))
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert data["birthdate"] is None  # MySQL's zero date means "none"
    assert data["picture_url"] == f"{BASE}/content/uploads/photos/z.jpg"


def test_the_docstring_example_holds() -> None:
    """The example in user_info_to_json's docstring runs as written."""
    finder = doctest.DocTestFinder()
    (test,) = finder.find(models.user_info_to_json, "user_info_to_json", globs=vars(models))
    result = doctest.DocTestRunner().run(test)
    assert result.attempted == 3
    assert result.failed == 0
