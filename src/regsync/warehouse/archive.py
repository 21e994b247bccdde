"""The raw archive (every fetched payload, once per distinct content) and the quarantine."""

from __future__ import annotations

import hashlib
import reprlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, literal, select, update

from regsync.warehouse.tables import quarantine, raw_archive
from regsync.warehouse.upsert import upsert

_SHALLOW = reprlib.Repr()
_SHALLOW.maxlevel = 100
for _name in ("maxtuple", "maxlist", "maxarray", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_SHALLOW, _name, 1_000_000)
_SHALLOW.maxstring = _SHALLOW.maxlong = _SHALLOW.maxother = 10_000_000


def payload_text(payload: Any) -> str:
    """Canonical JSON of a payload (sorted keys), so equal content hashes equally."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return repr(payload)
    except RecursionError:
        # Nested deeper than repr goes (a JSON parser hands back up to ~1000 levels): the outer
        # 100 levels, the rest shown as "[...]" / "{...}", rather than losing the record.
        return _SHALLOW.repr(payload)


def storable(text: str) -> str:
    """Text every backend stores: NUL (PostgreSQL refuses it) and unpaired surrogates escaped."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def record_key(payload: Any, *candidates: str) -> str:
    """The id to file a payload under; '?' when a broken record has none."""
    if isinstance(payload, dict):
        for name in candidates:
            value = payload.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return storable(str(value))[:64]
    return "?"


def archive(
    connection: Connection, source: str, items: Iterable[tuple[str, Any]], fetched_at: datetime
) -> None:
    """Keep each (record id, payload) unless that exact content is already archived."""
    rows = []
    for record_id, payload in items:
        text = payload_text(payload)
        rows.append(
            {
                "source": source,
                "record_id": record_id,
                "content_hash": content_hash(text),
                "fetched_at": fetched_at,
                "payload": text,
            }
        )
    upsert(connection, raw_archive, _unique(rows), update=False)


def quarantine_records(
    connection: Connection,
    source: str,
    items: Iterable[tuple[str, Any, str]],
    *,
    run_id: str | None,
    at: datetime,
) -> int:
    """File rejected records with their raw payload and reason; returns how many were given."""
    rows = [
        quarantine_row(source, record_id, payload, reason, run_id=run_id, at=at)
        for record_id, payload, reason in items
    ]
    upsert(connection, quarantine, _unique(rows), update=False)
    # Rejected again after it once loaded: open again (its first quarantine time is kept).
    _set_resolved(connection, source, {row["record_id"] for row in rows}, None)
    return len(rows)


def quarantine_row(
    source: str, record_id: str, payload: Any, reason: str, *, run_id: str | None, at: datetime
) -> dict[str, Any]:
    """The quarantine row of one rejected record; a reason quoting the record stays storable."""
    text = payload_text(payload)
    return {
        "source": source,
        "record_id": storable(record_id)[:64],
        "content_hash": content_hash(text),
        "reason": storable(reason),
        "payload": text,
        "run_id": run_id,
        "quarantined_at": at,
    }


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        seen[(row["source"], row["record_id"], row["content_hash"])] = row
    return list(seen.values())


def open_quarantined(connection: Connection, source: str) -> list[str]:
    """Record ids of `source` rejected and not loaded since, in id order: each run reads them again."""
    query = (
        select(quarantine.c.record_id)
        .distinct()
        .where(quarantine.c.source == source, quarantine.c.resolved_at.is_(None))
        .order_by(quarantine.c.record_id)
    )
    return list(connection.execute(query).scalars())


def open_quarantined_payloads(connection: Connection, source: str) -> dict[str, str]:
    """Record id -> the latest payload quarantined for it, of records of `source` not loaded since."""
    query = (
        select(quarantine.c.record_id, quarantine.c.payload)
        .where(quarantine.c.source == source, quarantine.c.resolved_at.is_(None))
        .order_by(quarantine.c.record_id, quarantine.c.quarantined_at)
    )
    return {record_id: payload for record_id, payload in connection.execute(query)}


def resolve_quarantined(connection: Connection, source: str, record_ids: Iterable[str], at: datetime) -> int:
    """Close the open quarantine rows of records that loaded (or are gone at the source).

    Most chunks load with nothing of their source open: one probe then spares the UPDATE of every
    id. Call it after the transaction's first write when it can be (see `_none_open`).
    """
    ids = {storable(str(i))[:64] for i in record_ids}
    if not ids or _none_open(connection, source):
        return 0
    return _set_resolved(connection, source, ids, at)


_OPEN = (
    select(literal(1))
    .select_from(quarantine)
    .where(quarantine.c.source == bindparam("source"), quarantine.c.resolved_at.is_(None))
    .limit(1)
)


def _none_open(connection: Connection, source: str) -> bool:
    """True when no quarantine row of `source` is open, and none can open before this commits.

    SQLite: only inside a write transaction (pysqlite begins one at the first write), which holds
    the write lock, so no other stream can quarantine in between; before that the UPDATE decides.
    PostgreSQL (read committed): the UPDATE would see just what the probe sees, committed rows,
    and nothing stops another stream quarantining after either, so skipping it changes nothing.
    """
    in_transaction = getattr(connection.connection.driver_connection, "in_transaction", False)
    if connection.dialect.name == "sqlite" and not in_transaction:
        return False
    return connection.execute(_OPEN, {"source": source}).first() is None


def _set_resolved(connection: Connection, source: str, ids: set[str], at: datetime | None) -> int:
    """Resolve (`at`) or reopen (None) the quarantine rows of these records; how many changed."""
    ordered = sorted(ids)
    statement = _RESOLVE if at is not None else _REOPEN
    changed = 0
    for start in range(0, len(ordered), 500):
        parameters = {"of_source": source, "ids": ordered[start : start + 500], "at": at}
        changed += connection.execute(statement, parameters).rowcount
    return changed


def _set_resolved_statement(resolve: bool) -> Any:
    """UPDATE of the quarantine rows of some records (ids as one expanding bind), built once."""
    resolved_at = quarantine.c.resolved_at
    return (
        update(quarantine)
        .where(
            quarantine.c.source == bindparam("of_source"),
            quarantine.c.record_id.in_(bindparam("ids", expanding=True)),
            resolved_at.is_(None) if resolve else resolved_at.is_not(None),
        )
        .values(resolved_at=bindparam("at", type_=resolved_at.type))
    )


_RESOLVE = _set_resolved_statement(True)
_REOPEN = _set_resolved_statement(False)
