"""SOQL is only ever built here, through escaping helpers: no value is pasted into a query raw."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from regsync.errors import ConfigError

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def identifier(name: str) -> str:
    """An object or field API name, checked: configuration must not smuggle SOQL in."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ConfigError(f"{name!r} is not a valid Salesforce API name")
    return name


def literal(value: object) -> str:
    """A SOQL literal for a Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a SOQL query")
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"datetime out of range in a SOQL query: {value.isoformat()}") from None
        # Four-digit year always (strftime's %Y gives "999" for year 999: no SOQL datetime).
        return (
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
        )
    if isinstance(value, str):
        return "'" + "".join(_ESCAPES.get(char, char) for char in value) + "'"
    raise TypeError(f"no SOQL literal for {type(value).__name__}")


def in_list(values: Iterable[object]) -> str:
    return "(" + ", ".join(literal(v) for v in values) + ")"


def window_query(
    sobject: str,
    fields: Iterable[str],
    cursor: str,
    lower: datetime,
    upper: datetime,
) -> str:
    """SELECT ... WHERE cursor >= lower AND cursor < upper ORDER BY cursor, Id.

    `>=` (never `>`): rows that share the lower bound's timestamp are read again rather than lost;
    the ordering by Id under the cursor makes pages deterministic among ties.
    """
    columns = ", ".join(identifier(f) for f in fields)
    return (
        f"SELECT {columns} FROM {identifier(sobject)} "
        f"WHERE {identifier(cursor)} >= {literal(lower)} AND {identifier(cursor)} < {literal(upper)} "
        f"ORDER BY {identifier(cursor)} ASC, Id ASC"
    )


def window_where_query(
    sobject: str,
    fields: Iterable[str],
    cursor: str,
    lower: datetime,
    upper: datetime,
    field: str,
    value: object,
) -> str:
    """window_query restricted to the rows whose `field` equals `value`, in the same order."""
    columns = ", ".join(identifier(f) for f in fields)
    return (
        f"SELECT {columns} FROM {identifier(sobject)} "
        f"WHERE {identifier(cursor)} >= {literal(lower)} AND {identifier(cursor)} < {literal(upper)} "
        f"AND {identifier(field)} = {literal(value)} "
        f"ORDER BY {identifier(cursor)} ASC, Id ASC"
    )


def ids_query(sobject: str, fields: Iterable[str], ids: Iterable[str]) -> str:
    """SELECT ... WHERE Id IN (...): re-reading known records (quarantined ones) by id."""
    columns = ", ".join(identifier(f) for f in fields)
    return f"SELECT {columns} FROM {identifier(sobject)} WHERE Id IN {in_list(ids)} ORDER BY Id ASC"
