"""The booking session (cart) resource: read, add, alter, clear and end a cart, and its lines."""

from __future__ import annotations

import copy
import secrets
from collections import OrderedDict
from datetime import date
from decimal import Decimal
from typing import Any

from regsync.sandbox.checkfront.envelope import ACCOUNT_ID, _Call
from regsync.sandbox.checkfront.inventory import Inventory
from regsync.sandbox.checkfront.lines import (
    _counts,
    _is_package,
    _line_day,
    _line_days,
    _line_len,
    _line_qty,
    _line_sort_key,
    _make_slip,
    _opted_in,
    _parse_slip,
)
from regsync.sandbox.checkfront.values import (
    UNLIMITED,
    _as_list,
    _as_map,
    _BadRequest,
    _int,
    _midnight,
    _money,
    _seconds,
    _span_desc,
    _ymd,
)
from regsync.sandbox.http import SandboxResponse
from regsync.sandbox.store import SandboxStore

_SESSION_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # PHP session ids, as in the docs' example
_ISSUED_CAP = 10_000


class SessionRoutes(Inventory):
    """GET and POST /booking/session, /booking/session/clear and /booking/session/end."""

    def __init__(self, store: SandboxStore, **account: str) -> None:
        super().__init__(store, **account)
        # Booking session ids handed out but not yet persisted (nothing added): id -> issued at.
        self._issued: OrderedDict[str, float] = OrderedDict()

    def _issued_at(self, session_id: str | None, now: float) -> float | None:
        """When an id was handed out for an empty session that nothing was added to yet."""
        if not session_id or session_id not in self._issued:
            return None
        issued = self._issued[session_id]
        if now - issued > self.store.checkfront.session_ttl_s:
            del self._issued[session_id]
            return None
        return issued

    def _new_session_id(self, now: float) -> str:
        sessions = self.store.checkfront.booking_sessions
        while True:
            candidate = "".join(secrets.choice(_SESSION_ALPHABET) for _ in range(26))
            if candidate not in sessions and candidate not in self._issued:
                break
        self._issued[candidate] = now
        while len(self._issued) > _ISSUED_CAP:
            self._issued.popitem(last=False)
        return candidate

    @staticmethod
    def _asked_session_id(call: _Call) -> str | None:
        value = call.params.get("session_id")
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
        return call.request.cookies.get("session_id") or None

    def _resolve_session(self, call: _Call, now: float) -> tuple[str, dict[str, Any] | None, float]:
        """(id, stored session or None, last change) for the session a call names.

        The real API never fails on an unknown, ended or expired session id: it starts a new, empty
        session and answers with that one (new id, age 0). The caller must compare ids.
        A new empty session is not written to the store until something is added to it (a cart
        nobody filled should not appear in the sandbox's state); its id is remembered apart, so
        the cookie flow (read, then add with the id read) works as with the real API.
        """
        asked = self._asked_session_id(call)
        session = self._live_session(asked, now)
        if session is not None:
            assert asked is not None
            return asked, session, _seconds(session.get("modified")) or _seconds(session.get("created"))
        issued = self._issued_at(asked, now)
        if issued is not None and asked is not None:
            return asked, None, issued
        return self._new_session_id(now), None, now

    def _session_get(self, call: _Call) -> SandboxResponse:
        # A read does not change the session: `age` is the seconds since the cart last changed.
        now = self.store.clock.now()
        session_id, session, changed_at = self._resolve_session(call, now)
        lines = session.get("lines", {}) if session is not None else {}
        return self._session_answer(call, "session", session_id, lines, changed_at, now)

    def _session_post(self, call: _Call) -> SandboxResponse:
        now = self.store.clock.now()
        session_id, session, changed_at = self._resolve_session(call, now)
        old_lines: dict[str, Any] = session.get("lines", {}) if session is not None else {}
        lines = copy.deepcopy(old_lines)
        try:
            # Order within one call (unconfirmed): alter first, then the line replaced, then adds.
            for line_id, action in _as_map(call.params.get("alter")).items():
                self._alter(lines, line_id, action)
            slips = _as_list(call.params.get("slip"))
            replace = str(call.params.get("line_id") or "").strip()
            if replace and slips:
                self._replace_line(lines, replace, slips.pop(0))
            for slip in slips:
                self._add_line(lines, slip)
            self._ensure_inventory()
            self._check_capacity(old_lines, lines, session_id)
        except _BadRequest as exc:
            return self._error(call, "booking", "session", exc)
        if lines != old_lines:
            if session is None:
                session = {
                    "id": session_id,
                    "created": changed_at,
                    "modified": now,
                    "ended": None,
                    "booking_code": None,
                    "lines": lines,
                }
                self.store.checkfront.booking_sessions[session_id] = session
                self._issued.pop(session_id, None)
            else:
                session["lines"] = lines
                session["modified"] = now
            self._index_session(session)
            if self._inventory_seen is not None:
                cf = self.store.checkfront
                self._inventory_seen = (len(cf.bookings), len(cf.booking_sessions))
            changed_at = now
        return self._session_answer(call, "session", session_id, lines, changed_at, now)

    def _session_clear(self, call: _Call) -> SandboxResponse:
        """Remove every line and keep the id (docs-2014).

        The answer body is unconfirmed: the (now empty) session, as the session endpoint answers
        it, with request.id "clear". Clearing an unknown session answers a new empty one.
        """
        now = self.store.clock.now()
        session_id, session, changed_at = self._resolve_session(call, now)
        if session is not None and session.get("lines"):
            session["lines"] = {}
            session["modified"] = now
            changed_at = now
        return self._session_answer(call, "clear", session_id, {}, changed_at, now)

    def _session_end(self, call: _Call) -> SandboxResponse:
        """Destroy a session: it becomes ended and its seats go back to stock.

        The answer body is unconfirmed: the envelope with request.id "end" and
        `booking.session{id, ended: true}`. Ending an unknown or already ended session is still OK
        (ending is idempotent) but records nothing new: the first end time stays.
        """
        now = self.store.clock.now()
        session_id = self._asked_session_id(call)
        session = self._live_session(session_id, now)
        if session is not None:
            session["ended"] = now
        if session_id is not None:
            self._issued.pop(session_id, None)
        return self._ok(call, "booking", "end", {"booking": {"session": {"id": session_id, "ended": True}}})

    def _session_answer(
        self,
        call: _Call,
        request_id: str,
        session_id: str,
        lines: dict[str, Any],
        changed_at: float,
        now: float,
    ) -> SandboxResponse:
        body = self._render_session(session_id, lines, changed_at, now)
        cookie = ("Set-Cookie", f"session_id={session_id}; path=/; secure; HttpOnly")
        return self._ok(
            call,
            "booking",
            request_id,
            {"booking": {"session": body}},
            records=len(body["item"]),
            headers=[cookie],
        )

    def _render_session(
        self, session_id: str, lines: dict[str, Any], changed_at: float, now: float
    ) -> dict[str, Any]:
        """`booking.session` in the docs' shape."""
        items = self.store.checkfront.items
        rendered: dict[str, Any] = {}
        names: list[str] = []
        first: date | None = None
        last: date | None = None
        sub_total = Decimal(0)
        qty = 0
        for line_id in sorted(lines, key=_line_sort_key):
            line = lines[line_id]
            item = items.get(_int(line.get("item_id")))
            days = _line_days(line)
            package = _is_package(line_id, line)
            counted = _counts(line_id, line)
            param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
            line_qty = _line_qty(line)
            total = self._price(item, param, line_qty, _line_len(line))
            name = (item or {}).get("name") or line.get("name") or ""
            if counted:
                sub_total += total
                if name and name not in names:
                    names.append(name)
                if days:
                    first = days[0] if first is None else min(first, days[0])
                    last = days[-1] if last is None else max(last, days[-1])
            if not package:
                qty += line_qty
            entry: dict[str, Any] = {
                "sku": (item or {}).get("sku") or line.get("sku") or "",
                "item_id": _int(line.get("item_id")),
                "name": name,
                "unit": (item or {}).get("unit") or "D",
                "rate": {
                    "total": _money(total),
                    "item_total": _money(total if counted else 0),
                    "qty": line_qty,
                    "summary": self._rate_summary(item, param, line_qty, _line_len(line), quote='"'),
                },
                "date": {
                    "summary": _span_desc(days[0], days[-1]) if days else "",
                    "start_date": _midnight(days[0]) if days else 0,
                    "end_date": _midnight(days[-1]) if days else 0,
                },
                "slip": str(line.get("slip") or ""),
                # Seats left on the line's dates, this cart's own hold included (the docs' example
                # shows the same 9 in the cart as in the rated item).
                "available": self._available(item, days),
            }
            if package:
                entry["optin"] = "O"  # the add-on's mode: optional
                entry["opt"] = "in" if _opted_in(line) else "out"
            rendered[str(line_id)] = entry
        total_text = _money(sub_total)  # no taxes, discounts or payments in a sandbox cart
        return {
            "id": session_id,
            "age": max(0, int(now - changed_at)),
            "summary": ", ".join(names),
            # Unconfirmed for an empty cart: 0 dates and empty descriptions.
            "start_date": _midnight(first) if first else 0,
            "end_date": _midnight(last) if last else 0,
            "date_desc": _span_desc(first, last) if first and last else "",
            "time_desc": "",
            "account_id": ACCOUNT_ID,
            "partner_id": 0,
            "currency_id": self.currency,
            "sub_total": total_text,
            "tax_total": "0.00",
            "tax_inc_total": "0.00",
            "discount": "0.00",
            "total": total_text,
            "due": total_text,
            "paid_total": "0.00",
            "flat_discount": {"total": 0, "total_pretax": 0},
            "deposit": None,
            "tax": [],
            # Unconfirmed: the seats of the main lines (the example's 1 main line + 3 add-ons give 1).
            "qty": qty,
            "item": rendered or [],  # an empty cart is PHP's empty array
        }

    # -- cart changes (on a copy of the lines; committed only when the whole call is valid)
    def _line_from_slip(self, slip_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
        slip = _parse_slip(slip_text)
        item = self.store.checkfront.items.get(slip.item_id) if slip is not None else None
        # Unconfirmed: the error a bad SLIP gets (the docs only say SLIPs come from rated calls).
        bad = _BadRequest("invalid_slip", "Invalid SLIP", f"Cannot book SLIP {slip_text!r}.", slip_text)
        if slip is None or item is None:
            raise bad
        prices = self._prices(item)
        if prices:
            names = list(prices)
            if slip.param and not set(slip.param) <= set(names):
                raise bad
            param = {name: slip.param.get(name, 0) for name in names}
            if not slip.param:
                param[names[0]] = slip.qty
        else:
            if slip.param and set(slip.param) != {"qty"}:
                raise bad
            param = {}
        qty = sum(param.values()) if param else slip.qty
        if qty <= 0:
            raise bad
        line = {
            "item_id": slip.item_id,
            "slip": _make_slip(slip.item_id, slip.day, slip.length, param, qty),
            "qty": qty,
            "date": _ymd(slip.day),
            "len": slip.length,
            "param": param,
            "optin": None,
        }
        return line, item

    def _package_lines(
        self, item: dict[str, Any], main: dict[str, Any], opted: dict[int, bool]
    ) -> list[dict[str, Any]]:
        """The add-on lines of an item: one each, opted out until `alter[n.m]=optin`."""
        # Unconfirmed: an add-on line is always qty 1 (the docs' example only shows qty 1).
        day = _line_day(main)
        length = _line_len(main)
        out = []
        for package_id in item.get("packages") or []:
            package_id = _int(package_id)
            if package_id not in self.store.checkfront.items or day is None:
                continue
            out.append(
                {
                    "item_id": package_id,
                    "slip": _make_slip(package_id, day, length, {}, 1),
                    "qty": 1,
                    "date": _ymd(day),
                    "len": length,
                    "param": {},
                    "optin": opted.get(package_id, False),
                }
            )
        return out

    def _add_line(self, lines: dict[str, Any], slip_text: str) -> None:
        line, item = self._line_from_slip(slip_text)
        main_ids = [_int(line_id) for line_id in lines if "." not in line_id]
        line_id = str(max(main_ids, default=0) + 1)
        lines[line_id] = line
        for n, package in enumerate(self._package_lines(item, line, {}), start=1):
            lines[f"{line_id}.{n}"] = package

    def _replace_line(self, lines: dict[str, Any], line_id: str, slip_text: str) -> None:
        """`line_id=<n>&slip=<new>`: the line keeps its id; add-ons follow the new item."""
        if line_id not in lines or "." in line_id:
            # Unconfirmed: replacing a line that is not there adds the SLIP as a new line.
            self._add_line(lines, slip_text)
            return
        line, item = self._line_from_slip(slip_text)
        children = [key for key in lines if key.startswith(f"{line_id}.")]
        opted = {_int(lines[key].get("item_id")): _opted_in(lines[key]) for key in children}
        for key in children:
            del lines[key]
        lines[line_id] = line
        for n, package in enumerate(self._package_lines(item, line, opted), start=1):
            lines[f"{line_id}.{n}"] = package

    def _alter(self, lines: dict[str, Any], line_id: str, action: Any) -> None:
        """`alter[<line_id>]` = quantity | remove | optin | optout."""
        if line_id not in lines:
            # Unconfirmed: an unknown line id is skipped; the answer shows the cart unchanged.
            return
        verb = str(action).strip().lower()
        package = "." in line_id
        if verb == "remove" or verb == "0":
            self._remove_line(lines, line_id)
            return
        if verb in ("optin", "optout"):
            if not package:
                raise _BadRequest(
                    "invalid_request", "Invalid alter", f"Line {line_id} is not an add-on.", {line_id: verb}
                )
            lines[line_id]["optin"] = verb == "optin"
            return
        if not (verb.isascii() and verb.isdigit()) or int(verb) > UNLIMITED:
            raise _BadRequest(
                "invalid_request",
                "Invalid alter",
                f"Cannot apply {action!r} to line {line_id}.",
                {line_id: action},
            )
        self._set_qty(lines[line_id], int(verb))

    @staticmethod
    def _remove_line(lines: dict[str, Any], line_id: str) -> None:
        del lines[line_id]
        if "." not in line_id:
            for key in [key for key in lines if key.startswith(f"{line_id}.")]:
                del lines[key]

    def _set_qty(self, line: dict[str, Any], qty: int) -> None:
        """A new quantity: the change goes to the line's main param (the first one with seats)."""
        # Unconfirmed: how Checkfront spreads a quantity over several params.
        param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
        if param:
            primary = next((name for name, count in param.items() if count > 0), next(iter(param)))
            others = sum(count for name, count in param.items() if name != primary)
            if qty >= others:
                param[primary] = qty - others
            else:
                param = {name: 0 for name in param}
                param[primary] = qty
        day = _line_day(line)
        line["param"] = param
        line["qty"] = qty
        if day is not None:
            line["slip"] = _make_slip(_int(line.get("item_id")), day, _line_len(line), param, qty)
