"""The ground truth of a dataset: what docs/rules.md says about it, read from its words.

`compute_truth` is the reference the SQL rules and the planner are tested against, so it reads the
raw API-shaped store itself and imports neither of them (nor the warehouse, nor what building and
planting did: tests/unit/test_layers.py holds that).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from regsync import definitions as words
from regsync.sandbox.dataset import format_anchor, parse_anchor, parse_ms
from regsync.sandbox.generator.config import (
    AMOUNT,
    AMOUNT_MISMATCH,
    ATTENDEE_COUNT_MISMATCH,
    ATTENDEE_SESSIONS_MISMATCH,
    BOOKING_CODE,
    BOOKING_CODE_MISSING,
    BOOKING_NOT_FOUND,
    BOOKING_SESSION_MISSING,
    BOOKING_WITHOUT_REGISTRATION,
    COMPLETED_BOOKING_UNPAID,
    DRAFT_BOOKING_PAID,
    DUPLICATE_BOOKING_CODE,
    DUPLICATE_REGISTRATION,
    ITEM_ID,
    PAYLOAD,
    REGISTRATION_PARTLY_READ,
    STALE_DRAFT,
    STATUS,
    Thresholds,
)
from regsync.sandbox.store import REGISTRATION, SESSION, SandboxStore

TRUTH_FORMAT = "regsync-sandbox-truth"
TRUTH_VERSION = 1


@dataclass(frozen=True)
class PlantedMismatch:
    """One reported case: a reason code and what identifies the case (None where not part of it).

    Named apart from regsync.reconcile.rules.Mismatch (what the SQL rules report), which it is
    compared with but must not share code with.
    """

    code: str
    registration_id: str | None
    booking_session_id: str | None
    booking_code: str | None

    def sort_key(self) -> tuple[str, str, str, str]:
        return (
            self.code,
            self.registration_id or "",
            self.booking_session_id or "",
            self.booking_code or "",
        )

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True)
class PlantedCase:
    """What the generator planted and what it expects the rules to find there (in memory only)."""

    kind: str
    registration_ids: tuple[str, ...]
    booking_session_id: str | None
    booking_code: str | None
    pending: tuple[str, ...] = ()
    stale_booking_sessions: tuple[str, ...] = ()
    mismatches: tuple[PlantedMismatch, ...] = ()


@dataclass
class Truth:
    """What docs/rules.md says about a dataset at `anchor` (epoch seconds)."""

    anchor: float
    thresholds: Thresholds
    pending_registrations: list[str]
    stale_booking_sessions: list[str]
    mismatches: list[PlantedMismatch]
    planted: dict[str, int] = field(default_factory=dict)
    cases: list[PlantedCase] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "anchor": format_anchor(self.anchor),
            "thresholds": self.thresholds.to_json(),
            "pending_registrations": self.pending_registrations,
            "stale_booking_sessions": self.stale_booking_sessions,
            "mismatches": [m.to_json() for m in self.mismatches],
            "planted": self.planted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Truth:
        if data.get("format") != TRUTH_FORMAT or data.get("version") != TRUTH_VERSION:
            raise ValueError(f"not a {TRUTH_FORMAT} version {TRUTH_VERSION} document")
        return cls(
            anchor=parse_anchor(data["anchor"]),
            thresholds=Thresholds.from_json(data["thresholds"]),
            pending_registrations=list(data["pending_registrations"]),
            stale_booking_sessions=list(data["stale_booking_sessions"]),
            mismatches=[PlantedMismatch(**m) for m in data["mismatches"]],
            planted=dict(data.get("planted") or {}),
        )

    @classmethod
    def load(cls, path: Path | str) -> Truth:
        return cls.from_json(orjson.loads(Path(path).read_bytes()))

    def expected_by_cases(self) -> tuple[set[str], set[str], set[PlantedMismatch]]:
        """The union of what the planted cases expect: pending ids, stale ids, mismatches."""
        pending: set[str] = set()
        stale: set[str] = set()
        mismatches: set[PlantedMismatch] = set()
        for case in self.cases:
            pending.update(case.pending)
            stale.update(case.stale_booking_sessions)
            mismatches.update(case.mismatches)
        return pending, stale, mismatches


def write_truth(truth: Truth, path: Path | str) -> Path:
    """Write a truth file (owner-only, like the dataset it describes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IRUSR | stat.S_IWUSR
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(truth.to_json(), option=orjson.OPT_INDENT_2))
        handle.write(b"\n")
    os.chmod(path, mode)
    return path


def truth_path(dataset_path: Path | str) -> Path:
    """``<stem>.truth.json`` beside the dataset file."""
    dataset_path = Path(dataset_path)
    return dataset_path.with_name(f"{dataset_path.stem}.truth.json")


# ---------------------------------------------------------------------------------------------
# The reference implementation of docs/rules.md
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while millions of acyclic records are made or scanned.

    Each full collection walks every live object, so with the collector on, building a million
    registrations spends most of its time re-walking the records already built.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_SF_STATUSES = ("Draft", "To Process", "Completed", "Failed")
_LEGIBLE_SESSION_ID = re.compile(r'"sessionId"\s*:\s*"([^"\\]{1,64})"')
_MONEY_LIMIT = Decimal(words.SF_CURRENCY_LIMIT)


def _is_sf_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) in (15, 18) and value.isascii() and value.isalnum()


def _is_text(value: Any, longest: int) -> bool:
    if not isinstance(value, str) or len(value) > longest or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _ms(value: Any) -> int | None:
    """Epoch ms of a Salesforce datetime text (canonical, or ISO 8601 with a zone); None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_ms(value)
    except ValueError:
        pass
    text = value[:-2] + ":" + value[-2:] if len(value) >= 5 and value[-5] in "+-" else value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return math.floor(moment.timestamp() * 1000)


@dataclass
class _Reading:
    """What docs/rules.md lets a registration contribute: its readable parts, and the rest named."""

    reg_id: str
    deleted: bool
    status: str
    created_ms: int
    session_id: str | None = None  # readable booking session link (or legible in a broken payload)
    code: str | None = None
    amount: Decimal | None = None
    attendees: list[set[str]] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)


def _read_registration(reg: dict[str, Any]) -> _Reading | None:
    """docs/rules.md "Partly read registrations": None when the identity itself cannot be read."""
    reg_id = reg.get("Id")
    deleted = reg.get("IsDeleted", False)
    status = reg.get(STATUS)
    created = _ms(reg.get("CreatedDate"))
    if (
        not _is_sf_id(reg_id)
        or not isinstance(deleted, bool)
        or status not in _SF_STATUSES
        or created is None
        or _ms(reg.get("LastModifiedDate")) is None
        or _ms(reg.get("SystemModstamp")) is None
    ):
        return None
    reading = _Reading(str(reg_id), deleted, status, created)
    bad = reading.unreadable
    # Attendee JSON: the booking session link and the attendees with their Session ids.
    text = reg.get(PAYLOAD)
    payload: Any = {}
    if text not in (None, ""):
        if not isinstance(text, str):
            payload = None
        else:
            try:
                payload = json.loads(text)
            except (ValueError, RecursionError):
                payload = None
        if not isinstance(payload, dict):
            bad.update(("attendees", "booking_session"))
            legible = (
                {m.strip() for m in _LEGIBLE_SESSION_ID.findall(text)} if isinstance(text, str) else set()
            )
            legible.discard("")
            reading.session_id = legible.pop() if len(legible) == 1 else None
            payload = None
    if payload is not None:
        session_id = payload.get("sessionId")
        if session_id is None:
            pass
        elif _is_text(session_id, 64):
            reading.session_id = session_id or None
        else:
            bad.add("booking_session")
        listed = payload.get("attendeeList")
        if listed is None:
            listed = []
        if not isinstance(listed, list):
            bad.add("attendees")
            listed = []
        for attendee in listed:
            if not isinstance(attendee, dict) or not _is_sf_id(attendee.get("id")):
                bad.add("attendees")
                continue
            ids = attendee.get("sessionIds")
            if ids is None:
                ids = []
            if not isinstance(ids, list):
                bad.add("attendees")
                continue
            if not all(_is_sf_id(one) for one in ids):
                bad.add("attendees")
            reading.attendees.append({one for one in ids if _is_sf_id(one)})
    code = reg.get(BOOKING_CODE)
    if code is not None:
        if _is_text(code, 64):
            reading.code = code.strip().upper() or None
        else:
            bad.add("booking_code")
    amount = reg.get(AMOUNT)
    if amount not in (None, ""):
        try:
            if isinstance(amount, bool) or not isinstance(amount, int | float | str):
                raise ValueError(amount)
            value = Decimal(repr(amount) if isinstance(amount, float) else str(amount).strip())
            if not value.is_finite() or abs(value) >= _MONEY_LIMIT:
                raise ValueError(amount)
            reading.amount = value
        except (ValueError, ArithmeticError):
            bad.add("amount")
    name, event, error = (
        reg.get("Name"),
        reg.get("conference360__Event__c"),
        reg.get("conference360__Error_Message__c"),
    )
    if (
        (name is not None and not _is_text(name, 80))
        or (event is not None and not _is_sf_id(event))
        or (error is not None and not _is_text(error, 131_072))
    ):
        bad.add("other")
    return reading


def _cf_money(value: Any) -> Decimal:
    """A Checkfront total as the API states it: two decimals, missing as 0.00."""
    try:
        amount = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except ArithmeticError:
        amount = Decimal(0)
    return amount.quantize(Decimal("0.01")) if amount.is_finite() else Decimal(0)


def _to_float(value: Any) -> float:
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def _qty(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def compute_truth(
    store: SandboxStore, thresholds: Thresholds | None = None, now: float | None = None
) -> Truth:
    """Evaluate docs/rules.md over the store as it is, at `now` (default: the store's clock).

    Straightforward on purpose: it is the reference the planner and the reconciliation are tested
    against, read from docs/rules.md's words over the raw API-shaped store. It shares no code with
    the SQL rules or the planner (only the threshold defaults of regsync.definitions).
    """
    th = thresholds or Thresholds()
    now = store.clock.now() if now is None else float(now)
    now_ms = now * 1000
    confirmed = frozenset(status.upper() for status in th.confirmed_statuses)
    tolerance = Decimal(str(th.amount_tolerance))
    pending: list[str] = []
    mismatches: list[PlantedMismatch] = []
    with store.lock, gc_paused():
        tables = store.salesforce.tables
        cf = store.checkfront
        item_of_session: dict[str, str] = {}
        for session in tables[SESSION].values():
            item = session.get(ITEM_ID)
            if item not in (None, "") and not session.get("IsDeleted"):
                item_of_session[session["Id"]] = (
                    str(int(item)) if isinstance(item, int | float) else str(item)
                )
        mapped_items = set(item_of_session.values())
        booking_by_code: dict[str, dict[str, Any]] = {}
        booking: dict[str, Any] | None
        for booking in cf.bookings.values():
            booking_by_code.setdefault(str(booking.get("code") or "").strip().upper(), booking)
        carts = cf.booking_sessions
        cart_ttl = cf.session_ttl_s

        def alive(cart: dict[str, Any] | None) -> bool:
            """Rule 1 of stale sessions: not ended, no booking made from it, not expired."""
            return (
                cart is not None
                and cart.get("ended") is None
                and not cart.get("booking_code")
                and now - cart["modified"] <= cart_ttl
            )

        def out_of_flight(created_ms: float) -> bool:
            return created_ms < now_ms - th.in_flight_s * 1000

        known: set[str] = set()  # booking sessions some registration names (deleted ones too)
        protected: set[str] = set()  # ... named by a Draft/To Process younger than stale_draft_s
        held: set[str] = set()  # ... named by a registration not fully read (fail safe)
        hold_all = False
        carried_codes: set[str] = set()
        by_session: dict[str, list[_Reading]] = {}
        by_code: dict[str, list[_Reading]] = {}
        for reg in tables[REGISTRATION].values():
            reading = _read_registration(reg)
            if reading is None:  # quarantined: whatever booking session its text names is held
                text = reg.get(PAYLOAD)
                text = text if isinstance(text, str) else ""
                names = {m.strip() for m in _LEGIBLE_SESSION_ID.findall(text)}
                names.discard("")
                held.update(names)
                if not names and "sessionId" in text:
                    hold_all = True
                continue
            young = reading.created_ms > now_ms - th.stale_draft_s * 1000
            in_progress = not reading.deleted and reading.status in words.IN_PROGRESS_STATUSES
            if reading.session_id is not None:
                known.add(reading.session_id)
                if in_progress and young:
                    protected.add(reading.session_id)
                if reading.unreadable:
                    held.add(reading.session_id)
            elif "booking_session" in reading.unreadable and in_progress and young:
                hold_all = True
            if reading.deleted:
                continue
            if reading.code is not None:
                carried_codes.add(reading.code)
            if not out_of_flight(reading.created_ms):
                continue  # in flight: never the subject of a mismatch or a write
            if reading.session_id is not None and "booking_session" not in reading.unreadable:
                by_session.setdefault(reading.session_id, []).append(reading)
            if reading.code is not None:
                by_code.setdefault(reading.code, []).append(reading)
            stale_cut = now_ms - th.stale_draft_s * 1000
            found = _registration_codes(
                reading, booking_by_code, confirmed, alive(carts.get(reading.session_id or "")), stale_cut
            )
            booking = booking_by_code.get(reading.code) if reading.code is not None else None
            bad = reading.unreadable
            if reading.unreadable:
                found.append(REGISTRATION_PARTLY_READ)
            elif (
                reading.status == words.PENDING_STATUS
                and booking is not None
                and str(booking.get("status_id") or "").upper() in confirmed
                and reading.attendees
                and all(reading.attendees)
            ):
                pending.append(reading.reg_id)
                if reading.created_ms < now_ms - th.overdue_s * 1000:
                    found.append(DRAFT_BOOKING_PAID)
            if booking is not None and "booking_code" not in bad:
                if "attendees" not in bad:
                    seats_needed = sum(len(ids) for ids in reading.attendees)
                    items_needed = {
                        item_of_session[one]
                        for ids in reading.attendees
                        for one in ids
                        if one in item_of_session
                    }
                    seats_booked = 0
                    items_booked: set[str] = set()
                    for line in booking.get("lines") or ():
                        item = str(line.get("item_id"))
                        qty = _qty(line.get("qty"))
                        if item in mapped_items and qty > 0:
                            seats_booked += qty
                            items_booked.add(item)
                    if seats_needed != seats_booked:
                        found.append(ATTENDEE_COUNT_MISMATCH)
                    if items_needed != items_booked:
                        found.append(ATTENDEE_SESSIONS_MISMATCH)
                differs = reading.amount is not None and (
                    abs(reading.amount - _cf_money(booking.get("total"))) > tolerance
                )
                if differs and "amount" not in bad:
                    found.append(AMOUNT_MISMATCH)
            for reason in found:
                mismatches.append(PlantedMismatch(reason, reading.reg_id, reading.session_id, reading.code))
        for session_id, regs in by_session.items():
            if len(regs) > 1:
                mismatches += [
                    PlantedMismatch(DUPLICATE_REGISTRATION, g.reg_id, session_id, g.code) for g in regs
                ]
        for code, regs in by_code.items():
            if len(regs) > 1:
                mismatches += [
                    PlantedMismatch(DUPLICATE_BOOKING_CODE, g.reg_id, g.session_id, code) for g in regs
                ]
        for booking in cf.bookings.values():
            code = str(booking.get("code") or "").strip().upper()
            if (
                str(booking.get("status_id") or "").upper() not in words.UNTRACKED_BOOKING_STATUSES
                and now - _to_float(booking.get("created_date")) > th.in_flight_s
                and code not in carried_codes
            ):
                mismatches.append(PlantedMismatch(BOOKING_WITHOUT_REGISTRATION, None, None, code))
        stale = [
            session_id
            for session_id in known
            if not hold_all
            and session_id not in protected
            and session_id not in held
            and alive(carts.get(session_id))
            and now - carts[session_id]["modified"] > th.stale_session_ttl_s
        ]
        mismatches.sort(key=PlantedMismatch.sort_key)
        pending.sort()
        stale.sort()
    return Truth(
        anchor=now,
        thresholds=th,
        pending_registrations=pending,
        stale_booking_sessions=stale,
        mismatches=mismatches,
    )


def _registration_codes(
    reading: _Reading,
    booking_by_code: dict[str, dict[str, Any]],
    confirmed: frozenset[str],
    cart_alive: bool,
    stale_cut_ms: float,
) -> list[str]:
    """The codes of docs/rules.md about a registration's status, booking and booking session."""
    bad = reading.unreadable
    found: list[str] = []
    if "booking_code" in bad:
        return found
    booking = booking_by_code.get(reading.code) if reading.code is not None else None
    booking_confirmed = booking is not None and str(booking.get("status_id") or "").upper() in confirmed
    if reading.code is not None and booking is None:
        found.append(BOOKING_NOT_FOUND)
    if reading.status == words.COMPLETED and booking is not None and not booking_confirmed:
        found.append(COMPLETED_BOOKING_UNPAID)
    if reading.status == words.DRAFT and not booking_confirmed and reading.created_ms < stale_cut_ms:
        found.append(STALE_DRAFT)
    gone = reading.session_id is not None and not cart_alive
    if booking is None and gone and "booking_session" not in bad:
        if reading.status == words.DRAFT:
            found.append(BOOKING_SESSION_MISSING)
        elif reading.status == words.TO_PROCESS and reading.code is None:
            found.append(BOOKING_CODE_MISSING)
    return found
