"""The booking index: booking lookups by id or code, the filtered and paged index, its caches."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from regsync.sandbox.checkfront.envelope import CheckfrontCore, _Call
from regsync.sandbox.checkfront.lines import _counts, _iter_lines
from regsync.sandbox.checkfront.values import (
    DAY_S,
    STATUSES,
    _BadRequest,
    _epoch,
    _int,
    _midnight,
    _money,
    _parse_day,
    _span_desc,
)
from regsync.sandbox.http import SandboxResponse
from regsync.sandbox.store import SandboxStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 250  # unconfirmed: the docs give the default (100) but no maximum
_TIME_FILTERS = ("created_date", "last_modified", "start_date", "end_date")
_FILTER_CACHE_CAP = 8

_Predicate = Callable[[dict[str, Any]], bool]


class BookingIndex(CheckfrontCore):
    """GET /booking and /booking/index, and the lookups and index rows the booking routes share."""

    def __init__(self, store: SandboxStore, **account: str) -> None:
        super().__init__(store, **account)
        # Booking index: ids in ascending order, and filtered id lists per filter set.
        self._sorted_ids: list[int] = []
        self._sorted_seen: int = -1
        # filter key -> (booking count when computed, matching ids, predicate); changes made
        # through the API patch the lists in place (see _booking_changed).
        self._filtered: OrderedDict[tuple[Any, ...], tuple[int, list[int], _Predicate]] = OrderedDict()
        self._codes: dict[str, int] = {}
        self._codes_seen: int = -1

    def _ids(self) -> list[int]:
        """Booking ids, ascending; sorted once and kept while nothing is added behind our back."""
        bookings = self.store.checkfront.bookings
        if self._sorted_seen != len(bookings):
            self._sorted_ids = sorted(bookings)
            self._sorted_seen = len(bookings)
        return self._sorted_ids

    def _find_booking(self, ref: str) -> dict[str, Any] | None:
        bookings = self.store.checkfront.bookings
        if ref.isdigit():
            return bookings.get(int(ref))
        # Codes match trimmed and case-insensitively, as regsync's rules read them (docs/rules.md).
        key = ref.strip().upper()
        if self._codes_seen != len(bookings):
            self._codes = {str(b.get("code", "")).strip().upper(): bid for bid, b in bookings.items()}
            self._codes_seen = len(bookings)
        booking_id = self._codes.get(key)
        booking = bookings.get(booking_id) if booking_id is not None else None
        if booking is not None and str(booking.get("code", "")).strip().upper() == key:
            return booking
        return None

    @staticmethod
    def _customer_id(booking: dict[str, Any]) -> int:
        if booking.get("customer_id") not in (None, ""):
            return _int(booking.get("customer_id"))
        # The sandbox has no customer table: a stable id derived from the e-mail address.
        email = str(booking.get("customer_email") or "").strip().lower()
        return int(hashlib.sha256(email.encode()).hexdigest()[:7], 16) + 1

    @staticmethod
    def _token(booking: dict[str, Any]) -> str:
        if booking.get("token"):
            return str(booking["token"])
        seed = f"regsync-sandbox:{booking.get('booking_id')}:{booking.get('code')}"
        return hashlib.sha256(seed.encode()).hexdigest()

    def _summary(self, booking: dict[str, Any]) -> str:
        items = self.store.checkfront.items
        names: list[str] = []
        for line_id, line in _iter_lines(booking.get("lines")):
            if not _counts(line_id, line, booked=True):
                continue
            name = (items.get(_int(line.get("item_id"))) or {}).get("name") or line.get("name") or ""
            if name and name not in names:
                names.append(name)
        return ", ".join(names)

    @staticmethod
    def _date_desc(booking: dict[str, Any]) -> str:
        start = _epoch(booking.get("start_date"))
        if not start:
            return ""
        first = _parse_day(start)
        last = _parse_day(_epoch(booking.get("end_date")) or start)
        assert first is not None
        assert last is not None
        return _span_desc(first, max(first, last))

    def _index_entry(self, booking: dict[str, Any]) -> dict[str, Any]:
        status_id = str(booking.get("status_id") or "PEND").upper()
        return {
            "booking_id": _int(booking.get("booking_id")),
            "code": str(booking.get("code") or ""),
            "status_id": status_id,
            "status_name": STATUSES.get(status_id, status_id.title()),
            "created_date": _epoch(booking.get("created_date")) or 0,
            "total": _money(booking.get("total")),
            "tax_total": _money(booking.get("tax_total")),
            "paid_total": _money(booking.get("paid_total")),
            "customer_id": self._customer_id(booking),
            "customer_name": str(booking.get("customer_name") or ""),
            "customer_email": str(booking.get("customer_email") or ""),
            "summary": self._summary(booking),
            "date_desc": self._date_desc(booking),
            "tid": str(booking.get("tid") or ""),
            "token": self._token(booking),
        }

    def _booking_index(self, call: _Call) -> SandboxResponse:
        by_index = call.request.path.rstrip("/").endswith("/index")
        # GET /booking answers the same `booking/index` key (docs' snippet); its request block
        # carries no id and path ["booking"] (unconfirmed).
        request_id = "index" if by_index else None
        path = ["booking", "index"] if by_index else ["booking"]
        try:
            limit = (
                _int(call.params.get("limit"), DEFAULT_LIMIT) if call.params.get("limit") else DEFAULT_LIMIT
            )
            # Unconfirmed: a limit out of range is clamped rather than refused.
            limit = DEFAULT_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
            page = min(max(1, _int(call.params.get("page"), 1)), 2**63 - 1)  # PHP's (int) saturates there
            key, predicate = self._index_filter(call.params)
        except _BadRequest as exc:
            return self._error(call, "booking", request_id, exc)
        bookings = self.store.checkfront.bookings
        ids = self._matching(key, predicate)
        chunk = ids[(page - 1) * limit : page * limit]
        if any(bid not in bookings or not predicate(bookings[bid]) for bid in chunk):
            # The store changed behind our back: compute again once.
            self._filtered.pop(key, None)
            ids = self._matching(key, predicate)
            chunk = ids[(page - 1) * limit : page * limit]
        rows = {str(bid): self._index_entry(bookings[bid]) for bid in chunk}
        total = len(ids)
        # Unconfirmed: an empty result is page 1 of 1 (the docs show pages >= 1 everywhere).
        pages = max(1, math.ceil(total / limit))
        return self._ok(
            call,
            "booking",
            request_id,
            # PHP's json_encode of an empty array is [], not {}: an empty index is [].
            {"booking/index": rows or []},
            records=len(rows),
            limit=limit,
            page=page,
            pages=pages,
            total_records=total,
            path=path,
        )

    def _matching(self, key: tuple[Any, ...], predicate: _Predicate) -> list[int]:
        """Ids matching a filter set, ascending; one scan per filter set, then kept up to date."""
        ids = self._ids()
        if not key:
            return ids
        bookings = self.store.checkfront.bookings
        cached = self._filtered.get(key)
        if cached is not None and cached[0] == len(bookings):
            self._filtered.move_to_end(key)
            return cached[1]
        found = [bid for bid in ids if predicate(bookings[bid])]
        self._filtered[key] = (len(bookings), found, predicate)
        while len(self._filtered) > _FILTER_CACHE_CAP:
            self._filtered.popitem(last=False)
        return found

    def _booking_changed(self, booking_id: int, *, created: bool) -> None:
        """Patch the cached filtered id lists for one booking created or changed through the API."""
        bookings = self.store.checkfront.bookings
        booking = bookings[booking_id]
        expected = len(bookings) - 1 if created else len(bookings)
        for key, (seen, ids, predicate) in list(self._filtered.items()):
            if seen != expected:
                del self._filtered[key]  # stale anyway: computed before a change we did not see
                continue
            at = bisect.bisect_left(ids, booking_id)
            present = at < len(ids) and ids[at] == booking_id
            wanted = predicate(booking)
            if wanted and not present:
                ids.insert(at, booking_id)
            elif present and not wanted:
                del ids[at]
            self._filtered[key] = (len(bookings), ids, predicate)

    def _index_filter(self, params: dict[str, Any]) -> tuple[tuple[Any, ...], _Predicate]:
        """The documented filters as one predicate, and a hashable key for the cache."""
        checks: list[_Predicate] = []
        key: list[tuple[str, str]] = []

        def given(name: str) -> str | None:
            value = params.get(name)
            if value is None or isinstance(value, dict | list) or str(value).strip() == "":
                return None
            key.append((name, str(value).strip()))
            return str(value).strip()

        status = given("status_id")
        if status is not None:
            # Unconfirmed: a comma-separated list of statuses is accepted.
            wanted_status = {part.strip().upper() for part in status.split(",") if part.strip()}
            checks.append(lambda b: str(b.get("status_id", "")).upper() in wanted_status)
        email = given("customer_email")
        if email is not None:
            wanted_email = email.lower()
            checks.append(lambda b: str(b.get("customer_email") or "").strip().lower() == wanted_email)
        customer = given("customer_id")
        if customer is not None:
            wanted_customer = _int(customer, -1)
            checks.append(lambda b: self._customer_id(b) == wanted_customer)
        item = given("item_id")
        if item is not None:
            wanted_items = {_int(part, -1) for part in item.split(",")}
            checks.append(
                lambda b: any(
                    _int(line.get("item_id")) in wanted_items for _, line in _iter_lines(b.get("lines"))
                )
            )
        partner = given("partner_id")
        if partner is not None:
            every = _int(partner, -1) == 0  # the sandbox has no partners: every booking is partner 0
            checks.append(lambda b: every)
        for name in _TIME_FILTERS:
            raw = given(name)
            if raw is not None:
                checks.append(_time_check(name, raw))

        def predicate(booking: dict[str, Any]) -> bool:
            return all(check(booking) for check in checks)

        return tuple(key), predicate


def _time_check(name: str, raw: str) -> _Predicate:
    """`>X` after, `<X` before, a bare X within that day; X is unix seconds or a date string.

    A date string stands for its UTC midnight (`>2024-01-01` = after 2024-01-01 00:00); a bare value
    (date or unix time) matches the whole day it falls in. Comparisons with a prefix are strict.
    These readings are unconfirmed beyond the docs' "prefix with < or > for before/after".
    """
    op = raw[0] if raw[0] in "<>" else "="
    text = raw[1:].strip() if op != "=" else raw
    if text.startswith("="):  # tolerate >= and <= as the strict forms' inclusive cousins
        op += "="
        text = text[1:].strip()
    moment: int | None = None
    if (
        text.isascii()
        and text.isdigit()
        and not (len(text) == 8 and _parse_day(text) is not None and text[:2] in ("19", "20"))
    ):
        moment = int(text)
    else:
        try:
            parsed = datetime.fromisoformat(text) if "T" in text or " " in text else None
        except ValueError:
            parsed = None
        if parsed is not None:
            moment = int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())
        else:
            day = _parse_day(text)
            if day is not None:
                moment = _midnight(day)
    if moment is None:
        # Unconfirmed: an unreadable filter is refused rather than ignored.
        raise _BadRequest(
            "invalid_request", "Invalid parameter", f"{name}: not a date or unix time: {raw!r}", {name: raw}
        )
    day_start = moment - moment % DAY_S

    def check(booking: dict[str, Any]) -> bool:
        value = _epoch(booking.get(name))
        if value is None:
            return False
        if op == ">":
            return value > moment
        if op == ">=":
            return value >= moment
        if op == "<":
            return value < moment
        if op == "<=":
            return value <= moment
        return day_start <= value < day_start + DAY_S

    return check
