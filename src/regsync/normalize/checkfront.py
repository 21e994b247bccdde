"""Checkfront payloads -> warehouse rows: booking sessions with their lines, bookings with theirs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from regsync.definitions import booking_code_key
from regsync.errors import RecordRejected
from regsync.normalize import coerce

MAX_LINES = 2000


@dataclass(frozen=True)
class BookingSessionRows:
    booking_session: dict[str, Any]
    lines: list[dict[str, Any]]


def missing_booking_session(session_id: str, read_at: datetime) -> BookingSessionRows:
    """Checkfront answered with another session: the one asked for is unknown, expired or ended."""
    return BookingSessionRows(
        {
            "id": session_id,
            "state": "missing",
            "age_s": None,
            "last_activity_at": None,
            "start_date": None,
            "end_date": None,
            "currency": None,
            "sub_total": None,
            "total": None,
            "paid_total": None,
            "qty": None,
            "read_at": read_at,
        },
        [],
    )


def normalize_booking_session(session: dict[str, Any], read_at: datetime) -> BookingSessionRows:
    """A live booking session (`booking.session` of GET /booking/session)."""
    if not isinstance(session, dict):
        raise RecordRejected("booking.session is not an object")
    session_id = coerce.text(session.get("id"), "id", optional=False, max_length=64)
    assert session_id is not None
    age = coerce.integer(session.get("age"), "age")
    assert age is not None
    if age < 0:
        raise RecordRejected("negative age", field="age")
    items = session.get("item") or {}
    if isinstance(items, list):  # PHP encodes an empty cart as []
        if items:
            raise RecordRejected("item must be an object keyed by line id", field="item")
        items = {}
    if not isinstance(items, dict):
        raise RecordRejected("item must be an object keyed by line id", field="item")
    if len(items) > MAX_LINES:
        raise RecordRejected(f"more than {MAX_LINES} lines", field="item")
    lines = [_session_line(session_id, str(line_id), line) for line_id, line in items.items()]
    row = {
        "id": session_id,
        "state": "alive",
        "age_s": age,
        "last_activity_at": read_at - timedelta(seconds=age),
        "start_date": coerce.epoch(session.get("start_date"), "start_date", optional=True),
        "end_date": coerce.epoch(session.get("end_date"), "end_date", optional=True),
        "currency": coerce.text(session.get("currency_id"), "currency_id", max_length=8),
        "sub_total": coerce.money(session.get("sub_total"), "sub_total"),
        "total": coerce.money(session.get("total"), "total"),
        "paid_total": coerce.money(session.get("paid_total"), "paid_total"),
        "qty": coerce.integer(session.get("qty"), "qty", optional=True),
        "read_at": read_at,
    }
    return BookingSessionRows(row, lines)


def _session_line(session_id: str, line_id: str, line: Any) -> dict[str, Any]:
    where = f"item.{line_id}"
    if not isinstance(line, dict):
        raise RecordRejected("must be an object", field=where)
    rate: dict[str, Any] = line["rate"] if isinstance(line.get("rate"), dict) else {}
    date: dict[str, Any] = line["date"] if isinstance(line.get("date"), dict) else {}
    item_id = coerce.integer(line.get("item_id"), f"{where}.item_id", maximum=coerce.INT64_MAX)
    qty = coerce.integer(rate.get("qty", line.get("qty")), f"{where}.rate.qty")
    opt = line.get("opt")
    return {
        "booking_session_id": session_id,
        "line_id": coerce.text(line_id, "line_id", optional=False, max_length=16),
        "item_id": str(item_id),
        "sku": coerce.text(line.get("sku"), f"{where}.sku"),
        "slip": coerce.text(line.get("slip"), f"{where}.slip"),
        "qty": qty,
        "total": coerce.money(rate.get("total"), f"{where}.rate.total"),
        "is_package": "." in line_id,
        "opted_in": None if opt is None else opt == "in",
        "start_date": coerce.epoch(date.get("start_date"), f"{where}.date.start_date", optional=True),
        "end_date": coerce.epoch(date.get("end_date"), f"{where}.date.end_date", optional=True),
    }


def normalize_booking_index_entry(entry: dict[str, Any], synced_at: datetime) -> dict[str, Any]:
    """One entry of `booking/index`."""
    if not isinstance(entry, dict):
        raise RecordRejected("booking index entry is not an object")
    booking_id = coerce.integer(entry.get("booking_id"), "booking_id", maximum=coerce.INT64_MAX)
    status_id = coerce.text(entry.get("status_id"), "status_id", optional=False, max_length=16)
    # ASCII only: upper() of "ﬃ" is "FFI", three times longer than the column allows.
    if not status_id or not status_id.isascii() or not status_id.replace("_", "").isalnum():
        raise RecordRejected(f"not a booking status: {status_id!r}", field="status_id")
    # Codes are matched trimmed and case-insensitively (docs/rules.md): kept in that one form.
    code = booking_code_key(coerce.text(entry.get("code"), "code", optional=False, max_length=64))
    if code is None:
        raise RecordRejected("blank booking code", field="code")
    total = coerce.money(entry.get("total"), "total")
    return {
        "booking_id": booking_id,
        "code": code,
        "status_id": status_id.upper(),
        "status_name": coerce.text(entry.get("status_name"), "status_name", max_length=64),
        "created_at": coerce.epoch(entry.get("created_date"), "created_date"),
        "total": total,
        "total_exact": coerce.sub_cent(total),
        "tax_total": coerce.money(entry.get("tax_total"), "tax_total"),
        "paid_total": coerce.money(entry.get("paid_total"), "paid_total"),
        "customer_name": coerce.text(entry.get("customer_name"), "customer_name"),
        "customer_email": coerce.text(entry.get("customer_email"), "customer_email"),
        "summary": coerce.text(entry.get("summary"), "summary", max_length=coerce.MAX_TEXT),
        "detail_fetched": False,
        "synced_at": synced_at,
    }


def normalize_booking_lines(booking: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """The line items of a booking (`booking.order.items` of GET /booking/{id})."""
    if not isinstance(booking, dict):
        raise RecordRejected("booking is not an object")
    booking_id = coerce.integer(booking.get("booking_id"), "booking_id", maximum=coerce.INT64_MAX)
    assert booking_id is not None
    order = booking.get("order")
    if not isinstance(order, dict):
        raise RecordRejected("booking has no order", field="order")
    items = order.get("items") or []
    if isinstance(items, dict):
        items = items.get("item", list(items.values()))  # XML-derived forms nest lines under "item"
    if not isinstance(items, list):
        raise RecordRejected("order.items must be a list", field="order.items")
    if len(items) > MAX_LINES:
        raise RecordRejected(f"more than {MAX_LINES} lines", field="order.items")
    lines = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"order.items[{index}]"
        if not isinstance(item, dict):
            raise RecordRejected("must be an object", field=where)
        line_id = _booking_line_id(item.get("line_id"), index + 1, f"{where}.line_id")
        if line_id in seen:  # (booking_id, line_id) is the table's primary key
            raise RecordRejected(f"line_id {line_id!r} appears twice", field=f"{where}.line_id")
        seen.add(line_id)
        lines.append(
            {
                "booking_id": booking_id,
                "line_id": line_id,
                "item_id": str(
                    coerce.integer(item.get("item_id"), f"{where}.item_id", maximum=coerce.INT64_MAX)
                ),
                "sku": coerce.text(item.get("sku"), f"{where}.sku"),
                "qty": coerce.integer(item.get("qty"), f"{where}.qty"),
                "total": coerce.money(item.get("total"), f"{where}.total"),
                "status_id": coerce.text(
                    item.get("status_id", item.get("status")), f"{where}.status_id", max_length=16
                ),
                "start_date": coerce.epoch(item.get("start_date"), f"{where}.start_date", optional=True),
                "end_date": coerce.epoch(item.get("end_date"), f"{where}.end_date", optional=True),
            }
        )
    return booking_id, lines


def _booking_line_id(value: Any, position: int, field: str) -> str:
    """A booking line's id: as sent (an integer or short text), or its position when absent."""
    if value is None:
        value = position
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    line_id = coerce.text(value, field, optional=False, max_length=16)
    assert line_id is not None
    return line_id
