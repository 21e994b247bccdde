"""Stream watermarks and the run ledger: what has been pulled up to where, and what each run did."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from regsync.warehouse.tables import runs, stream_state
from regsync.warehouse.upsert import upsert


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StreamState:
    """Where a stream stands: everything with a cursor below `watermark` is committed."""

    stream: str
    watermark: datetime | None
    checkpoint: dict[str, Any] | None


def read_state(connection: Connection, stream: str) -> StreamState:
    row = connection.execute(select(stream_state).where(stream_state.c.stream == stream)).mappings().first()
    if row is None:
        return StreamState(stream, None, None)
    return StreamState(stream, row["watermark"], row["checkpoint"])


def write_state(
    connection: Connection,
    stream: str,
    watermark: datetime | None,
    checkpoint: Mapping[str, Any] | None = None,
) -> None:
    """Record the stream's position; call inside the transaction that committed the rows it covers."""
    upsert(
        connection,
        stream_state,
        [
            {
                "stream": stream,
                "watermark": watermark,
                "checkpoint": dict(checkpoint) if checkpoint is not None else None,
                "updated_at": utcnow(),
            }
        ],
    )


def all_states(engine: Engine) -> list[StreamState]:
    with engine.connect() as connection:
        rows = connection.execute(select(stream_state).order_by(stream_state.c.stream)).mappings()
        return [StreamState(r["stream"], r["watermark"], r["checkpoint"]) for r in rows]


# -- the run ledger -------------------------------------------------------------------------------

# crashed: the run's process ended without closing its row (killed, power loss); the next run to
# take the lock closes it (close_crashed_runs), so "running" means running.
OUTCOMES = ("running", "ok", "partial", "deferred", "failed", "crashed")


def start_run(engine: Engine, job: str) -> str:
    run_id = str(uuid.uuid4())
    with engine.begin() as connection:
        connection.execute(
            runs.insert().values(
                run_id=run_id,
                job=job,
                started_at=utcnow(),
                outcome="running",
                counts={},
                api_calls={},
            )
        )
    return run_id


def finish_run(
    engine: Engine,
    run_id: str,
    outcome: str,
    *,
    counts: Mapping[str, Any] | None = None,
    api_calls: Mapping[str, Any] | None = None,
    message: str | None = None,
) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown run outcome {outcome!r}")
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                ended_at=utcnow(),
                outcome=outcome,
                counts=dict(counts or {}),
                api_calls=dict(api_calls or {}),
                message=message,
            )
        )


def close_crashed_runs(engine: Engine, started_since: datetime, message: str) -> int:
    """Close as `crashed` the runs still "running" that started at or after `started_since`.

    Called by the next holder of the warehouse-writer lock when the previous holder died holding
    it: every run holds that lock while it runs, so those runs were the dead holder's.
    """
    with engine.begin() as connection:
        return connection.execute(
            update(runs)
            .where(runs.c.outcome == "running", runs.c.started_at >= started_since)
            .values(outcome="crashed", ended_at=utcnow(), message=message)
        ).rowcount


def last_runs(engine: Engine, limit: int = 10, job: str | None = None) -> list[dict[str, Any]]:
    query = select(runs).order_by(runs.c.started_at.desc()).limit(limit)
    if job is not None:
        query = query.where(runs.c.job == job)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]
