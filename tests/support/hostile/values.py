"""Hostile values in general (scalars, text, JSON, deep structures, datetimes) and records mutated with them.

Shared by every surface's strategies; the record templates live with their surface.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from hypothesis import strategies as st

from tests.support.hostile.outcomes import INT32, INT64

# Values chosen because they broke, or could break, something somewhere.
SPECIAL_TEXT: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202eevil\u202c",
    "\u200fRTL\u200e",
    "\ufeffBOM",
    "ﬃ" * 6,  # upper() makes it three times longer
    "İ",
    "²",  # isdigit() but not a decimal digit
    "٣٤",  # Arabic-Indic digits
    "--5",
    "1e309",
    "-0",
    "NaN",
    "Infinity",
    "  12.50 ",
    "1_000",
    "0x10",
    "'",
    '"',
    "\\",
    "\\'",
    "' OR Id != null --",
    "a16' OR Name LIKE '%",
    "{",
    "[]",
    "null",
    "../../booking/session/end",
    "?session_id=x&a=b",
    "%2e%2e",
    "2013-05-20T20:49:32.000+0000",
    "Draft",
    "Completed",
    "PAID",
    "😀" * 3,
)
unicode_text = st.text(st.characters(exclude_categories=()), max_size=40)  # NUL, surrogates, RTL...
plain_text = st.text(max_size=40)
huge_text = st.builds(
    lambda char, count: char * count,
    st.sampled_from(["a", "é", "\u202e", "9", "'", "\x00", "😀"]),
    st.sampled_from([65, 81, 256, 5_000, 131_073]),  # past every column and MAX_TEXT
)
huge_digits = st.builds(lambda count: "9" * count, st.integers(min_value=18, max_value=6_000))
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, INT32, INT32 + 1, INT64, INT64 + 1, -(2**63) - 1, 32503680000]),
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, 5e-324, -0.0, 0.1, 1e12]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    floats,
    unicode_text,
    st.sampled_from(SPECIAL_TEXT),
    huge_text,
    huge_digits,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _nest(depth: int, kind: str) -> Any:
    """A structure `depth` levels deep, built without recursion."""
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


# Python structures as deep as a JSON parser hands back (orjson parses up to 1024 levels).
deep_structures = st.builds(
    _nest, st.integers(min_value=200, max_value=1020), st.sampled_from(["list", "dict"])
)
deep_json_text = st.builds(
    lambda depth, kind: (
        ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)
    ),
    st.integers(min_value=100, max_value=20_000),
    st.sampled_from(["list", "dict"]),
)

_OFFSETS = st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m)))
aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=_OFFSETS
)
naive_datetimes = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))

SURROGATES: tuple[Literal["Cs"], ...] = ("Cs",)  # the Unicode category of unpaired surrogates


# Mutations go at most this deep: the templates' own fields are a few levels down; a hostile value
# planted earlier can be ~1,000 levels deep, and its inside is no more hostile than the value itself.
MAX_MUTATION_DEPTH = 12


def _paths(node: Any) -> list[tuple[Any, ...]]:
    """Every key path of a template (containers and leaves) where a hostile value may go.

    Iterative and depth-bounded: a template may hold a deep structure drawn a moment before (a
    Checkfront envelope around a 1,000-level booking session), and recursing through it once raised
    RecursionError in the strategy itself.
    """
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), node)]
    while stack:
        prefix, value = stack.pop()
        if prefix:
            found.append(prefix)
        if len(prefix) >= MAX_MUTATION_DEPTH:
            continue
        if isinstance(value, dict):
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        stack.extend(((*prefix, key), child) for key, child in reversed(children))
    return found


def _copy_tree(node: Any) -> Any:
    """A copy of nested dicts and lists (the leaves are shared), at any depth, without recursion.

    copy.deepcopy recurses two frames per level: a template wrapping a ~1,000-level structure
    raised RecursionError, and hypothesis saved the failing example, so every later run failed too.
    """
    if not isinstance(node, dict | list):
        return node
    root: Any = {} if isinstance(node, dict) else []
    stack: list[tuple[Any, Any]] = [(node, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            if isinstance(value, dict | list):
                child: Any = {} if isinstance(value, dict) else []
                stack.append((value, child))
            else:
                child = value
            if isinstance(target, dict):
                target[key] = child
            else:
                target.append(child)
    return root


_GONE = object()


def _child(node: Any, step: Any) -> Any:
    if isinstance(node, dict) and step in node:
        return node[step]
    if isinstance(node, list) and isinstance(step, int) and step < len(node):
        return node[step]
    return _GONE


def _mutate(template: dict[str, Any], changes: list[tuple[tuple[Any, ...], str, Any]]) -> dict[str, Any]:
    """A copy of `template` with values set, deleted or keys added at the given paths."""
    record: dict[str, Any] = _copy_tree(template)
    for path, action, value in changes:
        parent: Any = record
        for step in path[:-1]:
            parent = _child(parent, step)
        last = path[-1]
        if _child(parent, last) is _GONE:
            continue  # an earlier change replaced or removed this part of the record
        if action == "delete" and isinstance(parent, dict):
            parent.pop(last, None)
        elif action == "add" and isinstance(parent, dict):
            parent[f"{last}_extra"] = value
        else:
            parent[last] = value
    return record


def mutated(
    template: dict[str, Any], values: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Records like `template` with one to three fields replaced, deleted or joined by a stranger."""
    change = st.tuples(
        st.sampled_from(_paths(template)),
        st.sampled_from(["set", "set", "set", "delete", "add"]),
        values if values is not None else st.one_of(scalars, json_values, deep_structures),
    )
    return st.lists(change, min_size=1, max_size=3).map(lambda changes: _mutate(template, changes))
