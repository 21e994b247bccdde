"""Issue #13, items 2, 3 and 5: every booking, cart and line a rule reads reaches the warehouse.

Against a live sandbox, on both databases: bookings named by a registration whatever their age,
the backfill of the booking index, the cart behind a Completed registration, and lines edited
in Checkfront without a change of status or totals.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from regsync.actions.apply import policy_of
from regsync.actions.candidates import END, PlanContext, candidates
from regsync.jobs.pull import run_pull
from regsync.sandbox import Sandbox
from regsync.sandbox.store import REGISTRATION
from regsync.warehouse.tables import booking_lines, booking_sessions, bookings

pytestmark = pytest.mark.sandbox
NO_SLEEP = {"sleep": lambda _s: None}
YEAR = 365 * 86400


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(200, seed=5) as box:
        yield box


def registrations_with_bookings(sandbox: Sandbox, status: str | None = None) -> list[dict[str, Any]]:
    codes = {b["code"] for b in sandbox.store.checkfront.bookings.values()}
    return sorted(
        (
            r
            for r in sandbox.store.salesforce.tables[REGISTRATION].values()
            if r["Checkfront_Booking_Code__c"] in codes
            and not r["IsDeleted"]
            and (status is None or r["conference360__Status__c"] == status)
        ),
        key=lambda r: r["Id"],
    )


def booking_by_code(sandbox: Sandbox, code: str) -> dict[str, Any]:
    return next(b for b in sandbox.store.checkfront.bookings.values() if b["code"] == code)


def age(booking: dict[str, Any], seconds: float) -> None:
    """Make a booking created and last modified `seconds` ago (out of the index window)."""
    booking["created_date"] = booking["last_modified"] = int(datetime.now(UTC).timestamp() - seconds)


def stored_lines(engine: Engine, booking_id: int) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(booking_lines.c.item_id, booking_lines.c.qty)
            .where(booking_lines.c.booking_id == booking_id)
            .order_by(booking_lines.c.line_id)
        )
        return [(row[0], row[1]) for row in rows]


def booking_reads(sandbox: Sandbox) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in sandbox.requests if r.endpoint == "checkfront.booking.get"]


def test_a_booking_named_by_a_registration_is_read_whatever_its_age(sandbox: Sandbox, engine: Engine) -> None:
    """A booking last modified years before the index window is read by code, with its lines, once."""
    named = registrations_with_bookings(sandbox)
    old = [booking_by_code(sandbox, r["Checkfront_Booking_Code__c"]) for r in named[:3]]
    for booking in old:
        age(booking, 3 * YEAR)
    window = timedelta(days=sandbox.settings().sync.booking_window_days).total_seconds()
    assert all(datetime.now(UTC).timestamp() - b["last_modified"] > window for b in old)

    report = run_pull(sandbox.settings(), engine=engine, **NO_SLEEP)
    assert report.outcome == "ok", report.message
    lines = {s.stream: s.counts for s in report.streams}["booking_lines"]
    assert lines["by_code"] == len(old)
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(bookings.c.code, bookings.c.detail_fetched).where(
                    bookings.c.code.in_([b["code"] for b in old])
                )
            ).all()
        )
    assert stored == {b["code"]: True for b in old}
    for booking in old:
        assert {item for item, _ in stored_lines(engine, booking["booking_id"])} == {
            str(line["item_id"]) for line in booking["lines"]
        }

    # The next run does not ask again: nothing changed.
    sandbox.clear_requests()
    later = datetime.now(UTC) + timedelta(seconds=120)
    assert run_pull(sandbox.settings(), engine=engine, now=lambda: later, **NO_SLEEP).outcome == "ok"
    assert booking_reads(sandbox) == []


def test_a_code_checkfront_does_not_know_is_asked_again_only_when_its_registration_changes(
    sandbox: Sandbox, engine: Engine
) -> None:
    target = registrations_with_bookings(sandbox, "Completed")[0]
    sandbox.store.update_sf(REGISTRATION, target["Id"], {"Checkfront_Booking_Code__c": "NOPE-010101"})
    clock = datetime.now(UTC)

    def pull_at(offset_s: float) -> Any:
        sandbox.clear_requests()
        ticks = itertools.count()  # a clock that moves, as a real one does, within the run
        return run_pull(
            sandbox.settings(),
            engine=engine,
            now=lambda: clock + timedelta(seconds=offset_s, milliseconds=next(ticks)),
            **NO_SLEEP,
        )

    first = pull_at(120)  # after the safety lag: the changed registration is read
    assert first.outcome == "ok", first.message
    assert {s.stream: s.counts for s in first.streams}["booking_lines"]["not_found"] == 1
    assert "NOPE-010101" in booking_reads(sandbox)

    assert pull_at(240).outcome == "ok"
    assert "NOPE-010101" not in booking_reads(sandbox)

    sandbox.store.update_sf(REGISTRATION, target["Id"], {"Name": "changed"})
    assert pull_at(480).outcome == "ok"
    assert booking_reads(sandbox) == ["NOPE-010101"]


def test_backfill_of_the_booking_index_reads_bookings_older_than_the_window(
    sandbox: Sandbox, engine: Engine
) -> None:
    """`backfill --since` ten years back brings every booking, and leaves the incremental state alone."""
    all_bookings = sandbox.store.checkfront.bookings
    for number, booking in enumerate(all_bookings.values()):
        age(booking, 2 * YEAR + number)
    since = datetime.now(UTC) - timedelta(days=3650)
    report = run_pull(sandbox.settings(), engine=engine, streams=("bookings",), since=since, **NO_SLEEP)
    assert report.outcome == "ok", report.message
    assert report.totals()["bookings.rows"] == len(all_bookings)
    with engine.connect() as connection:
        assert set(connection.execute(select(bookings.c.booking_id)).scalars()) == set(all_bookings)
    # An incremental run of the same stream still looks only `booking_window_days` back.
    incremental = run_pull(sandbox.settings(), engine=engine, streams=("bookings",), **NO_SLEEP)
    assert incremental.totals()["bookings.rows"] == 0


def test_the_cart_behind_a_completed_registration_is_read_and_planned_stale(
    sandbox: Sandbox, engine: Engine
) -> None:
    """A Completed registration's cart that is still alive and idle is read, and is a stale candidate."""
    completed = [
        r
        for r in registrations_with_bookings(sandbox, "Completed")
        if json.loads(r["conference360__Attendee_JSON__c"]).get("sessionId")
    ]
    target = completed[0]
    cart_id = json.loads(target["conference360__Attendee_JSON__c"])["sessionId"]
    now = sandbox.store.clock.now()
    idle = 2 * 86400
    sandbox.store.checkfront.booking_sessions[cart_id] = {
        "id": cart_id,
        "created": now - idle - 60,
        "modified": now - idle,
        "ended": None,
        "booking_code": None,
        "lines": {},
    }
    settings = sandbox.settings()
    assert run_pull(settings, engine=engine, **NO_SLEEP).outcome == "ok"
    with engine.connect() as connection:
        state = connection.execute(
            select(booking_sessions.c.state).where(booking_sessions.c.id == cart_id)
        ).scalar_one()
        assert state == "alive"
        ctx = PlanContext(policy_of(settings), datetime.now(UTC))
        ended = {c.target_id for c in candidates(connection, ctx, END)}
    assert cart_id in ended
    # Completed registrations whose carts ended are read once, and found missing.
    with engine.connect() as connection:
        states = dict(connection.execute(select(booking_sessions.c.id, booking_sessions.c.state)).all())
    others = {json.loads(r["conference360__Attendee_JSON__c"])["sessionId"] for r in completed[1:]}
    assert others <= set(states)


def test_lines_edited_without_a_change_of_status_or_totals_are_read_again(
    sandbox: Sandbox, engine: Engine
) -> None:
    """A line moved to another item at the same price, or a free seat added, reaches the warehouse."""
    settings = sandbox.settings()
    assert run_pull(settings, engine=engine, **NO_SLEEP).outcome == "ok"
    named = registrations_with_bookings(sandbox)
    moved = booking_by_code(sandbox, named[0]["Checkfront_Booking_Code__c"])
    free = booking_by_code(sandbox, named[1]["Checkfront_Booking_Code__c"])
    other_item = next(i for i in sorted(sandbox.store.checkfront.items) if i != moved["lines"][0]["item_id"])
    before = {b["booking_id"]: stored_lines(engine, b["booking_id"]) for b in (moved, free)}

    later = datetime.now(UTC) + timedelta(seconds=120)
    stamp = int(later.timestamp()) - 100  # after the first run's watermark, before this run's
    moved["lines"][0]["item_id"] = other_item
    extra = {**free["lines"][0], "line_id": 99, "qty": 1, "total": "0.00", "tax_total": "0.00"}
    free["lines"].append(extra)
    for booking in (moved, free):
        booking["last_modified"] = stamp
    sandbox.clear_requests()
    assert run_pull(settings, engine=engine, now=lambda: later, **NO_SLEEP).outcome == "ok"

    assert sorted(booking_reads(sandbox)) == sorted([moved["code"], free["code"]])
    assert stored_lines(engine, moved["booking_id"])[0] == (str(other_item), moved["lines"][0]["qty"])
    assert stored_lines(engine, moved["booking_id"]) != before[moved["booking_id"]]
    assert stored_lines(engine, free["booking_id"]) == [
        *before[free["booking_id"]],
        (str(extra["item_id"]), 1),
    ]

    # The lookback reads them again on the next run; unchanged, their lines are not read again.
    sandbox.clear_requests()
    next_run = later + timedelta(seconds=120)
    assert run_pull(settings, engine=engine, now=lambda: next_run, **NO_SLEEP).outcome == "ok"
    assert booking_reads(sandbox) == []
