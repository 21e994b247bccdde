"""The incremental pull of a SOQL stream: bounded windows, page checkpoints, split on timeout.

For each window `[lower, upper)` the query is `cursor >= lower AND cursor < upper ORDER BY cursor, Id`
over queryAll (deleted rows included). Each page is loaded and the watermark moved to the page's
last cursor value *in the same transaction*; a crash therefore resumes at a committed row, and
rows sharing that timestamp are read again (upserts make that harmless) instead of skipped. When
a window is done the watermark moves to its upper bound. `upper` is always `now - safety lag`, so
rows still being committed in Salesforce are left for the next run; the next run starts at
`watermark - lookback` for the same reason.

A wide pull (a first sync, a re-backfill) is read in SystemModstamp slices at once when the first
page of a window shows pages enough to share (regsync.streams.slices): each slice is the same
reading of windows, with its position kept in the plan beside the watermark instead of in the
watermark itself, and the watermark moved only as far as every slice before it has committed.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import Connection

from regsync.clients.salesforce import QueryPage
from regsync.config import SyncSettings
from regsync.errors import QueryLocatorError, QueryTimeoutError, RecordRejected
from regsync.extract import soql
from regsync.extract.context import PullContext, StreamResult
from regsync.normalize.coerce import sf_datetime
from regsync.streams.salesforce import SoqlStream
from regsync.streams.slices import SlicePlan, run_at_once
from regsync.warehouse.archive import open_quarantined, resolve_quarantined
from regsync.warehouse.state import read_state, write_state

log = logging.getLogger("regsync.extract")
MAX_LOCATOR_RESTARTS = 5
RETRY_BATCH = 200  # ids per re-read query: well under Salesforce's query length limit
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _parse_since(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def plan_windows(
    lower: datetime, upper: datetime, width: timedelta | None
) -> list[tuple[datetime, datetime]]:
    """Consecutive windows of at most `width` (None: one window) covering [lower, upper)."""
    windows = []
    start = _floor_second(lower)
    upper = _floor_second(upper)
    if width is None:
        return [(start, upper)] if start < upper else []
    while start < upper:
        end = min(upper, start + width)
        windows.append((start, end))
        start = end
    return windows


def _lower_bound(watermark: datetime | None, since: datetime | None, sync: SyncSettings) -> datetime:
    """Where a pull starts: the look-back before the watermark (never before `since`), or the backfill start."""
    if watermark is None:
        return since if since is not None else _parse_since(sync.backfill_since)
    lower = watermark - timedelta(seconds=sync.lookback_s)
    return max(lower, since) if since is not None else lower


def pull_soql_stream(
    stream: SoqlStream,
    ctx: PullContext,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    state_key: str | None = None,
) -> StreamResult:
    """Pull one stream from its watermark (or `since`) to `until` (at most now - safety lag).

    A wide pull is read in slices at once (regsync.streams.slices): when the first page of a
    window shows pages enough to share, and what is left spans more than `sync.slice_min_days`.
    A plan a killed run left is finished first, whatever the settings say now.
    """
    assert ctx.salesforce is not None, "a Salesforce client is required"
    sync = ctx.settings.sync
    key = state_key or stream.name
    result = StreamResult(stream.name)
    with ctx.engine.connect() as connection:
        state = read_state(connection, key)
        # Quarantined by earlier runs: read again after the windows (this run's wait for the next).
        quarantined = open_quarantined(connection, stream.source) if state_key is None else []
    position = _StreamPosition(key, state.watermark)
    horizon = ctx.now() - timedelta(seconds=sync.safety_lag_s)
    upper = min(until, horizon) if until is not None else horizon
    plan = SlicePlan.from_checkpoint(state.checkpoint)
    if plan is not None:
        log.info("%s: resuming %d slice(s) up to %s", key, len(plan.slices), plan.upper)
        if not _pull_slices(stream, ctx, result, position, plan):
            return result
    lower = _lower_bound(position.at, since, sync)
    windows = plan_windows(lower, upper, timedelta(days=sync.window_days) if sync.window_days else None)
    log.info(
        "%s: pulling %s from %s to %s in %d window(s)",
        key,
        stream.sobject(ctx.settings),
        lower,
        upper,
        len(windows),
    )
    probe = _SliceProbe(sync, _floor_second(upper)) if sync.soql_slices > 1 else None
    reading = _read_windows(stream, ctx, result, windows, position, ctx.should_stop, probe)
    if reading == "split":
        assert probe is not None
        assert probe.plan is not None
        log.info(
            "%s: reading %s..%s in %d slices at once",
            key,
            probe.plan.slices[0].start,
            probe.plan.upper,
            len(probe.plan.slices),
        )
        with ctx.engine.begin() as connection:
            write_state(connection, key, position.at, probe.plan.checkpoint())
        if not _pull_slices(stream, ctx, result, position, probe.plan, probe.total):
            return result
    elif reading == "stopped":
        result.stopped = True
        return result
    retry_quarantined(stream, ctx, result, quarantined)
    return result


Reading = Literal["done", "stopped", "split"]


class _Position(Protocol):
    """Where a reading of windows stands (its last committed cursor), and how it commits."""

    name: str

    @property
    def at(self) -> datetime | None: ...

    def commit(
        self,
        stream: SoqlStream,
        ctx: PullContext,
        records: list[dict[str, Any]],
        last: datetime | None,
        window_end: datetime,
    ) -> Counter[str]:
        """Load one page and move the position to `last` in one transaction; the page's counts."""
        ...

    def window_done(self, ctx: PullContext, end: datetime) -> None: ...

    def total(self, page: QueryPage) -> int | None:
        """The records to expect, for the progress report."""
        ...


class _StreamPosition:
    """The stream's watermark: moved with each page, then to each window's end."""

    def __init__(self, key: str, watermark: datetime | None) -> None:
        self.name = key
        self.at = watermark

    def commit(
        self,
        stream: SoqlStream,
        ctx: PullContext,
        records: list[dict[str, Any]],
        last: datetime | None,
        window_end: datetime,
    ) -> Counter[str]:
        moved = last is not None and (self.at is None or last > self.at)
        with ctx.engine.begin() as connection:
            counts = stream.load_page(connection, records, ctx.now(), ctx.run_id, ctx.settings)
            if moved:
                write_state(connection, self.name, last, {"window_end": window_end.isoformat()})
        if moved:
            self.at = last
        return counts

    def total(self, page: QueryPage) -> int | None:
        return page.total_size

    def window_done(self, ctx: PullContext, end: datetime) -> None:
        if self.at is None or end > self.at:
            with ctx.engine.begin() as connection:
                write_state(connection, self.name, end, None)
            self.at = end


class _SharedPlan:
    """The plan the slices of one pull advance together: one lock for its commits.

    The slices' pages are read at once but loaded one at a time, each with its clock reading
    taken under the lock: `synced_at` grows in commit order, as the booking sessions that follow
    the registrations expect (one writer at a time also suits SQLite).
    """

    def __init__(self, key: str, plan: SlicePlan, floor: datetime | None, total: int | None) -> None:
        self.key = key
        self.plan = plan
        self.total = total  # the records the probe's window held (None: a resumed plan)
        self.floor = floor  # the stream's watermark when the plan started: the prefix never goes below
        self.lock = threading.Lock()

    def commit(
        self,
        index: int,
        ctx: PullContext,
        load: Callable[[Connection], Counter[str]] | None,
        at: datetime | None,
    ) -> Counter[str]:
        with self.lock:
            plan = self.plan.advanced(index, at) if at is not None else self.plan
            counts: Counter[str] = Counter()
            if load is None and plan is self.plan:
                return counts
            with ctx.engine.begin() as connection:
                if load is not None:
                    counts = load(connection)
                if plan is not self.plan:
                    write_state(connection, self.key, plan.watermark(self.floor), plan.checkpoint())
            self.plan = plan
            return counts


class _SlicePosition:
    """One slice's position in the shared plan."""

    def __init__(self, shared: _SharedPlan, index: int) -> None:
        self.shared = shared
        self.index = index
        self.name = f"{shared.key} slice {index + 1}/{len(shared.plan.slices)}"

    @property
    def at(self) -> datetime | None:
        return self.shared.plan.slices[self.index].at

    def commit(
        self,
        stream: SoqlStream,
        ctx: PullContext,
        records: list[dict[str, Any]],
        last: datetime | None,
        window_end: datetime,
    ) -> Counter[str]:
        def load(connection: Connection) -> Counter[str]:
            return stream.load_page(connection, records, ctx.now(), ctx.run_id, ctx.settings)

        return self.shared.commit(self.index, ctx, load, last)

    def window_done(self, ctx: PullContext, end: datetime) -> None:
        self.shared.commit(self.index, ctx, None, end)

    def total(self, page: QueryPage) -> int | None:
        return self.shared.total  # a slice's own count would make the whole look smaller


class _SliceProbe:
    """On the first page of a window: is what is left of the pull worth reading in slices?

    Yes when the window's answer holds at least `slice_min_pages` more pages for each of two slices
    or more (a slice costs a query or two of its own), and what is left spans more than
    `slice_min_days`. The rest, from the page's last cursor to `upper`, is then cut in equal widths.
    """

    def __init__(self, sync: SyncSettings, upper: datetime) -> None:
        self.slices = sync.soql_slices
        self.min_span = timedelta(days=sync.slice_min_days)
        self.min_pages = sync.slice_min_pages
        self.upper = upper
        self.plan: SlicePlan | None = None
        self.total: int | None = None

    def __call__(self, page: QueryPage, last: datetime | None) -> bool:
        if last is None or page.next_records_url is None or not page.records:
            return False
        start = _floor_second(last)
        if self.upper - start <= self.min_span:
            return False
        pages_left = math.ceil((page.total_size - len(page.records)) / len(page.records))
        count = min(self.slices, pages_left // self.min_pages)
        self.plan = SlicePlan.cut(start, self.upper, count) if count >= 2 else None
        self.total = page.total_size
        return self.plan is not None


def _pull_slices(
    stream: SoqlStream,
    ctx: PullContext,
    result: StreamResult,
    position: _StreamPosition,
    plan: SlicePlan,
    total: int | None = None,
) -> bool:
    """Read the plan's slices that are not done, at once; False when asked to stop.

    Each resumes at its own committed cursor less the look-back. When all are done the watermark
    moves to the plan's upper bound and the plan is dropped, in one transaction.
    """
    sync = ctx.settings.sync
    width = timedelta(days=sync.window_days) if sync.window_days else None
    shared = _SharedPlan(position.name, plan, position.at, total)
    lookback = timedelta(seconds=sync.lookback_s)

    def read(index: int, halt: threading.Event) -> StreamResult:
        part = StreamResult(stream.name)
        piece = plan.slices[index]
        start = max(piece.start, piece.at - lookback) if piece.at is not None else piece.start
        windows = plan_windows(start, piece.end, width)

        def should_stop() -> bool:
            return halt.is_set() or ctx.should_stop()

        reading = _read_windows(stream, ctx, part, windows, _SlicePosition(shared, index), should_stop)
        if reading == "stopped":
            halt.set()
            part.stopped = True
        return part

    parts = run_at_once([i for i, s in enumerate(plan.slices) if not s.done], read, f"{stream.name}-slice")
    for part in parts:
        result.counts.update(part.counts)
    result.counts["slices"] += len(parts)
    # A slice that ended without stopping has read to its end; "not done" is only a guard: the
    # plan stays, and the next run resumes it.
    if any(part.stopped for part in parts) or not shared.plan.done:
        result.stopped = True
        return False
    with ctx.engine.begin() as connection:
        write_state(connection, position.name, shared.plan.watermark(position.at), None)
    position.at = shared.plan.watermark(position.at)
    return True


def _read_windows(
    stream: SoqlStream,
    ctx: PullContext,
    result: StreamResult,
    windows: list[tuple[datetime, datetime]],
    position: _Position,
    should_stop: Callable[[], bool],
    probe: Callable[[QueryPage, datetime | None], bool] | None = None,
) -> Reading:
    """Read the windows in order, each page committed with the position; split on QUERY_TIMEOUT,
    restart a lost query locator at the committed position; "split" when `probe` says so."""
    assert ctx.salesforce is not None
    settings = ctx.settings
    sync = settings.sync
    sobject = stream.sobject(settings)
    fields = stream.fields(settings)
    restarts = 0
    while windows:
        start, end = windows.pop(0)
        query = soql.window_query(sobject, fields, stream.cursor, start, end)
        completer = stream.complete(ctx.salesforce, settings, start, end) if stream.complete else None
        try:
            for number, page in enumerate(ctx.salesforce.iter_pages(query, include_deleted=True)):
                result.counts["pages"] += 1
                if completer is not None:
                    completer.fill(page.records)
                last = _last_cursor(page.records, stream.cursor)
                result.counts.update(position.commit(stream, ctx, page.records, last, end))
                ctx.report(stream.name, len(page.records), position.total(page))
                if should_stop():
                    return "stopped"
                if probe is not None and number == 0 and probe(page, last):
                    return "split"
        except QueryTimeoutError:
            if (end - start).total_seconds() <= sync.min_window_s * 2:
                raise
            middle = _floor_second(start + (end - start) / 2)
            log.warning("%s: QUERY_TIMEOUT on %s..%s, splitting the window", position.name, start, end)
            windows[0:0] = [(start, middle), (middle, end)]
            result.counts["window_splits"] += 1
            continue
        except QueryLocatorError:
            restarts += 1
            if restarts > MAX_LOCATOR_RESTARTS:
                raise
            at = position.at
            resume = max(start, _floor_second(at)) if at is not None else start
            log.warning("%s: query locator lost, restarting the window at %s", position.name, resume)
            windows.insert(0, (resume, end))
            result.counts["locator_restarts"] += 1
            continue
        position.window_done(ctx, end)
    return "done"


def retry_quarantined(stream: SoqlStream, ctx: PullContext, result: StreamResult, ids: list[str]) -> None:
    """Read again, by Id, the records of earlier runs that were quarantined and have not loaded since.

    A record can be rejected for a payload spoiled on the way, or for a value the configuration
    did not allow yet; its SystemModstamp does not move for that, so the windows would never
    bring it back. One query per 200 ids; a record the org no longer returns is resolved as gone.
    """
    assert ctx.salesforce is not None
    ids = [i for i in ids if _SALESFORCE_ID.fullmatch(i)]
    if not ids:
        return
    settings = ctx.settings
    sobject, fields = stream.sobject(settings), stream.fields(settings)
    for start in range(0, len(ids), RETRY_BATCH):
        batch = ids[start : start + RETRY_BATCH]
        records = [
            record
            for page in ctx.salesforce.iter_pages(
                soql.ids_query(sobject, fields, batch), include_deleted=True
            )
            for record in page.records
        ]
        if stream.complete is not None:
            stream.complete(ctx.salesforce, settings, None, None).fill(records)
        returned = {str(record.get("Id")) for record in records if isinstance(record, dict)}
        with ctx.engine.begin() as connection:
            counts = stream.load_page(connection, records, ctx.now(), ctx.run_id, settings)
            gone = [i for i in batch if i not in returned]
            resolve_quarantined(connection, stream.source, gone, ctx.now())
        result.counts.update(counts)
        result.counts["quarantine_retried"] += len(batch)
        if gone:
            log.warning(
                "%s: %d quarantined record(s) no longer returned by Salesforce", stream.name, len(gone)
            )


def _last_cursor(records: list[dict[str, object]], cursor: str) -> datetime | None:
    """The cursor value of the page's last parseable record (pages are ordered by the cursor)."""
    for record in reversed(records):
        value = record.get(cursor) if isinstance(record, dict) else None
        try:
            return sf_datetime(value, cursor)
        except RecordRejected:  # a broken cursor (that record is quarantined): use the one before
            continue
    return None
