"""The Checkfront records surfaces: booking sessions, booking index entries and booking details.

Good templates, the strategies that break them, what the normalizers must keep, and the probes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from regsync.normalize.checkfront import (
    normalize_booking_index_entry,
    normalize_booking_lines,
    normalize_booking_session,
)
from regsync.warehouse import tables
from tests.support.hostile.outcomes import (
    NOW,
    Outcome,
    require_intact,
    same_amount,
    same_epoch,
    same_int,
    show,
    unstorable,
)
from tests.support.hostile.values import deep_structures, json_values, mutated


def good_booking_session() -> dict[str, Any]:
    """`booking.session` as GET /booking/session answers it (shape of the API docs, our values)."""
    day = 1784246400
    return {
        "id": "e36eickj20m4be5le96e3bcu4o",
        "age": 120,
        "start_date": day,
        "end_date": day,
        "currency_id": "CAD",
        "sub_total": "130.00",
        "total": "130.00",
        "paid_total": "0.00",
        "qty": 1,
        "item": {
            "1": {
                "sku": "ev-s1",
                "item_id": 8,
                "slip": "8.20260717X1-adults.1",
                "rate": {"total": "130.00", "qty": 1},
                "date": {"start_date": day, "end_date": day},
            },
            "1.1": {
                "sku": "ev-addon",
                "item_id": 9,
                "slip": "9.20260717X1-1",
                "rate": {"total": "0.00", "qty": 1},
                "date": {"start_date": day, "end_date": day},
                "opt": "out",
            },
        },
    }


def good_index_entry() -> dict[str, Any]:
    return {
        "booking_id": 1,
        "code": "PIMS-270125",
        "status_id": "PAID",
        "status_name": "Paid",
        "created_date": 1766181288,
        "total": "200.00",
        "tax_total": "0.00",
        "paid_total": "200.00",
        "customer_name": "Ethan Campbell",
        "customer_email": "ethan@example.org",
        "summary": "Festival day",
    }


def good_booking_detail() -> dict[str, Any]:
    day = 1784246400
    line = {"item_id": 8, "sku": "ev-s1", "qty": 1, "total": "90.00", "status_id": "PAID", "start_date": day}
    return {
        "booking_id": 1,
        "code": "PIMS-270125",
        "status_id": "PAID",
        "order": {"items": [{"line_id": 1, **line, "end_date": day}, {"line_id": 2, **line, "item_id": 7}]},
    }


booking_sessions = st.one_of(mutated(good_booking_session()), json_values, deep_structures)
index_entries = st.one_of(mutated(good_index_entry()), json_values)
booking_details = st.one_of(
    mutated(good_booking_detail()),
    st.integers(min_value=1995, max_value=2005).map(
        lambda n: good_booking_detail() | {"order": {"items": [{"item_id": 1, "qty": 1}] * n}}
    ),
    json_values,
)


def session_losses(session: dict[str, Any], shaped: Any) -> list[str]:
    row = shaped.booking_session
    problems = []
    if row["id"] != session.get("id") or not same_int(session.get("age"), row["age_s"]):
        problems.append("id or age changed")
    for key in ("sub_total", "total", "paid_total"):
        if not same_amount(session.get(key), row[key]):
            problems.append(f"{key} {show(session.get(key))} became {show(row[key])}")
    for key in ("start_date", "end_date"):
        if not same_epoch(session.get(key), row[key], optional=True):
            problems.append(f"{key} changed")
    if row["currency"] != session.get("currency_id"):
        problems.append("currency changed")
    items = session.get("item") or {}
    if len(shaped.lines) != len(items):
        problems.append(f"{len(items)} lines became {len(shaped.lines)}")
    for line in shaped.lines:
        raw = items.get(line["line_id"], {}) if isinstance(items, dict) else {}
        rate: dict[str, Any] = raw["rate"] if isinstance(raw.get("rate"), dict) else {}
        if not same_int(raw.get("item_id"), int(line["item_id"])) or not same_amount(
            rate.get("total"), line["total"]
        ):
            problems.append(f"line {line['line_id']} changed")
        if line["sku"] != raw.get("sku") or line["slip"] != raw.get("slip"):
            problems.append(f"line {line['line_id']} text changed")
        problems += unstorable(tables.booking_session_lines, line)
    return problems + unstorable(tables.booking_sessions, row)


def index_losses(entry: dict[str, Any], row: dict[str, Any]) -> list[str]:
    problems = []
    if not same_int(entry.get("booking_id"), row["booking_id"]):
        problems.append("booking_id changed")
    # docs/rules.md: a booking code is stored trimmed and upper-cased (codes match case-insensitively).
    code = entry.get("code")
    if not isinstance(code, str) or row["code"] != code.strip().upper():
        problems.append(f"code {show(code)} became {show(row['code'])}")
    for key in ("status_name", "customer_name", "customer_email", "summary"):
        if row[key] != entry.get(key):
            problems.append(f"{key} {show(entry.get(key))} became {show(row[key])}")
    if not isinstance(entry.get("status_id"), str) or row["status_id"] != entry["status_id"].upper():
        problems.append("status changed")
    for key in ("total", "tax_total", "paid_total"):
        if not same_amount(entry.get(key), row[key]):
            problems.append(f"{key} {show(entry.get(key))} became {show(row[key])}")
    if not same_epoch(entry.get("created_date"), row["created_at"], optional=False):
        problems.append("created_date changed")
    return problems + unstorable(tables.bookings, row)


def lines_losses(booking: dict[str, Any], booking_id: int, lines: list[dict[str, Any]]) -> list[str]:
    problems = [] if same_int(booking.get("booking_id"), booking_id) else ["booking_id changed"]
    items = booking["order"].get("items") or []
    if isinstance(items, dict):
        items = items.get("item", list(items.values()))
    if len(lines) != len(items):
        problems.append(f"{len(items)} lines became {len(lines)}")
    for item, line in zip(items, lines, strict=False):
        if not same_int(item.get("item_id"), int(line["item_id"])) or not same_int(
            item.get("qty"), line["qty"]
        ):
            problems.append(f"line {line['line_id']} changed")
        if not same_amount(item.get("total"), line["total"]) or line["sku"] != item.get("sku"):
            problems.append(f"line {line['line_id']} total or sku changed")
        problems += unstorable(tables.booking_lines, line)
    keys = [line["line_id"] for line in lines]
    if len(set(keys)) != len(keys):
        problems.append("two lines share a line_id (the primary key)")
    return problems


def probe_booking_session(session: Any) -> Outcome:
    require_intact(session_losses(session, normalize_booking_session(session, NOW)), "booking session")
    return "accepted"


def probe_index_entry(entry: Any) -> Outcome:
    require_intact(index_losses(entry, normalize_booking_index_entry(entry, NOW)), "booking index entry")
    return "accepted"


def probe_booking_detail(booking: Any) -> Outcome:
    booking_id, lines = normalize_booking_lines(booking)
    require_intact(lines_losses(booking, booking_id, lines), "booking detail")
    return "accepted"
