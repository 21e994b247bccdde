"""How the jobs went, for `regsync status`: last run per job, lock holders, open actions, last
report, and the daemon's next run times."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Group
from rich.table import Table
from sqlalchemy import Engine, inspect, select, text

from regsync.actions.journal import KINDS, list_actions, unresolved
from regsync.config import Settings
from regsync.jobs.schedule import JOBSTORE_TABLE
from regsync.settings.jobs import JOB_NAMES
from regsync.warehouse.locks import LOCK_NAME, current_holders, open_warehouse_locked
from regsync.warehouse.reconcile_tables import reconcile_runs
from regsync.warehouse.state import last_runs

OPEN_ACTIONS_SHOWN = 20


def jobs_status(settings: Settings) -> Group:
    """A renderable for `regsync status`: last run per job, lock holders, open actions, last report,
    and the daemon's next run times."""
    engine = open_warehouse_locked(settings.warehouse.url)
    try:
        return Group(
            _last_runs(engine),
            _locks(engine),
            _open_actions(engine),
            _last_report(engine),
            _schedule(engine),
        )
    finally:
        engine.dispose()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _counts(job: str, counts: Mapping[str, Any] | None) -> str:
    counts = counts or {}
    if job == "main":
        steps = counts.get("steps") or {}
        shown = [f"{name} {step.get('outcome')}" for name, step in steps.items()]
        shown += [f"{name} skipped" for name in counts.get("skipped") or {}]
        return ", ".join(shown)
    shown = [
        f"{key}={value}"
        for key, value in counts.items()
        if isinstance(value, int)
        and not isinstance(value, bool)
        and value
        and not key.endswith("milliseconds")
    ]
    return ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")


def _last_runs(engine: Engine) -> Table:
    table = Table(title="jobs: last run of each")
    for column in ("job", "run", "started (UTC)", "ended (UTC)", "outcome", "counts", "API calls", "message"):
        table.add_column(column)
    for job in (*JOB_NAMES, "write-back"):
        found = last_runs(engine, 1, job=job)
        if not found:
            if job != "write-back":
                table.add_row(job, "-", "never", "", "", "", "", "")
            continue
        run = found[0]
        calls = ", ".join(f"{k}={v}" for k, v in (run["api_calls"] or {}).items())
        table.add_row(
            job,
            run["run_id"][:8],
            _when(run["started_at"]),
            _when(run["ended_at"]),
            run["outcome"] or "",
            _counts(job, run["counts"]),
            calls,
            (run["message"] or "")[:80],
        )
    return table


def _locks(engine: Engine) -> Table:
    table = Table(title="locks")
    for column in ("lock", "state", "job", "holder", "since (UTC)", "heartbeat (UTC)", "lease until (UTC)"):
        table.add_column(column)
    holders = current_holders(engine)
    for holder, state in holders:
        table.add_row(
            holder.name,
            state,
            holder.job,
            holder.holder,
            _when(holder.acquired_at),
            _when(holder.heartbeat_at),
            _when(holder.lease_until),
        )
    if not holders:
        table.add_row(LOCK_NAME, "free", "", "", "", "", "")
    return table


def _open_actions(engine: Engine) -> Table:
    open_actions = unresolved(engine, KINDS)
    since = datetime.now(UTC) - timedelta(days=1)
    failed = list_actions(engine, state="failed", since=since)
    table = Table(
        title="write-back journal: open actions",
        caption=(
            f"{len(open_actions)} open (planned/sent: the next write-back run resolves them); "
            f"{len(failed)} failed in the last 24 h (`regsync actions --state failed`)"
        ),
    )
    for column in ("action", "kind", "target", "state"):
        table.add_column(column)
    for action in open_actions[:OPEN_ACTIONS_SHOWN]:
        table.add_row(action.action_id[:8], action.kind, action.target_id, action.state)
    if len(open_actions) > OPEN_ACTIONS_SHOWN:
        table.add_row("...", f"{len(open_actions) - OPEN_ACTIONS_SHOWN} more", "", "")
    return table


def _last_report(engine: Engine) -> Table:
    table = Table(title="last reconcile")
    for column in ("at (UTC)", "mismatches", "new", "still open", "resolved", "reports"):
        table.add_column(column)
    with engine.connect() as connection:
        row = (
            connection.execute(select(reconcile_runs).order_by(reconcile_runs.c.at.desc()).limit(1))
            .mappings()
            .first()
        )
    if row is None:
        table.add_row("never", "", "", "", "", "")
        return table
    reports = ""
    ledger = last_runs(engine, 1, job="reconcile")
    if ledger:
        counts = ledger[0]["counts"] or {}
        if counts.get("reconcile_run_id") == row["run_id"]:
            reports = "\n".join(counts.get("reports") or [])
    table.add_row(
        _when(row["at"]),
        str(row["total"]),
        str(row["new_count"]),
        str(row["open_count"]),
        str(row["resolved_count"]),
        reports or "(written by `regsync reconcile --out DIR`)",
    )
    return table


def _schedule(engine: Engine) -> Table:
    table = Table(title="daemon schedule (`regsync schedule` job store)")
    table.add_column("job")
    table.add_column("next run (UTC)")
    if not inspect(engine).has_table(JOBSTORE_TABLE):
        table.add_row("-", "the daemon has not run against this warehouse")
        return table
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT id, next_run_time FROM {JOBSTORE_TABLE} ORDER BY next_run_time")
        ).all()
    for job_id, next_run in rows:
        moment = datetime.fromtimestamp(next_run, UTC) if next_run is not None else None
        table.add_row(job_id, _when(moment) or "paused")
    if not rows:
        table.add_row("-", "no job scheduled")
    return table
