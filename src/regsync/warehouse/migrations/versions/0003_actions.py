"""The write-back journal: one row per intended write, recorded before it is sent.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from regsync.warehouse.types import UtcDateTime

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("action_id", sa.String(36), nullable=False),
        sa.Column("idempotency_key", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("request", sa.JSON),
        sa.Column("response", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("retriable", sa.Boolean, nullable=False),
        sa.Column("confirmation", sa.JSON),
        sa.Column("run_id", sa.String(36)),
        sa.Column("planned_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("confirmed_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("action_id", name="pk_actions"),
    )
    # Frozen copy of actions_tables.HOLDS_KEY as of this revision.
    holds_key = sa.text("state IN ('planned', 'sent', 'succeeded') OR (state = 'failed' AND NOT retriable)")
    op.create_index(
        "uq_actions_idempotency_key",
        "actions",
        ["idempotency_key"],
        unique=True,
        sqlite_where=holds_key,
        postgresql_where=holds_key,
    )
    op.create_index("ix_actions_kind_target_id", "actions", ["kind", "target_id"])
    op.create_index("ix_actions_state", "actions", ["state"])
    op.create_index("ix_actions_planned_at", "actions", ["planned_at"])


def downgrade() -> None:
    op.drop_table("actions")
