"""Issue 13's findings, each as a named test on SQLite and PostgreSQL (warehouse rows seeded directly).

The pulls behind them (partly read records end to end, the sandbox's case-insensitive codes) are in
tests/actions/test_fail_safe.py, tests/unit/test_normalize.py and the differential test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from regsync import definitions as words
from regsync.actions.candidates import PlanContext, make_plan
from regsync.actions.journal import END, SUBMIT
from regsync.config import RuleSettings
from regsync.reconcile import rules
from regsync.reconcile.rules import ReconcileSettings, pending_registrations
from regsync.sandbox.generator import Thresholds
from regsync.settings.actions import ActionSettings
from tests.actions import idle_cart
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

ACTIONS = ActionSettings(max_writes=10_000, max_share=1.0)
SESSIONS = [sf_session("S1", "101"), sf_session("S2", "102")]


def partly(row: dict[str, Any], parts: str, why: str = "unreadable") -> dict[str, Any]:
    return {**row, "unreadable_parts": parts, "unreadable": why}


def planned(engine: Engine, kind: str) -> set[str]:
    with engine.connect() as connection:
        plan = make_plan(connection, PlanContext(ACTIONS, NOW), [kind])
    return {candidate.target_id for candidate in plan.candidates[kind]}


def reasons(engine: Engine, kind: str) -> dict[str, str]:
    with engine.connect() as connection:
        plan = make_plan(connection, PlanContext(ACTIONS, NOW), [kind], explained=True)
    return {e.target_id: e.reason for e in plan.explanations}


# -- finding 1: partly read registrations ---------------------------------------------------------


def test_finding_1_a_partly_read_registration_keeps_its_booking_and_its_own_mismatches(
    warehouse: Engine,
) -> None:
    seed(
        warehouse,
        registrations_=[
            partly(registration("r1", status="Completed", cart="c1", code="B1"), ",amount,"),
            partly(
                registration("r2", status="Completed", cart="c2", code="B2", amount="5.00"), ",attendees,"
            ),
        ],
        bookings_=[booking(1, "B1", status="PEND"), booking(2, "B2", status="PAID", total="9.00")],
        lines=[line(2, "1", "101", 3)],
        sessions=SESSIONS,
        attendees={"r2": [["S1"]]},
    )
    assert found(warehouse, "BOOKING_WITHOUT_REGISTRATION") == []  # its booking is carried
    assert flagged(found(warehouse, "COMPLETED_BOOKING_UNPAID")) == {"r1"}  # its readable rules run
    assert flagged(found(warehouse, "AMOUNT_MISMATCH")) == {"r2"}  # amount read, attendees not
    assert found(warehouse, "ATTENDEE_COUNT_MISMATCH") == []  # 1 seat read of 3 booked: not checked
    items = found(warehouse, "REGISTRATION_PARTLY_READ")
    assert {(m.registration_id, m.sf_value) for m in items} == {("r1", "amount"), ("r2", "attendees")}


def test_finding_1_a_partly_read_draft_is_never_submitted(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            partly(registration("r1", code="B1", created=ago(days=2)), ",amount,"),
            registration("r2", code="B2", created=ago(days=2)),
        ],
        bookings_=[booking(1, "B1"), booking(2, "B2")],
        attendees={"r1": [["S1"]], "r2": [["S1"]]},
    )
    assert planned(warehouse, SUBMIT) == {"r2"}
    assert reasons(warehouse, SUBMIT)["r1"] == "partly_read"
    with warehouse.connect() as connection:  # and reconcile agrees: not pending, not overdue
        assert set(connection.execute(pending_registrations(DEFAULTS, NOW)).scalars()) == {"r2"}
    assert flagged(found(warehouse, "DRAFT_BOOKING_PAID")) == {"r2"}


def test_finding_1_fail_safe_holds_booking_sessions_of_partly_read_registrations(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            partly(registration("r1", status="Completed", cart="c1", code="B1"), ",attendees,"),
            partly(registration("r2", status="Failed", cart="c2", deleted=True), ",amount,"),
            registration("r3", status="Failed", cart="c3"),  # fully read, not needed: ended
        ],
        bookings_=[booking(1, "B1")],
        carts=[idle_cart(c, 2 * 86400) for c in ("c1", "c2", "c3")],
    )
    assert planned(warehouse, END) == {"c3"}
    held = reasons(warehouse, END)
    assert (held["c1"], held["c2"]) == ("held_partly_read", "held_partly_read")


def test_finding_1_fail_safe_an_unreadable_link_holds_every_booking_session(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            partly(registration("r1", cart=None, created=ago(hours=3)), ",attendees,booking_session,"),
            registration("r3", status="Failed", cart="c3"),
        ],
        carts=[idle_cart("c3", 2 * 86400)],
    )
    assert planned(warehouse, END) == set()
    assert reasons(warehouse, END)["c3"] == "held_unreadable_link"


# -- finding 4: one reading of each open question -------------------------------------------------


def test_finding_4_a_null_amount_is_not_compared(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[registration("r1", status="Completed", code="B1")],
        bookings_=[booking(1, "B1", total="10.00")],
    )
    assert found(warehouse, "AMOUNT_MISMATCH") == []


def test_finding_4_money_is_compared_as_exact_decimals(warehouse: Engine) -> None:
    def exact(ident: str, code: str, amount: str) -> dict[str, Any]:
        row = registration(ident, status="Completed", code=code, amount=amount)
        return {**row, "amount_exact": amount if len(amount.split(".")[1]) > 2 else None}

    seed(
        warehouse,
        registrations_=[
            exact("r1", "B1", "100.005"),  # vs 99.99: 0.015 > 0.01 (rounded to cents it would be 0.01)
            exact("r2", "B2", "100.004"),  # vs 99.99: 0.014 > 0.01
            exact("r3", "B3", "99.995"),  # vs 99.99: 0.005
            exact("r4", "B4", "100.00"),  # vs 99.99: 0.01, not more
        ],
        bookings_=[booking(n, f"B{n}", total="99.99") for n in range(1, 5)],
    )
    assert flagged(found(warehouse, "AMOUNT_MISMATCH")) == {"r1", "r2"}
    loose = ReconcileSettings(amount_tolerance="0.015")
    assert flagged(found(warehouse, "AMOUNT_MISMATCH", loose)) == set()


def test_finding_4_a_session_listed_twice_is_one_seat(warehouse: Engine) -> None:
    # The loader stores distinct Session ids per attendee (tests/unit/test_normalize.py); two
    # attendees on S1 need two seats, one attendee listing S1 twice needs one.
    seed(
        warehouse,
        registrations_=[registration("r1", status="Completed", code="B1")],
        bookings_=[booking(1, "B1")],
        lines=[line(1, "1", "101", 1)],
        sessions=SESSIONS,
        attendees={"r1": [["S1", "S1"]]},
    )
    assert found(warehouse, "ATTENDEE_COUNT_MISMATCH") == []


def test_finding_4_a_line_of_quantity_0_books_nothing(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            registration("r1", status="Completed", code="B1"),
            registration("r2", status="Completed", code="B2"),
        ],
        bookings_=[booking(1, "B1"), booking(2, "B2")],
        lines=[
            line(1, "1", "101", 2),
            line(1, "2", "102", 0),
            line(2, "1", "101", 1),
            line(2, "2", "102", 0),
        ],
        sessions=SESSIONS,
        attendees={"r1": [["S1"], ["S1"]], "r2": [["S1"], ["S2"]]},
    )
    assert found(warehouse, "ATTENDEE_SESSIONS_MISMATCH")[0].registration_id == "r2"  # 102 not booked
    assert flagged(found(warehouse, "ATTENDEE_SESSIONS_MISMATCH")) == {"r2"}
    assert flagged(found(warehouse, "ATTENDEE_COUNT_MISMATCH")) == {"r2"}  # 2 needed, 1 booked


def test_finding_4_planner_and_reconcile_agree_on_a_young_booking(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[registration("r1", code="B1", created=ago(days=2))],
        bookings_=[booking(1, "B1", created=NOW - timedelta(minutes=5))],
        attendees={"r1": [["S1"]]},
    )
    assert planned(warehouse, SUBMIT) == {"r1"}
    assert flagged(found(warehouse, "DRAFT_BOOKING_PAID")) == {"r1"}


def test_finding_4_lower_case_booking_status_is_confirmed(warehouse: Engine) -> None:
    # Booking statuses are stored upper-cased (normalize); configured ones too.
    seed(
        warehouse,
        registrations_=[registration("r1", status="Completed", code="B1")],
        bookings_=[booking(1, "B1", status="PAID")],
    )
    lower = ReconcileSettings(confirmed_statuses=("paid", " part "))
    assert found(warehouse, "COMPLETED_BOOKING_UNPAID", lower) == []


def test_finding_4_a_draft_with_no_booking_session_and_no_booking(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            registration("r1", created=ago(days=2)),
            registration("r2", created=ago(days=8)),
        ],
    )
    assert found(warehouse, "BOOKING_SESSION_MISSING") == []
    assert flagged(found(warehouse, "STALE_DRAFT")) == {"r2"}


def test_finding_4_in_flight_records_still_protect_and_carry(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[registration("r1", cart="c1", code="B1", created=FRESH)],
        bookings_=[booking(1, "B1", status="PEND")],
        carts=[idle_cart("c1", 2 * 86400)],
    )
    assert found(warehouse, "BOOKING_WITHOUT_REGISTRATION") == []  # carried by a young registration
    assert planned(warehouse, END) == set()  # protected by it
    assert planned(warehouse, SUBMIT) == set()
    with warehouse.connect() as connection:
        assert rules.evaluate(connection, DEFAULTS, NOW) == []  # never the subject of a mismatch


def test_finding_4_a_completed_registration_whose_code_names_no_booking(warehouse: Engine) -> None:
    seed(warehouse, registrations_=[registration("r1", status="Completed", code="NOPE")])
    assert flagged(found(warehouse, "BOOKING_NOT_FOUND")) == {"r1"}


def test_finding_4_two_registrations_carrying_one_code(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[
            registration("r1", status="Completed", code="B1"),
            registration("r2", status="Failed", code="B1"),
            registration("r3", status="Completed", code="B1", deleted=True),
        ],
        bookings_=[booking(1, "B1")],
    )
    items = found(warehouse, "DUPLICATE_BOOKING_CODE")
    assert flagged(items) == {"r1", "r2"}
    assert {m.sf_value for m in items} == {"2 registrations"}


def test_finding_4_to_process_without_a_code_whose_cart_was_booked(warehouse: Engine) -> None:
    seed(
        warehouse,
        registrations_=[registration("r1", status="To Process", cart="c1"), registration("r2", cart="c2")],
        carts=[cart("c1", "missing"), cart("c2", "missing")],
    )
    assert flagged(found(warehouse, "BOOKING_CODE_MISSING")) == {"r1"}
    assert flagged(found(warehouse, "BOOKING_SESSION_MISSING")) == {"r2"}


# -- finding 6: one definition ---------------------------------------------------------------------


def test_finding_6_statuses_and_thresholds_are_defined_once() -> None:
    defaults = {
        "in_flight_s": words.IN_FLIGHT_S,
        "stale_session_ttl_s": words.STALE_SESSION_TTL_S,
        "stale_draft_s": words.STALE_DRAFT_S,
        "confirmed_statuses": words.CONFIRMED_STATUSES,
    }
    for model in (ReconcileSettings(), ActionSettings(), RuleSettings(), Thresholds()):
        assert {name: getattr(model, name) for name in defaults} == defaults, type(model).__name__
    assert ReconcileSettings().overdue_s == Thresholds().overdue_s == words.OVERDUE_S
    assert str(ReconcileSettings().amount_tolerance) == words.AMOUNT_TOLERANCE
    from regsync.actions import candidates

    assert rules.IN_PROGRESS_STATUSES is candidates.IN_PROGRESS_STATUSES is words.IN_PROGRESS_STATUSES
