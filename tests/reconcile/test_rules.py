"""Each reason code of docs/rules.md fires on its case and not on the near miss beside it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from regsync.reconcile.rules import (
    CODES,
    RULES,
    ReconcileSettings,
    evaluate,
    pending_registrations,
    severity_of,
)
from tests.reconcile import (
    DEFAULTS,
    FRESH,
    NOW,
    ago,
    booking,
    cart,
    flagged,
    found,
    line,
    registration,
    seed,
    sf_session,
)

SESSIONS = [sf_session("S1", "101"), sf_session("S2", "102"), sf_session("S3", "103")]


def test_booking_session_missing(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            registration("r1", cart="c1"),
            registration("r2", status="To Process", cart="c2", code="B2"),  # has a booking
            registration("r3", cart="c3"),  # alive
            registration("r4", cart="c4"),  # never read: unknown, not missing
            registration("r5", status="Completed", cart="c5"),
            registration("r6", cart="c6", deleted=True),
            registration("r7", cart="c7", created=FRESH),
            registration("r8", status="To Process", cart="c8", code="NOPE"),  # code, but no booking
        ],
        bookings_=[booking(2, "B2", status="PEND")],
        carts=[cart(c, "missing") for c in ("c1", "c2", "c5", "c6", "c7", "c8")] + [cart("c3")],
    )
    items = found(warehouse, "BOOKING_SESSION_MISSING")
    # r8 is To Process with a code naming no booking: BOOKING_NOT_FOUND (docs/rules.md), not this
    assert flagged(items) == {"r1"}
    first = items[0]
    assert (first.registration_id, first.booking_session_id, first.severity) == ("r1", "c1", "high")
    assert (first.sf_value, first.cf_value) == ("Draft, no booking", "session unknown or expired")
    assert "c1" in first.explanation


def test_booking_without_registration(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            registration("r4", status="Completed", code="B4"),
            registration("r5", code="B5", deleted=True),
        ],
        bookings_=[
            booking(1, "B1"),
            booking(2, "B2", status="VOID"),
            booking(3, "B3", status="STOP"),
            booking(4, "B4", status="PEND"),
            booking(5, "B5"),  # only a deleted registration carries it
            booking(6, "B6", created=FRESH),
        ],
    )
    items = found(warehouse, "BOOKING_WITHOUT_REGISTRATION")
    assert flagged(items) == {"B1", "B5"}
    first = items[0]
    assert (first.registration_id, first.booking_session_id, first.booking_code) == (None, None, "B1")
    assert (first.sf_value, first.cf_value) == ("no registration", "PAID")


def _count_case(warehouse: Engine) -> None:
    seed(
        warehouse,
        sessions=[*SESSIONS, sf_session("S4", "104", deleted=True)],
        registrations_=[
            registration(f"r{n}", status="Completed", code=f"B{n}", created=FRESH if n == 4 else ago(hours=2))
            for n in (1, 2, 3, 4, 5, 6, 7, 8, 10)
        ]
        + [registration("r9", status="Completed", code="B9", deleted=True)],
        bookings_=[booking(n, f"B{n}", fetched=n != 5) for n in range(1, 11)],
        attendees={
            "r1": [["S1"], ["S1"], ["S2"]],  # 3 seats, 2 booked
            "r2": [["S1"], ["S1"]],  # 2 seats, 2 booked + an add-on line not counted
            "r3": [["S1", "S2"]],  # 2 seats, 2 booked over two items
            "r4": [["S1"], ["S1"]],  # in flight
            "r5": [["S1"], ["S1"]],  # lines never fetched
            "r6": [["S1"], ["S1"]],  # moved to another item, same qty
            "r7": [["S9"]],  # mapped by config only
            "r8": [["S1"]],  # quantity changed
            "r9": [["S1"]],  # deleted
            "r10": [["S1"], ["S2"]],  # 2 seats on one item instead of two
        },
        lines=[
            line(1, "1", "101", 1),
            line(1, "2", "102", 1),
            line(2, "1", "101", 2),
            line(2, "1.1", "999", 5),
            line(3, "1", "101", 1),
            line(3, "2", "102", 1),
            line(4, "1", "101", 1),
            line(5, "1", "101", 1),
            line(6, "1", "102", 2),
            line(7, "1", "109", 1),
            line(8, "1", "101", 3),
            line(8, "2", "104", 4),  # item of a deleted Session: not mapped
            line(9, "1", "101", 2),
            line(10, "1", "101", 2),
        ],
    )


MAPPED = ReconcileSettings(session_item_mapping={"S9": "109"})


def test_attendee_count_mismatch(warehouse: Engine) -> None:
    _count_case(warehouse)
    items = found(warehouse, "ATTENDEE_COUNT_MISMATCH", MAPPED)
    assert flagged(items) == {"r1", "r8"}
    assert (items[0].sf_value, items[0].cf_value) == ("3 seats", "2 seats")
    assert (items[1].sf_value, items[1].cf_value) == ("1 seat", "3 seats")
    # without the config mapping S9 maps to nothing: one seat needed, none booked
    assert flagged(found(warehouse, "ATTENDEE_COUNT_MISMATCH")) == {"r1", "r7", "r8"}


def test_attendee_sessions_mismatch(warehouse: Engine) -> None:
    _count_case(warehouse)
    items = found(warehouse, "ATTENDEE_SESSIONS_MISMATCH", MAPPED)
    assert flagged(items) == {"r6", "r10"}
    by_id = {item.registration_id: item for item in items}
    assert (by_id["r10"].sf_value, by_id["r10"].cf_value) == ("items 101, 102", "items 101")
    assert (by_id["r6"].sf_value, by_id["r6"].cf_value) == ("items 101", "items 102")
    assert by_id["r6"].severity == "medium"
    unmapped = found(warehouse, "ATTENDEE_SESSIONS_MISMATCH")
    assert flagged(unmapped) == {"r6", "r10"}  # 109 is then no mapped item on either side


def test_config_mapping_overrides_the_session_field(warehouse: Engine) -> None:
    seed(
        warehouse,
        sessions=SESSIONS,
        registrations_=[registration("r1", status="Completed", code="B1")],
        bookings_=[booking(1, "B1")],
        attendees={"r1": [["S3"]]},
        lines=[line(1, "1", "104", 1)],
    )
    codes = {"ATTENDEE_SESSIONS_MISMATCH", "ATTENDEE_COUNT_MISMATCH"}
    with warehouse.connect() as connection:
        plain = {item.code for item in evaluate(connection, DEFAULTS, NOW)}
        mapped = ReconcileSettings(session_item_mapping={"S3": "104"})
        overridden = {item.code for item in evaluate(connection, mapped, NOW)}
    assert codes <= plain
    assert not codes & overridden


def test_completed_booking_unpaid(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            registration("r1", status="Completed", code="B1"),
            registration("r2", status="Completed", code="B2"),
            registration("r3", status="Completed", code="B3"),
            registration("r4", status="Completed", code="B4", deleted=True),
            registration("r5", code="B5"),
            registration("r6", status="Completed", code="B6"),
            registration("r7", status="Completed"),  # no booking at all
        ],
        bookings_=[
            booking(1, "B1", status="PEND"),
            booking(2, "B2", status="PAID"),
            booking(3, "B3", status="PART"),
            booking(4, "B4", status="PEND"),
            booking(5, "B5", status="PEND"),
            booking(6, "B6", status="PEND", created=FRESH),
        ],
    )
    items = found(warehouse, "COMPLETED_BOOKING_UNPAID")
    # r6's booking is young, but registration-level codes look at the registration's age only
    assert flagged(items) == {"r1", "r6"}
    assert (items[0].sf_value, items[0].cf_value) == ("Completed", "PEND")
    paid_only = ReconcileSettings(confirmed_statuses=("paid",))
    assert flagged(found(warehouse, "COMPLETED_BOOKING_UNPAID", paid_only)) == {"r1", "r3", "r6"}


def test_draft_booking_paid(warehouse: Engine) -> None:
    overdue, recent = ago(hours=25), ago(hours=23)
    seed(
        warehouse,
        registrations_=[
            registration("r1", code="B1", created=overdue),
            registration("r2", code="B2", created=recent),  # pending, not yet overdue
            registration("r3", code="B3", created=overdue),  # an attendee without a session
            registration("r4", code="B4", created=overdue),  # no attendee
            registration("r5", code="B5", created=overdue),  # booking not confirmed
            registration("r6", code="B6", created=overdue, deleted=True),
            registration("r7", status="To Process", code="B7", created=overdue),
        ],
        bookings_=[booking(n, f"B{n}", status="PEND" if n == 5 else "PART") for n in range(1, 8)],
        attendees={
            "r1": [["S1"], ["S2"]],
            "r2": [["S1"]],
            "r3": [["S1"], []],
            "r5": [["S1"]],
            "r6": [["S1"]],
            "r7": [["S1"]],
        },
    )
    items = found(warehouse, "DRAFT_BOOKING_PAID")
    assert flagged(items) == {"r1"}
    assert (items[0].sf_value, items[0].cf_value) == ("Draft", "PART")
    with warehouse.connect() as connection:
        pending = set(connection.execute(pending_registrations(DEFAULTS, NOW)).scalars())
    assert pending == {"r1", "r2"}


def test_duplicate_registration(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            registration("r1", cart="c1"),
            registration("r2", status="Failed", cart="c1"),
            registration("r3", cart="c2"),
            registration("r4", cart="c2", deleted=True),
            registration("r5", cart="c3"),
            registration("r6", cart="c3", created=FRESH),
            registration("r7"),
            registration("r8"),  # no booking session: NULLs are not duplicates
        ],
    )
    items = found(warehouse, "DUPLICATE_REGISTRATION")
    assert flagged(items) == {"r1", "r2"}
    assert {(i.booking_session_id, i.sf_value, i.cf_value) for i in items} == {
        ("c1", "2 registrations", "1 booking session")
    }


def test_amount_mismatch(warehouse: Engine) -> None:
    totals = {1: "90.00", 2: "100.01", 3: "100.02", 4: "100.00", 5: "50.00", 6: "99.98"}
    seed(
        warehouse,
        registrations_=[
            registration("r1", status="Completed", code="B1", amount="100.00"),
            registration("r2", status="Completed", code="B2", amount="100.00"),  # within tolerance
            registration("r3", status="Completed", code="B3", amount="100.00"),
            registration("r4", status="Completed", code="B4"),  # no amount
            registration("r5", status="Completed", code="B5", amount="100.00", deleted=True),
            registration("r6", status="Completed", code="B6", amount="100.00"),
        ],
        bookings_=[booking(n, f"B{n}", total=total) for n, total in totals.items()],
    )
    items = found(warehouse, "AMOUNT_MISMATCH")
    assert flagged(items) == {"r1", "r3", "r6"}
    assert (items[0].sf_value, items[0].cf_value) == ("100.00", "90.00")
    lenient = ReconcileSettings(amount_tolerance=Decimal("0.02"))
    assert flagged(found(warehouse, "AMOUNT_MISMATCH", lenient)) == {"r1"}


def test_stale_draft(warehouse: Engine) -> None:
    stale = ago(days=8)
    seed(
        warehouse,
        registrations_=[
            registration("r1", created=stale),
            registration("r2", code="B2", created=stale),
            registration("r3", code="B3", created=stale),  # protected: confirmed booking
            registration("r4", created=ago(days=6)),
            registration("r5", created=stale, deleted=True),
            registration("r6", status="To Process", created=stale),
        ],
        bookings_=[booking(2, "B2", status="PEND"), booking(3, "B3", status="PAID")],
    )
    items = found(warehouse, "STALE_DRAFT")
    assert flagged(items) == {"r1", "r2"}
    assert [(i.sf_value, i.cf_value) for i in items] == [
        ("2025-05-24", "no booking"),
        ("2025-05-24", "booking PEND"),
    ]
    assert items[0].severity == "low"


def test_evaluate_is_sorted_deterministic_and_uses_now(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[registration(f"r{n}", cart="shared", created=ago(days=n + 7)) for n in (3, 1, 2)],
        bookings_=[booking(9, "ORPHAN")],
    )
    with warehouse.connect() as connection:
        first = evaluate(connection, DEFAULTS, NOW)
        again = evaluate(connection, DEFAULTS, NOW)
        earlier = evaluate(connection, DEFAULTS, ago(days=100))
    assert first == again
    assert first == sorted(first, key=lambda m: m.sort_key())
    assert [m.code for m in first] == ["BOOKING_WITHOUT_REGISTRATION"] + ["DUPLICATE_REGISTRATION"] * 3 + [
        "STALE_DRAFT"
    ] * 3
    assert [m.registration_id for m in first[1:4]] == ["r1", "r2", "r3"]
    assert earlier == []  # before anything was created, everything is in flight


def test_settings_validation_and_severity_overrides() -> None:
    settings = ReconcileSettings.model_validate(
        {
            "confirmed_statuses": ["paid", " part "],
            "amount_tolerance": 0.01,
            "severity": {"STALE_DRAFT": "high"},
        }
    )
    assert settings.confirmed_statuses == ("PAID", "PART")
    assert settings.amount_tolerance == Decimal("0.01")
    assert severity_of(settings, "STALE_DRAFT") == "high"
    assert severity_of(settings, "AMOUNT_MISMATCH") == "high"
    with pytest.raises(ValidationError, match="unknown reason code"):
        ReconcileSettings(severity={"NOT_A_CODE": "low"})
    with pytest.raises(ValidationError):
        ReconcileSettings(unknown_threshold=1)
    with pytest.raises(ValidationError):
        ReconcileSettings(confirmed_statuses=())


def test_rule_table_matches_the_contract() -> None:
    assert CODES == (
        "BOOKING_SESSION_MISSING",
        "BOOKING_WITHOUT_REGISTRATION",
        "ATTENDEE_COUNT_MISMATCH",
        "ATTENDEE_SESSIONS_MISMATCH",
        "COMPLETED_BOOKING_UNPAID",
        "DRAFT_BOOKING_PAID",
        "DUPLICATE_REGISTRATION",
        "AMOUNT_MISMATCH",
        "STALE_DRAFT",
        "BOOKING_CODE_MISSING",
        "BOOKING_NOT_FOUND",
        "DUPLICATE_BOOKING_CODE",
        "REGISTRATION_PARTLY_READ",
    )
    assert tuple(rule.code for rule in RULES) == CODES  # one rule per code, in report order
    assert {rule.code: rule.severity for rule in RULES} == {
        "BOOKING_SESSION_MISSING": "high",
        "BOOKING_WITHOUT_REGISTRATION": "high",
        "ATTENDEE_COUNT_MISMATCH": "high",
        "ATTENDEE_SESSIONS_MISMATCH": "medium",
        "COMPLETED_BOOKING_UNPAID": "high",
        "DRAFT_BOOKING_PAID": "medium",
        "DUPLICATE_REGISTRATION": "medium",
        "AMOUNT_MISMATCH": "high",
        "STALE_DRAFT": "low",
        "BOOKING_CODE_MISSING": "high",
        "BOOKING_NOT_FOUND": "high",
        "DUPLICATE_BOOKING_CODE": "medium",
        "REGISTRATION_PARTLY_READ": "medium",
    }


def test_naive_now_is_refused(warehouse: Engine) -> None:
    with warehouse.connect() as connection, pytest.raises(ValueError, match="timezone-aware"):
        evaluate(connection, DEFAULTS, datetime(2025, 1, 1))
