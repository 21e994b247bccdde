"""SOQL is only built through escaping helpers; injection attempts stay inside their literal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from regsync.errors import ConfigError
from regsync.extract import soql


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("O'Brien", "'O\\'Brien'"),
        ("a\\' OR Id != null --", "'a\\\\\\' OR Id != null --'"),
        ("line\nbreak", "'line\\nbreak'"),
        (None, "null"),
        (True, "true"),
        (42, "42"),
    ],
)
def test_literals_are_escaped(value: object, expected: str) -> None:
    assert soql.literal(value) == expected


def test_datetimes_are_utc() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 999, tzinfo=timezone(timedelta(hours=2)))
    assert soql.literal(moment) == "2025-01-02T01:04:05Z"
    with pytest.raises(ValueError, match="naive"):
        soql.literal(datetime(2025, 1, 1))


@pytest.mark.parametrize("name", ["Status__c; DELETE", "x OR y", "", "1abc", "a" * 81, "Name,Id"])
def test_bad_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        soql.identifier(name)


def test_window_query_shape() -> None:
    query = soql.window_query(
        "conference360__Event_Registration_Submission__c",
        ["Id", "SystemModstamp"],
        "SystemModstamp",
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 2, 1, tzinfo=UTC),
    )
    assert query == (
        "SELECT Id, SystemModstamp FROM conference360__Event_Registration_Submission__c "
        "WHERE SystemModstamp >= 2025-01-01T00:00:00Z AND SystemModstamp < 2025-02-01T00:00:00Z "
        "ORDER BY SystemModstamp ASC, Id ASC"
    )
