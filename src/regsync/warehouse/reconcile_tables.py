"""Reconciliation history tables, on the shared metadata so Alembic and the pull see one schema."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text

from regsync.warehouse.tables import metadata
from regsync.warehouse.types import UtcDateTime

reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("at", UtcDateTime, nullable=False),  # the "now" the rules were evaluated at
    Column("total", Integer, nullable=False),
    Column("new_count", Integer, nullable=False),
    Column("open_count", Integer, nullable=False),  # still open: seen by an earlier run too
    Column("resolved_count", Integer, nullable=False),
    Column("counts", JSON, nullable=False),  # {reason code: count}, every code listed
)
Index("ix_reconcile_runs_at", reconcile_runs.c.at)

mismatches = Table(
    "mismatches",
    metadata,
    Column(
        "mismatch_key", String(255), primary_key=True
    ),  # code|registration id|booking session id|booking code
    Column("code", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("registration_id", String(18)),
    Column("booking_session_id", String(64)),
    Column("booking_code", String(64)),
    Column("sf_value", Text),
    Column("cf_value", Text),
    Column("explanation", Text),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),  # NULL while open
    Column("first_run_id", String(36), nullable=False),
    Column("last_run_id", String(36), nullable=False),
    Column("resolved_run_id", String(36)),
)
Index("ix_mismatches_last_run_id", mismatches.c.last_run_id)
Index("ix_mismatches_resolved_run_id", mismatches.c.resolved_run_id)
