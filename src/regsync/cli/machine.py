"""Machine-readable output: `plan`, `status` and `actions` as one JSON document each (`--format json`).

For monitoring scripts and dashboards, which must not scrape rich tables. Keys are stable; times are
ISO 8601 in UTC with a Z; ids are whole (the tables shorten them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from regsync.actions.journal import KINDS, unresolved
from regsync.settings.jobs import JOB_NAMES
from regsync.warehouse.freshness import load_freshness
from regsync.warehouse.locks import current_holders
from regsync.warehouse.reconcile_tables import reconcile_runs
from regsync.warehouse.state import all_states, last_runs
from regsync.warehouse.status import COUNTED

if TYPE_CHECKING:
    from regsync.actions.apply import BreakerVerdict
    from regsync.actions.candidates import Plan
    from regsync.config import Settings

FORMATS = ("table", "json")
SCHEMA_VERSION = 1


def when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(document: Mapping[str, Any]) -> str:
    """One JSON document, keys in insertion order, no ANSI colour, a trailing newline."""
    return json.dumps(document, default=_default, ensure_ascii=False, indent=2) + "\n"


def plan_document(plan: Plan, breaker: Mapping[str, BreakerVerdict], *, explained: bool) -> dict[str, Any]:
    """What submit-pending and close-stale would do, and whether --apply would trip the breaker."""
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "kind": "plan",
        "now": when(plan.now),
        "total": plan.total,
        "candidates": {
            kind: [{"target_id": c.target_id, "reason": c.reason} for c in found]
            for kind, found in plan.candidates.items()
        },
        "eligible": dict(plan.population),
        "breaker": {
            command: {"would_trip": verdict.trips, "reason": verdict.reason}
            for command, verdict in breaker.items()
        },
    }
    if explained:
        document["explanations"] = [
            {
                "kind": item.kind,
                "target_id": item.target_id,
                "decision": "act" if item.selected else "skip",
                "reason": item.reason,
                "why": item.text,
            }
            for item in plan.explanations
        ]
    return document


ACTION_FIELDS = (
    "action_id",
    "kind",
    "target_id",
    "state",
    "reason",
    "planned_at",
    "sent_at",
    "finished_at",
    "confirmed_at",
    "error",
    "retriable",
    "run_id",
)


def actions_document(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Journal rows, newest first (the request and response payloads stay in the journal)."""
    return {
        "schema": SCHEMA_VERSION,
        "kind": "actions",
        "count": len(rows),
        "actions": [{name: row.get(name) for name in ACTION_FIELDS if name in row} for row in rows],
    }


def status_document(settings: Settings, engine: Engine, *, now: datetime | None = None) -> dict[str, Any]:
    """Streams, row counts, freshness, the last run of each job, locks, open actions, last reconcile."""
    now = now or datetime.now(UTC)
    with engine.connect() as connection:
        rows = {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one() for t in COUNTED}
        freshness = load_freshness(connection, now=now, max_age_s=settings.reconcile.max_data_age_s)
        last = connection.execute(select(reconcile_runs).order_by(reconcile_runs.c.at.desc()).limit(1))
        reconcile = last.mappings().first()
    jobs: dict[str, Any] = {}
    for job in (*JOB_NAMES, "write-back"):
        found = last_runs(engine, 1, job=job)
        jobs[job] = None if not found else _run(found[0])
    return {
        "schema": SCHEMA_VERSION,
        "kind": "status",
        "at": when(now),
        "freshness": freshness.to_dict(),
        "streams": {
            state.stream: {"watermark": when(state.watermark), "checkpoint": state.checkpoint}
            for state in all_states(engine)
        },
        "rows": rows,
        "quarantined": rows.get("quarantine", 0),
        "jobs": jobs,
        "last_runs": [_run(run) for run in last_runs(engine, 10)],
        "locks": [
            {
                "lock": holder.name,
                "state": state,
                "job": holder.job,
                "holder": holder.holder,
                "since": when(holder.acquired_at),
                "lease_until": when(holder.lease_until),
            }
            for holder, state in current_holders(engine)
        ],
        "open_actions": [
            {"action_id": a.action_id, "kind": a.kind, "target_id": a.target_id, "state": a.state}
            for a in unresolved(engine, KINDS)
        ],
        "last_reconcile": None
        if reconcile is None
        else {
            "run_id": reconcile["run_id"],
            "at": when(reconcile["at"]),
            "mismatches": reconcile["total"],
            "new": reconcile["new_count"],
            "open": reconcile["open_count"],
            "resolved": reconcile["resolved_count"],
            "by_code": dict(reconcile["counts"] or {}),
        },
    }


def _run(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run["run_id"],
        "job": run["job"],
        "started_at": when(run["started_at"]),
        "ended_at": when(run["ended_at"]),
        "outcome": run["outcome"],
        "counts": run["counts"] or {},
        "api_calls": run["api_calls"] or {},
        "message": run["message"],
    }
