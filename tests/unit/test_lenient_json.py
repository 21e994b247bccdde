"""Vendors publish broken JSON; regsync must read it (the cases mirror what their docs show)."""

from __future__ import annotations

import pytest

from regsync.clients import lenient_json


def test_strict_json_is_untouched() -> None:
    assert lenient_json.loads(b'{"a": "x \\"y\\"", "b": [1, 2]}') == {"a": 'x "y"', "b": [1, 2]}


def test_unescaped_quotes_inside_a_string() -> None:
    body = b'{"rate": {"summary": "<b title="Kids">Kids:</b> 2 @ $10.00", "qty": 2}}'
    assert lenient_json.loads(body) == {"rate": {"summary": '<b title="Kids">Kids:</b> 2 @ $10.00', "qty": 2}}


def test_trailing_commas() -> None:
    body = b'{"attendeeList": [{"id": "a", "sessionIds": ["s1", "s2"],}], "submit": true,}'
    assert lenient_json.loads(body) == {
        "attendeeList": [{"id": "a", "sessionIds": ["s1", "s2"]}],
        "submit": True,
    }


def test_missing_comma_between_lines() -> None:
    body = b'{\n  "donationAmount": 50\n  "eventItemId": "x",\n  "sessionId": "abc"\n  "list": []\n}'
    assert lenient_json.loads(body) == {
        "donationAmount": 50,
        "eventItemId": "x",
        "sessionId": "abc",
        "list": [],
    }


@pytest.mark.parametrize("body", [b'{"a": ', b"<html>oops</html>", b"", b'{"a": "b"'])
def test_hopeless_bodies_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        lenient_json.loads(body)
