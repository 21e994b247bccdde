"""What the generator is asked for, and the words it shares with its truth: codes, field names, time units.

Shared by building, planting and the truth, so none of them needs another to know these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from regsync import definitions as words
from regsync.sandbox.dataset import DEFAULT_SESSION_TTL_S

DEFAULT_ANCHOR = 1_767_225_600.0  # 2026-01-01T00:00:00Z
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
