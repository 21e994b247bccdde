"""Small value helpers of the Checkfront emulator: money, dates, PHP-style parameters, statuses."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

UNLIMITED = 1_000_000_000  # what the docs' session example shows as `available` of an add-on
DAY_S = 86_400
STATUSES: dict[str, str] = {
    "PEND": "Pending",
    "HOLD": "Reserved",
    "PART": "Deposit",
    "PAID": "Paid",
    "WAIT": "Waiting",
    "STOP": "Cancelled",
    "VOID": "Void",
}
# Unconfirmed: which statuses give their seats back. Cancelled and Void are the obvious ones; a
# waiting (unpaid) booking still holds its seats, as a pending one does.
RELEASED_STATUSES = frozenset({"STOP", "VOID"})
_PHP_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])+)")
_PHP_SUBKEY = re.compile(r"\[([^\[\]]*)\]")
_CENT = Decimal("0.01")


def _dec(value: Any) -> Decimal:
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def _money(value: Any) -> str:
    """Checkfront's money: a string with two decimals, "130.00"."""
    return str(_dec(value).quantize(_CENT))


def _dollars(value: Any) -> str:
    return f"${_money(value)}"


def _number(value: Decimal) -> int | float:
    """A JSON number as PHP would print it: 130, or 130.5."""
    return int(value) if value == value.to_integral_value() else float(value)


def _int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    try:
        return int(str(value).strip()) if not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def _epoch(value: Any) -> int | None:
    """Unix seconds from an int, float or numeric string; None when absent."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def _parse_day(value: Any) -> date | None:
    """A calendar day from "YYYYMMDD", "YYYY-MM-DD", unix seconds or a date."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC).date()
        text = str(value).strip()
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if text.isdigit():
            return datetime.fromtimestamp(int(text), tz=UTC).date()
        return date.fromisoformat(text[:10])
    except (ValueError, OverflowError, OSError):
        return None


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def _midnight(day: date) -> int:
    # The sandbox account's time zone is UTC: a day's unix time is its UTC midnight. (The docs'
    # account is in Canada/Pacific, so its 2017-10-05 is 1507186800; the shape is the same.)
    return calendar.timegm(day.timetuple())


def _day_desc(day: date) -> str:
    """ "Thu Oct 5, 2017" as in the docs' examples."""
    return f"{day:%a %b} {day.day}, {day.year}"


def _span_desc(first: date, last: date) -> str:
    # Unconfirmed: the docs only show one-day carts; a span reads "Thu Oct 5 - Sat Oct 7, 2017".
    if first == last:
        return _day_desc(first)
    if first.year == last.year:
        return f"{first:%a %b} {first.day} - {_day_desc(last)}"
    return f"{_day_desc(first)} - {_day_desc(last)}"


def _seconds(value: Any) -> float:
    """Epoch seconds (float) of a stored time; 0 when absent or unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def _php_decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs to PHP's nested arrays: `slip[]=A&slip[]=B`, `alter[3]=5`, `form[name]=x`.

    PHP arrays become dicts with string keys ("0", "1" for `[]`); a plain key given twice keeps
    the last value, as PHP does.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = _PHP_KEY.fullmatch(key)
        if match is None:
            out[key] = value
            continue
        parts = [match.group(1), *_PHP_SUBKEY.findall(match.group(2))]
        node = out
        for depth, part in enumerate(parts):
            if part == "":
                indexes = [int(k) for k in node if k.isdigit()]
                part = str(max(indexes) + 1 if indexes else 0)
            if depth == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return out


def _pairs(multi: dict[str, list[str]]) -> Iterable[tuple[str, str]]:
    for key, values in multi.items():
        for value in values:
            yield key, value


def _as_list(value: Any) -> list[str]:
    """A parameter that may be one value, a PHP array (dict) or a JSON list, as a list of strings."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return [str(v) for v in value.values() if v not in (None, "")]
    if isinstance(value, list):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


def _as_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


class _BadRequest(Exception):
    """A request-level error: answered in the envelope with request.status "ERROR"."""

    def __init__(self, error_id: str, title: str, details: str, data: Any = "") -> None:
        super().__init__(details)
        self.error_id = error_id
        self.title = title
        self.details = details
        self.data = data
