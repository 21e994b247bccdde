"""Quarantine rows stay open until their record loads: resolved_at.

A record rejected because its payload was spoiled on the way (or by a value the configuration did
not yet allow) is read again by every run until it loads; then its rows are resolved.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from regsync.warehouse.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("resolved_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("resolved_at")
