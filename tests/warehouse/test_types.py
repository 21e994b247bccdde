"""The SQLite fast paths of UtcDateTime give exactly what SQLAlchemy's own processing gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from regsync.warehouse.types import UtcDateTime

DIALECT = sqlite.dialect()
TEXTS = [
    "2026-01-02 03:04:05.000006",
    "2026-01-02 03:04:05.123456",
    "2026-12-31 23:59:59.999999",
    "2026-01-02 03:04:05",  # written by SQL, not by regsync
    "1970-01-01 00:00:00.000000",
]


def generic_result(text: str | None) -> datetime | None:
    """SQLite DATETIME's parsing, then UtcDateTime.process_result_value: the path the fast one fuses."""
    parsed = DATETIME().result_processor(DIALECT, None)(text)
    return UtcDateTime().process_result_value(parsed, DIALECT)


@pytest.mark.parametrize("text", [*TEXTS, None])
def test_the_sqlite_result_fast_path_reads_what_sqlalchemy_reads(text: str | None) -> None:
    fast = UtcDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None)
    assert fast(text) == generic_result(text)
    if text is not None:
        assert fast(text).tzinfo is UTC


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7))),
    ],
)
def test_a_written_moment_reads_back_as_the_same_instant(moment: datetime) -> None:
    impl = UtcDateTime().dialect_impl(DIALECT)
    text = impl.bind_processor(DIALECT)(moment)
    assert impl.result_processor(DIALECT, None)(text) == moment
