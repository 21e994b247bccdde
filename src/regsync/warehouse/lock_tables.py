"""The run lock's table, on the shared metadata: who holds which lock, until when.

On SQLite the row IS the lock (a lease a live holder renews); on PostgreSQL the lock is an
advisory lock and the row only says who holds it (see regsync.warehouse.locks).
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from regsync.warehouse.tables import metadata
from regsync.warehouse.types import UtcDateTime

job_locks = Table(
    "job_locks",
    metadata,
    Column("name", String(64), primary_key=True),  # the lock: "warehouse-writer"
    Column("holder", String(255), nullable=False),  # host:pid:uuid of the run holding it
    Column("job", String(60), nullable=False),  # the job that took it
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),  # last renewal
    Column("lease_until", UtcDateTime, nullable=False),  # past this, a successor may take over
)
