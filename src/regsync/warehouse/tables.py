"""The warehouse's tables as SQLAlchemy Core (created by Alembic migrations, never create_all).

`metadata` is shared by every table module; `regsync.warehouse.schema` imports them all onto it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from regsync.warehouse.types import Money, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# -- Salesforce side ------------------------------------------------------------------------------

registrations = Table(
    "registrations",
    metadata,
    Column("id", String(18), primary_key=True),
    Column("name", String(80)),
    Column("status", String(40), nullable=False),  # Draft | To Process | Completed | Failed
    Column("event_id", String(18)),
    Column("booking_session_id", String(64)),  # Checkfront cart the customer used
    Column("booking_code", String(64)),  # Checkfront booking code once booked
    Column("amount", Money),
    Column("attendee_count", Integer, nullable=False, default=0),
    Column("seats_needed", Integer, nullable=False, default=0),
    Column("error_message", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_modified_at", UtcDateTime, nullable=False),
    Column("system_modstamp", UtcDateTime, nullable=False),
    Column("is_deleted", Boolean, nullable=False, default=False),
    Column("synced_at", UtcDateTime, nullable=False),
    # Partly read (docs/rules.md): the exact amount when it has sub-cent digits, and what could not
    # be read: why (text) and which parts (",amount,attendees,"); both NULL when fully read.
    Column("amount_exact", String(48)),
    Column("unreadable", Text),
    Column("unreadable_parts", String(80)),
)
Index("ix_registrations_booking_session_id", registrations.c.booking_session_id)
Index("ix_registrations_booking_code", registrations.c.booking_code)
Index("ix_registrations_status", registrations.c.status)
Index("ix_registrations_synced_at", registrations.c.synced_at, registrations.c.id)

registration_attendees = Table(
    "registration_attendees",
    metadata,
    Column("registration_id", String(18), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("attendee_id", String(18), nullable=False),
)

registration_attendee_sessions = Table(
    "registration_attendee_sessions",
    metadata,
    Column("registration_id", String(18), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("session_id", String(18), primary_key=True),  # a Salesforce Session id
)

sf_sessions = Table(
    "sf_sessions",
    metadata,
    Column("id", String(18), primary_key=True),
    Column("name", String(255)),
    Column("event_id", String(18)),
    Column("checkfront_item_id", String(32)),
    Column("system_modstamp", UtcDateTime, nullable=False),
    Column("is_deleted", Boolean, nullable=False, default=False),
    Column("synced_at", UtcDateTime, nullable=False),
)

# -- Checkfront side ------------------------------------------------------------------------------

booking_sessions = Table(
    "booking_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # alive | missing (unknown, expired or ended)
    Column("age_s", BigInteger),
    Column("last_activity_at", UtcDateTime),  # read time minus age: when the cart last changed
    Column("start_date", UtcDateTime),
    Column("end_date", UtcDateTime),
    Column("currency", String(8)),
    Column("sub_total", Money),
    Column("total", Money),
    Column("paid_total", Money),
    Column("qty", Integer),
    Column("read_at", UtcDateTime, nullable=False),
)
Index("ix_booking_sessions_state_read_at", booking_sessions.c.state, booking_sessions.c.read_at)

booking_session_lines = Table(
    "booking_session_lines",
    metadata,
    Column("booking_session_id", String(64), primary_key=True),
    Column("line_id", String(16), primary_key=True),  # "1", or "1.1" for a package add-on
    Column("item_id", String(32), nullable=False),
    Column("sku", String(255)),
    Column("slip", String(255)),
    Column("qty", Integer, nullable=False),
    Column("total", Money),
    Column("is_package", Boolean, nullable=False, default=False),
    Column("opted_in", Boolean),
    Column("start_date", UtcDateTime),
    Column("end_date", UtcDateTime),
)

bookings = Table(
    "bookings",
    metadata,
    Column("booking_id", BigInteger, primary_key=True),
    Column("code", String(64), nullable=False),
    Column("status_id", String(16), nullable=False),
    Column("status_name", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("total", Money),
    Column("tax_total", Money),
    Column("paid_total", Money),
    Column("customer_name", String(255)),
    Column("customer_email", String(255)),
    Column("summary", Text),
    Column("detail_fetched", Boolean, nullable=False, default=False),
    Column("synced_at", UtcDateTime, nullable=False),
    Column("total_exact", String(48)),  # the exact total when it has sub-cent digits
    UniqueConstraint("code"),
)
Index("ix_bookings_detail_fetched_code", bookings.c.detail_fetched, bookings.c.code)

booking_lines = Table(
    "booking_lines",
    metadata,
    Column("booking_id", BigInteger, primary_key=True),
    Column("line_id", String(16), primary_key=True),
    Column("item_id", String(32), nullable=False),
    Column("sku", String(255)),
    Column("qty", Integer, nullable=False),
    Column("total", Money),
    Column("status_id", String(16)),
    Column("start_date", UtcDateTime),
    Column("end_date", UtcDateTime),
)

# -- Bookkeeping ----------------------------------------------------------------------------------

raw_archive = Table(
    "raw_archive",
    metadata,
    Column("source", String(40), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("fetched_at", UtcDateTime, nullable=False),
    Column("payload", Text, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("source", String(40), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("run_id", String(36)),
    Column("quarantined_at", UtcDateTime, nullable=False),
    # Set when the record later loaded (or is gone at the source): until then every run reads it again.
    Column("resolved_at", UtcDateTime),
)

stream_state = Table(
    "stream_state",
    metadata,
    Column("stream", String(120), primary_key=True),
    Column("watermark", UtcDateTime),
    Column("checkpoint", JSON),
    Column("updated_at", UtcDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("job", String(60), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("outcome", String(16)),  # running | ok | partial | deferred | failed
    Column("counts", JSON),
    Column("api_calls", JSON),
    Column("message", Text),
)
Index("ix_runs_job_started_at", runs.c.job, runs.c.started_at)
