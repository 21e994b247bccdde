"""The Salesforce streams, declared once: object, fields, cursor and how a page is loaded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Table, select

from regsync.config import Settings
from regsync.errors import RecordRejected
from regsync.extract import soql
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

if TYPE_CHECKING:
    from regsync.clients.salesforce import SalesforceClient

PageLoader = Callable[[Connection, list[dict[str, Any]], datetime, str | None, Settings], Counter[str]]
# Fills in, before a page is loaded, fields the bulk query leaves out: (client, settings, window).
Completer = Callable[["SalesforceClient", Settings, datetime | None, datetime | None], "PageCompleter"]
FAILED = "Failed"
ID_BATCH = 200  # ids per query: well under Salesforce's query length limit
S = TypeVar("S")


class PageCompleter(Protocol):
    def fill(self, records: list[dict[str, Any]]) -> None: ...


@dataclass(frozen=True)
class SoqlStream:
    """A Salesforce object pulled incrementally by its cursor field."""

    name: str
    sobject: Callable[[Settings], str]
    fields: Callable[[Settings], list[str]]
    load_page: PageLoader
    cursor: str = "SystemModstamp"
    complete: Completer | None = None

    @property
    def source(self) -> str:
        return f"salesforce.{self.name}"


def _stored_stamps(connection: Connection, table: Table, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Id -> SystemModstamp the warehouse holds, for the records of one page."""
    ids = [r["Id"] for r in records if isinstance(r, dict) and isinstance(r.get("Id"), str)]
    if not ids:
        return {}
    query = select(table.c.id, table.c.system_modstamp).where(table.c.id.in_(ids))
    if "unreadable_parts" in table.c:  # a partly read row is read again, even at the same stamp
        query = query.where(table.c.unreadable_parts.is_(None))
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


@dataclass(frozen=True)
class _ShapedPage(Generic[S]):
    """One page cut down to the records that changed, each normalized or rejected."""

    records: list[dict[str, Any]]  # the records the warehouse does not hold at their SystemModstamp
    shaped: dict[str, S]  # what each normalized to, by id (a repeated id: its last record)
    rows: list[dict[str, Any]]  # their rows, one an id, none older than the warehouse's
    rejected: list[tuple[str, Any, str]]  # (id, record, why) of those that could not be normalized


def _shape_page(
    connection: Connection,
    table: Table,
    records: list[dict[str, Any]],
    normalize: Callable[[dict[str, Any]], S],
    row_of: Callable[[S], dict[str, Any]],
    now: datetime,
) -> _ShapedPage[S]:
    """What every Salesforce page goes through before it is written: the records read again at the
    stamp the warehouse holds dropped, the rest normalized (`row_of` picks the table's row out of
    what `normalize` returns), stamped `synced_at = now`, and kept only when not older than the
    stored row."""
    stored = _stored_stamps(connection, table, records)
    records = _changed(records, stored)
    shaped: dict[str, S] = {}
    rows: list[dict[str, Any]] = []
    rejected: list[tuple[str, Any, str]] = []
    for record in records:
        try:
            one = normalize(record)
        except RecordRejected as exc:
            rejected.append((record_key(record, "Id"), record, str(exc)))
            continue
        row = {**row_of(one), "synced_at": now}
        shaped[row["id"]] = one
        rows.append(row)
    rows = _fresh(list({r["id"]: r for r in rows}.values()), stored)
    return _ShapedPage(records, shaped, rows, rejected)


def load_registrations(
    connection: Connection,
    records: list[dict[str, Any]],
    now: datetime,
    run_id: str | None,
    settings: Settings,
) -> Counter[str]:
    fields = settings.salesforce.registration_fields
    counts: Counter[str] = Counter()
    page = _shape_page(
        connection,
        registrations,
        records,
        lambda r: normalize_registration(r, fields),
        lambda s: s.registration,
        now,
    )
    by_id = page.shaped
    attendees: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    for row in page.rows:
        attendees += by_id[row["id"]].attendees
        sessions += by_id[row["id"]].attendee_sessions
        counts["deleted" if row["is_deleted"] else "rows"] += 1
    upsert(connection, registrations, page.rows, newer_by="system_modstamp")
    ids = [r["id"] for r in page.rows]
    replace_children(connection, registration_attendees, "registration_id", ids, attendees)
    replace_children(connection, registration_attendee_sessions, "registration_id", ids, sessions)
    archive(connection, "salesforce.registrations", ((record_key(r, "Id"), r) for r in page.records), now)
    # A partly read registration is loaded and also stays open in the quarantine, so every run
    # reads it again until it loads fully (a field spoiled on the way is not kept for good).
    partly = {i for i, shaped in by_id.items() if shaped.registration.get("unreadable")}
    rejected = page.rejected + [
        (i, r, by_id[i].registration["unreadable"])
        for r in page.records
        if (i := record_key(r, "Id")) in partly
    ]
    resolve_quarantined(connection, "salesforce.registrations", (i for i in by_id if i not in partly), now)
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
    page = _shape_page(
        connection, sf_sessions, records, lambda r: normalize_session(r, fields), lambda row: row, now
    )
    resolve_quarantined(connection, "salesforce.sessions", page.shaped, now)
    upsert(connection, sf_sessions, page.rows, newer_by="system_modstamp")
    counts["rows"] += len(page.rows)
    archive(connection, "salesforce.sessions", ((record_key(r, "Id"), r) for r in page.records), now)
    counts["quarantined"] += quarantine_records(
        connection, "salesforce.sessions", page.rejected, run_id=run_id, at=now
    )
    return counts


def _bulk_registration_fields(settings: Settings) -> list[str]:
    """The registration query's fields without the error message: one long text area at most.

    Salesforce returns at most 200 records a batch (not 2,000) when a query selects two or more
    long text area fields; the Attendee JSON is one, the error message the other. The message
    means something only on a Failed registration, so it is read for those alone (ErrorMessages).
    """
    fields = settings.salesforce.registration_fields
    return [f for f in registration_select(fields) if f != fields.error_message]


class ErrorMessages:
    """The error messages of the Failed registrations of one window, read in step with its pages.

    One query per window, `Status = 'Failed'` in the same window and order as the bulk query
    (2,000 a batch: it selects one long text area), started only when a page holds a Failed
    registration and read only as far as the bulk pages have gone: memory stays at a page or two.
    A message is taken only at the SystemModstamp the bulk page read; a record that changed
    between the two queries is asked for by Id. Without a window (re-reads of quarantined
    records), by Id only.
    """

    def __init__(
        self, client: SalesforceClient, settings: Settings, lower: datetime | None, upper: datetime | None
    ) -> None:
        self.client = client
        self.settings = settings
        self.fields = settings.salesforce.registration_fields
        self.sobject = settings.salesforce.objects.registration
        self.window = (lower, upper) if lower is not None and upper is not None else None
        self._pages: Iterator[Any] | None = None
        self._buffer: dict[str, tuple[Any, Any]] = {}
        self._reached: tuple[str, str] | None = None  # (SystemModstamp, Id) of the last message read
        self._exhausted = False

    def _key(self, record: dict[str, Any]) -> tuple[str, str]:
        return (str(record.get("SystemModstamp")), str(record.get("Id")))

    def _selected(self) -> list[str]:
        return ["Id", "SystemModstamp", self.fields.error_message]

    def _read_until(self, last: tuple[str, str]) -> None:
        if self.window is None:
            return
        if self._pages is None:
            query = soql.window_where_query(
                self.sobject, self._selected(), "SystemModstamp", *self.window, self.fields.status, FAILED
            )
            self._pages = iter(self.client.iter_pages(query, include_deleted=True))
        while not self._exhausted and (self._reached is None or self._reached < last):
            page = next(self._pages, None)
            if page is None:
                self._exhausted = True
                break
            for record in page.records:
                if isinstance(record, dict):
                    self._buffer[str(record.get("Id"))] = (
                        record.get("SystemModstamp"),
                        record.get(self.fields.error_message),
                    )
                    self._reached = self._key(record)

    def fill(self, records: list[dict[str, Any]]) -> None:
        """Set the error message of each Failed registration of the page, in place."""
        if not self.fields.error_message:
            return
        failed = [
            r
            for r in records
            if isinstance(r, dict) and r.get(self.fields.status) == FAILED and isinstance(r.get("Id"), str)
        ]
        if not failed:
            return
        self._read_until(max(self._key(r) for r in failed))
        missing = []
        for record in failed:
            stamp, message = self._buffer.pop(record["Id"], (None, None))
            if stamp is not None and stamp == record.get("SystemModstamp"):
                record[self.fields.error_message] = message
            else:
                missing.append(record)
        for start in range(0, len(missing), ID_BATCH):
            batch = {r["Id"]: r for r in missing[start : start + ID_BATCH]}
            query = soql.ids_query(self.sobject, self._selected(), batch)
            for page in self.client.iter_pages(query, include_deleted=True):
                for found in page.records:
                    known = batch.get(found.get("Id")) if isinstance(found, dict) else None
                    if known is not None and found.get("SystemModstamp") == known.get("SystemModstamp"):
                        known[self.fields.error_message] = found.get(self.fields.error_message)


REGISTRATIONS = SoqlStream(
    name="registrations",
    sobject=lambda s: s.salesforce.objects.registration,
    fields=_bulk_registration_fields,
    load_page=load_registrations,
    complete=ErrorMessages,
)

SESSIONS = SoqlStream(
    name="sessions",
    sobject=lambda s: s.salesforce.objects.session,
    fields=lambda s: session_select(s.salesforce.session_fields),
    load_page=load_sessions,
)

SOQL_STREAMS: dict[str, SoqlStream] = {stream.name: stream for stream in (SESSIONS, REGISTRATIONS)}
