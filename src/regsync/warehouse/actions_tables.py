"""The write-back journal, on the shared metadata: every intended write is on disk before it is sent."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, String, Table, Text, text

from regsync.warehouse.tables import metadata
from regsync.warehouse.types import UtcDateTime

# States in which an action holds its idempotency key: at most one such action per kind and target.
# planned/sent: in progress (or left by a crash, resolved by recovery); succeeded; failed for good.
# A retriable failure and a skip do not hold it: a later run may plan the target again.
HOLDS_KEY = "state IN ('planned', 'sent', 'succeeded') OR (state = 'failed' AND NOT retriable)"

actions = Table(
    "actions",
    metadata,
    Column("action_id", String(36), primary_key=True),
    Column("idempotency_key", String(120), nullable=False),  # kind:target_id
    Column("kind", String(32), nullable=False),  # submit_registration | end_booking_session
    Column("target_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # planned | sent | succeeded | failed | skipped
    Column("reason", Text),  # the rule that selected it, or why it was skipped
    Column("request", JSON),
    Column("response", JSON),
    Column("error", Text),
    Column("retriable", Boolean, nullable=False, default=False),
    Column("confirmation", JSON),  # what the confirming read found (submits)
    Column("run_id", String(36)),
    Column("planned_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("confirmed_at", UtcDateTime),
)
Index(
    "uq_actions_idempotency_key",
    actions.c.idempotency_key,
    unique=True,
    sqlite_where=text(HOLDS_KEY),
    postgresql_where=text(HOLDS_KEY),
)
Index("ix_actions_kind_target_id", actions.c.kind, actions.c.target_id)
Index("ix_actions_state", actions.c.state)
Index("ix_actions_planned_at", actions.c.planned_at)
