"""`regsync status`: where every stream stands, what the warehouse holds, what the last runs did."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from sqlalchemy import func, select

from regsync.config import Settings
from regsync.locks import open_warehouse_locked
from regsync.warehouse.state import all_states, last_runs
from regsync.warehouse.tables import (
    booking_lines,
    booking_sessions,
    bookings,
    quarantine,
    raw_archive,
    registration_attendees,
    registrations,
    sf_sessions,
)

COUNTED = (
    registrations,
    registration_attendees,
    sf_sessions,
    booking_sessions,
    bookings,
    booking_lines,
    raw_archive,
    quarantine,
)


def table_counts(settings: Settings) -> dict[str, int]:
    engine = open_warehouse_locked(settings.warehouse.url)
    with engine.connect() as connection:
        return {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one() for t in COUNTED}


def warehouse_status(settings: Settings) -> Group:
    """A renderable summary of the warehouse."""
    engine = open_warehouse_locked(settings.warehouse.url)
    streams = Table(title="streams")
    streams.add_column("stream")
    streams.add_column("watermark (UTC)")
    streams.add_column("checkpoint")
    for state in all_states(engine):
        streams.add_row(state.stream, str(state.watermark or "-"), str(state.checkpoint or ""))
    counts = Table(title="rows")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for name, count in table_counts(settings).items():
        counts.add_row(name, str(count))
    runs = Table(title="last runs")
    for column in ("run", "job", "started", "ended", "outcome", "api calls", "message"):
        runs.add_column(column)
    for run in last_runs(engine, 10):
        calls = ", ".join(f"{k}={v}" for k, v in (run["api_calls"] or {}).items())
        runs.add_row(
            run["run_id"][:8],
            run["job"],
            str(run["started_at"])[:19],
            str(run["ended_at"] or "")[:19],
            run["outcome"] or "",
            calls,
            (run["message"] or "")[:80],
        )
    return Group(streams, counts, runs)
