"""Binding: a parsed query's names resolved against the schemas, its literals type-checked (bind())."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from regsync.sandbox.soql.dates import _DATE_RANGE, date_literal_range
from regsync.sandbox.soql.errors import (
    INVALID_FIELD,
    INVALID_OPERATOR,
    INVALID_TYPE,
    MALFORMED,
    OUT_OF_RANGE,
    SoqlError,
    _located,
    _unsupported,
)
from regsync.sandbox.soql.lexer import _DATE, _DATETIME, _NUMBER, _STRING, _decode
from regsync.sandbox.soql.parser import ParsedQuery, _Expr, _FieldExpr, _Literal, _Logic, _Name, _Negation
from regsync.sandbox.store import id_checksum

MAX_OFFSET = 2000

# Field type -> how values compare. "text" compares case-insensitively (as Salesforce does for
# all but unique case-sensitive fields, which the schema cannot express); "id" compares the
# canonical 18-character form; the rest compare their wire form directly.
_KINDS = {
    "id": "id",
    "reference": "id",
    "string": "text",
    "textarea": "text",
    "picklist": "text",
    "email": "text",
    "url": "text",
    "phone": "text",
    "combobox": "text",
    "datetime": "datetime",
    "date": "date",
    "boolean": "boolean",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "integer": "number",
}

# How Salesforce names the type in "value of filter criterion ... must be of type X".
_TYPE_WORDS = {
    "id": "id",
    "text": "string",
    "datetime": "dateTime",
    "date": "date",
    "boolean": "boolean",
    "number": "double",
}

_RANGE_OPS = ("<", "<=", ">", ">=")


@dataclass(frozen=True)
class Comparison:
    """`field op value`; value is already in the rows' representation (None for null)."""

    field: str
    kind: str
    op: str  # = != < <= > >=
    value: Any


@dataclass(frozen=True)
class Membership:
    """`field [NOT] IN (values)`; values in the rows' representation, None for null."""

    field: str
    kind: str
    values: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    """`field LIKE 'pattern'`; pattern is the raw literal body, escapes undecoded."""

    field: str
    pattern: str


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | Membership | Like | BoolOp | Not


@dataclass(frozen=True)
class OrderKey:
    field: str
    kind: str
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    """A bound query: canonical names, type-checked literals; what the emulator executes."""

    fields: tuple[str, ...]  # canonical names in SELECT order; () for COUNT()
    sobject: str
    where: Condition | None
    order_by: tuple[OrderKey, ...]
    limit: int | None
    offset: int | None
    is_count: bool


def bind(
    parsed: ParsedQuery,
    schemas: Mapping[str, tuple[str, Mapping[str, str]]],
    today: date | None = None,
) -> Query:
    """Resolve names against `schemas` (lower-cased object name -> (canonical, field types));
    date literals (TODAY, LAST_N_DAYS:n, ...) count from `today` (default: today in UTC)."""
    text = parsed.text
    today = today or datetime.now(UTC).date()
    found = schemas.get(parsed.sobject.text.lower())
    if found is None:
        raise SoqlError(
            INVALID_TYPE,
            _located(
                text,
                parsed.sobject.pos,
                f"sObject type '{parsed.sobject.text}' is not supported. If you are attempting "
                "to use a custom object, be sure to append the '__c' after the entity name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
            ),
        )
    sobject, field_types = found
    by_lower = {name.lower(): (name, ftype) for name, ftype in field_types.items()}
    by_lower.setdefault("id", ("Id", "id"))

    def resolve(name: _Name) -> tuple[str, str]:
        hit = by_lower.get(name.text.lower())
        if hit is None:
            raise SoqlError(
                INVALID_FIELD,
                _located(
                    text,
                    name.pos,
                    f"No such column '{name.text}' on entity '{sobject}'. If you are attempting "
                    "to use a custom field, be sure to append the '__c' after the custom field "
                    "name. Please reference your WSDL or the describe call for the appropriate "
                    "names.",
                ),
            )
        return hit

    def kind_of(name: _Name, canonical: str, ftype: str, action: str) -> str:
        kind = _KINDS.get(ftype.lower())
        if kind is None:
            raise SoqlError(
                INVALID_FIELD,
                _located(text, name.pos, f"field '{canonical}' can not be {action} in query call"),
            )
        return kind

    fields: list[str] = []
    for name in parsed.fields:
        canonical, _ = resolve(name)
        if canonical in fields:
            raise SoqlError(INVALID_FIELD, _located(text, name.pos, f"duplicate field selected: {canonical}"))
        fields.append(canonical)

    def bind_expr(expr: _Expr) -> Condition:
        if isinstance(expr, _Logic):
            return BoolOp(expr.op, tuple(bind_expr(item) for item in expr.items))
        if isinstance(expr, _Negation):
            return Not(bind_expr(expr.item))
        canonical, ftype = resolve(expr.field)
        kind = kind_of(expr.field, canonical, ftype, "filtered")
        return _bind_field_expr(text, expr, canonical, kind, today)

    where = bind_expr(parsed.where) if parsed.where is not None else None

    order_by = []
    for item in parsed.order_by:
        canonical, ftype = resolve(item.field)
        kind = kind_of(item.field, canonical, ftype, "sorted")
        nulls_first = item.nulls_first if item.nulls_first is not None else not item.descending
        order_by.append(OrderKey(canonical, kind, item.descending, nulls_first))

    if parsed.offset is not None and parsed.offset > MAX_OFFSET:
        raise SoqlError(OUT_OF_RANGE, f"Maximum SOQL offset allowed for apiName {sobject} is {MAX_OFFSET}")
    return Query(
        fields=tuple(fields),
        sobject=sobject,
        where=where,
        order_by=tuple(order_by),
        limit=parsed.limit,
        offset=parsed.offset,
        is_count=parsed.is_count,
    )


def _bind_field_expr(text: str, expr: _FieldExpr, field: str, kind: str, today: date) -> Condition:
    op = expr.op
    if isinstance(expr.value, _Literal) and expr.value.kind == _DATE_RANGE:
        return _bind_date_range(text, expr, field, kind, today)
    if isinstance(expr.value, tuple):
        for literal in expr.value:
            if literal.kind == _DATE_RANGE:
                raise _unsupported(text, literal.pos, f"The date literal {literal.text} in an IN list")
    if op == "LIKE":
        assert isinstance(expr.value, _Literal)
        literal = expr.value
        if kind == "id":
            raise SoqlError(INVALID_OPERATOR, _located(text, expr.op_pos, "invalid operator on id field"))
        if literal.kind == "null":
            raise SoqlError(MALFORMED, _located(text, literal.pos, "LIKE needs a quoted string pattern"))
        if kind != "text" or literal.kind != _STRING:
            raise _type_mismatch(text, literal, field, kind)
        return Like(field, literal.text)
    if op in ("IN", "NOTIN"):
        assert isinstance(expr.value, tuple)
        values = tuple(_coerce(text, literal, field, kind, equality=True) for literal in expr.value)
        return Membership(field, kind, values, negated=op == "NOTIN")
    assert isinstance(expr.value, _Literal)
    literal = expr.value
    if op in _RANGE_OPS:
        if literal.kind == "null":
            raise SoqlError(
                MALFORMED,
                _located(
                    text,
                    literal.pos,
                    f"unexpected token: 'null' (only = and != can compare with null, not {op})",
                ),
            )
        if kind == "boolean":
            raise SoqlError(
                INVALID_OPERATOR, _located(text, expr.op_pos, "invalid operator on boolean field")
            )
    value = _coerce(text, literal, field, kind, equality=op in ("=", "!="))
    return Comparison(field, kind, op, value)


def _bind_date_range(text: str, expr: _FieldExpr, field: str, kind: str, today: date) -> Condition:
    """A date literal is a range: `=` is inside it, `!=` outside, `<`/`>=` against its start,
    `<=`/`>` against its end (Salesforce: "use = to find values in the range, > or < for either side")."""
    literal = expr.value
    assert isinstance(literal, _Literal)
    if expr.op == "LIKE" or kind not in ("date", "datetime"):
        raise _type_mismatch(text, literal, field, kind)
    try:
        start, end = date_literal_range(literal.text, today)
    except (OverflowError, ValueError):
        raise SoqlError(
            MALFORMED, _located(text, literal.pos, f"invalid date literal: {literal.text}")
        ) from None

    def wire(day: date) -> str:
        return day.isoformat() if kind == "date" else f"{day.isoformat()}T00:00:00.000+0000"

    low, high = Comparison(field, kind, ">=", wire(start)), Comparison(field, kind, "<", wire(end))
    op = expr.op
    if op == "=":
        return BoolOp("AND", (low, high))
    if op == "!=":
        return Not(BoolOp("AND", (low, high)))
    if op == "<":
        return Comparison(field, kind, "<", wire(start))
    if op == ">=":
        return low
    if op == "<=":
        return high
    return Comparison(field, kind, ">=", wire(end))  # ">": after the whole range


def _type_mismatch(text: str, literal: _Literal, field: str, kind: str) -> SoqlError:
    quoted = kind in ("id", "text")
    return SoqlError(
        INVALID_FIELD,
        _located(
            text,
            literal.pos,
            f"value of filter criterion for field '{field}' must be of type {_TYPE_WORDS[kind]} "
            f"and should {'' if quoted else 'not '}be enclosed in quotes",
        ),
    )


def _coerce(text: str, literal: _Literal, field: str, kind: str, *, equality: bool) -> Any:
    """The literal in the rows' representation for a field of this kind, or an error."""
    if literal.kind == "null":
        return None
    if kind == "text":
        if literal.kind != _STRING:
            raise _type_mismatch(text, literal, field, kind)
        value = _decode(literal.text)
        # Salesforce stores no empty strings: `Name = ''` is `Name = null`.
        return None if value == "" and equality else value
    if kind == "id":
        if literal.kind != _STRING:
            raise _type_mismatch(text, literal, field, kind)
        value = _decode(literal.text)
        if value == "" and equality:
            return None
        canonical = canonical_id(value)
        if canonical is None:
            raise SoqlError(INVALID_OPERATOR, _located(text, literal.pos, f"invalid ID field: {value}"))
        return canonical
    if kind == "datetime":
        if literal.kind != _DATETIME:
            raise _type_mismatch(text, literal, field, kind)
        return _wire_datetime(text, literal)
    if kind == "date":
        if literal.kind != _DATE:
            raise _type_mismatch(text, literal, field, kind)
        try:
            date.fromisoformat(literal.text)
        except ValueError:
            raise SoqlError(MALFORMED, _located(text, literal.pos, f"invalid date: {literal.text}")) from None
        return literal.text
    if kind == "boolean":
        if literal.kind != "boolean":
            raise _type_mismatch(text, literal, field, kind)
        return literal.text == "TRUE"
    if kind == "number":
        if literal.kind != _NUMBER:
            raise _type_mismatch(text, literal, field, kind)
        return float(literal.text) if "." in literal.text else int(literal.text)
    raise AssertionError(kind)  # pragma: no cover


_BASE62_CASE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def canonical_id(value: str) -> str | None:
    """The canonical 18-character form of a 15- or 18-character Salesforce id, or None.

    15-character ids are case-sensitive; an 18-character id carries its own case in the suffix,
    so Salesforce accepts it in any case (the case of the first 15 is restored from the suffix).
    """
    if not value.isascii() or not value.isalnum():
        return None
    if len(value) == 15:
        return value + id_checksum(value)
    if len(value) != 18:
        return None
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, flag in enumerate(suffix):
        bits = _BASE62_CASE.find(flag)
        if bits < 0:
            return None
        for position in range(5):
            index = chunk * 5 + position
            if bits & (1 << position):
                if not chars[index].isalpha():
                    return None
                chars[index] = chars[index].upper()
            else:
                chars[index] = chars[index].lower()
    id15 = "".join(chars)
    return id15 + id_checksum(id15)


_DATETIME_FORM = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|[+-]\d{2}:\d{2})"
)


def _wire_datetime(text: str, literal: _Literal) -> str:
    """`2024-01-01T01:00:00+01:00` -> `2024-01-01T00:00:00.000+0000` (UTC, fixed width)."""
    match = _DATETIME_FORM.fullmatch(literal.text)
    problem = None
    if match is None:
        problem = "expected YYYY-MM-DDThh:mm:ss[.sss] followed by Z, +hh:mm or -hh:mm"
    else:
        try:
            millis = int((match[7] or "0").ljust(3, "0"))
            year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
            moment = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
            zone = match[8]
            if zone != "Z":
                hours, minutes = int(zone[1:3]), int(zone[4:6])
                if hours > 23 or minutes > 59:
                    raise ValueError(zone)
                shift = timedelta(hours=hours, minutes=minutes)
                moment = moment - shift if zone[0] == "+" else moment + shift
        except (ValueError, OverflowError):
            problem = "not a valid date and time"
    if problem is not None:
        raise SoqlError(
            MALFORMED,
            _located(text, literal.pos, f"invalid datetime literal '{literal.text}': {problem}"),
        )
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}+0000"
    )
