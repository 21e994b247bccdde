"""Builders for reconciliation tests: warehouse rows with defaults no rule cares about, seeded directly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from regsync.reconcile.rules import Mismatch, ReconcileSettings, evaluate
from regsync.warehouse.tables import (
    booking_lines,
    booking_sessions,
    bookings,
    registration_attendee_sessions,
    registration_attendees,
    registrations,
    sf_sessions,
)
from regsync.warehouse.upsert import upsert

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=2)  # out of flight, not yet overdue
FRESH = NOW - timedelta(seconds=899)  # just inside the 900 s in-flight age
DEFAULTS = ReconcileSettings()


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def registration(
    ident: str,
    *,
    status: str = "Draft",
    cart: str | None = None,
    code: str | None = None,
    amount: str | None = None,
    created: datetime = OLD,
    deleted: bool = False,
) -> dict[str, Any]:
    return {
        "id": ident,
        "name": f"ERS {ident}",
        "status": status,
        "event_id": None,
        "booking_session_id": cart,
        "booking_code": code,
        "amount": None if amount is None else Decimal(amount),
        "attendee_count": 0,
        "seats_needed": 0,
        "error_message": None,
        "created_at": created,
        "last_modified_at": created,
        "system_modstamp": created,
        "is_deleted": deleted,
        "synced_at": NOW,
        "amount_exact": None,
        "unreadable": None,
        "unreadable_parts": None,
    }


def booking(
    booking_id: int,
    code: str,
    *,
    status: str = "PAID",
    total: str | None = None,
    created: datetime = OLD,
    fetched: bool = True,
) -> dict[str, Any]:
    return {
        "booking_id": booking_id,
        "code": code,
        "status_id": status,
        "status_name": status.title(),
        "created_at": created,
        "total": None if total is None else Decimal(total),
        "tax_total": None,
        "paid_total": None,
        "customer_name": None,
        "customer_email": None,
        "summary": None,
        "detail_fetched": fetched,
        "synced_at": NOW,
    }


def line(booking_id: int, line_id: str, item_id: str, qty: int) -> dict[str, Any]:
    return {
        "booking_id": booking_id,
        "line_id": line_id,
        "item_id": item_id,
        "sku": None,
        "qty": qty,
        "total": None,
        "status_id": None,
        "start_date": None,
        "end_date": None,
    }


def sf_session(ident: str, item: str | None, *, deleted: bool = False) -> dict[str, Any]:
    return {
        "id": ident,
        "name": f"Session {ident}",
        "event_id": None,
        "checkfront_item_id": item,
        "system_modstamp": OLD,
        "is_deleted": deleted,
        "synced_at": NOW,
    }


def cart(ident: str, state: str = "alive") -> dict[str, Any]:
    return {"id": ident, "state": state, "age_s": 60 if state == "alive" else None, "read_at": NOW}


def seed(
    engine: Engine,
    *,
    registrations_: Sequence[dict[str, Any]] = (),
    bookings_: Sequence[dict[str, Any]] = (),
    lines: Sequence[dict[str, Any]] = (),
    sessions: Sequence[dict[str, Any]] = (),
    carts: Sequence[dict[str, Any]] = (),
    attendees: Mapping[str, Sequence[Sequence[str]]] | None = None,
) -> None:
    """Insert rows as the pull would leave them; attendees: registration id -> each one's Session ids."""
    people, chosen = _attendee_rows(attendees or {})
    # As the loader does: a registration carries its attendee count and seats needed.
    listed = attendees or {}
    registrations_ = [
        {
            **row,
            "attendee_count": len(listed.get(row["id"], ())),
            "seats_needed": sum(len(set(ids)) for ids in listed.get(row["id"], ())),
        }
        if row["id"] in listed
        else row
        for row in registrations_
    ]
    with engine.begin() as connection:
        for table, rows in (
            (registrations, registrations_),
            (bookings, bookings_),
            (booking_lines, lines),
            (sf_sessions, sessions),
            (booking_sessions, carts),
            (registration_attendees, people),
            (registration_attendee_sessions, chosen),
        ):
            upsert(connection, table, list(rows))


def _attendee_rows(
    attendees: Mapping[str, Sequence[Sequence[str]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    people, chosen = [], []
    for registration_id, lists in attendees.items():
        for position, session_ids in enumerate(lists):
            people.append(
                {"registration_id": registration_id, "position": position, "attendee_id": f"att{position}"}
            )
            chosen += [
                {"registration_id": registration_id, "position": position, "session_id": session_id}
                for session_id in session_ids
            ]
    return people, chosen


def found(
    engine: Engine, code: str, settings: ReconcileSettings = DEFAULTS, now: datetime = NOW
) -> list[Mismatch]:
    """The mismatches of one reason code."""
    with engine.connect() as connection:
        return [item for item in evaluate(connection, settings, now) if item.code == code]


def flagged(items: Iterable[Mismatch]) -> set[str | None]:
    """Registration ids (or booking codes when there is no registration) of these mismatches."""
    return {item.registration_id or item.booking_code for item in items}
