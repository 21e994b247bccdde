"""Indexes that keep a no-change pull independent of the warehouse's size.

The booking-session pass looks only at registrations synced since its last complete pass
(synced_at) and at alive sessions whose refresh is due (state, read_at); the booking-lines pass
looks only at bookings whose lines are not fetched (detail_fetched, code).

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_registrations_synced_at", "registrations", ["synced_at", "id"])
    op.create_index("ix_booking_sessions_state_read_at", "booking_sessions", ["state", "read_at"])
    op.create_index("ix_bookings_detail_fetched_code", "bookings", ["detail_fetched", "code"])


def downgrade() -> None:
    op.drop_index("ix_bookings_detail_fetched_code", "bookings")
    op.drop_index("ix_booking_sessions_state_read_at", "booking_sessions")
    op.drop_index("ix_registrations_synced_at", "registrations")
