"""The booking resource: one booking in detail, status updates, and bookings made from a cart."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from regsync.sandbox.checkfront.booking_index import BookingIndex
from regsync.sandbox.checkfront.envelope import _Call
from regsync.sandbox.checkfront.lines import (
    _counts,
    _is_package,
    _iter_lines,
    _line_days,
    _line_len,
    _line_qty,
    _line_sort_key,
)
from regsync.sandbox.checkfront.sessions import SessionRoutes
from regsync.sandbox.checkfront.values import (
    STATUSES,
    _as_list,
    _as_map,
    _BadRequest,
    _dec,
    _epoch,
    _int,
    _midnight,
    _money,
    _truthy,
    _ymd,
)
from regsync.sandbox.http import SandboxResponse


class BookingRoutes(BookingIndex, SessionRoutes):
    """GET /booking/{id or code}, POST /booking/{id or code}/update and POST /booking/create."""

    def _detail(self, booking: dict[str, Any]) -> dict[str, Any]:
        """`booking` of GET /booking/{id}: the webhook's field set in JSON-API form (unconfirmed)."""
        entry = self._index_entry(booking)
        items = self.store.checkfront.items
        lines = []
        position = 0
        for line_id, line in _iter_lines(booking.get("lines")):
            if not _counts(line_id, line, booked=True):
                continue
            position += 1
            item = items.get(_int(line.get("item_id"))) or {}
            days = _line_days(line)
            param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
            total = line.get("total")
            if total in (None, ""):
                total = self._price(item or None, param, _line_qty(line), _line_len(line))
            start = _epoch(line.get("start_date"))
            end = _epoch(line.get("end_date"))
            lines.append(
                {
                    "line_id": _int(line.get("line_id"), position) if "line_id" in line else position,
                    "item_id": _int(line.get("item_id")),
                    "sku": line.get("sku") or item.get("sku") or "",
                    "slip": str(line.get("slip") or ""),
                    "status_id": str(line.get("status_id") or entry["status_id"]).upper(),
                    "start_date": start if start is not None else (_midnight(days[0]) if days else 0),
                    "end_date": end if end is not None else (_midnight(days[-1]) if days else 0),
                    "total": _money(total),
                    "tax_total": _money(line.get("tax_total")),
                    "qty": _line_qty(line),
                }
            )
        email = entry["customer_email"]
        digest = hashlib.sha256(email.lower().encode()).hexdigest().upper()
        fields = {"customer_name": entry["customer_name"], "customer_email": email}
        extra_fields = booking.get("fields")
        if isinstance(extra_fields, dict):
            fields.update({str(k): v for k, v in extra_fields.items() if str(k) not in fields})
        return {
            "booking_id": entry["booking_id"],
            "code": entry["code"],
            "status_id": entry["status_id"],
            "status_name": entry["status_name"],
            "created_date": entry["created_date"],
            "last_modified": _epoch(booking.get("last_modified")) or entry["created_date"],
            "start_date": _epoch(booking.get("start_date")) or 0,
            "end_date": _epoch(booking.get("end_date")) or 0,
            "tid": entry["tid"],
            "token": entry["token"],
            "summary": entry["summary"],
            "date_desc": entry["date_desc"],
            "customer": {
                "customer_id": entry["customer_id"],
                "code": f"{digest[:3]}-{digest[3:6]}-{digest[6:9]}",
                "name": entry["customer_name"],
                "email": email,
                # Not collected by the sandbox's booking form.
                "region": "",
                "address": "",
                "city": "",
                "country": "",
                "phone": "",
                "postal_zip": "",
            },
            "fields": fields,
            "order": {
                "currency_id": self.currency,
                "sub_total": _money(booking.get("sub_total", booking.get("total"))),
                "tax_total": entry["tax_total"],
                "paid_total": entry["paid_total"],
                "total": entry["total"],
                "taxes": [],
                "items": lines,
            },
        }

    def _booking_get(self, call: _Call) -> SandboxResponse:
        ref = call.request.params["booking"]
        booking = self._find_booking(ref)
        if booking is None:
            # Unconfirmed: the error id and wording for an unknown booking.
            return self._error(
                call, "booking", ref, _BadRequest("not_found", "Booking not found", f"No booking {ref}.", "")
            )
        return self._ok(call, "booking", ref, {"booking": self._detail(booking)}, records=1)

    def _booking_update(self, call: _Call) -> SandboxResponse:
        """`status_id` (required, one of the account's statuses) and `set_paid`.

        The answer body is unconfirmed: the updated booking, as GET /booking/{id} shows it. The
        booking's last_modified moves only when something changed; seats follow the status (a
        booking moved to STOP or VOID gives its seats back; moved back, it takes them again
        without a stock check, as staff can overbook).
        """
        ref = call.request.params["booking"]
        booking = self._find_booking(ref)
        if booking is None:
            return self._error(
                call, "booking", ref, _BadRequest("not_found", "Booking not found", f"No booking {ref}.", "")
            )
        status = str(call.params.get("status_id") or "").strip().upper()
        if not status:
            return self._error(
                call,
                "booking",
                ref,
                _BadRequest(
                    "validation_error",
                    "Missing required fields",
                    "The following fields are required: Status",
                    {"status_id": "Status"},
                ),
            )
        if status not in STATUSES:
            return self._error(
                call,
                "booking",
                ref,
                _BadRequest(
                    "validation_error", "Invalid status", f"Unknown status: {status}", {"status_id": status}
                ),
            )
        changed = False
        if str(booking.get("status_id", "")).upper() != status:
            booking["status_id"] = status
            for _, line in _iter_lines(booking.get("lines")):
                if "status_id" in line:
                    line["status_id"] = status
            changed = True
        if _truthy(call.params.get("set_paid", "")) and _dec(booking.get("paid_total")) != _dec(
            booking.get("total")
        ):
            booking["paid_total"] = _money(booking.get("total"))
            changed = True
        if changed:
            booking["last_modified"] = int(self.store.clock.now())
            self._booking_changed(_int(booking.get("booking_id")), created=False)
        return self._ok(call, "booking", ref, {"booking": self._detail(booking)}, records=1)

    def _booking_create(self, call: _Call) -> SandboxResponse:
        """A booking from the cart (or from `slip[]` given directly) and the customer form.

        Status PEND unless `status_id` is given. The cart's session ends (the docs: end is
        "automatically called when a booking is successfully created"). The answer carries
        request.data.url (documented) and `booking{booking_id, code, status_id, status_name,
        created_date, total, tax_total, paid_total, token}` (the body beyond the URL is
        unconfirmed).
        """
        now = self.store.clock.now()
        params = call.params
        session_id = self._asked_session_id(call)
        session = self._live_session(session_id, now)
        try:
            if session is not None and session.get("lines"):
                source = session["lines"]
            else:
                source = {}
                for slip in _as_list(params.get("slip")):
                    self._add_line(source, slip)
                self._ensure_inventory()
                self._check_capacity({}, source, None)
            if not source:
                # Unconfirmed: the error for nothing to book (unknown, expired or empty cart).
                raise _BadRequest(
                    "invalid_request", "Nothing to book", "The booking session has no items.", ""
                )
            form = {str(k): str(v).strip() for k, v in _as_map(params.get("form")).items()}
            missing = {
                name: label
                for name, label in (("customer_name", "Name"), ("customer_email", "Email"))
                if not form.get(name)
            }
            if missing:
                raise _BadRequest(
                    "validation_error",
                    "Missing required fields",
                    "The following fields are required: " + ", ".join(missing.values()),
                    missing,
                )
            status = str(params.get("status_id") or "PEND").strip().upper()
            if status not in STATUSES:
                raise _BadRequest(
                    "validation_error", "Invalid status", f"Unknown status: {status}", {"status_id": status}
                )
        except _BadRequest as exc:
            return self._error(call, "booking", "create", exc)

        self._ensure_inventory()
        cf = self.store.checkfront
        ids = self._ids()
        booking_id = (ids[-1] if ids else 0) + 1
        code = self._new_code(booking_id, now)
        lines = self._booking_lines(source, status)
        days = [day for line in lines for day in _line_days(line)]
        sub_total = sum((_dec(line["total"]) for line in lines), Decimal(0))
        created = int(now)
        booking: dict[str, Any] = {
            "booking_id": booking_id,
            "code": code,
            "status_id": status,
            "created_date": created,
            "last_modified": created,
            "start_date": _midnight(min(days)) if days else 0,
            "end_date": _midnight(max(days)) if days else 0,
            "customer_name": form["customer_name"],
            "customer_email": form["customer_email"],
            "session_id": session_id if session is not None else None,
            "lines": lines,
            "sub_total": _money(sub_total),
            "tax_total": "0.00",
            "total": _money(sub_total),
            "paid_total": "0.00",
            "fields": {k: v for k, v in form.items() if k not in ("customer_name", "customer_email")},
        }
        booking["token"] = self._token(booking)
        cf.bookings[booking_id] = booking
        if session is not None:
            session["ended"] = now
            session["booking_code"] = code
        self._index_booking(booking)
        if self._inventory_seen is not None:
            self._inventory_seen = (len(cf.bookings), len(cf.booking_sessions))
        if self._sorted_seen == len(cf.bookings) - 1 and (not ids or booking_id > ids[-1]):
            self._sorted_ids.append(booking_id)
            self._sorted_seen = len(cf.bookings)
        if self._codes_seen == len(cf.bookings) - 1:
            self._codes[code] = booking_id
            self._codes_seen = len(cf.bookings)
        self._booking_changed(booking_id, created=True)
        entry = self._index_entry(booking)
        answer = {
            key: entry[key]
            for key in (
                "booking_id",
                "code",
                "status_id",
                "status_name",
                "created_date",
                "total",
                "tax_total",
                "paid_total",
                "token",
            )
        }
        # Unconfirmed: the invoice URL's form (the real one is on the account's own host).
        url = f"https://{self.host_id}/reserve/booking/{code}?CFX={entry['token']}"
        return self._ok(call, "booking", "create", {"booking": answer}, records=1, data={"url": url})

    def _booking_lines(self, source: dict[str, Any], status: str) -> list[dict[str, Any]]:
        """A cart's lines as booking lines: main lines and opted-in add-ons, numbered 1..n."""
        items = self.store.checkfront.items
        out: list[dict[str, Any]] = []
        for line_id in sorted(source, key=_line_sort_key):
            line = source[line_id]
            if not _counts(line_id, line):
                continue
            item = items.get(_int(line.get("item_id")))
            days = _line_days(line)
            param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
            qty = _line_qty(line)
            out.append(
                {
                    "line_id": len(out) + 1,
                    "item_id": _int(line.get("item_id")),
                    "sku": (item or {}).get("sku") or "",
                    "name": (item or {}).get("name") or "",
                    "slip": str(line.get("slip") or ""),
                    "qty": qty,
                    "date": _ymd(days[0]) if days else "",
                    "len": _line_len(line),
                    "param": param,
                    "start_date": _midnight(days[0]) if days else 0,
                    "end_date": _midnight(days[-1]) if days else 0,
                    "total": _money(self._price(item, param, qty, _line_len(line))),
                    "tax_total": "0.00",
                    "status_id": status,
                    "package": _is_package(line_id, line),
                }
            )
        return out

    def _new_code(self, booking_id: int, now: float) -> str:
        """A booking code as Checkfront shows them: four letters and the day, "CFPP-290317"."""
        day = datetime.fromtimestamp(now, tz=UTC).strftime("%d%m%y")
        rng = random.Random(f"regsync-sandbox-code:{booking_id}")
        while True:
            code = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + f"-{day}"
            if self._find_booking(code) is None:
                return code
