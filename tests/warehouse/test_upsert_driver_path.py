"""The upsert's compiled driver path sends what SQLAlchemy's own execution sends, and fails alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.exc import StatementError

from regsync.warehouse.archive import quarantine_records, resolve_quarantined
from regsync.warehouse.tables import booking_lines, bookings, quarantine, raw_archive, registrations
from regsync.warehouse.upsert import _insert, _statement, insert_new, replace_children, upsert

T0 = datetime(2025, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)


@contextmanager
def sent(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) the driver is given inside the block."""
    log: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        log.append((statement, [tuple(p) if isinstance(p, list) else p for p in parameters]))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def booking(booking_id: int, **extra: Any) -> dict[str, Any]:
    row = {
        "booking_id": booking_id,
        "code": f"C{booking_id}",
        "status_id": "PAID",
        "status_name": "Paid",
        "created_at": T0,
        "total": Decimal("10.05"),
        "tax_total": None,
        "paid_total": Decimal("10.05"),
        "customer_name": "A",
        "customer_email": None,
        "summary": "s",
        "synced_at": T0,
        "total_exact": None,
    }  # detail_fetched left out: its default (False) goes in
    return row | extra


def line(booking_id: int, line_id: str) -> dict[str, Any]:
    return {
        "booking_id": booking_id,
        "line_id": line_id,
        "item_id": "7",
        "sku": None,
        "qty": 2,
        "total": Decimal("3.10"),
        "status_id": None,
        "start_date": T0,
        "end_date": None,
    }


def _reference(connection: Connection, table: Any, rows: list[dict[str, Any]], **options: Any) -> None:
    newer_by, update = options.get("newer_by"), options.get("update", True)
    connection.execute(_statement(connection.dialect, table, list(rows[0]), newer_by, update), rows)


@pytest.mark.parametrize(
    ("table", "rows", "options"),
    [
        (bookings, [booking(1), booking(2, total=Decimal("0.125"))], {}),
        (bookings, [booking(3)], {"newer_by": "synced_at"}),
        (booking_lines, [line(1, "1"), line(1, "1.1")], {"update": False}),
        (
            raw_archive,
            [
                {"source": "s", "record_id": str(i), "content_hash": "h", "fetched_at": T0, "payload": "{}"}
                for i in range(3)
            ],
            {"update": False},
        ),
    ],
)
def test_the_driver_is_sent_what_sqlalchemy_sends(
    warehouse: Engine, table: Any, rows: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    with warehouse.begin() as connection:
        with sent(warehouse) as ours:
            upsert(connection, table, rows, **options)
        with sent(warehouse) as theirs:
            _reference(connection, table, rows, **options)
        connection.rollback()
    assert ours == theirs


def test_replace_children_inserts_what_sqlalchemy_inserts(warehouse: Engine) -> None:
    rows = [line(1, "1"), line(1, "2"), line(2, "1")]
    with warehouse.begin() as connection:
        with sent(warehouse) as ours:
            replace_children(connection, booking_lines, "booking_id", [1, 2], rows)
        with sent(warehouse) as theirs:
            connection.execute(_insert(connection.dialect, booking_lines).on_conflict_do_nothing(), rows)
        connection.rollback()
    assert ours[-1] == theirs[0]


def test_a_bad_value_fails_as_it_always_did(warehouse: Engine) -> None:
    naive = booking(1, synced_at=datetime(2025, 1, 1))
    with pytest.raises(StatementError, match="naive datetime"), warehouse.begin() as connection:
        upsert(connection, bookings, [booking(2), naive])
    with pytest.raises(StatementError, match="money must be a Decimal"), warehouse.begin() as connection:
        upsert(connection, bookings, [booking(3, total=1.5)])
    with pytest.raises(KeyError, match="nonsense"), warehouse.begin() as connection:
        upsert(connection, registrations, [{"id": "a", "nonsense": 1}])  # no such column to update
    with warehouse.connect() as connection:
        assert connection.execute(select(bookings.c.booking_id)).all() == []


def test_resolving_with_nothing_open_updates_nothing_and_open_rows_still_resolve(warehouse: Engine) -> None:
    later = T0.replace(hour=13)
    with warehouse.begin() as connection:
        upsert(connection, bookings, [booking(1)])  # a write first, as the loaders do
        with sent(warehouse) as log:
            assert resolve_quarantined(connection, "checkfront.bookings", ["1"], later) == 0
    assert not any(statement.lstrip().upper().startswith("UPDATE") for statement, _ in log)
    with warehouse.begin() as connection:
        quarantine_records(connection, "checkfront.bookings", [("2", {"x": 1}, "bad")], run_id=None, at=T0)
    with warehouse.begin() as connection:
        upsert(connection, bookings, [booking(2)])
        assert resolve_quarantined(connection, "checkfront.bookings", ["1", "2"], later) == 1
    with warehouse.connect() as connection:
        assert connection.execute(select(quarantine.c.record_id, quarantine.c.resolved_at)).all() == [
            ("2", later)
        ]


def test_new_rows_are_stored_as_the_upsert_stores_them(warehouse: Engine) -> None:
    """insert_new (a COPY on PostgreSQL) keeps every value, NULLs, sub-cent money and times included."""
    name = 'O\'Neil, "Q"\t\\x'  # quotes, a tab and a backslash: COPY's text format escapes them
    rows = [
        booking(1, detail_fetched=True),
        booking(2, total=Decimal("0.125"), summary=None, customer_name=name, detail_fetched=False),
    ]
    with warehouse.begin() as connection:
        insert_new(connection, bookings, rows)
        copied = connection.execute(select(bookings).order_by(bookings.c.booking_id)).all()
        connection.rollback()
    with warehouse.begin() as connection:
        upsert(connection, bookings, rows)
        upserted = connection.execute(select(bookings).order_by(bookings.c.booking_id)).all()
        connection.rollback()
    assert copied == upserted
    assert copied[1].customer_name == name
    assert copied[0].created_at == T0


def test_new_rows_that_are_not_new_fail_loudly(warehouse: Engine) -> None:
    with warehouse.begin() as connection:
        upsert(connection, bookings, [booking(1)])
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), warehouse.begin() as connection:
        insert_new(connection, bookings, [booking(1, summary="again", detail_fetched=False)])


def test_new_rows_take_the_constant_defaults_an_insert_would(warehouse: Engine) -> None:
    with warehouse.begin() as connection:
        insert_new(connection, bookings, [booking(2)])  # detail_fetched left out: its default (False)
    with warehouse.connect() as connection:
        assert connection.execute(select(bookings.c.detail_fetched)).scalars().all() == [False]
