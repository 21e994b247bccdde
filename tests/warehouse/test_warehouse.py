"""The warehouse behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, inspect, select, text

from regsync.warehouse.engine import (
    READ_CACHE_KIB,
    WRITE_CACHE_BUDGET_BYTES,
    WRITE_CACHE_KIB,
    bulk_write_cache,
    make_engine,
    migrate,
)
from regsync.warehouse.state import finish_run, last_runs, read_state, start_run, write_state
from regsync.warehouse.tables import registration_attendees, registrations
from regsync.warehouse.upsert import replace_children, upsert

T0 = datetime(2025, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)


def reg(ident: str, stamp: datetime, **extra: Any) -> dict[str, Any]:
    row = {
        "id": ident,
        "name": "ERS",
        "status": "Draft",
        "event_id": None,
        "booking_session_id": "cart",
        "booking_code": None,
        "amount": Decimal("10.05"),
        "attendee_count": 1,
        "seats_needed": 1,
        "error_message": None,
        "created_at": T0,
        "last_modified_at": stamp,
        "system_modstamp": stamp,
        "is_deleted": False,
        "synced_at": T0,
    }
    row.update(extra)
    return row


def test_migration_is_idempotent(warehouse: Engine) -> None:
    migrate(warehouse)
    names = set(inspect(warehouse).get_table_names())
    assert {"registrations", "bookings", "booking_sessions", "quarantine", "runs", "stream_state"} <= names


def test_types_round_trip(warehouse: Engine) -> None:
    with warehouse.begin() as connection:
        upsert(connection, registrations, [reg("a1", T0, amount=Decimal("1234567.89"))])
    with warehouse.connect() as connection:
        row = connection.execute(select(registrations)).mappings().one()
    assert row["amount"] == Decimal("1234567.89")
    assert row["system_modstamp"] == T0
    assert row["system_modstamp"].tzinfo is not None


def test_upsert_inserts_updates_and_never_goes_backwards(warehouse: Engine) -> None:
    later = T0 + timedelta(minutes=5)
    with warehouse.begin() as connection:
        upsert(connection, registrations, [reg("a1", T0), reg("a2", T0)], newer_by="system_modstamp")
        upsert(connection, registrations, [reg("a1", later, status="Completed")], newer_by="system_modstamp")
        # an older read of a1 arrives late: it must not undo the newer one
        upsert(connection, registrations, [reg("a1", T0, status="Failed")], newer_by="system_modstamp")
    with warehouse.connect() as connection:
        rows = {i: s for i, s in connection.execute(select(registrations.c.id, registrations.c.status))}
        count = connection.execute(select(func.count()).select_from(registrations)).scalar_one()
    assert rows == {"a1": "Completed", "a2": "Draft"}
    assert count == 2


def test_replace_children(warehouse: Engine) -> None:
    with warehouse.begin() as connection:
        replace_children(
            connection,
            registration_attendees,
            "registration_id",
            ["a1"],
            [
                {"registration_id": "a1", "position": 0, "attendee_id": "x"},
                {"registration_id": "a1", "position": 1, "attendee_id": "y"},
            ],
        )
        replace_children(
            connection,
            registration_attendees,
            "registration_id",
            ["a1"],
            [{"registration_id": "a1", "position": 0, "attendee_id": "z"}],
        )
    with warehouse.connect() as connection:
        rows = connection.execute(select(registration_attendees.c.attendee_id)).scalars().all()
    assert rows == ["z"]


def test_state_and_run_ledger(warehouse: Engine) -> None:
    with warehouse.begin() as connection:
        assert read_state(connection, "registrations").watermark is None
        write_state(connection, "registrations", T0, {"window_end": "x"})
        write_state(connection, "registrations", T0 + timedelta(seconds=1), None)
    with warehouse.connect() as connection:
        state = read_state(connection, "registrations")
    assert state.watermark == T0 + timedelta(seconds=1)
    run_id = start_run(warehouse, "sync")
    finish_run(
        warehouse, run_id, "partial", counts={"rows": 3}, api_calls={"salesforce_calls": 2}, message="m"
    )
    runs = last_runs(warehouse, 5)
    assert runs[0]["run_id"] == run_id
    assert runs[0]["outcome"] == "partial"
    assert runs[0]["counts"] == {"rows": 3}


def test_sqlite_page_cache_is_large_only_inside_bulk_write_cache(tmp_path: Any) -> None:
    """The pull's writers get a big page cache; a pooled connection reused afterwards gives it back."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}", pool_size=1, max_overflow=0)

    def cache_kib() -> int:
        with engine.connect() as connection:
            return -connection.execute(text("PRAGMA cache_size")).scalar_one()

    try:
        assert cache_kib() == READ_CACHE_KIB
        with bulk_write_cache():
            assert cache_kib() == WRITE_CACHE_KIB  # the same pooled connection, enlarged
            with bulk_write_cache(4_096):
                assert cache_kib() == 4_096
            assert cache_kib() == WRITE_CACHE_KIB
        assert cache_kib() == READ_CACHE_KIB  # and shrunk again for the readers that follow
    finally:
        engine.dispose()


def test_the_large_page_caches_share_one_budget(tmp_path: Any) -> None:
    """Every stream of a pull writes on its own pooled connection: their large caches together are
    held to one process-wide soft heap limit, not 64 MB each."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}", pool_size=3, max_overflow=0)
    try:
        with bulk_write_cache(), engine.connect() as one, engine.connect() as two:
            for connection in (one, two):
                assert -connection.execute(text("PRAGMA cache_size")).scalar_one() == WRITE_CACHE_KIB
                assert (
                    connection.execute(text("PRAGMA soft_heap_limit")).scalar_one()
                    == WRITE_CACHE_BUDGET_BYTES
                )
        assert WRITE_CACHE_BUDGET_BYTES < 2 * WRITE_CACHE_KIB * 1024  # a budget, not a cache each
    finally:
        engine.dispose()
