"""Fill a warehouse straight from a sandbox's store, in-process, with regsync's own loaders.

For benchmarks of what comes after the pull (reconcile, actions) at sizes where pulling over
HTTP would take longer than the thing measured. Records take the same path through normalize and
the warehouse loaders as in a real pull; only the sockets are skipped (`Sandbox.dispatch`).
"""

from __future__ import annotations

import base64
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from regsync.clients.checkfront import BookingSessionRead
from regsync.config import Settings
from regsync.sandbox import DEMO, Sandbox
from regsync.streams.checkfront import (
    bookings_needing_lines,
    keyset_pages,
    load_booking_details,
    load_booking_index_page,
    load_booking_session_reads,
    registration_sessions_to_read,
)
from regsync.streams.salesforce import REGISTRATIONS, SESSIONS

PAGE = 2000
AUTH = {
    "authorization": "Basic " + base64.b64encode(f"{DEMO.cf_api_key}:{DEMO.cf_api_secret}".encode()).decode()
}


def _get(sandbox: Sandbox, path: str, **query: str) -> dict[str, Any]:
    response = sandbox.dispatch("GET", f"/api/3.0{path}", {k: [v] for k, v in query.items()}, headers=AUTH)
    return orjson.loads(response.body)


def fill_warehouse(sandbox: Sandbox, engine: Engine, settings: Settings, now: datetime) -> Counter[str]:
    counts: Counter[str] = Counter()
    store = sandbox.store
    for stream in (SESSIONS, REGISTRATIONS):
        sobject = stream.sobject(settings)
        rows = sorted(store.salesforce.tables[sobject].values(), key=lambda r: (r["SystemModstamp"], r["Id"]))
        for start in range(0, len(rows), PAGE):
            page = [{"attributes": {"type": sobject}, **r} for r in rows[start : start + PAGE]]
            with engine.begin() as connection:
                counts.update(stream.load_page(connection, page, now, None, settings))
        del rows

    def sessions_page(connection: Any, after: Any, size: int) -> list[Any]:
        return registration_sessions_to_read(connection, None, after and after[:2], size)

    for keys in keyset_pages(engine, sessions_page, 500):
        chunk = sorted({key[2] for key in keys})
        reads = []
        for session_id in chunk:
            session = _get(sandbox, "/booking/session", session_id=session_id)["booking"]["session"]
            reads.append((session_id, BookingSessionRead(session_id, session)))
        with engine.begin() as connection:
            counts.update(load_booking_session_reads(connection, reads, now, None))
    page_number, pages = 1, 1
    while page_number <= pages:
        body = _get(sandbox, "/booking/index", limit="250", page=str(page_number))
        pages = int(body["request"]["pages"])
        index = body["booking/index"] or {}
        with engine.begin() as connection:
            counts.update(load_booking_index_page(connection, list(index.values()), now, None))
        page_number += 1
    with engine.connect() as connection:
        codes = bookings_needing_lines(connection)
    for start in range(0, len(codes), 500):
        answers: list[tuple[str, Any]] = [
            (code, _get(sandbox, f"/booking/{code}")["booking"]) for code in codes[start : start + 500]
        ]
        with engine.begin() as connection:
            counts.update(load_booking_details(connection, answers, now, None))
    return counts
