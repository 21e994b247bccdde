"""The warehouse measured against the sandbox's own store: the yardstick of the fault soak.

Everything expected is read from the store's raw records (the Attendee JSON parsed with `json`,
Checkfront carts and bookings as the emulator keeps them, liveness by the emulator's own rule),
never through regsync's normalizers, so a normalizer bug shows up as a difference instead of
agreeing with itself. What is compared, per entity (key in brackets):

- registration [Id]: IsDeleted, status, SystemModstamp (to the microsecond), booking code and the
  Attendee JSON's sessionId, for every Event Registration Submission in the store, deleted included;
- registration_attendee [Id, position]: the attendee id at each position of the Attendee JSON's
  attendeeList;
- registration_attendee_session [Id, position, Session id]: each sessionIds entry of each attendee;
- sf_session [Id]: IsDeleted, SystemModstamp and Checkfront item id of every Salesforce Session;
- booking_session [id]: alive or missing (unknown, ended, booked or idle past the TTL, decided as the
  emulator decides it now) and, when alive, its lines (line id -> item id, qty); for every cart a
  registration names that regsync must read (all but those named only by registrations Completed
  with a booking code) and every cart the warehouse holds;
- booking [booking_id]: code, status, total and paid total, for every booking modified inside the
  booking window (a margin at its edge is left alone) and every booking the warehouse holds;
- booking_line [booking_id, line_id]: item id and qty of the booked lines (opted-out add-ons left
  out, as the emulator renders them) of every booking a registration names by code.

Children are expected only under a parent the warehouse holds (a lost parent counts once); a
child held under no parent, or under a parent whose record does not name it, is duplicated.
lost: in the store (and required), not in the warehouse. duplicated: a key twice in the warehouse,
or a key the store says should not be there. differing: on both sides, with another value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from regsync.sandbox.store import REGISTRATION, SESSION, SandboxStore
from regsync.warehouse.tables import (
    booking_lines,
    booking_session_lines,
    booking_sessions,
    bookings,
    quarantine,
    registration_attendee_sessions,
    registration_attendees,
    registrations,
    sf_sessions,
)

STATUS = "conference360__Status__c"
PAYLOAD = "conference360__Attendee_JSON__c"
BOOKING_CODE = "Checkfront_Booking_Code__c"
ITEM = "Checkfront_Item_Id__c"
ENTITIES = (
    "registration",
    "registration_attendee",
    "registration_attendee_session",
    "sf_session",
    "booking_session",
    "booking",
    "booking_line",
)
# Which quarantine source files records of which entity, so a quarantined record can be looked up.
SOURCES = {
    "registration": "salesforce.registrations",
    "registration_attendee": "salesforce.registrations",
    "registration_attendee_session": "salesforce.registrations",
    "sf_session": "salesforce.sessions",
    "booking_session": "checkfront.booking_sessions",
    "booking": "checkfront.bookings",
    "booking_line": "checkfront.booking_details",
}


@dataclass
class Tally:
    """Counts of one entity."""

    compared: int = 0
    lost: int = 0
    duplicated: int = 0
    differing: int = 0


@dataclass(frozen=True)
class Problem:
    """One record that is lost, duplicated or differing; `owner` is the record id it is filed under."""

    entity: str
    what: str  # lost | duplicated | differing
    key: Any
    owner: str
    held: Any = None  # the warehouse's value (None when lost)
    expected: Any = None  # the store's value (None when it should not be there)

    @property
    def source(self) -> str:
        """The quarantine source that files records of this entity."""
        return SOURCES[self.entity]

    def __str__(self) -> str:
        if self.what == "lost":
            return f"{self.entity} lost: {self.key} (expected {self.expected})"
        if self.what == "differing":
            return f"{self.entity} differing: {self.key}: warehouse {self.held} != store {self.expected}"
        return f"{self.entity} duplicated: {self.key} ({self.held})"


@dataclass
class Comparison:
    """The outcome of one comparison: counts per entity and every problem found."""

    tallies: dict[str, Tally] = field(default_factory=lambda: {name: Tally() for name in ENTITIES})
    problems: list[Problem] = field(default_factory=list)

    def _total(self, what: str) -> int:
        return sum(getattr(t, what) for t in self.tallies.values())

    @property
    def compared(self) -> int:
        return self._total("compared")

    @property
    def lost(self) -> int:
        return self._total("lost")

    @property
    def duplicated(self) -> int:
        return self._total("duplicated")

    @property
    def differing(self) -> int:
        return self._total("differing")

    def note(self, problem: Problem) -> None:
        tally = self.tallies[problem.entity]
        setattr(tally, problem.what, getattr(tally, problem.what) + 1)
        self.problems.append(problem)

    def keyed(
        self,
        entity: str,
        expected: Mapping[Any, Any],
        actual: Iterable[tuple[Any, Any]],
        owner: Any,
        *,
        required: Any = None,
    ) -> None:
        """Compare key -> value maps; `actual` may repeat a key (that is a duplicate).

        `owner(key)` gives the record id a problem is filed under; `required(key)` (default: all)
        says whether a key expected but absent counts as lost.
        """
        seen: Counter[Any] = Counter()
        values: dict[Any, Any] = {}
        for key, value in actual:
            seen[key] += 1
            values[key] = value
        tally = self.tallies[entity]
        for key, want in expected.items():
            if key not in values:
                if required is None or required(key):
                    tally.compared += 1
                    self.note(Problem(entity, "lost", key, owner(key), expected=want))
                continue
            tally.compared += 1
            if values[key] != want:
                self.note(Problem(entity, "differing", key, owner(key), held=values[key], expected=want))
        for key, count in seen.items():
            if count > 1:
                self.note(Problem(entity, "duplicated", key, owner(key), held=f"held {count} times"))
            if key not in expected:
                tally.compared += 1
                self.note(
                    Problem(
                        entity,
                        "duplicated",
                        key,
                        owner(key),
                        held="held, but the store says it should not be",
                    )
                )


# -- the store's side -----------------------------------------------------------------------------


def _stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def _payload(record: Mapping[str, Any]) -> dict[str, Any]:
    text = record.get(PAYLOAD)
    if not text:
        return {}
    payload = json.loads(text)
    return payload if isinstance(payload, dict) else {}


# -- the store's raw values, read here and nowhere else ------------------------------------------
# The judge's own readings of the store shapes (src/regsync/sandbox/checkfront/__init__.py's header
# comment; Checkfront's docs for what the API shows). It imports none of the emulator's helpers:
# a bug there must show as a difference, not cancel out.

_CENTS = Decimal("0.01")


def _as_int(value: Any, default: int = 0) -> int:
    """An integer the store holds as int or numeric text; `default` for anything else."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return default


def _as_seconds(value: Any) -> float:
    """Epoch seconds of a stored time (number or numeric text); 0 when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _money_of(value: Any) -> Decimal:
    """Money as the API shows it: two decimals (Checkfront renders "130.00"); 0 when unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(0).quantize(_CENTS)
    try:
        return Decimal(str(value)).quantize(_CENTS)
    except ArithmeticError:
        return Decimal(0).quantize(_CENTS)


def _lines_of(lines: Any) -> list[tuple[str, dict[str, Any]]]:
    """(line id, line) of a cart's lines (a dict by line id) or a booking's (a list, `line_id` in each)."""
    if isinstance(lines, dict):
        return [(str(key), line) for key, line in lines.items() if isinstance(line, dict)]
    if isinstance(lines, list):
        return [
            (str(line.get("line_id", index)), line)
            for index, line in enumerate(lines, start=1)
            if isinstance(line, dict)
        ]
    return []


def _seats(line: Mapping[str, Any]) -> int:
    """A line's quantity: `qty`, else the sum of its parameters (adults=2, children=1), else one."""
    if line.get("qty") not in (None, ""):
        return _as_int(line.get("qty"))
    params = line.get("param")
    if isinstance(params, dict) and params:
        return sum(_as_int(n) for n in params.values())
    return 1


def _in_the_order(line_id: str, line: Mapping[str, Any]) -> bool:
    """A booked line the booking shows: a main line, or a package add-on not explicitly opted out."""
    if not (line.get("package") or "." in line_id):
        return True
    opt = line.get("opt")
    if isinstance(opt, str) and opt:
        return opt.lower() == "in"
    chosen = line.get("optin")
    if chosen is None:
        return True  # booked: in unless it says otherwise
    if isinstance(chosen, str):
        return chosen.lower() in ("in", "i", "optin", "1", "true")
    return bool(chosen)


def _cart_alive(store: SandboxStore, session_id: str, now: float) -> bool:
    """The emulator's rule: stored, not ended, not booked, idle no longer than the TTL."""
    cart = store.checkfront.booking_sessions.get(session_id)
    if cart is None or cart.get("ended") is not None or cart.get("booking_code"):
        return False
    changed = _as_seconds(cart.get("modified")) or _as_seconds(cart.get("created"))
    return now - changed <= store.checkfront.session_ttl_s


def _cart_lines(store: SandboxStore, session_id: str) -> tuple[tuple[str, str, int], ...]:
    cart = store.checkfront.booking_sessions[session_id]
    return tuple(
        sorted(
            (line_id, str(_as_int(line.get("item_id"))), _seats(line))
            for line_id, line in _lines_of(cart["lines"])
        )
    )


def _booked_lines(booking: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """line id -> (item id, qty) of the lines GET /booking/{id} shows (numbered as the emulator does)."""
    lines: dict[str, tuple[str, int]] = {}
    position = 0
    for line_id, line in _lines_of(booking.get("lines")):
        if not _in_the_order(line_id, line):
            continue
        position += 1
        number = _as_int(line.get("line_id"), position) if "line_id" in line else position
        lines[str(number)] = (str(_as_int(line.get("item_id"))), _seats(line))
    return lines


# -- the comparison -------------------------------------------------------------------------------


def compare_with_store(
    engine: Engine,
    store: SandboxStore,
    *,
    booking_window_start: float,
    window_margin_s: float = 300.0,
) -> Comparison:
    """Compare the warehouse behind `engine` with the sandbox `store` (see the module docstring).

    booking_window_start: epoch seconds; bookings modified after it (plus the margin) must be held.
    """
    result = Comparison()
    with store.lock:
        _registrations(engine, store, result)
        _sf_sessions(engine, store, result)
        _booking_sessions(engine, store, result)
        _bookings(engine, store, result, booking_window_start + window_margin_s)
    return result


def _registrations(engine: Engine, store: SandboxStore, result: Comparison) -> None:
    records = store.salesforce.tables[REGISTRATION]
    expected: dict[str, tuple[Any, ...]] = {}
    attendees: dict[tuple[str, int], str] = {}
    attendee_sessions: dict[tuple[str, int, str], bool] = {}
    for record_id, record in records.items():
        payload = _payload(record)
        expected[record_id] = (
            record["IsDeleted"],
            record[STATUS],
            _stamp(record["SystemModstamp"]),
            record.get(BOOKING_CODE) or None,
            payload.get("sessionId") or None,
        )
        for position, person in enumerate(payload.get("attendeeList") or []):
            attendees[(record_id, position)] = person["id"]
            for session_id in person.get("sessionIds") or []:
                attendee_sessions[(record_id, position, session_id)] = True
    r = registrations.c
    with engine.connect() as connection:
        held = [
            (row[0], tuple(row[1:]))
            for row in connection.execute(
                select(r.id, r.is_deleted, r.status, r.system_modstamp, r.booking_code, r.booking_session_id)
            )
        ]
        held_attendees = [
            ((row[0], row[1]), row[2])
            for row in connection.execute(
                select(
                    registration_attendees.c.registration_id,
                    registration_attendees.c.position,
                    registration_attendees.c.attendee_id,
                )
            )
        ]
        ras = registration_attendee_sessions.c
        held_sessions = [
            ((row[0], row[1], row[2]), True)
            for row in connection.execute(select(ras.registration_id, ras.position, ras.session_id))
        ]
    result.keyed("registration", expected, held, owner=lambda key: key)
    present = {key for key, _ in held}
    result.keyed(
        "registration_attendee",
        {k: v for k, v in attendees.items() if k[0] in present},
        held_attendees,
        owner=lambda key: key[0],
    )
    result.keyed(
        "registration_attendee_session",
        {k: v for k, v in attendee_sessions.items() if k[0] in present},
        held_sessions,
        owner=lambda key: key[0],
    )


def _sf_sessions(engine: Engine, store: SandboxStore, result: Comparison) -> None:
    expected = {
        record_id: (record["IsDeleted"], _stamp(record["SystemModstamp"]), _item(record.get(ITEM)))
        for record_id, record in store.salesforce.tables[SESSION].items()
    }
    s = sf_sessions.c
    with engine.connect() as connection:
        held = [
            (row[0], tuple(row[1:]))
            for row in connection.execute(select(s.id, s.is_deleted, s.system_modstamp, s.checkfront_item_id))
        ]
    result.keyed("sf_session", expected, held, owner=lambda key: key)


def _item(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(int(value)) if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _booking_sessions(engine: Engine, store: SandboxStore, result: Comparison) -> None:
    now = store.clock.now()
    named: set[str] = set()
    needed: set[str] = set()
    for record in store.salesforce.tables[REGISTRATION].values():
        cart = _payload(record).get("sessionId")
        if not cart:
            continue
        named.add(cart)
        if not (record[STATUS] == "Completed" and record.get(BOOKING_CODE)):
            needed.add(cart)
    expected: dict[str, tuple[Any, ...]] = {}
    for cart in sorted(named):
        alive = _cart_alive(store, cart, now)
        expected[cart] = ("alive", _cart_lines(store, cart)) if alive else ("missing", ())
    b, bl = booking_sessions.c, booking_session_lines.c
    with engine.connect() as connection:
        states = list(connection.execute(select(b.id, b.state)))
        lines: dict[str, list[tuple[str, str, int]]] = {}
        for row in connection.execute(select(bl.booking_session_id, bl.line_id, bl.item_id, bl.qty)):
            lines.setdefault(row[0], []).append((row[1], row[2], row[3]))
    held = [(cart, (state, tuple(sorted(lines.get(cart, []))))) for cart, state in states]
    result.keyed("booking_session", expected, held, owner=lambda key: key, required=lambda key: key in needed)


def _bookings(engine: Engine, store: SandboxStore, result: Comparison, must_hold_after: float) -> None:
    stored = store.checkfront.bookings
    expected = {
        booking_id: (
            str(booking.get("code") or ""),
            str(booking.get("status_id") or "PEND").upper(),
            _money_of(booking.get("total")),
            _money_of(booking.get("paid_total")),
        )
        for booking_id, booking in stored.items()
    }
    in_window = {
        booking_id
        for booking_id, booking in stored.items()
        if _as_seconds(booking.get("last_modified")) > must_hold_after
    }
    k = bookings.c
    with engine.connect() as connection:
        held = [
            (row[0], tuple(row[1:]))
            for row in connection.execute(select(k.booking_id, k.code, k.status_id, k.total, k.paid_total))
        ]
        held_lines = [
            ((row[0], row[1]), (row[2], row[3]))
            for row in connection.execute(
                select(
                    booking_lines.c.booking_id,
                    booking_lines.c.line_id,
                    booking_lines.c.item_id,
                    booking_lines.c.qty,
                )
            )
        ]
    result.keyed("booking", expected, held, owner=str, required=lambda key: key in in_window)
    # Lines: those of every held booking a registration names by code (what regsync fetches).
    codes = {
        record.get(BOOKING_CODE)
        for record in store.salesforce.tables[REGISTRATION].values()
        if record.get(BOOKING_CODE)
    }
    present = {booking_id for booking_id, _ in held}
    by_id = {booking_id: booking for booking_id, booking in stored.items()}
    expected_lines = {
        (booking_id, line_id): value
        for booking_id in present
        if booking_id in by_id and by_id[booking_id].get("code") in codes
        for line_id, value in _booked_lines(by_id[booking_id]).items()
    }
    code_of = {booking_id: str(booking.get("code") or "") for booking_id, booking in stored.items()}
    result.keyed(
        "booking_line",
        expected_lines,
        held_lines,
        owner=lambda key: code_of.get(key[0], str(key[0])),
    )


def quarantined_records(engine: Engine, store: SandboxStore) -> set[tuple[str, str]]:
    """(source, record id) of every quarantined record, filed as Comparison.problems files them.

    A wrong-typed booking id leaves the quarantine's own record id useless ("not-a-number"), so a
    booking is identified by the code its payload carries.
    """
    ids_by_code = {str(b.get("code")): str(booking_id) for booking_id, b in store.checkfront.bookings.items()}
    found: set[tuple[str, str]] = set()
    with engine.connect() as connection:
        for source, record_id, text in connection.execute(
            select(quarantine.c.source, quarantine.c.record_id, quarantine.c.payload)
        ):
            if source == "checkfront.bookings":
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {}
                code = payload.get("code") if isinstance(payload, dict) else None
                record_id = ids_by_code.get(str(code), record_id)
            found.add((source, record_id))
    return found
