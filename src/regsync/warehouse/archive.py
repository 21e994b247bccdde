"""The raw archive (every fetched payload, once per distinct content) and the quarantine."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from regsync.warehouse.tables import quarantine, raw_archive
from regsync.warehouse.upsert import upsert


def payload_text(payload: Any) -> str:
    """Canonical JSON of a payload (sorted keys), so equal content hashes equally."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(payload)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def record_key(payload: Any, *candidates: str) -> str:
    """The id to file a payload under; '?' when a broken record has none."""
    if isinstance(payload, dict):
        for name in candidates:
            value = payload.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)[:64]
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
    rows = []
    for record_id, payload, reason in items:
        text = payload_text(payload)
        rows.append(
            {
                "source": source,
                "record_id": record_id,
                "content_hash": content_hash(text),
                "reason": reason,
                "payload": text,
                "run_id": run_id,
                "quarantined_at": at,
            }
        )
    upsert(connection, quarantine, _unique(rows), update=False)
    return len(rows)


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        seen[(row["source"], row["record_id"], row["content_hash"])] = row
    return list(seen.values())
