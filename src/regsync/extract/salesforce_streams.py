"""The Salesforce streams, declared once: object, fields, cursor and how a page is loaded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from regsync.config import Settings
from regsync.errors import RecordRejected
from regsync.normalize.coerce import sf_datetime
from regsync.normalize.salesforce import (
    normalize_registration,
    normalize_session,
    registration_select,
    session_select,
)
from regsync.warehouse.archive import archive, quarantine_records, record_key, resolve_quarantined
from regsync.warehouse.tables import (
    registration_attendee_sessions,
    registration_attendees,
    registrations,
    sf_sessions,
)
from regsync.warehouse.upsert import replace_children, upsert

PageLoader = Callable[[Connection, list[dict[str, Any]], datetime, str | None, Settings], Counter[str]]


@dataclass(frozen=True)
class SoqlStream:
    """A Salesforce object pulled incrementally by its cursor field."""

    name: str
    sobject: Callable[[Settings], str]
    fields: Callable[[Settings], list[str]]
    load_page: PageLoader
    cursor: str = "SystemModstamp"

    @property
    def source(self) -> str:
        return f"salesforce.{self.name}"


def _stored_stamps(connection: Connection, table: Table, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Id -> SystemModstamp the warehouse holds, for the records of one page."""
    ids = [r["Id"] for r in records if isinstance(r, dict) and isinstance(r.get("Id"), str)]
    if not ids:
        return {}
    query = select(table.c.id, table.c.system_modstamp).where(table.c.id.in_(ids))
    return {ident: stamp for ident, stamp in connection.execute(query)}


def _changed(records: list[dict[str, Any]], stored: dict[str, Any]) -> list[dict[str, Any]]:
    """Records the warehouse does not hold at this SystemModstamp.

    Salesforce moves SystemModstamp on every change, so a record read again at the stamp the
    warehouse has (the lookback re-reads the last minutes on every run) is not normalized,
    archived or written again: a no-change run costs the reads, not the writes.
    """
    changed = []
    for record in records:
        stamp = stored.get(str(record.get("Id"))) if isinstance(record, dict) else None
        if stamp is not None:
            try:
                if sf_datetime(record.get("SystemModstamp"), "SystemModstamp") == stamp:
                    continue
            except RecordRejected:
                pass
        changed.append(record)
    return changed


def _fresh(rows: list[dict[str, Any]], stored: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows not older than what the warehouse holds (a late page never undoes a newer read)."""
    return [r for r in rows if r["id"] not in stored or stored[r["id"]] <= r["system_modstamp"]]


def load_registrations(
    connection: Connection,
    records: list[dict[str, Any]],
    now: datetime,
    run_id: str | None,
    settings: Settings,
) -> Counter[str]:
    fields = settings.salesforce.registration_fields
    counts: Counter[str] = Counter()
    rows, attendees, sessions, rejected = [], [], [], []
    by_id: dict[str, Any] = {}
    stored = _stored_stamps(connection, registrations, records)
    records = _changed(records, stored)
    for record in records:
        try:
            shaped = normalize_registration(record, fields)
        except RecordRejected as exc:
            rejected.append((record_key(record, "Id"), record, str(exc)))
            continue
        row = {**shaped.registration, "synced_at": now}
        by_id[row["id"]] = shaped
        rows.append(row)
    rows = _fresh(list({r["id"]: r for r in rows}.values()), stored)
    for row in rows:
        attendees += by_id[row["id"]].attendees
        sessions += by_id[row["id"]].attendee_sessions
        counts["deleted" if row["is_deleted"] else "rows"] += 1
    upsert(connection, registrations, rows, newer_by="system_modstamp")
    ids = [r["id"] for r in rows]
    replace_children(connection, registration_attendees, "registration_id", ids, attendees)
    replace_children(connection, registration_attendee_sessions, "registration_id", ids, sessions)
    archive(connection, "salesforce.registrations", ((record_key(r, "Id"), r) for r in records), now)
    resolve_quarantined(connection, "salesforce.registrations", by_id, now)
    counts["quarantined"] += quarantine_records(
        connection, "salesforce.registrations", rejected, run_id=run_id, at=now
    )
    return counts


def load_sessions(
    connection: Connection,
    records: list[dict[str, Any]],
    now: datetime,
    run_id: str | None,
    settings: Settings,
) -> Counter[str]:
    fields = settings.salesforce.session_fields
    counts: Counter[str] = Counter()
    rows, rejected = [], []
    stored = _stored_stamps(connection, sf_sessions, records)
    records = _changed(records, stored)
    for record in records:
        try:
            rows.append({**normalize_session(record, fields), "synced_at": now})
        except RecordRejected as exc:
            rejected.append((record_key(record, "Id"), record, str(exc)))
    resolve_quarantined(connection, "salesforce.sessions", (r["id"] for r in rows), now)
    rows = _fresh(list({r["id"]: r for r in rows}.values()), stored)
    upsert(connection, sf_sessions, rows, newer_by="system_modstamp")
    counts["rows"] += len(rows)
    archive(connection, "salesforce.sessions", ((record_key(r, "Id"), r) for r in records), now)
    counts["quarantined"] += quarantine_records(
        connection, "salesforce.sessions", rejected, run_id=run_id, at=now
    )
    return counts


REGISTRATIONS = SoqlStream(
    name="registrations",
    sobject=lambda s: s.salesforce.objects.registration,
    fields=lambda s: registration_select(s.salesforce.registration_fields),
    load_page=load_registrations,
)

SESSIONS = SoqlStream(
    name="sessions",
    sobject=lambda s: s.salesforce.objects.session,
    fields=lambda s: session_select(s.salesforce.session_fields),
    load_page=load_sessions,
)

SOQL_STREAMS: dict[str, SoqlStream] = {stream.name: stream for stream in (SESSIONS, REGISTRATIONS)}
