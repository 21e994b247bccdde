"""The Checkfront streams: booking sessions registrations point at, the booking index, booking lines.

Checkfront has no listing of booking sessions, so the sessions read are exactly those the
warehouse's registrations name and that can still change: never read yet or last seen alive.

A booking's lines are read again whenever the booking index shows it modified after the last
complete index pass (lines can change without the status or totals changing); a booking a
registration names that the index window did not bring is read by its code, whatever its age.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, bindparam, or_, select, tuple_, update

from regsync.clients.checkfront import BookingSessionRead, IndexPage
from regsync.errors import ApiError, RecordRejected
from regsync.extract.context import PullContext, StreamResult, Upstream
from regsync.normalize.checkfront import (
    missing_booking_session,
    normalize_booking_index_entry,
    normalize_booking_lines,
    normalize_booking_session,
)
from regsync.warehouse.archive import (
    archive,
    open_quarantined,
    open_quarantined_payloads,
    quarantine_records,
    record_key,
    resolve_quarantined,
)
from regsync.warehouse.state import read_state, write_state
from regsync.warehouse.tables import (
    booking_lines,
    booking_session_lines,
    booking_sessions,
    bookings,
    registrations,
)
from regsync.warehouse.upsert import replace_children, upsert

log = logging.getLogger("regsync.extract")
CHUNK = 256
# Where each stream's raw payloads are archived and its rejected records quarantined.
SESSIONS_SOURCE = "checkfront.booking_sessions"
BOOKINGS_SOURCE = "checkfront.bookings"
DETAILS_SOURCE = "checkfront.booking_details"
_BOOKING_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a booking id or code, nothing else


def keyset_pages(
    engine: Engine, page: Callable[[Connection, Any, int], list[Any]], size: int = CHUNK, start: Any = None
) -> Iterator[list[Any]]:
    """Pages of keys in order (after `start`), each asked for after the last key of the one before.

    Memory stays flat whatever the backlog, and a key whose read failed (and so was not written)
    is not asked for again in the same run.
    """
    after = start
    while True:
        with engine.connect() as connection:
            keys = page(connection, after, size)
        if not keys:
            return
        yield keys
        after = keys[-1]


def read_in_window(
    ctx: PullContext,
    result: StreamResult,
    read: Callable[[str], Any],
    keys: Iterable[str],
    load: Callable[[Connection, list[tuple[str, Any]]], Counter[str]],
    *,
    stream: str | None = None,
) -> bool:
    """Read every key through the run's sliding window of calls; load the answers CHUNK at a time, in order.

    Each chunk is committed in its own transaction while the next calls are in flight, so a
    crash loses at most the calls of one window. False when asked to stop (all read so far is
    committed).
    """
    assert ctx.checkfront is not None
    batch: list[tuple[str, Any]] = []

    def flush() -> None:
        with ctx.engine.begin() as connection:
            result.counts.update(load(connection, batch))
        ctx.report(stream or result.stream, len(batch), None)
        batch.clear()

    answers = ctx.checkfront.read_many(read, keys)
    try:
        for pair in answers:
            batch.append(pair)
            if len(batch) >= CHUNK:
                flush()
                if ctx.should_stop():
                    result.stopped = True
                    return False
        if batch:
            flush()
    finally:
        answers.close()
    if ctx.should_stop():
        result.stopped = True
        return False
    return True


def _keys_page(
    connection: Connection, query: Select[Any], key: ColumnElement[str], after: str | None, limit: int | None
) -> list[str]:
    """One keyset page of single keys: the `key` values of `query` after `after`, in `key` order."""
    query = query.order_by(key).limit(limit)
    if after is not None:
        query = query.where(key > after)
    return [row[0] for row in connection.execute(query)]


def _registrations_page(
    connection: Connection,
    query: Select[Any],
    changed_since: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int | None,
) -> list[tuple[datetime, str, str]]:
    """One keyset page of (synced_at, registration id, value) rows: registrations synced since
    `changed_since`, after `after`, in the order of their (synced_at, id) index."""
    r = registrations
    query = query.order_by(r.c.synced_at, r.c.id).limit(limit)
    if changed_since is not None:
        query = query.where(r.c.synced_at >= changed_since)
    if after is not None:
        query = query.where(tuple_(r.c.synced_at, r.c.id) > tuple_(after[0], after[1]))
    return [(row[0], row[1], row[2]) for row in connection.execute(query)]


def registration_sessions_to_read(
    connection: Connection,
    changed_since: datetime | None,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[tuple[datetime, str, str]]:
    """(synced_at, registration id, booking session id) of registrations whose session needs a read.

    A session needs a read when it was never read, or was seen alive before the registration last
    changed. A Completed registration's session is read too: its booking usually ended the cart,
    but a cart that is still alive and idle behind it is stale (docs/rules.md) and only a read
    can tell. Only registrations synced since `changed_since` (the start of the last complete
    pass; None: all) are looked at, in (synced_at, id) order on their index, so a pass costs what
    changed since the last one, not the size of the warehouse.
    """
    r, b = registrations, booking_sessions
    query = (
        select(r.c.synced_at, r.c.id, r.c.booking_session_id)
        .select_from(r.outerjoin(b, b.c.id == r.c.booking_session_id))
        .where(r.c.booking_session_id.is_not(None))
        .where(or_(b.c.id.is_(None), and_(b.c.state == "alive", r.c.system_modstamp > b.c.read_at)))
    )
    return _registrations_page(connection, query, changed_since, after, limit)


def booking_sessions_due(
    connection: Connection, refresh_before: datetime, after: str | None = None, limit: int | None = None
) -> list[str]:
    """Ids of alive booking sessions a registration names, last read before `refresh_before`.

    An alive cart can expire or change without its registration changing: it is read again once
    its read is older than the refresh interval. Missing ones never are (an expired cart does not
    come back).
    """
    r, b = registrations, booking_sessions
    query = (
        select(b.c.id)
        .where(b.c.state == "alive")
        .where(b.c.read_at < refresh_before)
        .where(select(r.c.id).where(r.c.booking_session_id == b.c.id).exists())
    )
    return _keys_page(connection, query, b.c.id, after, limit)


def load_booking_session_reads(
    connection: Connection,
    reads: list[tuple[str, BookingSessionRead | ApiError]],
    now: datetime,
    run_id: str | None,
    not_loaded: set[str] | None = None,
) -> Counter[str]:
    """Write one chunk of booking-session reads: alive ones with their lines, the rest missing.

    `not_loaded` collects the ids whose read failed or was quarantined.
    """
    counts: Counter[str] = Counter()
    rows, lines, rejected, archived = [], [], [], []
    failed = not_loaded if not_loaded is not None else set()
    for session_id, read in reads:
        if isinstance(read, ApiError):
            counts["errors"] += 1
            failed.add(session_id)
            log.warning("booking_sessions: %s could not be read: %s", session_id, read)
            continue
        archived.append((session_id, read.session))
        try:
            shaped = (
                normalize_booking_session(read.session, now)
                if read.found
                else missing_booking_session(session_id, now)
            )
        except RecordRejected as exc:
            rejected.append((session_id, read.session, str(exc)))
            failed.add(session_id)
            continue
        rows.append(shaped.booking_session)
        lines += shaped.lines
        counts["alive" if read.found else "missing"] += 1
    upsert(connection, booking_sessions, rows)
    replace_children(connection, booking_session_lines, "booking_session_id", [r["id"] for r in rows], lines)
    resolve_quarantined(connection, SESSIONS_SOURCE, (r["id"] for r in rows), now)  # after a write
    archive(connection, SESSIONS_SOURCE, archived, now)
    counts["quarantined"] += quarantine_records(connection, SESSIONS_SOURCE, rejected, run_id=run_id, at=now)
    counts["rows"] += len(rows)
    return counts


def pull_booking_sessions(ctx: PullContext, upstream: Upstream | None = None) -> StreamResult:
    """Read the booking sessions registrations need; record alive ones with lines, the rest missing.

    Three passes: sessions of registrations synced since the last complete pass (the stream's
    watermark), alive sessions due for a refresh, and sessions whose read an earlier run had to
    quarantine. With `upstream` (the registrations stream, running at the same time) the first
    pass reads in rounds: what registrations have committed so far, again after each later
    commit, and once more after their end. A session read in this pass drops out of the next
    round by itself (it is no longer unread, nor read before its registration changed); a read
    that failed is left to the next run. The watermark moves to the start of the last round (every
    registration synced before it was looked at) only when the registrations finished and no read
    failed, so an unread session is looked at again next time.
    """
    assert ctx.checkfront is not None, "a Checkfront client is required"
    result = StreamResult("booking_sessions")
    started = ctx.now()
    refresh_before = started - timedelta(seconds=ctx.settings.sync.booking_session_refresh_s)
    with ctx.engine.connect() as connection:
        changed_since = read_state(connection, "booking_sessions").watermark
        # Reads of earlier runs that were quarantined: read again until they load.
        quarantined = open_quarantined(connection, SESSIONS_SOURCE)
    not_loaded: set[str] = set()  # read in an earlier round, failed or quarantined: not again this run

    def changed(connection: Connection, after: Any, size: int) -> list[tuple[datetime, str, str]]:
        return registration_sessions_to_read(connection, changed_since, after and after[:2], size)

    resume: tuple[datetime, str] | None = None  # where a round while the registrations run starts

    def round_keys(start: tuple[datetime, str] | None) -> Iterator[str]:
        nonlocal resume
        for keys in keyset_pages(ctx.engine, changed, start=start):
            # The registrations commit in synced_at order: the next round starts at this page's
            # last time (all of its ids), not at the first registration again.
            resume = (keys[-1][0], "")
            yield from sorted({k[2] for k in keys} - not_loaded)

    def due(connection: Connection, after: Any, size: int) -> list[str]:
        return booking_sessions_due(connection, refresh_before, after, size)

    def load(connection: Connection, reads: list[tuple[str, Any]]) -> Counter[str]:
        return load_booking_session_reads(connection, reads, ctx.now(), ctx.run_id, not_loaded)

    covered = started  # every registration synced before this was looked at by the first pass
    seen, ended = 0, upstream is None
    while True:
        if not ended:
            assert upstream is not None
            seen, ended = upstream.wait(seen)
            if ended:
                covered = ctx.now()  # the last round: it sees every registration committed
        # The last round looks at every registration synced since the watermark again (cheap:
        # what was read drops out by itself), so a clock step back cannot hide one.
        keys = round_keys(None if ended else resume)
        if not read_in_window(ctx, result, ctx.checkfront.get_booking_session, keys, load):
            return result
        if ended:
            break
    if upstream is not None and not upstream.succeeded:
        return result  # the registrations failed or stopped: the next run looks again
    for pass_keys in (  # one after another: a pass must see what the one before wrote
        (key for page in keyset_pages(ctx.engine, due) for key in page),
        quarantined,
    ):
        if not read_in_window(ctx, result, ctx.checkfront.get_booking_session, pass_keys, load):
            return result
    if not result.counts["errors"]:
        with ctx.engine.begin() as connection:
            write_state(connection, "booking_sessions", covered)
    return result


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _index_passes(ctx: PullContext, state: Any, backfill_since: datetime | None) -> list[tuple[int, bool]]:
    """The index reads of one run: (last_modified lower bound, every entry counts as modified).

    An incremental run reads `last_modified > watermark` first: everything there changed after the
    last complete pass read the index, so its lines are read again even when status and totals
    are equal (a line moved at the same price, a free seat). It then reads the lookback before the
    watermark (rows the last pass may have missed while they were being committed); those were
    read already, so their lines are read again only when an index field differs. The first run
    reads `booking_window_days` back; a backfill reads from `--since` (Checkfront filters one
    bound only, so everything modified since then, `--until` or not).
    """
    settings = ctx.settings.sync
    if backfill_since is not None:
        since = _epoch(backfill_since)
        if state.watermark is not None:  # a finished backfill of this range: only what changed since
            since = max(since, _epoch(state.watermark) - settings.lookback_s)
        return [(since, False)]
    if state.watermark is None:
        return [(_epoch(ctx.now()) - settings.booking_window_days * 86400, True)]
    watermark = _epoch(state.watermark)
    passes = [(watermark, True)]
    if settings.lookback_s > 0:
        passes.append((watermark - settings.lookback_s, False))
    return passes


def pull_bookings(
    ctx: PullContext, *, since: datetime | None = None, state_key: str | None = None
) -> StreamResult:
    """Page through the booking index changed since the watermark (or `since`); resumable by page.

    The checkpoint holds the run's passes, the pass and the last page loaded; the watermark moves
    only when every pass is done.
    """
    assert ctx.checkfront is not None, "a Checkfront client is required"
    settings = ctx.settings.sync
    key = state_key or "bookings"
    result = StreamResult("bookings")
    with ctx.engine.connect() as connection:
        state = read_state(connection, key)
        quarantined = open_quarantined_payloads(connection, BOOKINGS_SOURCE) if state_key is None else {}
    checkpoint = state.checkpoint or {}
    if checkpoint.get("passes") is not None:
        passes = [(int(bound), bool(modified)) for bound, modified in checkpoint["passes"]]
        started = int(checkpoint["started"])
        first_pass, start_page = int(checkpoint["pass"]), int(checkpoint["page"]) + 1
    elif checkpoint.get("since") is not None:  # a checkpoint of the single-pass form: lines re-read
        passes = [(int(checkpoint["since"]), True)]
        started = int(checkpoint["started"])
        first_pass, start_page = 0, int(checkpoint["page"]) + 1
    else:
        passes = _index_passes(ctx, state, since)
        started = _epoch(ctx.now())
        first_pass, start_page = 0, 1
    for number in range(first_pass, len(passes)):
        bound, modified = passes[number]
        filters = {"last_modified": f">{bound}"}
        for page in index_pages(ctx, filters, start_page):
            now = ctx.now()
            with ctx.engine.begin() as connection:
                counts = load_booking_index_page(
                    connection, page.bookings, now, ctx.run_id, modified=modified
                )
                write_state(
                    connection,
                    key,
                    state.watermark,
                    {"passes": passes, "started": started, "pass": number, "page": page.page},
                )
            result.counts.update(counts)
            result.counts["pages"] += 1
            ctx.report("bookings", len(page.bookings), page.total_records)
            if ctx.should_stop():
                result.stopped = True
                return result
        start_page = 1
    retry_quarantined_bookings(ctx, result, quarantined)
    watermark = datetime.fromtimestamp(started - settings.safety_lag_s, tz=ctx.now().tzinfo)
    if state.watermark is not None and state.watermark > watermark:
        watermark = state.watermark
    with ctx.engine.begin() as connection:
        write_state(connection, key, watermark, None)
    return result


def index_pages(ctx: PullContext, filters: dict[str, Any], start_page: int) -> Iterator[IndexPage]:
    """The index pages from `start_page` on, in order; once the first gives `pages`, the rest concurrently.

    Pages are yielded (and so committed with their checkpoint) in order, whatever order they
    arrive in. A page count that grows while reading (bookings added) is followed; an empty page
    ends the index.
    """
    assert ctx.checkfront is not None
    client = ctx.checkfront
    first = client.booking_index_page(start_page, filters=filters)
    yield first
    known, following = first.pages, start_page + 1
    if not first.bookings:
        return
    while following <= known:
        wanted = range(following, known + 1)
        for number, page in client.read_many(lambda n: client.booking_index_page(n, filters=filters), wanted):
            if isinstance(page, ApiError):
                raise page
            yield page
            known = max(known, page.pages)
            following = number + 1
            if not page.bookings:
                return


def _index_entry(booking: dict[str, Any]) -> dict[str, Any]:
    """A booking as GET /booking/{id} shows it, in the form of a booking/index entry.

    The detail carries the index's fields, the money under `order` and the customer under
    `customer` (the field set of Checkfront's booking webhook; the JSON form is unconfirmed).
    """
    order: dict[str, Any] = booking["order"] if isinstance(booking.get("order"), dict) else {}
    customer: dict[str, Any] = booking["customer"] if isinstance(booking.get("customer"), dict) else {}
    entry = {k: booking.get(k) for k in ("booking_id", "code", "status_id", "status_name", "created_date")}
    entry |= {k: order.get(k) for k in ("total", "tax_total", "paid_total")}
    entry |= {"customer_name": customer.get("name"), "customer_email": customer.get("email")}
    return entry | {"summary": booking.get("summary")}


def _booking_ref(record_id: str, payload: str) -> str | None:
    """What to ask GET /booking/{ref} for a quarantined index entry: its id, else its code.

    Taken from the payload by type (a spoiled field has the wrong JSON type), not from the record
    id, which may be a spoiled id read as text.
    """
    try:
        entry = orjson.loads(payload)
    except orjson.JSONDecodeError:
        entry = None
    if isinstance(entry, dict):
        booking_id, code = entry.get("booking_id"), entry.get("code")
        if isinstance(booking_id, int) and not isinstance(booking_id, bool) and booking_id > 0:
            return str(booking_id)
        if isinstance(booking_id, str) and booking_id.isascii() and booking_id.isdigit():
            return booking_id
        if isinstance(code, str) and _BOOKING_REF.fullmatch(code):
            return code
        return None
    return record_id if _BOOKING_REF.fullmatch(record_id) else None


def retry_quarantined_bookings(ctx: PullContext, result: StreamResult, quarantined: dict[str, str]) -> None:
    """Read again, one by one, index entries of earlier runs that were quarantined.

    The index cannot be asked for one booking, and a spoiled entry's booking need not change
    again, so its last_modified would never bring it back: GET /booking/{id} does. A booking
    Checkfront no longer knows is resolved as gone.
    """
    assert ctx.checkfront is not None
    refs = {rid: ref for rid, payload in quarantined.items() if (ref := _booking_ref(rid, payload))}
    ids = sorted(refs)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        answers = ctx.checkfront.concurrently(ctx.checkfront.get_booking, [refs[rid] for rid in chunk])
        entries, gone, loaded = [], [], {}
        for record_id, answer in zip(chunk, answers, strict=True):
            if isinstance(answer, ApiError):
                result.counts["errors"] += 1
                log.warning(
                    "bookings: quarantined booking %s could not be read again: %s", refs[record_id], answer
                )
            elif answer is None:
                gone.append(record_id)
            else:
                entries.append(_index_entry(answer))
                loaded[record_id] = answer.get("booking_id")
        with ctx.engine.begin() as connection:
            result.counts.update(load_booking_index_page(connection, entries, ctx.now(), ctx.run_id))
            present = set(
                connection.execute(
                    select(bookings.c.booking_id).where(
                        bookings.c.booking_id.in_([b for b in loaded.values() if isinstance(b, int)])
                    )
                ).scalars()
            )
            done = [rid for rid, booking_id in loaded.items() if booking_id in present]
            resolve_quarantined(connection, BOOKINGS_SOURCE, gone + done, ctx.now())
        result.counts["quarantine_retried"] += len(chunk)


# Statements run for every chunk, built once (a list of ids would make one bind each, every call).
_CODE_HOLDERS = select(bookings.c.code, bookings.c.booking_id).where(
    bookings.c.code.in_(bindparam("codes", expanding=True))
)
_MARK_FETCHED = (
    update(bookings)
    .where(bookings.c.booking_id.in_(bindparam("booking_ids", expanding=True)))
    .values(detail_fetched=True)
)


def _unique_codes(
    connection: Connection, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Rows whose booking code no other booking holds (in the page or the warehouse), and the rest.

    A code names one booking: registrations find their booking by it. Two bookings with one code
    cannot both be right, so the later one waits in quarantine rather than failing the page.
    """
    holder: dict[str, int] = {}
    codes = sorted({row["code"] for row in rows})
    for start in range(0, len(codes), 500):
        found = connection.execute(_CODE_HOLDERS, {"codes": codes[start : start + 500]})
        holder.update({code: booking_id for code, booking_id in found})
    kept, rejected = [], []
    for row in rows:
        owner = holder.setdefault(row["code"], row["booking_id"])
        if owner == row["booking_id"]:
            kept.append(row)
        else:
            rejected.append((row, f"booking code {row['code']!r} already belongs to booking {owner}"))
    return kept, rejected


def load_booking_index_page(
    connection: Connection,
    entries: list[dict[str, Any]],
    now: datetime,
    run_id: str | None,
    *,
    modified: bool = True,
) -> Counter[str]:
    """Write one page of index entries; their lines are to be read again unless known current.

    modified: the entries changed after their lines were last read (they came from the part of
    the index past the watermark, or from a read by id). Otherwise a booking keeps its fetched
    lines only when every field the index carries is what the warehouse holds.
    """
    counts: Counter[str] = Counter()
    rows, rejected, raw = [], [], {}
    for entry in entries:
        try:
            rows.append(normalize_booking_index_entry(entry, now))
        except RecordRejected as exc:
            rejected.append((record_key(entry, "booking_id", "code"), entry, str(exc)))
        else:
            raw[rows[-1]["booking_id"]] = entry
    rows = list({r["booking_id"]: r for r in rows}.values())
    rows, taken = _unique_codes(connection, rows)
    rejected += [(str(row["booking_id"]), raw[row["booking_id"]], reason) for row, reason in taken]
    # Quarantined under its id, or under its code when the id was the broken part.
    loaded = [key for row in rows for key in (str(row["booking_id"]), row["code"])]
    if rows and not modified:
        compared = [c for c in rows[0] if c not in ("detail_fetched", "synced_at")]
        stored = {
            row.booking_id: row
            for row in connection.execute(
                select(bookings).where(bookings.c.booking_id.in_([r["booking_id"] for r in rows]))
            )
        }
        for row in rows:
            old = stored.get(row["booking_id"])
            if old is not None and old.detail_fetched and all(getattr(old, c) == row[c] for c in compared):
                row["detail_fetched"] = True
    upsert(connection, bookings, rows)
    resolve_quarantined(connection, BOOKINGS_SOURCE, loaded, now)  # after a write
    archive(connection, BOOKINGS_SOURCE, ((record_key(e, "booking_id", "code"), e) for e in entries), now)
    counts["rows"] += len(rows)
    counts["quarantined"] += quarantine_records(connection, BOOKINGS_SOURCE, rejected, run_id=run_id, at=now)
    return counts


def bookings_needing_lines(
    connection: Connection, after: str | None = None, limit: int | None = None
) -> list[str]:
    """Codes of bookings a registration names whose lines are not (or no longer) in the warehouse."""
    query = (
        select(bookings.c.code)
        .distinct()
        .select_from(bookings.join(registrations, registrations.c.booking_code == bookings.c.code))
        .where(bookings.c.detail_fetched == False)  # noqa: E712 (= 0 uses the index; IS 0 does not)
    )
    return _keys_page(connection, query, bookings.c.code, after, limit)


def load_booking_details(
    connection: Connection,
    answers: Sequence[tuple[str, dict[str, Any] | ApiError | None]],
    now: datetime,
    run_id: str | None,
) -> Counter[str]:
    """Write the lines of one chunk of booking details and mark those bookings fetched."""
    counts: Counter[str] = Counter()
    fetched: list[int] = []
    loaded: list[str] = []
    lines: list[dict[str, Any]] = []
    rejected, archived = [], []
    for code, answer in answers:
        if isinstance(answer, ApiError):
            counts["errors"] += 1
            continue
        if answer is None:
            counts["not_found"] += 1
            continue
        archived.append((code, answer))
        try:
            booking_id, booking_rows = normalize_booking_lines(answer)
        except RecordRejected as exc:
            rejected.append((code, answer, str(exc)))
            continue
        fetched.append(booking_id)
        loaded.append(code)
        lines += booking_rows
    replace_children(connection, booking_lines, "booking_id", fetched, lines)
    for start in range(0, len(fetched), 500):
        connection.execute(_MARK_FETCHED, {"booking_ids": fetched[start : start + 500]})
    archive(connection, DETAILS_SOURCE, archived, now)
    resolve_quarantined(connection, DETAILS_SOURCE, loaded, now)
    counts["quarantined"] += quarantine_records(connection, DETAILS_SOURCE, rejected, run_id=run_id, at=now)
    counts["rows"] += len(fetched)
    return counts


def codes_missing_from_warehouse(
    connection: Connection,
    changed_since: datetime | None,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[tuple[datetime, str, str]]:
    """(synced_at, registration id, code) of registrations whose booking code names no stored booking.

    Only registrations synced since `changed_since` (the start of the last complete pass) are
    looked at: a code Checkfront does not know is asked for again when its registration changes,
    not on every run.
    """
    r = registrations
    query = (
        select(r.c.synced_at, r.c.id, r.c.booking_code)
        .where(r.c.booking_code.is_not(None))
        .where(~select(bookings.c.booking_id).where(bookings.c.code == r.c.booking_code).exists())
    )
    return _registrations_page(connection, query, changed_since, after, limit)


def load_bookings_read_by_code(
    connection: Connection,
    answers: Sequence[tuple[str, dict[str, Any] | ApiError | None]],
    now: datetime,
    run_id: str | None,
) -> Counter[str]:
    """Write bookings read by code: the booking as an index entry, then its lines (one answer, both)."""
    counts: Counter[str] = Counter()
    found = [(code, answer) for code, answer in answers if isinstance(answer, dict)]
    for code, answer in answers:
        if isinstance(answer, ApiError):
            counts["errors"] += 1
            log.warning("bookings: booking %s named by a registration could not be read: %s", code, answer)
        elif answer is None:
            counts["not_found"] += 1
    index = load_booking_index_page(connection, [_index_entry(a) for _, a in found], now, run_id)
    counts["by_code"] += index["rows"]
    counts["quarantined"] += index["quarantined"]
    details = load_booking_details(connection, found, now, run_id)
    counts["rows"] += details["rows"]
    counts["quarantined"] += details["quarantined"]
    return counts


def pull_bookings_by_code(ctx: PullContext, result: StreamResult) -> None:
    """Read by code the bookings registrations name that the index window did not bring.

    The index is read `booking_window_days` back; a registration may name a booking last changed
    long before. GET /booking/{code} answers the booking and its lines in one call. The pass's
    watermark (registrations synced since) moves only when it finished without read errors.
    """
    assert ctx.checkfront is not None
    started = ctx.now()
    with ctx.engine.connect() as connection:
        changed_since = read_state(connection, "booking_codes").watermark

    def missing(connection: Connection, after: Any, size: int) -> list[tuple[datetime, str, str]]:
        return codes_missing_from_warehouse(connection, changed_since, after and after[:2], size)

    def refs() -> Iterator[str]:
        for keys in keyset_pages(ctx.engine, missing):
            for ref in sorted({code.strip() for _, _, code in keys}):
                if _BOOKING_REF.fullmatch(ref):
                    yield ref
                else:
                    result.counts["unreadable_code"] += 1

    def load(connection: Connection, answers: list[tuple[str, Any]]) -> Counter[str]:
        return load_bookings_read_by_code(connection, answers, ctx.now(), ctx.run_id)

    errors = result.counts["errors"]
    if not read_in_window(ctx, result, ctx.checkfront.get_booking, refs(), load, stream="booking_lines"):
        return
    errors = result.counts["errors"] - errors
    if not errors:
        with ctx.engine.begin() as connection:
            write_state(connection, "booking_codes", started)


def pull_booking_lines(ctx: PullContext) -> StreamResult:
    """Fetch the line items of bookings registrations point at (the index does not carry them).

    Bookings a registration names that are not in the warehouse are read by code first.
    """
    assert ctx.checkfront is not None, "a Checkfront client is required"
    result = StreamResult("booking_lines")
    pull_bookings_by_code(ctx, result)
    if result.stopped:
        return result

    def load(connection: Connection, answers: list[tuple[str, Any]]) -> Counter[str]:
        return load_booking_details(connection, answers, ctx.now(), ctx.run_id)

    codes = (code for chunk in keyset_pages(ctx.engine, bookings_needing_lines) for code in chunk)
    read_in_window(ctx, result, ctx.checkfront.get_booking, codes, load)
    return result
