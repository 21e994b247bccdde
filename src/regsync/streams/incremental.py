"""The incremental pull of a SOQL stream: bounded windows, page checkpoints, split on timeout.

For each window `[lower, upper)` the query is `cursor >= lower AND cursor < upper ORDER BY cursor, Id`
over queryAll (deleted rows included). Each page is loaded and the watermark moved to the page's
last cursor value *in the same transaction*; a crash therefore resumes at a committed row, and
rows sharing that timestamp are read again (upserts make that harmless) instead of skipped. When
a window is done the watermark moves to its upper bound. `upper` is always `now - safety lag`, so
rows still being committed in Salesforce are left for the next run; the next run starts at
`watermark - lookback` for the same reason.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

from regsync.errors import QueryLocatorError, QueryTimeoutError, RecordRejected
from regsync.extract import soql
from regsync.extract.context import PullContext, StreamResult
from regsync.normalize.coerce import sf_datetime
from regsync.streams.salesforce import SoqlStream
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


def pull_soql_stream(
    stream: SoqlStream,
    ctx: PullContext,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    state_key: str | None = None,
) -> StreamResult:
    """Pull one stream from its watermark (or `since`) to `until` (at most now - safety lag)."""
    assert ctx.salesforce is not None, "a Salesforce client is required"
    settings = ctx.settings
    sync = settings.sync
    key = state_key or stream.name
    result = StreamResult(stream.name)
    with ctx.engine.connect() as connection:
        state = read_state(connection, key)
        # Quarantined by earlier runs: read again after the windows (this run's wait for the next).
        quarantined = open_quarantined(connection, stream.source) if state_key is None else []
    watermark = state.watermark
    horizon = ctx.now() - timedelta(seconds=sync.safety_lag_s)
    upper = min(until, horizon) if until is not None else horizon
    if watermark is not None:
        lower = watermark - timedelta(seconds=sync.lookback_s)
        if since is not None:
            lower = max(lower, since)
    else:
        lower = since if since is not None else _parse_since(sync.backfill_since)
    windows = plan_windows(lower, upper, timedelta(days=sync.window_days) if sync.window_days else None)
    sobject = stream.sobject(settings)
    fields = stream.fields(settings)
    restarts = 0
    log.info("%s: pulling %s from %s to %s in %d window(s)", key, sobject, lower, upper, len(windows))
    while windows:
        start, end = windows.pop(0)
        query = soql.window_query(sobject, fields, stream.cursor, start, end)
        completer = stream.complete(ctx.salesforce, settings, start, end) if stream.complete else None
        try:
            for page in ctx.salesforce.iter_pages(query, include_deleted=True):
                result.counts["pages"] += 1
                if completer is not None:
                    completer.fill(page.records)
                last = _last_cursor(page.records, stream.cursor)
                with ctx.engine.begin() as connection:
                    counts = stream.load_page(connection, page.records, ctx.now(), ctx.run_id, settings)
                    if last is not None and (watermark is None or last > watermark):
                        watermark = last
                        write_state(connection, key, watermark, {"window_end": end.isoformat()})
                result.counts.update(counts)
                ctx.report(stream.name, len(page.records), page.total_size)
                if ctx.should_stop():
                    result.stopped = True
                    return result
        except QueryTimeoutError:
            if (end - start).total_seconds() <= sync.min_window_s * 2:
                raise
            middle = _floor_second(start + (end - start) / 2)
            log.warning("%s: QUERY_TIMEOUT on %s..%s, splitting the window", key, start, end)
            windows[0:0] = [(start, middle), (middle, end)]
            result.counts["window_splits"] += 1
            continue
        except QueryLocatorError:
            restarts += 1
            if restarts > MAX_LOCATOR_RESTARTS:
                raise
            resume = max(start, _floor_second(watermark)) if watermark is not None else start
            log.warning("%s: query locator lost, restarting the window at %s", key, resume)
            windows.insert(0, (resume, end))
            result.counts["locator_restarts"] += 1
            continue
        if watermark is None or end > watermark:
            watermark = end
            with ctx.engine.begin() as connection:
                write_state(connection, key, watermark, None)
    retry_quarantined(stream, ctx, result, quarantined)
    return result


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
