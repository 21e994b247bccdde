"""Deterministic sandbox data with planted defects, and its ground truth computed from docs/rules.md."""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import json
import math
import os
import random
import re
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from regsync import definitions as words
from regsync.sandbox.dataset import (
    DEFAULT_SESSION_TTL_S,
    format_anchor,
    format_ms,
    parse_anchor,
    parse_ms,
    save_dataset,
)
from regsync.sandbox.store import (
    ATTENDEE,
    EVENT,
    REGISTRATION,
    SCHEMAS,
    SESSION,
    SESSION_ATTENDEE,
    SandboxStore,
    id_checksum,
)

DEFAULT_ANCHOR = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TRUTH_FORMAT = "regsync-sandbox-truth"
TRUTH_VERSION = 1
GENERATOR_VERSION = 1

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
NEWEST_STAMP = -5 * MIN  # no generated SystemModstamp is younger than this (relative to the anchor)

# The codes of docs/rules.md.
BOOKING_SESSION_MISSING = "BOOKING_SESSION_MISSING"
BOOKING_WITHOUT_REGISTRATION = "BOOKING_WITHOUT_REGISTRATION"
ATTENDEE_COUNT_MISMATCH = "ATTENDEE_COUNT_MISMATCH"
ATTENDEE_SESSIONS_MISMATCH = "ATTENDEE_SESSIONS_MISMATCH"
COMPLETED_BOOKING_UNPAID = "COMPLETED_BOOKING_UNPAID"
DRAFT_BOOKING_PAID = "DRAFT_BOOKING_PAID"
DUPLICATE_REGISTRATION = "DUPLICATE_REGISTRATION"
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
STALE_DRAFT = "STALE_DRAFT"
BOOKING_CODE_MISSING = "BOOKING_CODE_MISSING"
BOOKING_NOT_FOUND = "BOOKING_NOT_FOUND"
DUPLICATE_BOOKING_CODE = "DUPLICATE_BOOKING_CODE"
REGISTRATION_PARTLY_READ = "REGISTRATION_PARTLY_READ"
# Codes no generated story plants (their cases are hand-made: tests/reconcile/test_findings.py and
# the differential test tests/reconcile/test_differential.py).
UNPLANTED_CODES = (BOOKING_NOT_FOUND, DUPLICATE_BOOKING_CODE, REGISTRATION_PARTLY_READ)

STATUS = "conference360__Status__c"
PAYLOAD = "conference360__Attendee_JSON__c"
AMOUNT = "conference360__Amount__c"
BOOKING_CODE = "Checkfront_Booking_Code__c"
ITEM_ID = "Checkfront_Item_Id__c"


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """The thresholds of docs/rules.md, with its defaults."""

    in_flight_s: float = words.IN_FLIGHT_S
    confirmed_statuses: tuple[str, ...] = words.CONFIRMED_STATUSES
    stale_session_ttl_s: float = words.STALE_SESSION_TTL_S
    overdue_s: float = words.OVERDUE_S
    stale_draft_s: float = words.STALE_DRAFT_S
    amount_tolerance: float = float(words.AMOUNT_TOLERANCE)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["confirmed_statuses"] = list(self.confirmed_statuses)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Thresholds:
        values = dict(data)
        if "confirmed_statuses" in values:
            values["confirmed_statuses"] = tuple(values["confirmed_statuses"])
        return cls(**values)


@dataclass(frozen=True)
class PlantRates:
    """How often each defect is planted, per registration (0 plants none)."""

    pending: float = 0.02  # Draft + confirmed booking, older than in_flight_s, younger than overdue_s
    overdue: float = 0.01  # the same, older than overdue_s: pending and DRAFT_BOOKING_PAID
    session_missing: float = 0.01  # Draft/To Process, no booking, booking session unknown
    seats_mismatch: float = 0.01  # one booked line's qty changed
    sessions_mismatch: float = 0.01  # one booked line moved to another item of the event
    completed_unpaid: float = 0.01  # Completed, booking PEND or HOLD
    booking_without_registration: float = 0.01  # a booking whose code no registration carries
    duplicate: float = 0.01  # two registrations naming one booking session (a case is the pair)
    amount_mismatch: float = 0.01  # registration amount off the booking total by >= 1.00
    stale_draft: float = 0.015  # Draft older than stale_draft_s without a booking
    stale_session: float = 0.015  # live idle session named only by a Failed or deleted registration
    protected_session: float = 0.015  # idle session named by a young Draft: must NOT be stale
    unreferenced_session: float = 0.01  # idle session no registration names: invisible, not stale

    @classmethod
    def none(cls) -> PlantRates:
        """No defects at all: a clean population."""
        return cls(**dict.fromkeys(cls.kinds(), 0.0))

    @classmethod
    def only(cls, **rates: float) -> PlantRates:
        """These kinds at these rates, every other kind off."""
        return cls(**{**dict.fromkeys(cls.kinds(), 0.0), **rates})

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_json(self) -> dict[str, float]:
        return asdict(self)


# Registrations one planted case uses (the others make bookings or carts only).
_REGISTRATIONS_PER_CASE = {
    **dict.fromkeys(PlantRates.kinds(), 1),
    "duplicate": 2,
    "booking_without_registration": 0,
    "unreferenced_session": 0,
}


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. The same config always generates the same data, byte for byte."""

    registrations: int
    seed: int = 1
    anchor: float | None = None  # the generator's "now"; None: DEFAULT_ANCHOR (2026-01-01)
    rates: PlantRates = field(default_factory=PlantRates)
    thresholds: Thresholds = field(default_factory=Thresholds)
    session_ttl_s: int = DEFAULT_SESSION_TTL_S  # Checkfront purges carts idle longer than this

    @property
    def anchor_epoch(self) -> float:
        return DEFAULT_ANCHOR if self.anchor is None else float(self.anchor)

    def to_json(self) -> dict[str, Any]:
        return {
            "registrations": self.registrations,
            "seed": self.seed,
            "generator_version": GENERATOR_VERSION,
            "rates": self.rates.to_json(),
            "thresholds": self.thresholds.to_json(),
            "session_ttl_s": self.session_ttl_s,
        }


# ---------------------------------------------------------------------------------------------
# Truth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """One reported case: a reason code and what identifies the case (None where not part of it)."""

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
    mismatches: tuple[Mismatch, ...] = ()


@dataclass
class Truth:
    """What docs/rules.md says about a dataset at `anchor` (epoch seconds)."""

    anchor: float
    thresholds: Thresholds
    pending_registrations: list[str]
    stale_booking_sessions: list[str]
    mismatches: list[Mismatch]
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
            mismatches=[Mismatch(**m) for m in data["mismatches"]],
            planted=dict(data.get("planted") or {}),
        )

    @classmethod
    def load(cls, path: Path | str) -> Truth:
        return cls.from_json(orjson.loads(Path(path).read_bytes()))

    def expected_by_cases(self) -> tuple[set[str], set[str], set[Mismatch]]:
        """The union of what the planted cases expect: pending ids, stale ids, mismatches."""
        pending: set[str] = set()
        stale: set[str] = set()
        mismatches: set[Mismatch] = set()
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
    mismatches: list[Mismatch] = []
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
                mismatches.append(Mismatch(reason, reading.reg_id, reading.session_id, reading.code))
        for session_id, regs in by_session.items():
            if len(regs) > 1:
                mismatches += [Mismatch(DUPLICATE_REGISTRATION, g.reg_id, session_id, g.code) for g in regs]
        for code, regs in by_code.items():
            if len(regs) > 1:
                mismatches += [Mismatch(DUPLICATE_BOOKING_CODE, g.reg_id, g.session_id, code) for g in regs]
        for booking in cf.bookings.values():
            code = str(booking.get("code") or "").strip().upper()
            if (
                str(booking.get("status_id") or "").upper() not in words.UNTRACKED_BOOKING_STATUSES
                and now - _to_float(booking.get("created_date")) > th.in_flight_s
                and code not in carried_codes
            ):
                mismatches.append(Mismatch(BOOKING_WITHOUT_REGISTRATION, None, None, code))
        stale = [
            session_id
            for session_id in known
            if not hold_all
            and session_id not in protected
            and session_id not in held
            and alive(carts.get(session_id))
            and now - carts[session_id]["modified"] > th.stale_session_ttl_s
        ]
        mismatches.sort(key=Mismatch.sort_key)
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


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class _IdMinter:
    """`store.make_sf_id(prefix, n)` for n < 62**5, without its per-call loops (millions of ids)."""

    def __init__(self, key_prefix: str) -> None:
        head = f"{key_prefix}0U"
        self.head = head + "00000"
        self.checksum_head = id_checksum(head + "0000000000")[:2]
        self.low = [(a + b, (a.isupper() << 3) | (b.isupper() << 4)) for a in _BASE62 for b in _BASE62]
        self.high: dict[int, tuple[str, int]] = {}

    def __call__(self, number: int) -> str:
        high, low = divmod(number, 3844)
        entry = self.high.get(high)
        if entry is None:
            digits = ""
            rest = high
            for _ in range(3):
                rest, rem = divmod(rest, 62)
                digits = _BASE62[rem] + digits
            if rest:
                raise ValueError("id counter out of range")
            bits = sum(1 << pos for pos, char in enumerate(digits) if char.isupper())
            entry = (digits, bits)
            self.high[high] = entry
        low_chars, low_bits = self.low[low]
        return f"{self.head}{entry[0]}{low_chars}{self.checksum_head}{_CHECKSUM[entry[1] | low_bits]}"


_FIRST = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Sofia", "Mason", "Amelia",
    "Logan", "Harper", "Elijah", "Chloe", "James", "Zoe", "Benjamin", "Layla", "Jacob", "Nora",
    "Aiden", "Lily", "Samuel", "Grace", "Henry", "Aria", "Owen", "Ella", "Leo", "Maya", "Jack",
    "Hannah", "Daniel", "Priya", "Mateo", "Yuki", "Omar", "Fatima", "Chen", "Ingrid", "Kofi",
)  # fmt: skip
_LAST = (
    "Smith", "Tremblay", "Martin", "Roy", "Gagnon", "Lee", "Wilson", "Johnson", "MacDonald",
    "Taylor", "Campbell", "Anderson", "Brown", "Leblanc", "Wong", "Singh", "Nguyen", "Patel",
    "Kim", "Garcia", "Rossi", "Schmidt", "Novak", "Okafor", "Haddad", "Silva", "Kowalski",
    "Murphy", "O'Brien", "Fraser", "Bouchard", "Morin", "Clarke", "Young", "Hughes", "Ito",
)  # fmt: skip
_FIRST_MAIL = tuple(name.lower().replace("'", "") for name in _FIRST)
_LAST_MAIL = tuple(name.lower().replace("'", "") for name in _LAST)
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "corp.example.ca")
_EVENT_ADJ = ("Spring", "Summer", "Autumn", "Winter", "Annual", "Regional", "National", "Global")
_EVENT_TOPIC = (
    "Leadership", "Data", "Wellness", "Design", "Finance", "Sustainability", "Nursing", "Robotics",
    "Marketing", "Security", "Education", "Culinary", "Hiking", "Photography", "Cloud", "Music",
)  # fmt: skip
_EVENT_KIND = ("Summit", "Conference", "Forum", "Retreat", "Expo", "Symposium", "Workshop Series")
_SESSION_KIND = ("Keynote", "Workshop", "Masterclass", "Panel", "Lab", "Tour", "Clinic", "Seminar")
_ADDONS = (("Lunch", 2500), ("Parking", 1500), ("Printed Materials", 1000), ("Dinner", 6500))
_PRICES = (4500, 6000, 7500, 9000, 11000, 13000, 15000, 19500, 25000)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ERRORS = (
    "Payment declined by the card issuer.",
    "Session capacity reached.",
    "Checkout timed out.",
)
_LINE_IDS = ("1", "2", "3", "4", "5")
_B32 = "0123456789abcdefghijklmnopqrstuv"
_B32_BYTES = bytes(ord(_B32[value % 32]) for value in range(256))


class _Session:
    """A Salesforce Session and the Checkfront item that sells it (or a package add-on item)."""

    __slots__ = ("date", "item_id", "lines", "price", "sf_id", "sku", "slip_date")

    def __init__(self, sf_id: str, item_id: int, price: int, date: int, slip_date: str, sku: str) -> None:
        self.sf_id = sf_id
        self.item_id = item_id
        self.price = price
        self.date = date
        self.slip_date = slip_date
        self.sku = sku
        self.lines: dict[int, tuple[str, int, str]] = {}  # qty -> (SLIP, total cents, total text)

    def line(self, qty: int) -> tuple[str, int, str]:
        """SLIP and total of `qty` seats (strings shared by every line of that size)."""
        entry = self.lines.get(qty)
        if entry is None:
            total = qty * self.price
            entry = (
                f"{self.item_id}.{self.slip_date}X1-adults.{qty}",
                total,
                f"{total // 100}.{total % 100:02d}",
            )
            self.lines[qty] = entry
        return entry


class _Event:
    __slots__ = ("addons", "end_day", "id", "sessions")

    def __init__(self, event_id: str, end_day: int) -> None:
        self.id = event_id
        self.end_day = end_day
        self.sessions: list[_Session] = []
        self.addons: list[_Session] = []


class _Builder:
    """One generation run: the rng, the id counters and the store being filled."""

    CLEAN = (
        ("completed", 0.84),
        ("young_draft", 0.04),
        ("inflight_draft", 0.03),
        ("to_process", 0.03),
        ("failed", 0.03),
        ("deleted", 0.03),
    )

    def __init__(self, config: GeneratorConfig, store: SandboxStore, shift_s: int) -> None:
        self.config = config
        self.th = config.thresholds
        self.rng = random.Random(config.seed)
        self.rnd = self.rng.random
        self.anchor_ms = round(config.anchor_epoch * 1000)
        self.base_ms = self.anchor_ms + shift_s * 1000
        self.anchor_day = math.floor(config.anchor_epoch / 86400)  # calendar dates do not shift
        self.tables = store.salesforce.tables
        self.cf = store.checkfront
        self.minters = {name: _IdMinter(schema.key_prefix) for name, schema in SCHEMAS.items()}
        self.numbers = dict.fromkeys(SCHEMAS, 0)
        self.events: list[_Event] = []
        self.last_event: _Event | None = None
        self.open_events: dict[bool, tuple[list[_Event], list[int]]] = {}
        self.multi_session_events: list[_Event] = []
        self.next_item_id = 1
        self.next_booking_id = 1
        self.codes: set[str] = set()
        self.code_days: dict[int, str] = {}
        self.demand: Counter[int] = Counter()  # seats held per item (bookings and live carts)
        self.cases: list[PlantedCase] = []
        self.planted: Counter[str] = Counter()
        self.reg_stamps: list[int] = []
        self.max_stamp = -(10**15)
        self.money_cache: dict[int, str] = {}
        self.mint_reg = self.minters[REGISTRATION]
        self.mint_att = self.minters[ATTENDEE]
        self.mint_sa = self.minters[SESSION_ATTENDEE]
        self.ttl_ms = config.session_ttl_s * 1000
        self.in_flight_ms = int(self.th.in_flight_s * 1000)
        self.stale_ttl_ms = int(self.th.stale_session_ttl_s * 1000)
        self.overdue_ms = int(self.th.overdue_s * 1000)
        self.stale_draft_ms = int(self.th.stale_draft_s * 1000)

    # ------------------------------------------------------------------ small helpers
    def new_id(self, sobject: str) -> str:
        number = self.numbers[sobject] + 1
        self.numbers[sobject] = number
        return self.minters[sobject](number)

    def ts(self, offset_ms: int) -> str:
        return format_ms(self.base_ms + offset_ms)

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high] (low when the range is empty)."""
        return low + int(self.rnd() * (high - low + 1)) if high > low else low

    def money(self, cents: int) -> str:
        text = self.money_cache.get(cents)
        if text is None:
            text = f"{cents // 100}.{cents % 100:02d}"
            if len(self.money_cache) < 200_000:
                self.money_cache[cents] = text
        return text

    def cart_id(self) -> str:
        """26 characters of [0-9a-v] (130 random bits), like Checkfront's session ids."""
        carts = self.cf.booking_sessions
        while True:
            raw = self.rng.getrandbits(208).to_bytes(26, "little")
            candidate = raw.translate(_B32_BYTES).decode("ascii")  # each byte mod 32: uniform
            if candidate not in carts:
                return candidate

    def booking_code(self, booked_at: int) -> str:
        """Four letters and the booking's day, "CFPP-290317" (ddmmyy), as Checkfront shows them.

        The day is the generation-time day (calendar data, like SLIPs: a shift does not move it).
        """
        day = (self.anchor_ms + booked_at) // DAY
        suffix = self.code_days.get(day)
        if suffix is None:
            iso = _iso_day(day)
            suffix = f"-{iso[8:10]}{iso[5:7]}{iso[2:4]}"
            self.code_days[day] = suffix
        rnd = self.rnd
        while True:
            n = int(rnd() * 456_976)  # 26**4
            code = (
                _LETTERS[n // 17576]
                + _LETTERS[n // 676 % 26]
                + _LETTERS[n // 26 % 26]
                + _LETTERS[n % 26]
                + suffix
            )
            if code not in self.codes:
                self.codes.add(code)
                return code

    def sf_record(self, sobject: str, record: dict[str, Any], stamp: int) -> dict[str, Any]:
        self.tables[sobject][record["Id"]] = record
        if stamp > self.max_stamp:
            self.max_stamp = stamp
        return record

    # ------------------------------------------------------------------ events, sessions, items
    def make_events(self) -> None:
        rng = self.rng
        count = max(4, -(-self.config.registrations // 250))
        for index in range(count):
            start_day = self.anchor_day + rng.randint(-240, 200)
            length = rng.choice((1, 1, 1, 2, 2, 3))
            end_day = start_day + length - 1
            event = _Event(self.new_id(EVENT), end_day)
            year = _iso_day(start_day)[:4]
            name = f"{rng.choice(_EVENT_ADJ)} {rng.choice(_EVENT_TOPIC)} {rng.choice(_EVENT_KIND)} {year}"
            created = -rng.randint(400 * DAY, 600 * DAY)
            modified = created + rng.randint(0, 30 * DAY)
            self.sf_record(
                EVENT,
                {
                    "Id": event.id,
                    "Name": name,
                    "IsDeleted": False,
                    "CreatedDate": self.ts(created),
                    "LastModifiedDate": self.ts(modified),
                    "SystemModstamp": self.ts(modified),
                    "conference360__Status__c": "Completed" if end_day < self.anchor_day else "Active",
                    "conference360__Event_Start_Date__c": _iso_day(start_day),
                    "conference360__Event_End_Date__c": _iso_day(end_day),
                },
                modified,
            )
            slug = f"EV{index + 1:05d}"
            n_sessions = 3 if index == 0 else rng.choice((1, 2, 2, 3, 3, 4, 5))
            for number in range(n_sessions):
                day = start_day + number % length
                kind = rng.choice(_SESSION_KIND)
                title = f"{kind} {number + 1}: {rng.choice(_EVENT_TOPIC)}"
                price = rng.choice(_PRICES)
                stock = rng.choice((20, 30, 50, 80, 120, 200, 500))
                session = self._item(event, day, f"{slug}-S{number + 1}", title, name, price, stock)
                sf_created = created + rng.randint(0, 2 * DAY)
                self.sf_record(
                    SESSION,
                    {
                        "Id": session.sf_id,
                        "Name": title,
                        "IsDeleted": False,
                        "CreatedDate": self.ts(sf_created),
                        "LastModifiedDate": self.ts(sf_created),
                        "SystemModstamp": self.ts(sf_created),
                        "conference360__Event__c": event.id,
                        "conference360__Capacity__c": float(stock),
                        ITEM_ID: str(session.item_id),
                    },
                    sf_created,
                )
                event.sessions.append(session)
            if rng.random() < 0.3:
                for name_addon, price in rng.sample(_ADDONS, 1 if rng.random() < 0.8 else 2):
                    addon = self._item(
                        event,
                        start_day,
                        f"{slug}-{name_addon[:4].upper()}",
                        name_addon,
                        name,
                        price,
                        999,
                        addon=True,
                    )
                    event.addons.append(addon)
                for session in event.sessions:
                    self.cf.items[session.item_id]["packages"] = [a.item_id for a in event.addons]
            self.events.append(event)
            if n_sessions > 1:
                self.multi_session_events.append(event)

    def _item(
        self,
        event: _Event,
        day: int,
        sku: str,
        title: str,
        category: str,
        price: int,
        stock: int,
        *,
        addon: bool = False,
    ) -> _Session:
        item_id = self.next_item_id
        self.next_item_id += 1
        self.cf.items[item_id] = {
            "item_id": item_id,
            "sku": sku.lower(),
            "name": title,
            "unit": "D",
            "stock": stock,
            "category_id": len(self.events) + 1,
            "category": category,
            "params": {"adults": self.money(price)},
            "packages": [],
        }
        if addon:
            self.cf.items[item_id]["unlimited"] = True
        sf_id = "" if addon else self.new_id(SESSION)
        return _Session(sf_id, item_id, price, day * 86400, _ymd(day), sku.lower())

    # ------------------------------------------------------------------ one registration
    def registration(
        self,
        created: int,
        *,
        status: str,
        deleted: bool = False,
        booking_status: str | None = None,
        cart: str = "booked",
        idle: int | None = None,
        seats_delta: bool = False,
        move_line: bool = False,
        amount_delta: int = 0,
        cart_id: str | None = None,
        error: str | None = None,
        event: _Event | None = None,
        with_registration: bool = True,
    ) -> tuple[str, str, str | None]:
        """Build one registration (or, without it, a bare booking or cart) from its story.

        cart: booked (ended by the booking), live (idle `idle` ms), ended (cleared, no booking),
        gone (never stored: purged or unknown). Returns (registration id, cart id, booking code).
        Hot path (a million calls): rng.random() arithmetic instead of randint/choice.
        """
        rnd = self.rnd
        between = self.between
        if event is None:
            event = self.pick_event(created, multi_session=move_line)
        self.last_event = event
        sessions = event.sessions
        n_sessions = len(sessions)
        roll = rnd()
        k = min(n_sessions - 1 if move_line else n_sessions, 1 if roll < 0.7 else 2 if roll < 0.95 else 3)
        chosen = [sessions[int(rnd() * n_sessions)]] if k == 1 else self.rng.sample(sessions, k)
        roll = rnd()
        n_att = 1 if roll < 0.55 else 2 if roll < 0.85 else 3
        subset = n_att > 1 and k > 1 and rnd() < 0.05  # the last attendee takes the first only
        per_attendee = [*[chosen] * (n_att - 1), chosen[:1]] if subset else [chosen] * n_att
        chosen_ids = [session.sf_id for session in chosen]

        # Main lines: one per chosen session, qty = attendees taking it. Every main line carries
        # one line per package add-on of its item ("1.1", "1.2"...), opted out unless chosen, as
        # the emulator's cart does; a booking keeps the main lines and the opted-in add-ons.
        mains: list[list[Any]] = []  # [session, qty]
        for index, session in enumerate(chosen):
            mains.append([session, n_att - 1 if subset and index > 0 else n_att])
        if move_line:
            target = mains[int(rnd() * len(mains))]
            spare = [s for s in sessions if s not in chosen]
            target[0] = spare[int(rnd() * len(spare))]
        if seats_delta:
            target = mains[int(rnd() * len(mains))]
            target[1] += 1 if target[1] == 1 or rnd() < 0.5 else -1
        addons = event.addons

        cart_created = created - between(1 * MIN, 15 * MIN)
        booking_at = created + between(1 * MIN, 10 * MIN) if booking_status else None
        # The cart: ended by its booking, cleared, live, or gone (purged once idle past the TTL).
        modified: int | None
        ended: int | None
        if cart == "booked":
            assert booking_at is not None
            modified, ended = booking_at - between(5 * SEC, 60 * SEC), booking_at
        elif cart == "ended":
            ended = created + between(1 * MIN, 60 * MIN)
            if ended > NEWEST_STAMP:
                ended = between(created, NEWEST_STAMP)
            modified = ended - between(5 * SEC, 60 * SEC)
        elif cart == "live":
            assert idle is not None
            modified, ended = max(-idle, cart_created), None
        else:
            modified = ended = None
        keep_cart = modified is not None and (modified if ended is None else ended) >= -self.ttl_ms
        holds = booking_status not in (None, "VOID", "STOP") or (keep_cart and cart == "live")
        grand_total = 0
        cart_lines: dict[str, Any] = {}
        booking_lines: list[dict[str, Any]] = []
        money = self.money
        demand = self.demand
        for index, (session, qty) in enumerate(mains):
            line_id = _LINE_IDS[index]
            slip, total, total_text = session.lines.get(qty) or session.line(qty)
            grand_total += total
            if holds:
                demand[session.item_id] += qty
            if keep_cart:
                cart_lines[line_id] = {
                    "item_id": session.item_id,
                    "slip": slip,
                    "qty": qty,
                    "date": session.slip_date,
                    "len": 1,
                    "param": {"adults": qty},
                    "optin": None,
                }
            if booking_at is not None:
                booking_lines.append(
                    {
                        "line_id": len(booking_lines) + 1,
                        "item_id": session.item_id,
                        "sku": session.sku,
                        "slip": slip,
                        "qty": qty,
                        "date": session.slip_date,
                        "len": 1,
                        "total": total_text,
                        "tax_total": "0.00",
                        "package": False,
                    }
                )
            for number, addon in enumerate(addons, start=1):
                opted_in = rnd() < 0.3
                addon_slip = f"{addon.item_id}.{session.slip_date}X1-1"
                if opted_in:
                    grand_total += addon.price
                if keep_cart:
                    cart_lines[f"{line_id}.{number}"] = {
                        "item_id": addon.item_id,
                        "slip": addon_slip,
                        "qty": 1,
                        "date": session.slip_date,
                        "len": 1,
                        "param": {},
                        "optin": opted_in,
                    }
                if opted_in and booking_at is not None:
                    booking_lines.append(
                        {
                            "line_id": len(booking_lines) + 1,
                            "item_id": addon.item_id,
                            "sku": addon.sku,
                            "slip": addon_slip,
                            "qty": 1,
                            "date": session.slip_date,
                            "len": 1,
                            "total": money(addon.price),
                            "tax_total": "0.00",
                            "package": True,
                        }
                    )

        first_index = int(rnd() * len(_FIRST))
        last_index = int(rnd() * len(_LAST))
        first, last = _FIRST[first_index], _LAST[last_index]
        number = self.numbers[REGISTRATION] + 1
        domain = _DOMAINS[number % len(_DOMAINS)]
        email = f"{_FIRST_MAIL[first_index]}.{_LAST_MAIL[last_index]}{number}@{domain}"

        cart_id = cart_id or self.cart_id()
        code = None
        if booking_at is not None:
            code = self.booking_code(booking_at)
            booking_id = self.next_booking_id
            self.next_booking_id += 1
            if booking_status == "PAID":
                paid = grand_total
            elif booking_status == "PART":
                paid = grand_total * between(3, 7) // 10
            else:
                paid = 0
            day_first = day_last = mains[0][0].date
            for session, _ in mains:
                day_first = min(day_first, session.date)
                day_last = max(day_last, session.date)
            booking_modified = min(booking_at + between(0, 90 * SEC), NEWEST_STAMP)
            self.cf.bookings[booking_id] = {
                "booking_id": booking_id,
                "code": code,
                "status_id": booking_status,
                "created_date": (self.base_ms + booking_at) // 1000,
                "last_modified": (self.base_ms + booking_modified) // 1000,
                "start_date": day_first,
                "end_date": day_last,
                "customer_name": f"{first} {last}",
                "customer_email": email,
                "session_id": cart_id,
                "lines": booking_lines,
                "sub_total": money(grand_total),
                "tax_total": "0.00",
                "total": money(grand_total),
                "paid_total": money(paid),
            }
        if keep_cart and modified is not None:  # keep_cart implies a modified time
            base = self.base_ms
            self.cf.booking_sessions[cart_id] = {
                "id": cart_id,
                "created": (base + cart_created) // 1000,
                "modified": (base + modified) // 1000,
                "ended": None if ended is None else (base + ended) // 1000,
                "booking_code": code if cart == "booked" else None,
                "lines": cart_lines,
            }
        if not with_registration:
            return "", cart_id, code

        # Salesforce side: registration, attendees, session attendees.
        numbers = self.numbers
        numbers[REGISTRATION] = number
        reg_id = self.mint_reg(number)
        registered = status in ("Completed", "To Process")
        if status == "Completed":
            assert booking_at is not None
            changed = booking_at + between(5 * SEC, 120 * SEC)
        elif booking_at is not None:
            changed = booking_at + between(2 * SEC, 60 * SEC)
        elif status == "Failed":
            changed = created + between(1 * MIN, 10 * MIN)
        else:
            changed = created + between(0, 60 * SEC)
        if changed > NEWEST_STAMP:  # a random moment in range, not a pile-up at the limit
            changed = between(created, NEWEST_STAMP)
        stamp = changed
        if deleted:
            stamp = changed + between(1 * HOUR, 20 * DAY)
            if stamp > NEWEST_STAMP:
                stamp = between(changed, NEWEST_STAMP)
        created_s = self.ts(created)
        changed_s = self.ts(changed) if changed != created else created_s
        stamp_s = self.ts(stamp) if stamp != changed else changed_s
        att_changed_s = changed_s if registered else created_s
        attendee_status = "Registered" if registered else "Lead"
        attendee_list = []
        att_table = self.tables[ATTENDEE]
        sa_table = self.tables[SESSION_ATTENDEE]
        mint_att = self.mint_att
        mint_sa = self.mint_sa
        with_sa = status == "Completed" and not deleted
        event_id = event.id
        for position, taken in enumerate(per_attendee):
            numbers[ATTENDEE] += 1
            att_id = mint_att(numbers[ATTENDEE])
            if position == 0:
                att_first, att_last, att_email = first, last, email
            else:
                first_index = int(rnd() * len(_FIRST))
                last_index = int(rnd() * len(_LAST))
                att_first, att_last = _FIRST[first_index], _LAST[last_index]
                att_email = f"{_FIRST_MAIL[first_index]}.{_LAST_MAIL[last_index]}{number}x{position}@{domain}"
            att_table[att_id] = {
                "Id": att_id,
                "Name": f"{att_first} {att_last}",
                "IsDeleted": False,
                "CreatedDate": created_s,
                "LastModifiedDate": att_changed_s,
                "SystemModstamp": att_changed_s,
                "conference360__Event__c": event_id,
                "conference360__Registration_Status__c": attendee_status,
                "conference360__First_Name2__c": att_first,
                "conference360__Last_Name2__c": att_last,
                "conference360__Email2__c": att_email,
            }
            taken_ids = chosen_ids if taken is chosen else chosen_ids[:1]
            attendee_list.append({"id": att_id, "sessionIds": taken_ids})
            if with_sa:
                for session in taken:
                    sa_number = numbers[SESSION_ATTENDEE] + 1
                    numbers[SESSION_ATTENDEE] = sa_number
                    sa_id = mint_sa(sa_number)
                    sa_table[sa_id] = {
                        "Id": sa_id,
                        "Name": f"SA-{sa_number:07d}",
                        "IsDeleted": False,
                        "CreatedDate": changed_s,
                        "LastModifiedDate": changed_s,
                        "SystemModstamp": changed_s,
                        "conference360__Session__c": session.sf_id,
                        "conference360__Attendee__c": att_id,
                        "conference360__Registration_Status__c": "Registered",
                    }
        if amount_delta and grand_total + amount_delta < 0:
            amount_delta = -amount_delta
        payload = {"id": reg_id, "sessionId": cart_id, "attendeeList": attendee_list}
        self.tables[REGISTRATION][reg_id] = {
            "Id": reg_id,
            "Name": f"ERS-{number:07d}",
            "IsDeleted": deleted,
            "CreatedDate": created_s,
            "LastModifiedDate": stamp_s,
            "SystemModstamp": stamp_s,
            STATUS: status,
            "conference360__Event__c": event_id,
            PAYLOAD: orjson.dumps(payload).decode(),
            "conference360__Error_Message__c": error,
            "conference360__Process__c": False,
            AMOUNT: (grand_total + amount_delta) / 100,
            BOOKING_CODE: code,
        }
        if stamp > self.max_stamp:
            self.max_stamp = stamp
        self.reg_stamps.append(stamp)
        return reg_id, cart_id, code

    # ------------------------------------------------------------------ the plan
    def plan(self) -> list[tuple[int, int, str, str]]:
        """(created offset, sequence, kind, variant) of every case, oldest first."""
        rng = self.rng
        total = self.config.registrations
        rates = self.config.rates
        counts = {kind: max(0, round(getattr(rates, kind) * total)) for kind in PlantRates.kinds()}
        while sum(counts[k] * _REGISTRATIONS_PER_CASE[k] for k in counts) > total:
            heaviest = max(
                (k for k in counts if counts[k] and _REGISTRATIONS_PER_CASE[k]),
                key=lambda k: (counts[k] * _REGISTRATIONS_PER_CASE[k], k),
            )
            counts[heaviest] -= 1
        used = sum(counts[k] * _REGISTRATIONS_PER_CASE[k] for k in counts)
        kinds: list[str] = []
        for kind, count in counts.items():
            kinds.extend([kind] * count)
        cumulative = list(itertools.accumulate(weight for _, weight in self.CLEAN))
        names = [name for name, _ in self.CLEAN]
        for _ in range(total - used):
            kinds.append(names[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])])
        slots = []
        for sequence, kind in enumerate(kinds):
            age, variant = self.age_of(kind)
            slots.append((-age, sequence, kind, variant))
        slots.sort()
        return slots

    def age_of(self, kind: str) -> tuple[int, str]:
        """How long ago a case of this kind was created (ms), and which variant of the story."""
        rng = self.rng
        b = self.between
        in_flight, ttl, cart_ttl = self.in_flight_ms, self.stale_ttl_ms, self.ttl_ms
        settled = max(40 * MIN, in_flight + 20 * MIN)  # old enough to be evaluated, booking too
        if kind in (
            "completed",
            "seats_mismatch",
            "sessions_mismatch",
            "completed_unpaid",
            "amount_mismatch",
        ):
            return settled + int(365 * DAY * rng.random() ** 2), ""
        if kind == "duplicate":
            return max(2 * HOUR, settled) + int(365 * DAY * rng.random() ** 2), ""
        if kind == "inflight_draft":
            return b(5 * MIN, max(5 * MIN, min(10 * MIN, in_flight - 5 * MIN))), ""
        if kind == "young_draft":
            return b(in_flight + 10 * MIN, min(5 * HOUR, ttl - HOUR)), ""
        if kind == "to_process":
            return b(settled, settled + 3 * DAY), ""
        if kind == "failed":
            return b(HOUR, 180 * DAY), ""
        if kind == "deleted":
            return b(DAY, 365 * DAY), ""
        if kind == "pending":
            return b(settled, self.overdue_ms - 30 * MIN), ""
        if kind == "overdue":
            return b(self.overdue_ms + 30 * MIN, self.overdue_ms + 20 * DAY), ""
        if kind == "session_missing":
            return b(settled, self.stale_draft_ms - HOUR), "To Process" if rng.random() < 0.15 else "Draft"
        if kind == "stale_draft":
            live_high = min(cart_ttl - DAY, self.stale_draft_ms + 21 * DAY)
            if live_high > self.stale_draft_ms + 2 * HOUR and rng.random() < 0.6:
                return b(self.stale_draft_ms + HOUR, live_high), "live"
            low = max(cart_ttl, self.stale_draft_ms) + DAY
            return b(low, low + 90 * DAY), "gone"
        if kind in ("stale_session", "unreferenced_session"):
            variant = "" if kind == "unreferenced_session" else "failed" if rng.random() < 0.6 else "deleted"
            return b(ttl + HOUR, max(ttl + HOUR, min(cart_ttl - DAY, 20 * DAY))), variant
        if kind == "protected_session":
            return b(ttl + 2 * HOUR, self.stale_draft_ms - HOUR), ""
        if kind == "booking_without_registration":
            return b(max(HOUR, settled), 180 * DAY), ""
        raise AssertionError(kind)

    # ------------------------------------------------------------------ the stories
    def build(self, created: int, kind: str, variant: str) -> None:
        rng = self.rng
        reg = self.registration
        if kind == "completed":
            reg(created, status="Completed", booking_status="PAID" if rng.random() < 0.9 else "PART")
        elif kind == "inflight_draft":
            reg(created, status="Draft", cart="live", idle=self.between(30 * SEC, -created - 2 * MIN))
        elif kind == "young_draft":
            reg(created, status="Draft", cart="live", idle=self.between(30 * SEC, -created - 5 * MIN))
        elif kind == "to_process":
            reg(created, status="To Process", booking_status="PAID")
        elif kind == "failed":
            reg(created, status="Failed", cart="ended", error=rng.choice(_ERRORS))
        elif kind == "deleted":
            reg(created, status="Completed", deleted=True, booking_status="VOID")
        else:
            self.plant(created, kind, variant)

    def plant(self, created: int, kind: str, variant: str) -> None:
        rng = self.rng
        reg = self.registration
        pending: tuple[str, ...] = ()
        stale: tuple[str, ...] = ()
        found: list[tuple[str, str | None]] = []  # (code, registration id)
        reg_ids: tuple[str, ...] = ()
        if kind in ("pending", "overdue"):
            status = "PAID" if rng.random() < 0.85 else "PART"
            reg_id, cart_id, code = reg(created, status="Draft", booking_status=status)
            pending, reg_ids = (reg_id,), (reg_id,)
            if kind == "overdue":
                found.append((DRAFT_BOOKING_PAID, reg_id))
        elif kind == "session_missing":
            reg_id, cart_id, code = reg(created, status=variant, cart="gone")
            reg_ids = (reg_id,)
            # A To Process registration without a code whose cart is gone has probably booked.
            found.append((BOOKING_SESSION_MISSING if variant == "Draft" else BOOKING_CODE_MISSING, reg_id))
        elif kind in ("seats_mismatch", "sessions_mismatch", "amount_mismatch", "completed_unpaid"):
            status = rng.choice(("PEND", "HOLD")) if kind == "completed_unpaid" else "PAID"
            delta = rng.choice((-1, 1)) * rng.randint(100, 5000) if kind == "amount_mismatch" else 0
            reg_id, cart_id, code = reg(
                created,
                status="Completed",
                booking_status=status,
                seats_delta=kind == "seats_mismatch",
                move_line=kind == "sessions_mismatch",
                amount_delta=delta,
            )
            reg_ids = (reg_id,)
            found.append(
                (
                    {
                        "seats_mismatch": ATTENDEE_COUNT_MISMATCH,
                        "sessions_mismatch": ATTENDEE_SESSIONS_MISMATCH,
                        "amount_mismatch": AMOUNT_MISMATCH,
                        "completed_unpaid": COMPLETED_BOOKING_UNPAID,
                    }[kind],
                    reg_id,
                )
            )
        elif kind == "duplicate":
            first_id, cart_id, code = reg(created, status="Completed", booking_status="PAID")
            second_id, _, _ = reg(
                min(created + rng.randint(1 * MIN, 30 * MIN), NEWEST_STAMP - rng.randint(0, MIN)),
                event=self.last_event,
                status="Failed",
                cart="gone",  # the first registration's cart, already stored (or purged)
                cart_id=cart_id,
                error="Duplicate submission: this booking session is already registered.",
            )
            reg_ids = (first_id, second_id)
            self.cases.append(
                PlantedCase(
                    kind,
                    reg_ids,
                    cart_id,
                    code,
                    mismatches=(
                        Mismatch(DUPLICATE_REGISTRATION, first_id, cart_id, code),
                        Mismatch(DUPLICATE_REGISTRATION, second_id, cart_id, None),
                    ),
                )
            )
            self.planted[kind] += 1
            return
        elif kind == "stale_draft":
            if variant == "live":
                idle = -created - rng.randint(0, 10 * MIN)
                reg_id, cart_id, code = reg(created, status="Draft", cart="live", idle=idle)
                stale = (cart_id,)
            else:
                reg_id, cart_id, code = reg(created, status="Draft", cart="gone")
                found.append((BOOKING_SESSION_MISSING, reg_id))
            reg_ids = (reg_id,)
            found.append((STALE_DRAFT, reg_id))
        elif kind == "stale_session":
            idle = -created - rng.randint(0, 10 * MIN)
            if variant == "failed":
                reg_id, cart_id, code = reg(
                    created, status="Failed", cart="live", idle=idle, error=rng.choice(_ERRORS)
                )
            else:
                reg_id, cart_id, code = reg(created, status="Draft", deleted=True, cart="live", idle=idle)
            reg_ids, stale = (reg_id,), (cart_id,)
        elif kind == "protected_session":
            idle = self.between(self.stale_ttl_ms + HOUR, -created - 10 * MIN)
            reg_id, cart_id, code = reg(created, status="Draft", cart="live", idle=idle)
            reg_ids = (reg_id,)
        elif kind == "booking_without_registration":
            roll = rng.random()
            status = "PAID" if roll < 0.6 else "PEND" if roll < 0.85 else "HOLD"
            _, cart_id, code = reg(
                created, status="Completed", booking_status=status, with_registration=False
            )
            self.cases.append(
                PlantedCase(
                    kind, (), cart_id, code,
                    mismatches=(Mismatch(BOOKING_WITHOUT_REGISTRATION, None, None, code),),
                )
            )  # fmt: skip
            self.planted[kind] += 1
            return
        elif kind == "unreferenced_session":
            idle = -created - rng.randint(0, 10 * MIN)
            _, cart_id, code = reg(created, status="Draft", cart="live", idle=idle, with_registration=False)
        else:
            raise AssertionError(kind)
        mismatches = tuple(Mismatch(c, r, cart_id, code) for c, r in found)
        self.cases.append(PlantedCase(kind, reg_ids, cart_id, code, pending, stale, mismatches))
        self.planted[kind] += 1

    # ------------------------------------------------------------------ ties and wrap-up
    def tie_stamps(self) -> None:
        """Give runs of 3-50 registrations one shared SystemModstamp, as bulk updates do."""
        records = list(self.tables[REGISTRATION].values())
        stamps = self.reg_stamps
        if len(records) < 3:
            return
        order = sorted(range(len(records)), key=stamps.__getitem__)
        rng = self.rng
        position = 0
        runs = 0
        while position < len(order):
            if rng.random() < 0.005 or (runs == 0 and position >= len(order) - 3):
                run = order[position : position + rng.randint(3, 50)]
                if len(run) < 3:
                    run = order[-3:]
                shared = self.ts(max(stamps[i] for i in run))
                for i in run:
                    records[i]["SystemModstamp"] = shared
                position += len(run)
                runs += 1
            else:
                position += 1

    def pick_event(self, created: int, *, multi_session: bool) -> _Event:
        """An event that has not ended on the day of registration (any event if none is left)."""
        events, ends = self.open_events[multi_session]
        first = bisect.bisect_left(ends, (self.anchor_ms + created) // DAY)
        if first == len(events):
            first = 0
        return events[first + int(self.rnd() * (len(events) - first))]

    def fit_stock(self) -> None:
        """Stock enough for the seats the data holds, so the emulator's capacity checks pass."""
        sessions = self.tables[SESSION]
        for event in self.events:
            for session in event.sessions:
                item = self.cf.items[session.item_id]
                held = self.demand[session.item_id]
                if held + 10 > item["stock"]:
                    item["stock"] = held + max(10, held // 4)
                    sessions[session.sf_id]["conference360__Capacity__c"] = float(item["stock"])

    def run(self) -> None:
        self.make_events()
        for multi_session in (False, True):
            pool = self.multi_session_events if multi_session else self.events
            pool = sorted(pool, key=lambda event: (event.end_day, event.id))
            self.open_events[multi_session] = (pool, [event.end_day for event in pool])
        for created, _, kind, variant in self.plan():
            self.build(created, kind, variant)
        self.tie_stamps()
        self.fit_stock()


def _iso_day(day: int) -> str:
    return format_ms(day * DAY)[:10]


def _ymd(day: int) -> str:
    return _iso_day(day).replace("-", "")


def populate(config: GeneratorConfig, store: SandboxStore, *, shift_to_now: bool = True) -> Truth:
    """Replace the store's contents with generated data; return its truth at the data's 'now'.

    The data is generated against `config.anchor`; with `shift_to_now` every timestamp then moves
    by whole seconds to the store's clock, so ages are as generated whenever this runs.
    """
    anchor = config.anchor_epoch
    shift_s = round(store.clock.now() - anchor) if shift_to_now else 0
    with store.lock, gc_paused():
        for table in store.salesforce.tables.values():
            table.clear()
        cf = store.checkfront
        cf.items.clear()
        cf.booking_sessions.clear()
        cf.bookings.clear()
        cf.session_ttl_s = float(config.session_ttl_s)
        builder = _Builder(config, store, shift_s)
        builder.run()
        for name, number in builder.numbers.items():
            store.salesforce.counters[name] = itertools.count(number + 1)
        store.salesforce.last_modstamp = (builder.base_ms + builder.max_stamp) / 1000
    truth = compute_truth(store, config.thresholds, anchor + shift_s)
    truth.planted = {kind: builder.planted[kind] for kind in PlantRates.kinds()}
    truth.cases = builder.cases
    return truth


def write_dataset(config: GeneratorConfig, path: Path | str) -> Truth:
    """Generate into a dataset file (docs/dataset.md) and its truth beside it (<stem>.truth.json)."""
    store = SandboxStore()
    truth = populate(config, store, shift_to_now=False)
    save_dataset(store, path, anchor=config.anchor_epoch, generator=config.to_json())
    write_truth(truth, truth_path(path))
    return truth
