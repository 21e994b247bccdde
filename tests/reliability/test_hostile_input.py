"""Hostile and malformed input: every normalizer rejects with a reason or accepts; nothing else escapes."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regsync.clients import lenient_json
from regsync.config import RegistrationFields
from regsync.errors import RecordRejected
from regsync.extract import soql
from regsync.normalize.checkfront import (
    normalize_booking_index_entry,
    normalize_booking_lines,
    normalize_booking_session,
)
from regsync.normalize.salesforce import normalize_registration
from regsync.sandbox import soql as soql_parser
from regsync.sandbox.store import REGISTRATION, SCHEMAS

FIELDS = RegistrationFields()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOSTILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=5000, max_size=20000),
    st.sampled_from(
        ["", "Draft", "Completed", "1e309", "NaN", "2013-05-20T20:49:32.000+0000", "\u0000", '"', "{", "[]"]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


def rejection(normalize: Any, *args: Any) -> str | None:
    """The reason a normalizer rejected its input, or None when it accepted it.

    Any exception other than RecordRejected propagates and fails the test: that is the point.
    """
    try:
        normalize(*args)
    except RecordRejected as exc:
        return str(exc)
    return None


def _good_registration() -> dict[str, Any]:
    payload = {
        "sessionId": "cart",
        "attendeeList": [{"id": "a0A0U0000000001AAA", "sessionIds": ["a0S0U0000000001AAA"]}],
    }
    return {
        "Id": "a160U0000000001AAA",
        "Name": "ERS-1",
        "IsDeleted": False,
        "CreatedDate": "2025-03-01T10:00:00.000+0000",
        "LastModifiedDate": "2025-03-01T11:00:00.000+0000",
        "SystemModstamp": "2025-03-01T11:00:00.000+0000",
        "conference360__Status__c": "Draft",
        "conference360__Event__c": None,
        "conference360__Attendee_JSON__c": json.dumps(payload),
        "conference360__Amount__c": 10.0,
        "Checkfront_Booking_Code__c": None,
    }


@HOSTILE
@given(field=st.sampled_from(sorted(_good_registration())), value=json_values)
def test_registration_with_any_value_in_any_field(field: str, value: Any) -> None:
    record = _good_registration() | {field: value}
    reason = rejection(normalize_registration, record, FIELDS)
    assert reason is None or reason.strip()  # rejected records always carry a reason


@HOSTILE
@given(payload=json_values)
def test_attendee_json_of_any_shape(payload: Any) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    reason = rejection(
        normalize_registration, _good_registration() | {"conference360__Attendee_JSON__c": text}, FIELDS
    )
    assert reason is None or reason.strip()


@HOSTILE
@given(deep=st.integers(min_value=100, max_value=5000))
def test_deeply_nested_attendee_json(deep: int) -> None:
    text = "[" * deep + "]" * deep
    reason = rejection(
        normalize_registration, _good_registration() | {"conference360__Attendee_JSON__c": text}, FIELDS
    )
    assert reason is not None
    assert "JSON" in reason


@HOSTILE
@given(record=json_values)
def test_checkfront_payloads_of_any_shape(record: Any) -> None:
    for normalize in (
        lambda r: normalize_booking_session(r, NOW),
        lambda r: normalize_booking_index_entry(r, NOW),
        normalize_booking_lines,
    ):
        reason = rejection(normalize, record)
        assert reason is None or reason.strip()


@HOSTILE
@given(body=st.binary(max_size=2000))
def test_broken_bodies_parse_or_raise_value_error(body: bytes) -> None:
    with contextlib.suppress(ValueError):  # anything but ValueError fails the test
        lenient_json.loads(body)


SCHEMA_MAP = {name.lower(): (name, schema.fields) for name, schema in SCHEMAS.items()}


@HOSTILE
@given(
    value=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200
    )
)
def test_soql_literals_cannot_escape_their_quotes(value: str) -> None:
    """Whatever a record id or name holds, the query means exactly `Name = <that value>`."""
    query = f"SELECT Id FROM {REGISTRATION} WHERE Name = {soql.literal(value)}"
    bound = soql_parser.bind(soql_parser.parse(query), SCHEMA_MAP)
    where = bound.where
    assert isinstance(where, soql_parser.Comparison)
    assert where.field == "Name"
    assert where.op == "="
    # Salesforce treats '' as null; anything else must come back unchanged.
    assert where.value == (value or None)
