"""`regsync status`: where every stream stands, what the warehouse holds, what the last runs did."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from sqlalchemy import Engine, func, select

from regsync.config import Settings
from regsync.warehouse.locks import open_warehouse_locked
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
    try:
        return _counts(engine)
    finally:
        engine.dispose()


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one() for t in COUNTED}


def quarantine_summary(engine: Engine) -> dict[str, int]:
    """Records in quarantine now (not loaded since, retried by every run), by source.

    Standing quarantine is shown here and in the reports, not as a failing exit code: a run exits
    3 only for records it quarantined itself (regsync.jobs.pull).
    """
    q = quarantine
    query = (
        select(q.c.source, func.count(func.distinct(q.c.record_id)))
        .where(q.c.resolved_at.is_(None))
        .group_by(q.c.source)
        .order_by(q.c.source)
    )
    with engine.connect() as connection:
        return {source: count for source, count in connection.execute(query)}


def warehouse_status(settings: Settings) -> Group:
    """A renderable summary of the warehouse."""
    engine = open_warehouse_locked(settings.warehouse.url)
    try:
        return _warehouse_status(engine)
    finally:
        engine.dispose()


def _warehouse_status(engine: Engine) -> Group:
    streams = Table(title="streams")
    streams.add_column("stream")
    streams.add_column("watermark (UTC)")
    streams.add_column("checkpoint")
    for state in all_states(engine):
        streams.add_row(state.stream, str(state.watermark or "-"), str(state.checkpoint or ""))
    counts = Table(title="rows")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for name, count in _counts(engine).items():
        counts.add_row(name, str(count))
    held = quarantine_summary(engine)
    quarantined = Table(title=f"in quarantine: {sum(held.values())} record(s), retried by every run")
    quarantined.add_column("source")
    quarantined.add_column("records", justify="right")
    for source, count in held.items():
        quarantined.add_row(source, str(count))
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
    return Group(streams, counts, quarantined, runs)
