"""Partly read registrations and exact sub-cent money.

A registration with an unreadable amount or Attendee JSON keeps its identity and links and says
what could not be read (unreadable, unreadable_parts); amounts with digits beyond the cent keep
their exact text so the rules compare exact decimals against the tolerance (docs/rules.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_column without a default is a metadata-only change on both backends (no table copy).
    op.add_column("registrations", sa.Column("amount_exact", sa.String(48), nullable=True))
    op.add_column("registrations", sa.Column("unreadable", sa.Text(), nullable=True))
    op.add_column("registrations", sa.Column("unreadable_parts", sa.String(80), nullable=True))
    op.add_column("bookings", sa.Column("total_exact", sa.String(48), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("total_exact")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("unreadable_parts")
        batch.drop_column("unreadable")
        batch.drop_column("amount_exact")
