"""SLIPs and cart or booking lines: parsing, the days and seats a line takes, add-on opt-in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from regsync.sandbox.checkfront.values import DAY_S, UNLIMITED, _epoch, _int, _parse_day, _ymd

_SLIP = re.compile(r"(?P<item>\d+)\.(?P<date>\d{8})X(?P<len>\d+)(?P<rest>(?:-[A-Za-z0-9_]+(?:\.\d+)?)+)")


@dataclass(frozen=True)
class _Slip:
    item_id: int
    day: date
    length: int
    param: dict[str, int]  # {} for a param-less item (add-ons)
    qty: int


def _parse_slip(text: str) -> _Slip | None:
    """`{item_id}.{YYYYMMDD}X{len}-{param}.{qty}[-...]` or `{item_id}.{YYYYMMDD}X{len}-{qty}`."""
    match = _SLIP.fullmatch(text.strip())
    if match is None:
        return None
    day = _parse_day(match.group("date"))
    length = int(match.group("len"))
    if day is None or not 1 <= length <= min(366, (date.max - day).days + 1):  # unconfirmed: a year at most
        return None
    param: dict[str, int] = {}
    bare = 0
    for part in match.group("rest").split("-")[1:]:
        name, dot, count = part.partition(".")
        if dot:
            param[name] = param.get(name, 0) + int(count)
        elif name.isdigit():
            bare += int(name)
        else:
            return None
    if param and bare:
        return None
    qty = sum(param.values()) if param else bare
    return _Slip(int(match.group("item")), day, length, param, qty) if qty <= UNLIMITED else None


def _make_slip(item_id: int, day: date, length: int, param: dict[str, int], qty: int) -> str:
    suffix = "-".join(f"{name}.{count}" for name, count in param.items()) if param else str(qty)
    return f"{item_id}.{_ymd(day)}X{length}-{suffix}"


def _line_day(line: dict[str, Any]) -> date | None:
    for key in ("date", "start_date"):
        day = _parse_day(line.get(key))
        if day is not None:
            return day
    slip = _parse_slip(str(line.get("slip") or ""))
    return slip.day if slip else None


def _line_len(line: dict[str, Any]) -> int:
    length = _int(line.get("len"), 0)
    if length > 0:
        return length
    slip = _parse_slip(str(line.get("slip") or ""))
    if slip is not None:
        return slip.length
    start, end = _epoch(line.get("start_date")), _epoch(line.get("end_date"))
    if start is not None and end is not None and end >= start:
        return (end - start) // DAY_S + 1
    return 1


def _line_days(line: dict[str, Any]) -> list[date]:
    first = _line_day(line)
    if first is None:
        return []
    return [first + timedelta(days=offset) for offset in range(_line_len(line))]


def _line_day_keys(line: dict[str, Any]) -> list[str]:
    """The "YYYYMMDD" days a line takes; fast for the common one-day line."""
    raw = line.get("date")
    if line.get("len") == 1 and type(raw) is str and len(raw) == 8 and raw.isdigit():
        return [raw]
    return [_ymd(day) for day in _line_days(line)]


def _line_qty(line: dict[str, Any]) -> int:
    if line.get("qty") not in (None, ""):
        return _int(line.get("qty"))
    param = line.get("param")
    if isinstance(param, dict) and param:
        return sum(_int(n) for n in param.values())
    return 1


def _is_package(line_id: Any, line: dict[str, Any]) -> bool:
    return bool(line.get("package")) or "." in str(line_id)


def _opted_in(line: dict[str, Any], *, default: bool = False) -> bool:
    """A package add-on line's state: opted in or out; `default` when the line does not say."""
    opt = line.get("opt")
    if isinstance(opt, str) and opt:
        return opt.lower() == "in"
    value = line.get("optin")
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in ("in", "i", "optin", "1", "true")
    return bool(value)


def _counts(line_id: Any, line: dict[str, Any], *, booked: bool = False) -> bool:
    """Whether a line is part of the order (and holds seats): main lines and opted-in add-ons.

    A cart's add-on starts opted out (as in the docs' example); a booking's line was booked, so
    only an explicit opt-out leaves it out.
    """
    return not _is_package(line_id, line) or _opted_in(line, default=booked)


def _line_sort_key(line_id: str) -> tuple[int, ...]:
    return tuple(_int(part) for part in str(line_id).split("."))


def _iter_lines(lines: Any) -> Iterable[tuple[str, dict[str, Any]]]:
    """(line_id, line) of a session's dict of lines or a booking's list of lines."""
    if isinstance(lines, dict):
        for line_id, line in lines.items():
            if isinstance(line, dict):
                yield str(line_id), line
    elif isinstance(lines, list):
        for index, line in enumerate(lines):
            if isinstance(line, dict):
                yield str(line.get("line_id", index + 1)), line


def _demand(lines: Any) -> dict[tuple[int, str], int]:
    """Seats a set of lines takes, per (item_id, YYYYMMDD)."""
    need: dict[tuple[int, str], int] = {}
    booked = isinstance(lines, list)  # bookings keep a list of lines, carts a dict by line id
    for line_id, line in _iter_lines(lines):
        if not _counts(line_id, line, booked=booked):
            continue
        item_id = _int(line.get("item_id"))
        qty = _line_qty(line)
        for day in _line_day_keys(line):
            key = (item_id, day)
            need[key] = need.get(key, 0) + qty
    return need
