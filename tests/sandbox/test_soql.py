"""The sandbox's SOQL subset answers as Salesforce would, and refuses everything outside it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from regsync.sandbox.soql import (
    Comparison,
    ParsedQuery,
    Query,
    SoqlError,
    bind,
    canonical_id,
    compile_filter,
    execute,
    parse,
    project,
    sort_key,
)
from regsync.sandbox.store import make_sf_id, sf_datetime

FIELDS = {
    "Id": "id",
    "Code__c": "string",  # unique label, so tests can name rows
    "Name": "string",
    "Status__c": "picklist",
    "Email__c": "email",
    "Amount__c": "currency",
    "Score__c": "double",
    "Seats__c": "int",
    "Active__c": "boolean",
    "Start__c": "date",
    "SystemModstamp": "datetime",
    "Parent__c": "reference",
    "Blob__c": "base64",  # a type the subset cannot filter or sort on
}
SCHEMAS = {
    "widget__c": ("Widget__c", FIELDS),
    "account": ("Account", {"Id": "id", "Name": "string"}),
}
PARENT = make_sf_id("a0P", 7)


def _row(number: int, code: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FIELDS)
    row.update(Id=make_sf_id("a0W", number), Code__c=code, **values)
    return row


ROWS = [
    _row(
        1,
        "A",
        Name="Alpha",
        Status__c="Open",
        Email__c="alpha@example.com",
        Amount__c=10.0,
        Score__c=1.5,
        Seats__c=3,
        Active__c=True,
        Start__c="2024-01-10",
        SystemModstamp="2024-01-01T00:00:00.000+0000",
        Parent__c=PARENT,
    ),
    _row(
        2,
        "B",
        Name="beta",
        Status__c="Closed",
        Amount__c=20.0,
        Seats__c=5,
        Active__c=False,
        Start__c="2024-02-01",
        SystemModstamp="2024-03-15T12:00:00.500+0000",
    ),
    _row(
        3,
        "C",
        Name="Gamma",
        Score__c=2.5,
        Active__c=False,
        SystemModstamp="2023-12-31T23:59:59.999+0000",
    ),
    _row(
        4,
        "D",
        Name="xabc",
        Status__c="open",
        Amount__c=30.0,
        Score__c=-1.0,
        Seats__c=0,
        Active__c=True,
        Start__c="2024-06-30",
        SystemModstamp="2024-06-01T00:00:00.000+0000",
        Parent__c=PARENT,
    ),
    _row(
        5,
        "E",
        Name="abcdef",
        Status__c="Pending",
        Amount__c=5.5,
        Score__c=0.0,
        Seats__c=10,
        Active__c=True,
        Start__c="2023-05-05",
        SystemModstamp="2025-01-01T00:00:00.000+0000",
    ),
    _row(6, "F", Name="50% off", Amount__c=10.0, Active__c=False),
    _row(7, "G", Name="50x off", Amount__c=-2.0, Active__c=False),
    _row(8, "H", Name="a_b", Active__c=False),
    _row(9, "I", Name="axb", Active__c=False),
    _row(10, "J", Name="Quote's", Active__c=False),
    _row(11, "K", Name="back\\slash", Active__c=False),
    _row(12, "L", Name=None, Active__c=None),  # no name; a null boolean reads as false
]
ALL = {row["Code__c"] for row in ROWS}


def q(soql: str) -> Query:
    return bind(parse(soql), SCHEMAS)


def codes(where: str, rows: list[dict[str, Any]] = ROWS) -> set[str]:
    """Codes of the rows a WHERE clause selects."""
    return {row["Code__c"] for row in execute(q(f"SELECT Id FROM Widget__c WHERE {where}"), rows)}


def ordered(soql: str, rows: list[dict[str, Any]] = ROWS) -> list[str]:
    return [row["Code__c"] for row in execute(q(soql), rows)]


def refused(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        bind(parse(soql), SCHEMAS)
    return caught.value


# ------------------------------------------------------------------------------ SELECT, FROM


def test_select_resolves_canonical_names_and_projects_in_select_order() -> None:
    query = q("SELECT amount__c, ID, name FROM widget__C")
    assert query.sobject == "Widget__c"
    assert query.fields == ("Amount__c", "Id", "Name")
    assert not query.is_count
    projected = project(query, ROWS[0])
    assert list(projected) == ["Amount__c", "Id", "Name"]
    assert projected == {"Amount__c": 10.0, "Id": ROWS[0]["Id"], "Name": "Alpha"}


def test_keywords_are_case_insensitive() -> None:
    query = q(
        "select Id from Widget__c where NAME = 'alpha' Or name Like 'BET%' "
        "order by Name desc nulls first limit 5 offset 0"
    )
    assert [row["Code__c"] for row in execute(query, ROWS)] == ["B", "A"]


def test_without_where_every_row_comes_back_in_input_order() -> None:
    assert ordered("SELECT Id FROM Widget__c") == [row["Code__c"] for row in ROWS]
    assert compile_filter(q("SELECT Id FROM Widget__c"))(ROWS[0]) is True
    assert sort_key(q("SELECT Id FROM Widget__c")) is None


def test_id_is_always_a_field() -> None:
    schemas = {"thing": ("Thing", {"Name": "string"})}
    query = bind(parse("SELECT id FROM thing WHERE Id != null"), schemas)
    assert query.fields == ("Id",)
    assert project(query, {"Id": "x", "Name": "n"}) == {"Id": "x"}


def test_parse_is_syntax_only() -> None:
    parsed = parse("SELECT Whatever FROM NoSuchObject WHERE Nope = 1")
    assert isinstance(parsed, ParsedQuery)
    assert parsed.sobject.text == "NoSuchObject"
    assert refused("SELECT Whatever FROM NoSuchObject WHERE Nope = 1").error_code == "INVALID_TYPE"


# ------------------------------------------------------------------------------ operators


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Amount__c = 10", {"A", "F"}),
        ("Amount__c = 10.0", {"A", "F"}),
        ("Amount__c < 10", {"E", "G"}),
        ("Amount__c <= 10", {"A", "E", "F", "G"}),
        ("Amount__c > 10", {"B", "D"}),
        ("Amount__c >= 10", {"A", "B", "D", "F"}),
        ("Amount__c > -2", {"A", "B", "D", "E", "F"}),
        ("Amount__c >= -2.0", {"A", "B", "D", "E", "F", "G"}),
        ("Seats__c = 0", {"D"}),
        ("Seats__c > 3", {"B", "E"}),
        ("Score__c < 0", {"D"}),
        ("Start__c >= 2024-02-01", {"B", "D"}),
        ("Start__c < 2024-01-10", {"E"}),
        ("Start__c = 2024-01-10", {"A"}),
        ("SystemModstamp > 2024-01-01T00:00:00Z", {"B", "D", "E"}),
        ("SystemModstamp <= 2024-01-01T00:00:00Z", {"A", "C"}),
        ("Active__c = true", {"A", "D", "E"}),
        ("Active__c = false", ALL - {"A", "D", "E"}),
        ("Parent__c = '" + PARENT + "'", {"A", "D"}),
        ("Name = 'Gamma'", {"C"}),
    ],
)
def test_comparison_operators(where: str, expected: set[str]) -> None:
    assert codes(where) == expected


def test_not_equal_has_two_spellings_and_keeps_nulls_as_soql_does() -> None:
    # SOQL treats null as a value for (in)equality: `!= 10` also returns rows with no Amount.
    expected = ALL - {"A", "F"}
    assert codes("Amount__c != 10") == expected
    assert codes("Amount__c <> 10") == expected
    assert "L" in codes("Name != 'Alpha'")
    assert codes("Name != 'alpha'") == ALL - {"A"}


def test_range_comparisons_never_match_nulls() -> None:
    no_amount = {"C", "H", "I", "J", "K", "L"}
    assert not codes("Amount__c < 1000") & no_amount
    assert not codes("Amount__c > -1000") & no_amount
    assert not codes("Name >= 'a'") & {"L"}
    # NOT simply negates, so the nulls come back.
    assert codes("NOT Amount__c < 1000") == no_amount


def test_string_equality_is_case_insensitive() -> None:
    assert codes("Name = 'ALPHA'") == {"A"}
    assert codes("Status__c = 'OPEN'") == {"A", "D"}
    assert codes("Email__c = 'Alpha@Example.COM'") == {"A"}


def test_string_ranges_are_case_insensitive() -> None:
    assert codes("Name < 'B'") == {"A", "E", "F", "G", "H", "I"}  # not "back\\slash"
    assert codes("Name > 'gamma'") == {"J", "D"}


def test_in_and_not_in() -> None:
    assert codes("Status__c IN ('open', 'CLOSED')") == {"A", "B", "D"}
    assert codes("Amount__c IN (10, 30)") == {"A", "D", "F"}
    assert codes("Start__c IN (2024-01-10, 2023-05-05)") == {"A", "E"}
    assert codes("Seats__c IN (3)") == {"A"}
    # NOT IN must exclude the listed values (a sloppy version returns everything) and,
    # like !=, keeps rows where the field is null.
    assert codes("Status__c NOT IN ('Open', 'Closed')") == ALL - {"A", "B", "D"}
    assert codes("Amount__c NOT IN (10, 20, 30)") == ALL - {"A", "B", "D", "F"}
    assert codes("Code__c NOT IN ('A')") == ALL - {"A"}


def test_in_with_null_matches_nulls() -> None:
    assert codes("Status__c IN ('Pending', null)") == ALL - {"A", "B", "D"}
    assert codes("Status__c NOT IN ('Pending', null)") == {"A", "B", "D"}


def test_like_wildcards_anchor_to_the_whole_value() -> None:
    assert codes("Name LIKE 'abc%'") == {"E"}  # never 'xabc'
    assert codes("Name LIKE '%abc'") == {"D"}
    assert codes("Name LIKE '%abc%'") == {"D", "E"}
    assert codes("Name LIKE 'abc'") == set()
    assert codes("Name LIKE 'a_cdef'") == {"E"}
    assert codes("Name LIKE 'a_b'") == {"H", "I"}
    assert codes("Name LIKE '%'") == ALL - {"L"}  # never a null


def test_like_is_case_insensitive() -> None:
    assert codes("Name LIKE 'ABC%'") == {"E"}
    assert codes("Name like 'gAm%'") == {"C"}


def test_like_escapes_make_wildcards_literal() -> None:
    assert codes("Name LIKE '50% off'") == {"F", "G"}
    assert codes("Name LIKE '50\\% off'") == {"F"}
    assert codes("Name LIKE 'a\\_b'") == {"H"}
    assert codes("Name LIKE '%\\\\%'") == {"K"}
    assert codes("Name LIKE 'quote\\'%'") == {"J"}


def test_not_like_is_written_with_a_leading_not() -> None:
    assert codes("NOT Name LIKE 'abc%'") == ALL - {"E"}
    error = refused("SELECT Id FROM Widget__c WHERE Name NOT LIKE 'abc%'")
    assert error.error_code == "MALFORMED_QUERY"
    assert "NOT Name LIKE" in error.message


def test_string_literal_escapes() -> None:
    assert codes("Name = 'Quote\\'s'") == {"J"}
    assert codes("Name = 'back\\\\slash'") == {"K"}
    rows = [_row(1, "N", Name='two\nlines\tand "quotes"')]
    assert codes("Name = 'two\\nlines\\tand \\\"quotes\\\"'", rows) == {"N"}


# ------------------------------------------------------------------------------ AND / OR / NOT


def test_and_binds_inside_parentheses_as_written() -> None:
    a_and_b_or_c = codes("Active__c = true AND (Amount__c > 20 OR Name = 'Alpha')")
    a_and_b_then_or_c = codes("(Active__c = true AND Amount__c > 20) OR Name = 'Alpha'")
    assert a_and_b_or_c == {"A", "D"}
    assert a_and_b_then_or_c == {"A", "D"}
    # and a pair where the grouping changes the answer
    left = codes("Active__c = false AND (Amount__c = 20 OR Name = 'Alpha')")
    right = codes("(Active__c = false AND Amount__c = 20) OR Name = 'Alpha'")
    assert left == {"B"}
    assert right == {"A", "B"}


def test_chains_of_one_operator_need_no_parentheses() -> None:
    assert codes("Active__c = true AND Amount__c > 5 AND Seats__c < 10") == {"A", "D"}
    assert codes("Name = 'Alpha' OR Name = 'beta' OR Name = 'Gamma'") == {"A", "B", "C"}


def test_not_binds_tighter_than_and() -> None:
    assert codes("NOT Active__c = true AND Amount__c > 5") == {"B", "F"}
    assert codes("NOT (Active__c = true AND Amount__c > 5)") == ALL - {"A", "D", "E"}
    assert codes("NOT (Name = 'Alpha' OR Name = 'beta')") == ALL - {"A", "B"}
    assert codes("NOT NOT Name = 'Alpha'") == {"A"}


@pytest.mark.parametrize(
    "where",
    [
        "Name = 'a' AND Name = 'b' OR Name = 'c'",
        "Name = 'a' OR Name = 'b' AND Name = 'c'",
        "(Name = 'a' OR Name = 'b') AND Name = 'c' OR Name = 'd'",
        "Name = 'a' AND (Name = 'b' OR Name = 'c' AND Name = 'd')",
    ],
)
def test_mixing_and_with_or_without_parentheses_is_refused(where: str) -> None:
    error = refused(f"SELECT Id FROM Widget__c WHERE {where}")
    assert error.error_code == "MALFORMED_QUERY"
    assert "unexpected token" in error.message
    assert "parentheses" in error.message


# ------------------------------------------------------------------------------ nulls


def test_null_comparisons() -> None:
    assert codes("Amount__c = null") == {"C", "H", "I", "J", "K", "L"}
    assert codes("Amount__c != null") == {"A", "B", "D", "E", "F", "G"}
    assert codes("Name = null") == {"L"}
    assert codes("Parent__c != null") == {"A", "D"}
    assert codes("SystemModstamp = null") == ALL - {"A", "B", "C", "D", "E"}


def test_empty_string_is_null_to_salesforce() -> None:
    assert codes("Name = ''") == {"L"}
    assert codes("Name != ''") == ALL - {"L"}


def test_null_on_a_boolean_field_means_false() -> None:
    # Documented: `Flag = null` is equivalent to `Flag = false`, `Flag != null` to `Flag = true`.
    assert codes("Active__c = null") == codes("Active__c = false")
    assert codes("Active__c != null") == {"A", "D", "E"}
    assert "L" in codes("Active__c = false")


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_ordering_against_null_is_malformed(op: str) -> None:
    error = refused(f"SELECT Id FROM Widget__c WHERE Amount__c {op} null")
    assert error.error_code == "MALFORMED_QUERY"


def test_like_null_is_malformed() -> None:
    assert refused("SELECT Id FROM Widget__c WHERE Name LIKE null").error_code == "MALFORMED_QUERY"


# ------------------------------------------------------------------------------ dates and ids


@pytest.mark.parametrize(
    "literal",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.000Z",
        "2024-01-01T01:00:00+01:00",
        "2023-12-31T19:00:00-05:00",
        "2024-01-01T05:30:00.0+05:30",
    ],
)
def test_datetime_literals_are_normalised_to_utc_wire_form(literal: str) -> None:
    query = q(f"SELECT Id FROM Widget__c WHERE SystemModstamp = {literal}")
    assert isinstance(query.where, Comparison)
    assert query.where.value == "2024-01-01T00:00:00.000+0000"
    assert codes(f"SystemModstamp = {literal}") == {"A"}


def test_datetime_fraction_and_offset_compare_by_instant() -> None:
    assert codes("SystemModstamp = 2024-03-15T12:00:00.5Z") == {"B"}
    assert codes("SystemModstamp = 2024-03-15T13:00:00.500+01:00") == {"B"}
    assert codes("SystemModstamp > 2023-12-31T23:59:59.998Z AND SystemModstamp < 2024-01-01T00:00:00Z") == {
        "C"
    }
    # The window shape the sync issues, with offsets on both ends.
    assert codes(
        "SystemModstamp >= 2024-01-01T02:00:00+02:00 AND SystemModstamp < 2024-05-31T20:00:00-04:00"
    ) == {"A", "B"}


@pytest.mark.parametrize(
    "literal",
    [
        "2024-01-01T00:00:00",  # no zone
        "2024-01-01T00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:00.1234Z",
        "2024-01-01T00:00:00+0100",
        "2024-01-01T00:00:00+25:00",
    ],
)
def test_bad_datetime_literals_are_malformed(literal: str) -> None:
    error = refused(f"SELECT Id FROM Widget__c WHERE SystemModstamp > {literal}")
    assert error.error_code == "MALFORMED_QUERY"


def test_bad_date_literal_is_malformed() -> None:
    assert refused("SELECT Id FROM Widget__c WHERE Start__c = 2024-02-30").error_code == ("MALFORMED_QUERY")


def test_id_literals_accept_15_and_18_characters_in_any_case_for_18() -> None:
    full = ROWS[0]["Id"]
    assert codes(f"Id = '{full}'") == {"A"}
    assert codes(f"Id = '{full[:15]}'") == {"A"}
    assert codes(f"Id = '{full.lower()}'") == {"A"}
    assert codes(f"Id IN ('{full}', '{ROWS[1]['Id'][:15]}')") == {"A", "B"}
    assert codes(f"Id != '{full}'") == ALL - {"A"}
    assert canonical_id(full.upper()) == full
    assert canonical_id(full[:15].lower()) != full  # 15-character ids are case-sensitive


@pytest.mark.parametrize("literal", ["abc", "a0W0U0000000001UA", "a0W0U0000000001UA!", "a0W0U0000000001U9A"])
def test_malformed_id_literals_are_refused(literal: str) -> None:
    error = refused(f"SELECT Id FROM Widget__c WHERE Id = '{literal}'")
    assert error.error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert f"invalid ID field: {literal}" in error.message


# ------------------------------------------------------------------------------ literal types


@pytest.mark.parametrize(
    ("where", "type_word"),
    [
        ("SystemModstamp > '2024-01-01T00:00:00Z'", "dateTime and should not be enclosed"),
        ("SystemModstamp > 2024-01-01", "dateTime"),
        ("SystemModstamp = 5", "dateTime"),
        ("Name = 2024-01-01T00:00:00Z", "string and should be enclosed in quotes"),
        ("Name = 5", "string"),
        ("Name = true", "string"),
        ("Name IN ('a', 5)", "string"),
        ("Start__c = 2024-01-01T00:00:00Z", "date"),
        ("Start__c = '2024-01-01'", "date"),
        ("Amount__c = '10'", "double"),
        ("Amount__c IN (1, '2')", "double"),
        ("Seats__c = true", "double"),
        ("Active__c = 'true'", "boolean"),
        ("Active__c = 1", "boolean"),
        ("Id = 5", "id"),
        ("Amount__c LIKE '1%'", "double"),
        ("Name LIKE 5", "string"),
    ],
)
def test_literals_must_match_the_field_type(where: str, type_word: str) -> None:
    error = refused(f"SELECT Id FROM Widget__c WHERE {where}")
    assert error.error_code == "INVALID_FIELD"
    assert "value of filter criterion for field" in error.message
    assert f"must be of type {type_word}" in error.message


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("Id LIKE 'a0W%'", "invalid operator on id field"),
        ("Parent__c LIKE 'a0P%'", "invalid operator on id field"),
        ("Active__c > false", "invalid operator on boolean field"),
    ],
)
def test_operators_a_type_does_not_support(where: str, message: str) -> None:
    error = refused(f"SELECT Id FROM Widget__c WHERE {where}")
    assert error.error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert message in error.message


def test_fields_of_unsupported_types_cannot_be_filtered_or_sorted() -> None:
    assert q("SELECT Blob__c FROM Widget__c").fields == ("Blob__c",)
    filtered = refused("SELECT Id FROM Widget__c WHERE Blob__c = 'x'")
    assert filtered.error_code == "INVALID_FIELD"
    assert "can not be filtered" in filtered.message
    sorted_ = refused("SELECT Id FROM Widget__c ORDER BY Blob__c")
    assert sorted_.error_code == "INVALID_FIELD"
    assert "can not be sorted" in sorted_.message


# ------------------------------------------------------------------------------ ORDER BY


def test_order_by_ascending_puts_nulls_first_and_sorts_text_case_insensitively() -> None:
    # Compared in upper case, as Salesforce sorts for English locales: "ABCDEF" < "ALPHA" <
    # "AXB" < "A_B", because '_' comes after the capital letters (it would not in lower case).
    assert ordered("SELECT Id FROM Widget__c ORDER BY Name") == [
        "L",
        "F",
        "G",
        "E",
        "A",
        "I",
        "H",
        "K",
        "B",
        "C",
        "J",
        "D",
    ]


def test_order_by_descending_puts_nulls_last() -> None:
    result = ordered("SELECT Id FROM Widget__c WHERE Amount__c != 20 ORDER BY Amount__c DESC")
    assert result[:5] == ["D", "A", "F", "E", "G"]
    assert set(result[5:]) == {"C", "H", "I", "J", "K", "L"}


def test_explicit_nulls_placement_overrides_the_default() -> None:
    asc_last = ordered("SELECT Id FROM Widget__c ORDER BY Score__c ASC NULLS LAST")
    assert asc_last[:4] == ["D", "E", "A", "C"]
    assert set(asc_last[4:]) == ALL - {"A", "C", "D", "E"}
    desc_first = ordered("SELECT Id FROM Widget__c ORDER BY Score__c DESC NULLS FIRST")
    assert set(desc_first[:8]) == ALL - {"A", "C", "D", "E"}
    assert desc_first[8:] == ["C", "A", "E", "D"]


def test_order_by_several_keys_with_mixed_directions() -> None:
    result = ordered(
        "SELECT Id FROM Widget__c WHERE Amount__c != null "
        "ORDER BY Active__c DESC, Amount__c ASC, Code__c DESC"
    )
    # true first (E 5.5, A 10, D 30), then false (G -2, F 10, B 20)
    assert result == ["E", "A", "D", "G", "F", "B"]
    ties = ordered("SELECT Id FROM Widget__c WHERE Amount__c = 10 ORDER BY Amount__c, Code__c DESC")
    assert ties == ["F", "A"]


def test_order_by_datetime_then_id() -> None:
    rows = [
        _row(3, "x3", SystemModstamp="2024-01-02T00:00:00.000+0000"),
        _row(1, "x1", SystemModstamp="2024-01-02T00:00:00.000+0000"),
        _row(2, "x2", SystemModstamp="2024-01-01T00:00:00.000+0000"),
        _row(4, "x4", SystemModstamp=None),
    ]
    soql = "SELECT Id FROM Widget__c ORDER BY SystemModstamp ASC, Id ASC"
    assert ordered(soql, rows) == ["x4", "x2", "x1", "x3"]
    desc = "SELECT Id FROM Widget__c ORDER BY SystemModstamp DESC, Id DESC"
    assert ordered(desc, rows) == ["x3", "x1", "x2", "x4"]


ORDER_SPECS = [
    "Amount__c",
    "Amount__c DESC",
    "Status__c, Amount__c DESC NULLS FIRST",
    "Active__c DESC, Name NULLS LAST, Id",
    "Start__c DESC NULLS LAST, Seats__c, Code__c DESC",
    "SystemModstamp, Id",
    "Name DESC, Score__c ASC NULLS LAST, Id DESC",
]


@pytest.mark.parametrize("spec", ORDER_SPECS)
def test_execute_orders_exactly_like_sort_key(spec: str) -> None:
    generator = random.Random(spec)
    rows = []
    for number in range(1, 400):
        rows.append(
            _row(
                number,
                f"r{number}",
                Name=generator.choice([None, "alpha", "Alpha", "beta", "BETA", "gamma", "a_b"]),
                Status__c=generator.choice([None, "Open", "Closed"]),
                Amount__c=generator.choice([None, 1.0, 2.5, -3.0, 10.0]),
                Score__c=generator.choice([None, 0.0, 1.0]),
                Seats__c=generator.choice([None, 1, 2, 3]),
                Active__c=generator.choice([True, False]),
                Start__c=generator.choice([None, "2024-01-01", "2024-06-01"]),
                SystemModstamp=generator.choice(
                    [None, "2024-01-01T00:00:00.000+0000", "2024-01-01T00:00:00.001+0000"]
                ),
            )
        )
    query = q(f"SELECT Id FROM Widget__c ORDER BY {spec}")
    key = sort_key(query)
    assert key is not None
    expected = [row["Code__c"] for row in sorted(rows, key=key)]
    assert [row["Code__c"] for row in execute(query, rows)] == expected
    # and the order really honours the first key
    first = query.order_by[0]
    values = [row[first.field] for row in sorted(rows, key=key)]
    present = [value for value in values if value is not None]
    nulls_at = [index for index, value in enumerate(values) if value is None]
    if nulls_at:
        assert nulls_at == (
            list(range(len(nulls_at))) if first.nulls_first else list(range(len(present), len(values)))
        )
    folded = [
        value.upper() if isinstance(value, str) and first.kind == "text" else value for value in present
    ]
    assert folded == sorted(folded, reverse=first.descending)


def test_order_by_unknown_field_is_invalid_field() -> None:
    error = refused("SELECT Id FROM Widget__c ORDER BY Nope__c")
    assert error.error_code == "INVALID_FIELD"
    assert "No such column 'Nope__c' on entity 'Widget__c'" in error.message


# ------------------------------------------------------------------------------ LIMIT, OFFSET, COUNT()


def test_limit_and_offset_apply_after_ordering() -> None:
    base = "SELECT Id FROM Widget__c WHERE Amount__c != null ORDER BY Amount__c"
    assert ordered(base) == ["G", "E", "A", "F", "B", "D"]
    assert ordered(base + " LIMIT 2") == ["G", "E"]
    assert ordered(base + " LIMIT 2 OFFSET 1") == ["E", "A"]
    assert ordered(base + " OFFSET 4") == ["B", "D"]
    assert ordered(base + " OFFSET 50") == []
    assert ordered(base + " LIMIT 0") == []
    query = q(base + " LIMIT 3 OFFSET 2")
    assert (query.limit, query.offset) == (3, 2)


def test_offset_is_capped_at_2000() -> None:
    assert q("SELECT Id FROM Widget__c OFFSET 2000").offset == 2000
    error = refused("SELECT Id FROM Widget__c LIMIT 10 OFFSET 2001")
    assert error.error_code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert "Maximum SOQL offset allowed" in error.message


@pytest.mark.parametrize(
    "tail",
    ["LIMIT -1", "LIMIT 1.5", "LIMIT 'a'", "LIMIT", "OFFSET 5 LIMIT 1", "LIMIT 1 LIMIT 2"],
)
def test_bad_limit_and_offset_are_malformed(tail: str) -> None:
    assert refused(f"SELECT Id FROM Widget__c {tail}").error_code == "MALFORMED_QUERY"


def test_count() -> None:
    query = q("select count() from Widget__c where Active__c = true")
    assert query.is_count
    assert query.fields == ()
    assert len(execute(query, ROWS)) == 3
    assert project(query, ROWS[0]) == {}
    assert len(execute(q("SELECT COUNT() FROM Widget__c"), ROWS)) == len(ROWS)
    assert len(execute(q("SELECT COUNT() FROM Widget__c LIMIT 5"), ROWS)) == 5


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT COUNT(), Name FROM Widget__c",
        "SELECT Name, COUNT() FROM Widget__c",
        "SELECT COUNT(Id) FROM Widget__c",
        "SELECT COUNT_DISTINCT(Name) FROM Widget__c",
        "SELECT MAX(Amount__c) FROM Widget__c",
    ],
)
def test_count_variants_outside_the_subset_are_malformed(soql: str) -> None:
    assert refused(soql).error_code == "MALFORMED_QUERY"


# ------------------------------------------------------------------------------ error paths


def test_unknown_object_is_invalid_type_with_caret() -> None:
    error = refused("SELECT Id FROM Nope__c")
    assert error.error_code == "INVALID_TYPE"
    assert error.message == (
        "\nSELECT Id FROM Nope__c\n               ^\nERROR at Row:1:Column:16\n"
        "sObject type 'Nope__c' is not supported. If you are attempting to use a custom object, "
        "be sure to append the '__c' after the entity name. Please reference your WSDL or the "
        "describe call for the appropriate names."
    )


def test_unknown_field_is_invalid_field_with_caret() -> None:
    error = refused("SELECT Foo FROM Account")
    assert error.error_code == "INVALID_FIELD"
    assert error.message == (
        "\nSELECT Foo FROM Account\n       ^\nERROR at Row:1:Column:8\n"
        "No such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, "
        "be sure to append the '__c' after the custom field name. Please reference your WSDL or "
        "the describe call for the appropriate names."
    )
    assert str(error).startswith("INVALID_FIELD: ")


def test_unknown_field_in_where_on_a_later_line() -> None:
    error = refused("SELECT Id\nFROM Account\nWHERE  Bogus__c = 'x'")
    assert error.error_code == "INVALID_FIELD"
    assert error.message.startswith("\nWHERE  Bogus__c = 'x'\n       ^\nERROR at Row:3:Column:8\n")
    assert "No such column 'Bogus__c' on entity 'Account'" in error.message


def test_duplicate_selected_field_is_refused() -> None:
    error = refused("SELECT Id, Name, name FROM Widget__c")
    assert error.error_code == "INVALID_FIELD"
    assert "duplicate field selected: Name" in error.message


@pytest.mark.parametrize(
    ("soql", "hint"),
    [
        ("SELECT Status__c FROM Widget__c GROUP BY Status__c", "GROUP BY"),
        ("SELECT Id FROM Widget__c WHERE Name = 'a' GROUP BY Name", "GROUP BY"),
        ("SELECT Id FROM Widget__c HAVING Name = 'a'", "HAVING"),
        ("SELECT Id FROM Widget__c WITH SECURITY_ENFORCED", "WITH"),
        ("SELECT Id FROM Widget__c LIMIT 1 FOR UPDATE", "FOR"),
        ("SELECT Id FROM Widget__c USING SCOPE mine", "USING SCOPE"),
        ("SELECT Id, (SELECT Id FROM Children__r) FROM Widget__c", "subquery"),
        ("SELECT Id FROM Widget__c WHERE Id IN (SELECT Parent__c FROM Widget__c)", "semi-join"),
        ("SELECT Id FROM Widget__c WHERE Id NOT IN (SELECT Parent__c FROM Widget__c)", "semi-join"),
        ("SELECT Parent__r.Name FROM Widget__c", "relationship"),
        ("SELECT Id FROM Widget__c WHERE Parent__r.Name = 'x'", "relationship"),
        ("SELECT Id FROM Widget__c ORDER BY Parent__r.Name", "relationship"),
        ("SELECT Id FROM Widget__c WHERE CALENDAR_YEAR(Start__c) = 2024", "function"),
        ("SELECT toLabel(Status__c) FROM Widget__c", "function"),
        ("SELECT FIELDS(ALL) FROM Widget__c", "FIELDS()"),
        ("SELECT TYPEOF What WHEN Account THEN Name END FROM Widget__c", "TYPEOF"),
        ("SELECT Id FROM Widget__c WHERE SystemModstamp > LAST_N_WEEKS:3", "LAST_N_WEEKS:3"),
        ("SELECT Id FROM Widget__c WHERE Start__c = THIS_FISCAL_QUARTER", "THIS_FISCAL_QUARTER"),
        ("SELECT Id FROM Widget__c WHERE Id IN :ids", "bind variable"),
        ("SELECT Id FROM Widget__c WHERE Name = :name", "bind variable"),
        ("SELECT Id FROM Widget__c WHERE Status__c INCLUDES ('a')", "INCLUDES"),
        ("SELECT Id FROM Widget__c, Account", "more than one object"),
    ],
)
def test_clauses_outside_the_subset_are_malformed_with_a_hint(soql: str, hint: str) -> None:
    error = refused(soql)
    assert error.error_code == "MALFORMED_QUERY"
    assert hint in error.message
    assert "ERROR at Row:1:Column:" in error.message


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Widget__c garbage",
        "SELECT Id FROM Widget__c w",
        "SELECT Id FROM Widget__c;",
        "SELECT Id FROM Widget__c WHERE Name = 'a' 'b'",
        "SELECT Id FROM Widget__c WHERE Name = 'a')",
        "SELECT Id FROM Widget__c LIMIT 5 5",
        "SELECT Id FROM Widget__c ORDER BY Name ASC DESC",
        "SELECT Id FROM Widget__c ORDER BY Name NULLS",
        "SELECT Id FROM Widget__c WHERE Seats__c = 5abc",
        "SELECT Id FROM Widget__c WHERE Amount__c = 1.2.3",
    ],
)
def test_trailing_garbage_is_malformed(soql: str) -> None:
    error = refused(soql)
    assert error.error_code == "MALFORMED_QUERY"
    assert "unexpected token" in error.message


@pytest.mark.parametrize(
    "soql",
    [
        "",
        "   ",
        "Id FROM Widget__c",
        "SELECT FROM Widget__c",
        "SELECT Id, FROM Widget__c",
        "SELECT Id Widget__c",
        "SELECT Id FROM",
        "SELECT * FROM Widget__c",
        "SELECT Id FROM Widget__c WHERE",
        "SELECT Id FROM Widget__c WHERE Name",
        "SELECT Id FROM Widget__c WHERE Name = ",
        "SELECT Id FROM Widget__c WHERE Name == 'a'",
        'SELECT Id FROM Widget__c WHERE Name = "a"',
        "SELECT Id FROM Widget__c WHERE 'a' = Name",
        "SELECT Id FROM Widget__c WHERE Name = Status__c",
        "SELECT Id FROM Widget__c WHERE (Name = 'a'",
        "SELECT Id FROM Widget__c WHERE ()",
        "SELECT Id FROM Widget__c WHERE Name IN ()",
        "SELECT Id FROM Widget__c WHERE Name IN 'a'",
        "SELECT Id FROM Widget__c WHERE Name NOT 'a'",
        "SELECT Id FROM Widget__c WHERE Name = 'a' AND",
        "SELECT Id FROM Widget__c ORDER Name",
        "SELECT Id FROM Widget__c ORDER BY",
        "SELECT Id FROM Widget__c WHERE Amount__c > - 5",
    ],
)
def test_syntax_errors_are_malformed(soql: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse(soql)
    assert caught.value.error_code == "MALFORMED_QUERY"


def test_unterminated_string_is_malformed() -> None:
    error = refused("SELECT Id FROM Widget__c WHERE Name = 'abc")
    assert error.error_code == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:39" in error.message
    assert "unterminated string" in error.message
    assert refused("SELECT Id FROM Widget__c WHERE Name = 'abc\\'").error_code == "MALFORMED_QUERY"


def test_unknown_escape_sequence_is_malformed() -> None:
    error = refused("SELECT Id FROM Widget__c WHERE Name = 'a\\qb'")
    assert error.error_code == "MALFORMED_QUERY"
    assert "Illegal character sequence '\\q'" in error.message


def test_soql_error_carries_code_and_message() -> None:
    error = SoqlError("MALFORMED_QUERY", "boom")
    assert (error.error_code, error.message, str(error)) == (
        "MALFORMED_QUERY",
        "boom",
        "MALFORMED_QUERY: boom",
    )


# ------------------------------------------------------------------------------ volume


def test_window_filter_over_200000_rows_returns_exactly_the_window() -> None:
    # One row every 3 minutes from 2023-10-01T00:00:00Z; every 7th row is Closed.
    start = 1696118400.0
    rows = [
        {
            "Id": make_sf_id("a0W", number + 1),
            "Code__c": str(number),
            "Status__c": "Closed" if number % 7 == 0 else "Open",
            "SystemModstamp": sf_datetime(start + number * 180),
        }
        for number in range(200_000)
    ]
    random.Random(5).shuffle(rows)
    # 2024-01-01T00:00:00Z is 92 days = 44,160 steps in; 2024-02-01T00:00:00Z is 123 days = 59,040.
    window = "SystemModstamp >= 2024-01-01T01:00:00+01:00 AND SystemModstamp < 2024-02-01T00:00:00Z"
    query = q(f"SELECT Id, SystemModstamp FROM Widget__c WHERE {window} ORDER BY SystemModstamp, Id")
    result = execute(query, rows)
    assert len(result) == 59_040 - 44_160
    assert [int(row["Code__c"]) for row in result] == list(range(44_160, 59_040))
    predicate = compile_filter(query)
    assert sum(1 for row in rows if predicate(row)) == 59_040 - 44_160
    closed = codes(f"{window} AND Status__c NOT IN ('open')", rows)
    assert closed == {str(n) for n in range(44_160, 59_040) if n % 7 == 0}
    count = q(f"SELECT COUNT() FROM Widget__c WHERE {window} AND Status__c != 'Closed'")
    assert len(execute(count, rows)) == sum(1 for n in range(44_160, 59_040) if n % 7)
