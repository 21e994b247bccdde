from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from regsync.config import RegistrationFields
from regsync.errors import RecordRejected
from regsync.normalize.checkfront import (
    normalize_booking_index_entry,
    normalize_booking_lines,
    normalize_booking_session,
)
from regsync.normalize.salesforce import normalize_registration

FIELDS = RegistrationFields()
ERS = "a160U0000000001AAA"
ATT1 = "a0A0U0000000001AAA"
ATT2 = "a0A0U0000000002AAA"
S1 = "a0S0U0000000001AAA"
S2 = "a0S0U0000000002AAA"


def registration(**overrides: Any) -> dict[str, Any]:
    payload = {
        "id": ERS,
        "sessionId": "60rq7eme0tmhlmpkeg2fb2p287",
        "attendeeList": [{"id": ATT1, "sessionIds": [S1, S2]}, {"id": ATT2, "sessionIds": [S1]}],
    }
    record = {
        "attributes": {"type": "conference360__Event_Registration_Submission__c", "url": "/x"},
        "Id": ERS,
        "Name": "ERS-1",
        "IsDeleted": False,
        "CreatedDate": "2025-03-01T10:00:00.000+0000",
        "LastModifiedDate": "2025-03-01T11:00:00.000+0000",
        "SystemModstamp": "2025-03-01T11:00:00.500+0000",
        "conference360__Status__c": "Draft",
        "conference360__Event__c": "a0E0U0000000001AAA",
        "conference360__Attendee_JSON__c": json.dumps(payload),
        "conference360__Error_Message__c": None,
        "conference360__Amount__c": 130.1,
        "Checkfront_Booking_Code__c": "CFPP-290317",
    }
    record.update(overrides)
    return record


def test_registration_rows() -> None:
    rows = normalize_registration(registration(), FIELDS)
    row = rows.registration
    assert row["status"] == "Draft"
    assert row["booking_session_id"] == "60rq7eme0tmhlmpkeg2fb2p287"
    assert row["booking_code"] == "CFPP-290317"
    assert row["amount"] == Decimal("130.1")
    assert row["system_modstamp"] == datetime(2025, 3, 1, 11, 0, 0, 500000, tzinfo=UTC)
    assert row["attendee_count"] == 2
    assert row["seats_needed"] == 3
    assert [a["attendee_id"] for a in rows.attendees] == [ATT1, ATT2]
    assert {(s["position"], s["session_id"]) for s in rows.attendee_sessions} == {(0, S1), (0, S2), (1, S1)}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"conference360__Status__c": "Complete"}, "unknown value 'Complete'"),
        ({"SystemModstamp": 12345}, "SystemModstamp"),
        ({"SystemModstamp": "yesterday"}, "not a datetime"),
        ({"Id": "short"}, "not a Salesforce id"),
        ({"IsDeleted": "no"}, "IsDeleted"),
        ({"CreatedDate": None}, "CreatedDate"),
    ],
)
def test_bad_registrations_are_rejected_with_a_reason(overrides: dict[str, Any], reason: str) -> None:
    """Only an unreadable identity (Id, IsDeleted, Status, the dates) rejects a registration."""
    with pytest.raises(RecordRejected, match=reason):
        normalize_registration(registration(**overrides), FIELDS)


@pytest.mark.parametrize(
    ("overrides", "parts", "reason"),
    [
        ({"conference360__Amount__c": "lots"}, ",amount,", "not an amount"),
        ({"conference360__Amount__c": True}, ",amount,", "boolean"),
        ({"conference360__Amount__c": 1e16}, ",amount,", "out of range"),
        ({"conference360__Attendee_JSON__c": "{not json"}, ",attendees,booking_session,", "not valid JSON"),
        ({"conference360__Attendee_JSON__c": "[1,2]"}, ",attendees,booking_session,", "JSON object"),
        ({"conference360__Attendee_JSON__c": "42"}, ",attendees,booking_session,", "JSON object"),
        (
            {"conference360__Attendee_JSON__c": json.dumps({"attendeeList": [{"id": "x"}]})},
            ",attendees,",
            "not a Salesforce id",
        ),
        (
            {"conference360__Attendee_JSON__c": json.dumps({"attendeeList": [{"sessionIds": [S1]}]})},
            ",attendees,",
            "not a Salesforce id",
        ),
        (
            {
                "conference360__Attendee_JSON__c": json.dumps(
                    {"attendeeList": [{"id": ATT1, "sessionIds": [S1, ""]}]}
                )
            },
            ",attendees,",
            "sessionIds",
        ),
        (
            {
                "conference360__Attendee_JSON__c": json.dumps(
                    {"attendeeList": [{"id": ATT1, "sessionIds": [None]}]}
                )
            },
            ",attendees,",
            "sessionIds",
        ),
        ({"Checkfront_Booking_Code__c": 17}, ",booking_code,", "expected text"),
    ],
)
def test_finding_1_partly_read_registrations_keep_identity_and_links(
    overrides: dict[str, Any], parts: str, reason: str
) -> None:
    """Finding 1: one unreadable part no longer drops the registration; it says what and why."""
    rows = normalize_registration(registration(**overrides), FIELDS)
    row = rows.registration
    assert (row["id"], row["status"]) == (ERS, "Draft")
    assert row["system_modstamp"] is not None
    assert row["unreadable_parts"] == parts
    assert reason in row["unreadable"]


def test_finding_1_amounts_up_to_16_integer_digits_and_sub_cent_digits() -> None:
    for value, amount in (("9999999999999999.99", "9999999999999999.99"), (1e12, "1000000000000")):
        row = normalize_registration(registration(conference360__Amount__c=value), FIELDS).registration
        assert row["unreadable"] is None
        assert row["amount"] == Decimal(amount)
    exact = normalize_registration(registration(conference360__Amount__c=100.005), FIELDS).registration
    assert exact["amount"] == Decimal("100.005")
    assert exact["amount_exact"] == "100.005"
    assert (
        normalize_registration(registration(conference360__Amount__c=100.5), FIELDS).registration[
            "amount_exact"
        ]
        is None
    )


def test_finding_1_a_truncated_payload_keeps_its_legible_booking_session() -> None:
    text = json.dumps({"sessionId": "cart-123", "attendeeList": [{"id": ATT1, "sessionIds": [S1]}]})
    row = normalize_registration(registration(conference360__Attendee_JSON__c=text[:40]), FIELDS).registration
    assert row["booking_session_id"] == "cart-123"
    assert row["unreadable_parts"] == ",attendees,booking_session,"


def test_the_same_session_twice_is_one_seat_and_codes_are_trimmed_upper_case() -> None:
    text = json.dumps({"sessionId": "c", "attendeeList": [{"id": ATT1, "sessionIds": [S1, S1]}]})
    row = normalize_registration(
        registration(conference360__Attendee_JSON__c=text, Checkfront_Booking_Code__c="  cfpp-1 "), FIELDS
    ).registration
    assert row["seats_needed"] == 1
    assert row["booking_code"] == "CFPP-1"


def test_unicode_and_empty_payloads() -> None:
    rows = normalize_registration(registration(Name="Zoë 🎟", conference360__Attendee_JSON__c=None), FIELDS)
    assert rows.registration["name"] == "Zoë 🎟"
    assert rows.registration["attendee_count"] == 0
    assert rows.registration["booking_session_id"] is None


def session_payload() -> dict[str, Any]:
    return {
        "id": "60rq7eme0tmhlmpkeg2fb2p287",
        "age": 120,
        "start_date": 1507186800,
        "end_date": 1507186800,
        "currency_id": "CAD",
        "sub_total": "130.00",
        "total": "130.00",
        "paid_total": "0.00",
        "qty": 1,
        "item": {
            "1": {
                "sku": "jump",
                "item_id": 18,
                "rate": {"total": "130.00", "qty": 2},
                "date": {"start_date": 1507186800, "end_date": 1507186800},
                "slip": "18.20171005X1-adults.2",
            },
            "1.1": {"sku": "photo", "item_id": 21, "rate": {"total": "18.00", "qty": 1}, "opt": "out"},
        },
    }


def test_booking_session_rows() -> None:
    read_at = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    rows = normalize_booking_session(session_payload(), read_at)
    assert rows.booking_session["state"] == "alive"
    assert rows.booking_session["last_activity_at"] == datetime(2025, 1, 1, 11, 58, tzinfo=UTC)
    assert rows.booking_session["total"] == Decimal("130.00")
    by_line = {line["line_id"]: line for line in rows.lines}
    assert by_line["1"]["qty"] == 2
    assert by_line["1"]["item_id"] == "18"
    assert by_line["1.1"]["is_package"] is True
    assert by_line["1.1"]["opted_in"] is False


def test_empty_cart_as_php_array() -> None:
    payload = session_payload() | {"item": []}
    assert normalize_booking_session(payload, datetime.now(UTC)).lines == []


@pytest.mark.parametrize(
    "change",
    [
        {"age": "old"},
        {"total": {"x": 1}},
        {"item": "nope"},
        {"item": {"1": {"item_id": "x", "rate": {"qty": 1}}}},
    ],
)
def test_bad_booking_sessions_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(RecordRejected):
        normalize_booking_session(session_payload() | change, datetime.now(UTC))


def test_booking_index_entry_and_lines() -> None:
    entry = {
        "booking_id": 2,
        "code": "CFPP-290317",
        "status_id": "PEND",
        "status_name": "Pending",
        "created_date": 1490854462,
        "total": "80.40",
        "tax_total": "13.40",
        "paid_total": "0.00",
    }
    row = normalize_booking_index_entry(entry, datetime.now(UTC))
    assert row["created_at"] == datetime(2017, 3, 30, 6, 14, 22, tzinfo=UTC)
    assert row["total"] == Decimal("80.40")
    booking_id, lines = normalize_booking_lines(
        {"booking_id": 2, "order": {"items": [{"line_id": "1", "item_id": 6, "qty": "2", "total": "6.30"}]}}
    )
    assert booking_id == 2
    assert lines[0]["qty"] == 2
    assert lines[0]["total"] == Decimal("6.30")
    with pytest.raises(RecordRejected, match="booking status"):
        normalize_booking_index_entry(entry | {"status_id": "P;D"}, datetime.now(UTC))
