"""Prices and seats: what a line costs, what is left of an item on a day, live carts included."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from regsync.sandbox.checkfront.envelope import CheckfrontCore
from regsync.sandbox.checkfront.lines import _demand, _iter_lines, _line_day_keys
from regsync.sandbox.checkfront.values import (
    RELEASED_STATUSES,
    UNLIMITED,
    _BadRequest,
    _day_desc,
    _dec,
    _dollars,
    _int,
    _parse_day,
    _seconds,
    _ymd,
)
from regsync.sandbox.store import SandboxStore


class Inventory(CheckfrontCore):
    """Prices, and the seats bookings and live carts take, indexed per item and day."""

    def __init__(self, store: SandboxStore, **account: str) -> None:
        super().__init__(store, **account)
        # Inventory index per (item_id, YYYYMMDD): the seats each booking's lines take there, and
        # the carts with lines there. A booking's status and a cart's liveness are read at query
        # time, so cancellations, ends and expiry need no bookkeeping; cart amounts are read from
        # the cart (a few lines). Rebuilt when the store's counts change behind our back (the
        # generator or a test filling the store directly; see also invalidate()).
        self._booked_on: dict[tuple[int, str], dict[int, int]] = {}
        self._held_on: dict[tuple[int, str], set[str]] = {}
        self._inventory_seen: tuple[int, int] | None = None

    @staticmethod
    def _prices(item: dict[str, Any]) -> dict[str, Decimal]:
        params = item.get("params")
        return {str(k): _dec(v) for k, v in params.items()} if isinstance(params, dict) else {}

    def _price(self, item: dict[str, Any] | None, param: dict[str, int], qty: int, length: int) -> Decimal:
        if item is None:
            return Decimal(0)
        prices = self._prices(item)
        if prices:
            per_day = sum((prices.get(name, Decimal(0)) * count for name, count in param.items()), Decimal(0))
            if not param:  # a param-less SLIP for an item with params: the first param's price
                per_day = next(iter(prices.values())) * qty
        else:
            per_day = _dec(item.get("price")) * qty
        return per_day * length

    def _rate_summary(
        self, item: dict[str, Any] | None, param: dict[str, int], qty: int, length: int, *, quote: str
    ) -> str:
        """ "<strong title="Adults">Adults:</strong> 1 Day @ $130.00" (param-less: "$18.00").

        Unconfirmed for more than one person: "2 x 1 Day @ $130.00" (the unit price).
        """
        prices = self._prices(item) if item is not None else {}
        if not param:
            return _dollars(self._price(item, {}, qty, length))
        days = f"{length} Day" if length == 1 else f"{length} Days"
        parts = []
        for name, count in param.items():
            if count <= 0:
                continue
            label = _label(name)
            times = f"{count} x " if count > 1 else ""
            price = _dollars(prices.get(name, Decimal(0)))
            parts.append(f"<strong title={quote}{label}{quote}>{label}:</strong> {times}{days} @ {price}")
        return ", ".join(parts)

    @staticmethod
    def _unlimited(item: dict[str, Any] | None) -> bool:
        return item is None or bool(item.get("unlimited")) or item.get("stock") is None

    def _ensure_inventory(self) -> None:
        cf = self.store.checkfront
        seen = (len(cf.bookings), len(cf.booking_sessions))
        if self._inventory_seen == seen:
            return
        self._booked_on = {}
        self._held_on = {}
        for booking in cf.bookings.values():
            self._index_booking(booking)
        for session in cf.booking_sessions.values():
            self._index_session(session)
        self._inventory_seen = seen

    def _index_booking(self, booking: dict[str, Any]) -> None:
        booking_id = _int(booking.get("booking_id"))
        for key, seats in _demand(booking.get("lines")).items():
            self._booked_on.setdefault(key, {})[booking_id] = seats

    def _index_session(self, session: dict[str, Any]) -> None:
        session_id = str(session.get("id"))
        for _, line in _iter_lines(session.get("lines")):
            for day in _line_day_keys(line):
                # Opted-out add-ons too: opting in later must find them without a rebuild.
                self._held_on.setdefault((_int(line.get("item_id")), day), set()).add(session_id)

    def _seats_taken(self, key: tuple[int, str], *, exclude_session: str | None = None) -> int:
        """Seats of (item_id, YYYYMMDD) taken by live bookings and live booking sessions."""
        cf = self.store.checkfront
        taken = 0
        for booking_id, seats in self._booked_on.get(key, {}).items():
            booking = cf.bookings.get(booking_id)
            if booking is None or str(booking.get("status_id", "")).upper() in RELEASED_STATUSES:
                continue
            taken += seats
        now = self.store.clock.now()
        for session_id in self._held_on.get(key, ()):
            if session_id == exclude_session:
                continue
            session = self._live_session(session_id, now)
            if session is not None:
                taken += _demand(session.get("lines")).get(key, 0)
        return taken

    def _available(
        self, item: dict[str, Any] | None, days: list[date], *, exclude_session: str | None = None
    ) -> int:
        """Stock minus seats booked minus seats held by live carts, the tightest day of the span."""
        if self._unlimited(item) or not days:
            return UNLIMITED
        assert item is not None
        self._ensure_inventory()
        stock = _int(item.get("stock"))
        item_id = _int(item.get("item_id"))
        left = min(
            stock - self._seats_taken((item_id, _ymd(day)), exclude_session=exclude_session) for day in days
        )
        return max(0, left)

    def _check_capacity(self, old_lines: Any, new_lines: Any, session_id: str | None) -> None:
        """Refuse a change that needs more seats than are left; a change that needs fewer is fine."""
        before = _demand(old_lines)
        items = self.store.checkfront.items
        for key, qty in sorted(_demand(new_lines).items()):
            if qty <= before.get(key, 0):
                continue
            item = items.get(key[0])
            if self._unlimited(item):
                continue
            day = _parse_day(key[1])
            assert item is not None
            assert day is not None
            left = self._available(item, [day], exclude_session=session_id)
            if qty > left:
                # Unconfirmed: the docs show no sold-out answer to a cart change.
                raise _BadRequest(
                    "unavailable",
                    "Not available",
                    f"{item.get('name') or key[0]}: only {left} available on {_day_desc(day)}.",
                    {"item_id": key[0], "date": key[1], "available": left},
                )

    def _live_session(self, session_id: str | None, now: float) -> dict[str, Any] | None:
        """The stored session if it is alive: not ended, not booked, idle no longer than the TTL.

        Here rather than with the session routes: only a live cart holds seats.
        """
        if not session_id:
            return None
        session = self.store.checkfront.booking_sessions.get(session_id)
        if session is None or session.get("ended") is not None or session.get("booking_code"):
            return None
        modified = _seconds(session.get("modified")) or _seconds(session.get("created"))
        if now - modified > self.store.checkfront.session_ttl_s:
            return None
        return session


def _label(param: str) -> str:
    return param.replace("_", " ").title()
