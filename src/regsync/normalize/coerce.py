"""Coercions shared by every normalizer: Salesforce datetimes, unix seconds, money, ids, enums."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from regsync.definitions import SF_CURRENCY_LIMIT
from regsync.errors import RecordRejected
from regsync.settings.types import BookingStatuses as BookingStatuses  # re-export

MAX_TEXT = 131_072  # the longest Salesforce long-text area
INT32_MAX = 2**31 - 1  # an Integer column
INT64_MAX = 2**63 - 1  # a BigInteger column
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: "²".isdigit() is True, int("²") fails
_DIGITS = re.compile(r"[0-9]{1,19}")


def sf_datetime(value: Any, field: str) -> datetime:
    """`2013-05-20T20:49:32.000+0000` (or ISO 8601 with Z / +hh:mm) -> aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise RecordRejected(f"expected a datetime string, got {_kind(value)}", field=field)
    text = value
    if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"  # +0000 -> +00:00 for fromisoformat
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"not a datetime: {value[:40]!r}", field=field) from None
    if moment.tzinfo is None:
        raise RecordRejected("datetime without a time zone", field=field)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise RecordRejected(f"datetime out of range: {value[:40]!r}", field=field) from None


def epoch(value: Any, field: str, *, optional: bool = False) -> datetime | None:
    """Unix seconds (int, or a numeric string as Checkfront's webhooks send) -> aware UTC datetime."""
    if value in (None, "", 0) and optional:
        return None
    if isinstance(value, bool):
        raise RecordRejected("expected unix seconds, got a boolean", field=field)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if not isinstance(value, int | float):
        raise RecordRejected(f"expected unix seconds, got {_kind(value)}", field=field)
    if not 0 <= value < 32503680000:  # before year 3000
        raise RecordRejected(f"unix seconds out of range: {value}", field=field)
    return datetime.fromtimestamp(value, tz=UTC)


MONEY_LIMIT = Decimal(SF_CURRENCY_LIMIT)  # 16 integer digits: 1e18 cents still fit a BigInteger


def money(value: Any, field: str, *, optional: bool = True) -> Decimal | None:
    """Checkfront's "130.00" strings and Salesforce currency numbers -> exact Decimal.

    Salesforce currency fields hold up to 16 integer digits, so anything below 1e16 is accepted.
    """
    if value is None or value == "":
        if optional:
            return None
        raise RecordRejected("amount is missing", field=field)
    if isinstance(value, bool):
        raise RecordRejected("expected an amount, got a boolean", field=field)
    if isinstance(value, int | float):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        raise RecordRejected(f"expected an amount, got {_kind(value)}", field=field)
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise RecordRejected(f"not an amount: {value[:40]!r}", field=field) from None
    if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
        raise RecordRejected(f"amount out of range: {value[:40]!r}", field=field)
    return amount


def sub_cent(amount: Decimal | None) -> str | None:
    """The exact amount as text when it has digits beyond the cent (the Money column keeps cents).

    Rules compare exact decimals against the tolerance; rounding 100.005 to 100.00 first would hide a
    difference of 0.015 from 99.99.
    """
    if amount is None or amount == amount.quantize(Decimal("0.01")):
        return None
    return str(amount.normalize())


def integer(value: Any, field: str, *, optional: bool = False, maximum: int = INT32_MAX) -> int | None:
    """An int, an integral float or a numeric string, within the column's range (+-maximum)."""
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise RecordRejected("expected an integer, got a boolean", field=field)
    integral = isinstance(value, float) and value.is_integer()
    if integral or (isinstance(value, str) and _INTEGER.fullmatch(value.strip())):
        value = int(value)
    if not isinstance(value, int):
        raise RecordRejected(f"expected an integer, got {_kind(value)}", field=field)
    if not -maximum - 1 <= value <= maximum:
        raise RecordRejected(f"integer out of range: {value}", field=field)
    return value


def text(value: Any, field: str, *, optional: bool = True, max_length: int = 255) -> str | None:
    if value is None:
        if optional:
            return None
        raise RecordRejected("is missing", field=field)
    if not isinstance(value, str):
        raise RecordRejected(f"expected text, got {_kind(value)}", field=field)
    if len(value) > max_length:
        raise RecordRejected(f"text longer than {max_length} characters", field=field)
    if "\x00" in value:
        raise RecordRejected("text holds a NUL character", field=field)  # PostgreSQL text cannot
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RecordRejected("text holds unpaired surrogates (not Unicode)", field=field) from None
    return value


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise RecordRejected(f"expected true/false, got {_kind(value)}", field=field)
    return value


def one_of(value: Any, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        shown = value[:40] if isinstance(value, str) else _kind(value)
        raise RecordRejected(f"unknown value {shown!r} (expected one of {', '.join(allowed)})", field=field)
    return str(value)


def sf_id(value: Any, field: str, *, optional: bool = False) -> str | None:
    """A Salesforce id: 15 or 18 alphanumeric characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) not in (15, 18) or not (value.isascii() and value.isalnum()):
        raise RecordRejected(f"not a Salesforce id: {str(value)[:40]!r}", field=field)
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
