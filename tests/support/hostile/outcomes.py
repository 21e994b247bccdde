"""The three outcomes an input may have, the failure for any other, and what "accepted" must mean.

Accepted means nothing lost or changed on the way and every value storable in the warehouse's
columns on SQLite and PostgreSQL alike; the probes of every surface judge with these.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Table

from regsync.config import RegistrationFields, SessionFields
from regsync.warehouse.types import Money, UtcDateTime

Outcome = Literal["accepted", "quarantined", "rejected"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "quarantined", "rejected")

REG_FIELDS = RegistrationFields()
SESSION_FIELDS = SessionFields()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
INT32 = 2**31 - 1
INT64 = 2**63 - 1
_SHOW = reprlib.Repr()
_SHOW.maxstring = 80
_SHOW.maxother = 80
_SHOW.maxlevel = 4


class HostileFailure(AssertionError):
    """An input ended in none of the allowed outcomes (crash, loss, dropped record, injection)."""


def show(value: Any) -> str:
    """A short, safe description of an input (never huge, never recursing without bound)."""
    try:
        return _SHOW.repr(value)
    except Exception:  # a description must not fail the harness
        return f"<{type(value).__name__}>"


def unstorable(table: Table, row: Mapping[str, Any]) -> list[str]:
    """Why the warehouse could not hold `row` in `table` on SQLite and PostgreSQL alike."""
    problems = []
    for name, value in row.items():
        if name not in table.c or value is None:
            continue
        kind = table.c[name].type
        where = f"{table.name}.{name}"
        if isinstance(kind, Money):
            if not isinstance(value, Decimal) or not value.is_finite() or abs(value) >= Decimal("1e12"):
                problems.append(f"{where}: not an amount the column holds: {show(value)}")
        elif isinstance(kind, UtcDateTime):
            if not isinstance(value, datetime) or value.tzinfo is None:
                problems.append(f"{where}: not an aware datetime: {show(value)}")
        elif isinstance(kind, BigInteger | Integer):
            bound = INT64 if isinstance(kind, BigInteger) else INT32
            if isinstance(value, bool) or not isinstance(value, int) or not -bound - 1 <= value <= bound:
                problems.append(f"{where}: not a {type(kind).__name__} value: {show(value)}")
        elif isinstance(kind, Boolean):
            if not isinstance(value, bool):
                problems.append(f"{where}: not a boolean: {show(value)}")
        elif isinstance(kind, String):
            problems += _unstorable_text(where, value, kind.length)
        elif isinstance(kind, JSON):
            continue
    return problems


def _unstorable_text(where: str, value: Any, length: int | None) -> list[str]:
    if not isinstance(value, str):
        return [f"{where}: not text: {show(value)}"]
    if "\x00" in value:
        return [f"{where}: holds NUL, which PostgreSQL text refuses: {show(value)}"]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return [f"{where}: holds unpaired surrogates, not encodable: {show(value)}"]
    if length is not None and len(value) > length:
        return [f"{where}: {len(value)} characters for a column of {length}"]
    return []


def require_intact(problems: list[str], what: str) -> None:
    if problems:
        raise HostileFailure(f"{what}: accepted, but " + "; ".join(problems[:3]))


def same_text(raw: Any, got: Any, *, empty_is_none: bool = False) -> bool:
    if empty_is_none and raw in (None, ""):
        return got is None
    return bool(raw == got)


def same_amount(raw: Any, got: Any) -> bool:
    if raw is None or raw == "":
        return got is None
    try:
        return got is not None and float(got) == float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError, OverflowError):
        return False


def same_int(raw: Any, got: Any) -> bool:
    try:
        return bool(got == int(raw))
    except (TypeError, ValueError, OverflowError):
        return False


def same_epoch(raw: Any, got: Any, *, optional: bool) -> bool:
    if optional and raw in (None, "", 0):
        return got is None
    try:
        return bool(got == datetime.fromtimestamp(int(raw) if isinstance(raw, str) else raw, tz=UTC))
    except (TypeError, ValueError, OverflowError, OSError):
        return False


def same_moment(raw: Any, got: Any) -> bool:
    """An accepted Salesforce datetime is that instant in UTC (checked where the form is the wire form)."""
    if not isinstance(got, datetime) or got.tzinfo is None:
        return False
    try:
        stamp = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z")
    except (TypeError, ValueError):
        return True  # another ISO form fromisoformat reads: the instant is not re-derived here
    return got == stamp


def require_reason(surface: str, reason: str, value: Any) -> None:
    if not reason.strip():
        raise HostileFailure(f"{surface}: refused without a reason: {show(value)}")
