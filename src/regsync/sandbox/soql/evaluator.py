"""Evaluation of a bound query: the WHERE filter as closures, ORDER BY, OFFSET and LIMIT, the projection."""

# Null semantics follow SOQL, which is not SQL's three-valued logic: a null is a value for
# equality, so `f != 'x'` and `f NOT IN ('x')` DO match rows where f is null, while `<`, `<=`,
# `>`, `>=` and LIKE never match a null; NOT simply negates. On boolean fields null means false
# (Salesforce documents `Flag__c = null` as equivalent to `Flag__c = false`).

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from itertools import compress, repeat
from typing import Any

from regsync.sandbox.soql.binder import (
    _RANGE_OPS,
    BoolOp,
    Comparison,
    Condition,
    Like,
    Membership,
    Not,
    OrderKey,
    Query,
)
from regsync.sandbox.soql.lexer import _ESCAPES, _LIKE_ONLY_ESCAPES

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


def compile_filter(query: Query) -> Predicate:
    """A predicate for the WHERE clause (always true when there is none)."""
    if query.where is None:
        return lambda row: True
    return _compile(query.where)


def _compile(cond: Condition) -> Predicate:
    if isinstance(cond, BoolOp):
        return _compile_and(cond.items) if cond.op == "AND" else _compile_or(cond.items)
    if isinstance(cond, Not):
        inner = _compile(cond.item)
        return lambda row: not inner(row)
    if isinstance(cond, Like):
        return _compile_like(cond)
    if isinstance(cond, Membership):
        return _compile_membership(cond)
    return _compile_comparison(cond)


def _compile_and(items: tuple[Condition, ...]) -> Predicate:
    preds = _merge_ranges(list(items))
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds

        def both(row: Row) -> bool:
            return first(row) and second(row)

        return both

    def every(row: Row) -> bool:
        return all(pred(row) for pred in preds)

    return every


def _compile_or(items: tuple[Condition, ...]) -> Predicate:
    preds = [_compile(item) for item in items]
    if len(preds) == 2:
        first, second = preds

        def either(row: Row) -> bool:
            return first(row) or second(row)

        return either

    def any_of(row: Row) -> bool:
        return any(pred(row) for pred in preds)

    return any_of


def _merge_ranges(items: list[Condition]) -> list[Predicate]:
    """Compile AND operands, fusing `f >= lo AND f < hi` on one field into a single closure.

    The window query the sync issues on SystemModstamp is exactly this shape, and one closure
    per row instead of three is most of the cost of filtering a million rows.
    """
    lows: dict[str, Comparison] = {}
    highs: dict[str, Comparison] = {}
    for item in items:
        if isinstance(item, Comparison) and item.kind != "text" and item.op in _RANGE_OPS:
            bucket = lows if item.op in (">", ">=") else highs
            bucket.setdefault(item.field, item)
    fused = {field: (lows[field], highs[field]) for field in lows.keys() & highs.keys()}
    preds: list[Predicate] = []
    for item in items:
        if isinstance(item, Comparison) and item.field in fused:
            low, high = fused[item.field]
            if item is low:
                preds.append(_window(item.field, low, high))
                continue
            if item is high:
                continue
        preds.append(_compile(item))
    return preds


def _window(field: str, low: Comparison, high: Comparison) -> Predicate:
    lo, hi = low.value, high.value
    lo_incl, hi_incl = low.op == ">=", high.op == "<="
    if lo_incl and not hi_incl:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo <= value < hi

    elif lo_incl and hi_incl:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo <= value <= hi

    elif hi_incl:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo < value <= hi

    else:

        def pred(row: Row) -> bool:
            value = row.get(field)
            return value is not None and lo < value < hi

    return pred


_RANGE_FUNCS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compile_comparison(cond: Comparison) -> Predicate:
    field, kind, op, value = cond.field, cond.kind, cond.op, cond.value
    if kind == "boolean":
        # Null is false on a boolean field: `= null` is `= false`, `!= null` is `= true`.
        want = bool(value)
        if op == "!=":
            want = not want
        if want:
            return lambda row: row.get(field) is True
        return lambda row: not row.get(field)
    if value is None:
        if op == "=":
            return lambda row: row.get(field) is None
        return lambda row: row.get(field) is not None
    if kind == "text":
        return _compile_text_comparison(field, op, value)
    if op == "=":
        return lambda row: row.get(field) == value
    if op == "!=":
        return lambda row: row.get(field) != value  # a null row value is "not equal" in SOQL
    if op == "<":

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current < value

    elif op == "<=":

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current <= value

    elif op == ">":

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current > value

    else:

        def pred(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current >= value

    return pred


def _compile_text_comparison(field: str, op: str, value: str) -> Predicate:
    # Case-insensitive, as Salesforce compares all but unique case-sensitive text fields.
    # Equality folds with lower(); ranges fold with upper(), the order Salesforce sorts in for
    # English locales ("UTF-8 values of the uppercase characters").
    if op == "=":
        folded = value.lower()

        def equal(row: Row) -> bool:
            current = row.get(field)
            return current is not None and current.lower() == folded

        return equal
    if op == "!=":
        folded = value.lower()

        def not_equal(row: Row) -> bool:
            current = row.get(field)
            return current is None or current.lower() != folded

        return not_equal
    upper = value.upper()
    compare = _RANGE_FUNCS[op]

    def in_range(row: Row) -> bool:
        current = row.get(field)
        return current is not None and compare(current.upper(), upper)

    return in_range


def _compile_membership(cond: Membership) -> Predicate:
    field, kind = cond.field, cond.kind
    has_null = any(value is None for value in cond.values)
    values = [value for value in cond.values if value is not None]
    if kind == "boolean":
        wanted = frozenset(bool(value) for value in cond.values)  # null is false here
        if cond.negated:
            return lambda row: bool(row.get(field)) not in wanted
        return lambda row: bool(row.get(field)) in wanted
    if kind == "text":
        folded = frozenset(value.lower() for value in values)

        def text_in(row: Row) -> bool:
            current = row.get(field)
            if current is None:
                return has_null
            return current.lower() in folded

        if cond.negated:
            return lambda row: not text_in(row)
        return text_in
    members = frozenset(values)

    def is_in(row: Row) -> bool:
        current = row.get(field)
        if current is None:
            return has_null
        return current in members

    if cond.negated:
        return lambda row: not is_in(row)
    return is_in


def _like_regex(raw: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char == "\\":
            escaped = raw[pos + 1]
            parts.append(re.escape(escaped if escaped in _LIKE_ONLY_ESCAPES else _ESCAPES[escaped]))
            pos += 2
            continue
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
        pos += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _compile_like(cond: Like) -> Predicate:
    # Case-insensitive, whole-value match: 'abc%' matches 'ABCdef' but never 'xabc'.
    field = cond.field
    match = _like_regex(cond.pattern).fullmatch

    def like(row: Row) -> bool:
        current = row.get(field)
        return current is not None and match(current) is not None

    return like


# ---------------------------------------------------------------------------------------------
# Ordering
# ---------------------------------------------------------------------------------------------


class _Descending:
    """Reverses the order of a wrapped value (for DESC on strings inside one tuple key)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _sort_value(kind: str) -> Callable[[Any], Any] | None:
    # Text sorts case-insensitively by the uppercase form (Salesforce, English locale); ids,
    # dates and datetimes sort by their wire form, which is also their time order.
    return str.upper if kind == "text" else None


def sort_key(query: Query) -> Callable[[Row], tuple[Any, ...]] | None:
    """A key for sorted() giving ORDER BY's order (DESC, NULLS FIRST/LAST), or None without one.

    `execute` sorts in stable passes instead, which is much faster on big inputs; both orders
    agree (ties keep their input order).
    """
    if not query.order_by:
        return None
    parts = [
        (key.field, key.descending, 0 if key.nulls_first else 2, _sort_value(key.kind))
        for key in query.order_by
    ]

    def key(row: Row) -> tuple[Any, ...]:
        out: list[Any] = []
        for field, descending, null_rank, fold in parts:
            value = row.get(field)
            if value is None:
                out.append((null_rank, None))
                continue
            if fold is not None:
                value = fold(value)
            if descending:
                value = -value if isinstance(value, int | float) else _Descending(value)
            out.append((1, value))
        return tuple(out)

    return key


def _getter(field: str, fold: Callable[[Any], Any] | None) -> Callable[[Row], Any]:
    if fold is None:
        return operator.itemgetter(field)

    def folded(row: Row) -> Any:
        return fold(row[field])

    return folded


def _order(rows: list[Row], keys: tuple[OrderKey, ...]) -> list[Row]:
    """Sort by the first key, then sort only the runs that tie on it by the remaining keys.

    Every sort is stable and uses a single-value key (C-level itemgetter where no case folding is
    needed), and the ties are found at C speed, so ORDER BY SystemModstamp, Id over a million rows
    costs one string sort. The result equals a stable sort on the full key (see `sort_key`).
    """
    if len(rows) < 2:
        return rows
    key, rest = keys[0], keys[1:]
    field = key.field
    if None in map(dict.get, rows, repeat(field)):
        present = [row for row in rows if row.get(field) is not None]
        nulls = [row for row in rows if row.get(field) is None]
        if rest:
            nulls = _order(nulls, rest)
    else:
        present, nulls = rows, []
    getter = _getter(field, _sort_value(key.kind))
    present.sort(key=getter, reverse=key.descending)
    if rest and len(present) > 1:
        values = list(map(getter, present))
        ties = list(compress(range(len(values) - 1), map(operator.eq, values, values[1:])))
        run_start = None
        for position, index in enumerate(ties):
            if run_start is None:
                run_start = index
            if position + 1 < len(ties) and ties[position + 1] == index + 1:
                continue  # the run goes on
            present[run_start : index + 2] = _order(present[run_start : index + 2], rest)
            run_start = None
    if not nulls:
        return present
    return nulls + present if key.nulls_first else present + nulls


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


def execute(query: Query, rows: Iterable[Row]) -> list[Row]:
    """Rows matching WHERE, in ORDER BY order, after OFFSET and LIMIT (the row dicts themselves)."""
    matched = list(rows) if query.where is None else list(filter(compile_filter(query), rows))
    if query.order_by:
        matched = _order(matched, query.order_by)
    start = query.offset or 0
    if query.limit is not None:
        return matched[start : start + query.limit]
    return matched[start:] if start else matched


def project(query: Query, row: Row) -> dict[str, Any]:
    """The selected fields of a row, in SELECT order, under their canonical names."""
    return {field: row.get(field) for field in query.fields}
