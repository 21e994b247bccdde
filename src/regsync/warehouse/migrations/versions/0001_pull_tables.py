"""Tables of the pull: registrations, attendees, Sessions, booking sessions, bookings, bookkeeping.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from regsync.warehouse.types import Money, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", sa.String(18), nullable=False),
        sa.Column("name", sa.String(80)),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(18)),
        sa.Column("booking_session_id", sa.String(64)),
        sa.Column("booking_code", sa.String(64)),
        sa.Column("amount", Money()),
        sa.Column("attendee_count", sa.Integer, nullable=False),
        sa.Column("seats_needed", sa.Integer, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_modified_at", UtcDateTime(), nullable=False),
        sa.Column("system_modstamp", UtcDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean, nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registrations"),
    )
    op.create_index("ix_registrations_booking_session_id", "registrations", ["booking_session_id"])
    op.create_index("ix_registrations_booking_code", "registrations", ["booking_code"])
    op.create_index("ix_registrations_status", "registrations", ["status"])
    op.create_table(
        "registration_attendees",
        sa.Column("registration_id", sa.String(18), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("attendee_id", sa.String(18), nullable=False),
        sa.PrimaryKeyConstraint("registration_id", "position", name="pk_registration_attendees"),
    )
    op.create_table(
        "registration_attendee_sessions",
        sa.Column("registration_id", sa.String(18), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("session_id", sa.String(18), nullable=False),
        sa.PrimaryKeyConstraint(
            "registration_id", "position", "session_id", name="pk_registration_attendee_sessions"
        ),
    )
    op.create_table(
        "sf_sessions",
        sa.Column("id", sa.String(18), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("event_id", sa.String(18)),
        sa.Column("checkfront_item_id", sa.String(32)),
        sa.Column("system_modstamp", UtcDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean, nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sf_sessions"),
    )
    op.create_table(
        "booking_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("age_s", sa.BigInteger),
        sa.Column("last_activity_at", UtcDateTime()),
        sa.Column("start_date", UtcDateTime()),
        sa.Column("end_date", UtcDateTime()),
        sa.Column("currency", sa.String(8)),
        sa.Column("sub_total", Money()),
        sa.Column("total", Money()),
        sa.Column("paid_total", Money()),
        sa.Column("qty", sa.Integer),
        sa.Column("read_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_booking_sessions"),
    )
    op.create_table(
        "booking_session_lines",
        sa.Column("booking_session_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(255)),
        sa.Column("slip", sa.String(255)),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("total", Money()),
        sa.Column("is_package", sa.Boolean, nullable=False),
        sa.Column("opted_in", sa.Boolean),
        sa.Column("start_date", UtcDateTime()),
        sa.Column("end_date", UtcDateTime()),
        sa.PrimaryKeyConstraint("booking_session_id", "line_id", name="pk_booking_session_lines"),
    )
    op.create_table(
        "bookings",
        sa.Column("booking_id", sa.BigInteger, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("status_id", sa.String(16), nullable=False),
        sa.Column("status_name", sa.String(64)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("total", Money()),
        sa.Column("tax_total", Money()),
        sa.Column("paid_total", Money()),
        sa.Column("customer_name", sa.String(255)),
        sa.Column("customer_email", sa.String(255)),
        sa.Column("summary", sa.Text),
        sa.Column("detail_fetched", sa.Boolean, nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("booking_id", name="pk_bookings"),
        sa.UniqueConstraint("code", name="uq_bookings_code"),
    )
    op.create_table(
        "booking_lines",
        sa.Column("booking_id", sa.BigInteger, nullable=False),
        sa.Column("line_id", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(255)),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("total", Money()),
        sa.Column("status_id", sa.String(16)),
        sa.Column("start_date", UtcDateTime()),
        sa.Column("end_date", UtcDateTime()),
        sa.PrimaryKeyConstraint("booking_id", "line_id", name="pk_booking_lines"),
    )
    op.create_table(
        "raw_archive",
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("fetched_at", UtcDateTime(), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("source", "record_id", "content_hash", name="pk_raw_archive"),
    )
    op.create_table(
        "quarantine",
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.Column("quarantined_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "record_id", "content_hash", name="pk_quarantine"),
    )
    op.create_table(
        "stream_state",
        sa.Column("stream", sa.String(120), nullable=False),
        sa.Column("watermark", UtcDateTime()),
        sa.Column("checkpoint", sa.JSON),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_stream_state"),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("job", sa.String(60), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime()),
        sa.Column("outcome", sa.String(16)),
        sa.Column("counts", sa.JSON),
        sa.Column("api_calls", sa.JSON),
        sa.Column("message", sa.Text),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_job_started_at", "runs", ["job", "started_at"])


def downgrade() -> None:
    for name in (
        "runs",
        "stream_state",
        "quarantine",
        "raw_archive",
        "booking_lines",
        "bookings",
        "booking_session_lines",
        "booking_sessions",
        "sf_sessions",
        "registration_attendee_sessions",
        "registration_attendees",
        "registrations",
    ):
        op.drop_table(name)
