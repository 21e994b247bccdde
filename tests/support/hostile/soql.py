"""SOQL built by regsync.extract.soql: literals, id lists and date windows, parsed back by the sandbox's parser.

Whatever a value holds, the query keeps its structure (or is refused with a typed error).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from regsync.errors import ConfigError
from regsync.extract import soql
from regsync.sandbox import soql as soql_parser
from regsync.sandbox.store import REGISTRATION, SCHEMAS, SESSION
from tests.support.hostile.outcomes import HostileFailure, Outcome, require_reason, show
from tests.support.hostile.values import SPECIAL_TEXT, SURROGATES, aware_datetimes, naive_datetimes

soql_text = st.one_of(
    st.text(st.characters(exclude_categories=SURROGATES), max_size=60),
    st.sampled_from([s for s in SPECIAL_TEXT if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]),
    st.lists(
        st.sampled_from(["'", "\\", '"', "\n", "%", "_", " OR ", "--", ")", "(", "\\'", "null"]), max_size=12
    ).map("".join),
)
soql_values = st.one_of(soql_text, st.none(), st.booleans())
soql_id_lists = st.lists(
    st.one_of(soql_text, st.sampled_from(["a160U0000000001AAA", "a160U0000000001"])), min_size=1, max_size=5
)
_REG_FIELD_NAMES = sorted(SCHEMAS[REGISTRATION].fields)
_BOUNDS = st.one_of(aware_datetimes, aware_datetimes, aware_datetimes, naive_datetimes)  # mostly aware
soql_windows = st.tuples(
    _BOUNDS,
    _BOUNDS,
    st.lists(st.sampled_from(_REG_FIELD_NAMES), min_size=1, max_size=4, unique=True),
    st.one_of(
        st.none(),
        st.none(),
        st.none(),
        soql_text,
        st.sampled_from(["Name, Id", "Id FROM Account --", "x OR y", "Status__c; DELETE"]),
    ),
)


_SCHEMA_MAP = {name.lower(): (name, schema.fields) for name, schema in SCHEMAS.items()}


def _bound(query: str) -> soql_parser.Query:
    return soql_parser.bind(soql_parser.parse(query), _SCHEMA_MAP)


def probe_soql_literal(value: Any) -> Outcome:
    """Whatever a value holds, `Field = <literal>` means exactly that field equal to that value."""
    field_name = "conference360__Process__c" if isinstance(value, bool) else "Name"
    query = f"SELECT Id FROM {REGISTRATION} WHERE {field_name} = {soql.literal(value)}"
    try:
        where = _bound(query).where
    except soql_parser.SoqlError as exc:
        raise HostileFailure(
            f"soql.literal({show(value)}) built a query the parser refuses: {exc.error_code}"
        ) from None
    expected = value if isinstance(value, bool) else (value or None)
    if not (
        isinstance(where, soql_parser.Comparison)
        and (where.field, where.op, where.value) == (field_name, "=", expected)
    ):
        raise HostileFailure(f"soql.literal({show(value)}) changed the query: {show(where)}")
    return "accepted"


def probe_soql_in_list(values: list[str]) -> Outcome:
    """Ids in `IN (...)`: by name, exactly these values; by Id, these ids or a refusal of a bad id."""
    by_name = _bound(f"SELECT Id FROM {REGISTRATION} WHERE Name IN {soql.in_list(values)}").where
    if not (
        isinstance(by_name, soql_parser.Membership)
        and by_name.values == tuple(v or None for v in values)
        and by_name.field == "Name"
    ):
        raise HostileFailure(f"soql.in_list({show(values)}) changed the query: {show(by_name)}")
    try:
        by_id = _bound(f"SELECT Id FROM {SESSION} WHERE Id IN {soql.in_list(values)}").where
    except soql_parser.SoqlError as exc:
        if exc.error_code != "INVALID_QUERY_FILTER_OPERATOR" or not any(
            soql_parser.canonical_id(v) is None for v in values if v
        ):
            raise HostileFailure(f"ids {show(values)} broke the query: {exc.error_code}") from None
        return "rejected"  # Salesforce refuses an id that is not one; the query kept its shape
    if not (isinstance(by_id, soql_parser.Membership) and len(by_id.values) == len(values)):
        raise HostileFailure(f"ids {show(values)} changed the query: {show(by_id)}")
    return "accepted"


def _wire(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.000+0000"


def probe_soql_window(window: tuple[datetime, datetime, list[str], str | None]) -> Outcome:
    """A date window: both bounds exactly as given (or a typed refusal), field names only as named."""
    lower, upper, fields, stranger = window
    names = [*fields, stranger] if stranger is not None else fields
    try:
        query = soql.window_query(REGISTRATION, names, "SystemModstamp", lower, upper)
    except (ConfigError, ValueError) as exc:
        require_reason("soql.window", str(exc), window)
        return "rejected"
    try:
        bound = _bound(query)
    except soql_parser.SoqlError as exc:
        if stranger is None:
            raise HostileFailure(
                f"window {show(window)} built a query the parser refuses: {exc.error_code}"
            ) from None
        # A well-formed name the object lacks, or a SOQL keyword ("null"): Salesforce refuses the
        # query and nothing else happens. The same window without that name must be fine.
        probe_soql_window((lower, upper, fields, None))
        return "rejected"
    where = bound.where
    expected = (("SystemModstamp", ">=", _wire(lower)), ("SystemModstamp", "<", _wire(upper)))
    if not (
        isinstance(where, soql_parser.BoolOp)
        and where.op == "AND"
        and tuple((c.field, c.op, c.value) for c in where.items if isinstance(c, soql_parser.Comparison))
        == expected
        and [name.lower() for name in bound.fields] == [name.lower() for name in names]
        and bound.sobject == REGISTRATION
    ):
        raise HostileFailure(f"window {show(window)} changed the query: {show(where)}")
    return "accepted"
