"""Snapshots of the warehouse and of the sandbox's remote state, and their difference.

Crash/resume and concurrency checks end the same way: the warehouse (and what was written back to
the emulated services) after an ordeal must equal what one clean run produced. A snapshot is, per
table, the set of its rows as tuples, minus the columns that say *when* something was read (they
differ between any two runs and mean nothing for correctness).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, select

from regsync.warehouse.tables import (
    booking_lines,
    booking_session_lines,
    booking_sessions,
    bookings,
    registration_attendee_sessions,
    registration_attendees,
    registrations,
    sf_sessions,
)

Snapshot = dict[str, set[tuple[Any, ...]]]

# The synced tables and, for each, the columns recording when we read (never compared).
READ_TIME_COLUMNS: dict[Table, tuple[str, ...]] = {
    registrations: ("synced_at",),
    registration_attendees: (),
    registration_attendee_sessions: (),
    sf_sessions: ("synced_at",),
    booking_sessions: ("age_s", "last_activity_at", "read_at"),
    booking_session_lines: (),
    bookings: ("synced_at",),
    booking_lines: (),
}

# When the remote record last changed. Two runs that write the same registrations back at
# different moments (a crash in between, another process first) give them different stamps, so
# comparisons across runs that write ignore these; the status the write set is still compared.
WRITE_TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "registrations": ("last_modified_at", "system_modstamp"),
}


def warehouse_snapshot(engine: Engine, *, ignore: Mapping[str, Iterable[str]] | None = None) -> Snapshot:
    """Every synced table's rows as a set of tuples, without the read-time columns (and `ignore`)."""
    extra = {name: set(columns) for name, columns in (ignore or {}).items()}
    out: Snapshot = {}
    with engine.connect() as connection:
        for table, read_time in READ_TIME_COLUMNS.items():
            skipped = set(read_time) | extra.get(table.name, set())
            columns = [c for c in table.columns if c.name not in skipped]
            out[table.name] = {tuple(row) for row in connection.execute(select(*columns))}
    return out


def remote_snapshot(sandbox: Any) -> Snapshot:
    """What write-backs change in the sandbox's store, without timestamps or generated ids.

    registrations: id, status, error message, deletion, booking code and the stored attendee JSON;
    session_attendees: (attendee, Session, status, deleted, n) where n counts identical records, so
    a second insert of the same pair shows up as an extra row; booking_sessions: id, ended, booking.
    """
    from regsync.sandbox.store import REGISTRATION, SESSION_ATTENDEE

    store = sandbox.store
    with store.lock:
        tables = store.salesforce.tables
        registration_rows = {
            (
                r["Id"],
                r.get("conference360__Status__c"),
                r.get("conference360__Error_Message__c"),
                bool(r.get("IsDeleted")),
                r.get("Checkfront_Booking_Code__c"),
                r.get("conference360__Attendee_JSON__c"),
            )
            for r in tables[REGISTRATION].values()
        }
        seen: Counter[tuple[Any, ...]] = Counter()
        attendee_rows = set()
        for r in tables[SESSION_ATTENDEE].values():
            key = (
                r.get("conference360__Attendee__c"),
                r.get("conference360__Session__c"),
                r.get("conference360__Registration_Status__c"),
                bool(r.get("IsDeleted")),
            )
            seen[key] += 1
            attendee_rows.add((*key, seen[key]))
        cart_rows = {
            (session_id, cart.get("ended") is not None, cart.get("booking_code"))
            for session_id, cart in store.checkfront.booking_sessions.items()
        }
        booking_rows = {
            (b.get("booking_id"), b.get("code"), b.get("status_id"), b.get("session_id"))
            for b in store.checkfront.bookings.values()
        }
    return {
        "registrations": registration_rows,
        "session_attendees": attendee_rows,
        "booking_sessions": cart_rows,
        "bookings": booking_rows,
    }


@dataclass(frozen=True)
class SnapshotDiff:
    """How an actual snapshot differs from the expected one."""

    compared: int  # rows in the expected snapshot
    lost: int  # expected rows missing from the actual snapshot
    duplicated: int  # actual rows the expected snapshot does not have (extra or changed copies)
    by_table: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return self.lost + self.duplicated

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "differences": self.differences}


def _short(row: tuple[Any, ...], width: int = 160) -> str:
    text = repr(row)
    return text if len(text) <= width else text[: width - 1] + "…"


def _changed(expected: tuple[Any, ...], actual: tuple[Any, ...]) -> str:
    """The columns (by position) in which two versions of a row differ."""
    if len(expected) != len(actual):
        return f"expected {_short(expected)} but found {_short(actual)}"
    return ", ".join(
        f"[{i}] expected {want!r} found {got!r}"
        for i, (want, got) in enumerate(zip(expected, actual, strict=True))
        if want != got
    )


def diff_snapshots(expected: Snapshot, actual: Snapshot, *, max_examples: int = 8) -> SnapshotDiff:
    """Rows lost (expected, not actual) and duplicated/extra (actual, not expected), per table.

    A row whose values changed counts once as lost and once as extra; the examples pair the two
    when they share their first column (the key of every snapshot table).
    """
    lost = duplicated = compared = 0
    by_table: dict[str, dict[str, int]] = {}
    examples: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name, set()), actual.get(name, set())
        compared += len(want)
        missing, extra = want - got, got - want
        if not (missing or extra):
            continue
        lost += len(missing)
        duplicated += len(extra)
        by_table[name] = {"lost": len(missing), "duplicated": len(extra)}
        extra_by_key: dict[Any, tuple[Any, ...]] = {}
        for row in sorted(extra, key=repr):
            extra_by_key.setdefault(row[0] if row else None, row)
        for row in sorted(missing, key=repr):
            if len(examples) >= max_examples:
                break
            twin = extra_by_key.pop(row[0] if row else None, None)
            if twin is not None:
                examples.append(f"{name} {row[0]!r}: {_changed(row, twin)}")
            else:
                examples.append(f"{name}: lost {_short(row)}")
        for row in extra_by_key.values():
            if len(examples) >= max_examples:
                break
            examples.append(f"{name}: extra {_short(row)}")
    return SnapshotDiff(compared, lost, duplicated, by_table, examples)
