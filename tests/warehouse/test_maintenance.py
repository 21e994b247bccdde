"""After a large load the pull runs VACUUM (ANALYZE) on PostgreSQL for the tables autovacuum would
pick (regsync.warehouse.maintenance); a small change, and SQLite, run nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, text

from regsync.warehouse.maintenance import tables_due, vacuum_after_load
from regsync.warehouse.tables import sf_sessions

AT = datetime(2026, 1, 1, tzinfo=UTC)


def add_sessions(engine: Engine, first: int, count: int) -> None:
    rows = [
        {"id": f"a0S{n:015d}", "system_modstamp": AT, "is_deleted": False, "synced_at": AT}
        for n in range(first, first + count)
    ]
    with engine.begin() as connection:
        connection.execute(insert(sf_sessions), rows)


def vacuums(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT vacuum_count FROM pg_stat_user_tables"
                    " WHERE schemaname = current_schema() AND relname = :t"
                ),
                {"t": table},
            ).scalar_one()
        )


def due_within(engine: Engine, table: str, seconds: float = 10.0) -> bool:
    """PostgreSQL publishes a backend's table counts within a second or so of its commit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if table in tables_due(engine):
            return True
        time.sleep(0.2)
    return False


def test_a_large_load_is_vacuumed_and_analyzed_and_a_small_one_is_not(warehouse: Engine) -> None:
    if warehouse.dialect.name != "postgresql":
        add_sessions(warehouse, 0, 3000)
        assert tables_due(warehouse) == []
        assert vacuum_after_load(warehouse) == []  # SQLite keeps no such debt
        return
    add_sessions(warehouse, 0, 3000)
    assert due_within(warehouse, "sf_sessions")
    before = vacuums(warehouse, "sf_sessions")
    assert "sf_sessions" in vacuum_after_load(warehouse)
    assert vacuums(warehouse, "sf_sessions") == before + 1
    assert "sf_sessions" not in tables_due(warehouse)

    add_sessions(warehouse, 3000, 20)  # under 50 + 10 % of 3,000: autovacuum would wait, so do we
    time.sleep(1.5)
    assert "sf_sessions" not in tables_due(warehouse)
    assert "sf_sessions" not in vacuum_after_load(warehouse)
    assert vacuums(warehouse, "sf_sessions") == before + 1
