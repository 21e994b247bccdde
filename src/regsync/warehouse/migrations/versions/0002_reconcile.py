"""Reconciliation history: one row per reconcile run and one per mismatch ever seen.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from regsync.warehouse.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("new_count", sa.Integer, nullable=False),
        sa.Column("open_count", sa.Integer, nullable=False),
        sa.Column("resolved_count", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_reconcile_runs"),
    )
    op.create_index("ix_reconcile_runs_at", "reconcile_runs", ["at"])
    op.create_table(
        "mismatches",
        sa.Column("mismatch_key", sa.String(255), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("registration_id", sa.String(18)),
        sa.Column("booking_session_id", sa.String(64)),
        sa.Column("booking_code", sa.String(64)),
        sa.Column("sf_value", sa.Text),
        sa.Column("cf_value", sa.Text),
        sa.Column("explanation", sa.Text),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("resolved_at", UtcDateTime()),
        sa.Column("first_run_id", sa.String(36), nullable=False),
        sa.Column("last_run_id", sa.String(36), nullable=False),
        sa.Column("resolved_run_id", sa.String(36)),
        sa.PrimaryKeyConstraint("mismatch_key", name="pk_mismatches"),
    )
    op.create_index("ix_mismatches_last_run_id", "mismatches", ["last_run_id"])
    op.create_index("ix_mismatches_resolved_run_id", "mismatches", ["resolved_run_id"])


def downgrade() -> None:
    op.drop_table("mismatches")
    op.drop_table("reconcile_runs")
