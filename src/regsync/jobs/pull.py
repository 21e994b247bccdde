"""The pull job: every stream as soon as what it needs is in, one run in the ledger, an outcome an operator can act on."""

from __future__ import annotations

import contextvars
import dataclasses
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from regsync.clients.factory import make_clients
from regsync.clients.usage import ApiUsage
from regsync.config import Settings
from regsync.errors import ApiError, ConfigError, QuotaExhaustedError, RegsyncError
from regsync.extract.context import Progress, PullContext, StreamResult, Upstream
from regsync.streams.checkfront import (
    pull_booking_lines,
    pull_booking_sessions,
    pull_bookings,
)
from regsync.streams.incremental import pull_soql_stream
from regsync.streams.salesforce import SOQL_STREAMS
from regsync.warehouse.engine import bulk_write_cache, open_warehouse
from regsync.warehouse.maintenance import vacuum_after_load
from regsync.warehouse.state import finish_run, start_run
from regsync.warehouse.tables import quarantine

log = logging.getLogger("regsync.pull")

STREAM_ORDER = ("sessions", "registrations", "booking_sessions", "bookings", "booking_lines")


@dataclass
class PullReport:
    """What one pull did."""

    run_id: str
    outcome: str  # ok | partial | deferred | failed
    streams: list[StreamResult] = field(default_factory=list)
    api_calls: dict[str, object] = field(default_factory=dict)
    message: str | None = None

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for stream in self.streams:
            total.update({f"{stream.stream}.{k}": v for k, v in stream.counts.items()})
        return total

    new_quarantined: int = 0  # records in quarantine after this run that were not before it
    open_quarantined: int = 0  # every record in quarantine after this run, earlier runs' included

    @property
    def quarantined(self) -> int:
        """Records rejected by this run: new ones and earlier runs' that were retried and failed again."""
        return sum(s.counts["quarantined"] for s in self.streams)


def _open_quarantine(engine: Engine) -> set[tuple[str, str]]:
    """(source, record id) of every record in quarantine now."""
    q = quarantine
    with engine.connect() as connection:
        rows = connection.execute(
            select(q.c.source, q.c.record_id).where(q.c.resolved_at.is_(None)).distinct()
        )
        return {(source, record_id) for source, record_id in rows}


def _judge_quarantine(engine: Engine, report: PullReport, before: set[tuple[str, str]]) -> None:
    """partial (exit 3) only for what went wrong in this run: records newly quarantined (not in
    quarantine when it started) or reads that failed. Earlier runs' records still in quarantine are
    retried by every run and fail the same way; they are counted (`regsync status`, the report) but
    are no alert of this run."""
    after = _open_quarantine(engine)
    report.new_quarantined = len(after - before)
    report.open_quarantined = len(after)
    if report.outcome != "ok":
        return
    errors = sum(s.counts["errors"] for s in report.streams)
    if report.new_quarantined or errors:
        report.outcome = "partial"
        parts = [f"{report.new_quarantined} record(s) newly quarantined"] if report.new_quarantined else []
        parts += [f"{errors} read(s) failed (retried next run)"] if errors else []
        parts.append(f"{report.open_quarantined} in quarantine in all; see `regsync status`")
        report.message = ", ".join(parts)
    elif report.open_quarantined:
        report.message = (
            f"{report.open_quarantined} record(s) still in quarantine from earlier runs "
            "(retried, still rejected); see `regsync status`"
        )


def run_pull(
    settings: Settings,
    *,
    engine: Engine | None = None,
    job: str = "pull",
    streams: Sequence[str] = STREAM_ORDER,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], datetime] | None = None,
    pace: Callable[[float], None] | None = None,
) -> PullReport:
    """Pull the given streams into the warehouse; never raises for API trouble, reports it."""
    unknown = [s for s in streams if s not in STREAM_ORDER]
    if unknown:
        raise RegsyncError(f"unknown stream(s): {', '.join(unknown)} (known: {', '.join(STREAM_ORDER)})")
    owned = engine is None  # opened here: closed here (a daemon runs many pulls in one process)
    engine = engine or open_warehouse(settings.warehouse.url)
    usage = ApiUsage(settings.quota.max_share)
    run_id = start_run(engine, job)
    report = PullReport(run_id=run_id, outcome="failed", message="interrupted")
    checkfront = None
    try:
        quarantined_before = _open_quarantine(engine)
        # Inside the try: a client that cannot be set up (a CA file gone) still closes the run's row.
        salesforce, checkfront = make_clients(settings, usage, sleep, pace)
        ctx = PullContext(
            settings=settings,
            engine=engine,
            usage=usage,
            run_id=run_id,
            salesforce=salesforce,
            checkfront=checkfront,
            progress=progress,
            should_stop=should_stop,
        )
        if now is not None:
            ctx.now = now
        report.outcome, report.message = "ok", None
        with bulk_write_cache(), _heap_frozen():
            _pull_streams(ctx, report, streams, since, until)
        _judge_quarantine(engine, report, quarantined_before)
        vacuum_after_load(engine)  # a large load's statistics and hint bits, before a reconcile reads it
    except ConfigError as exc:  # closed as failed, raised on: the command exits CONFIG (78)
        report.outcome = "failed"
        report.message = f"{type(exc).__name__}: {exc}"
        raise
    except QuotaExhaustedError as exc:
        report.outcome = "deferred"
        report.message = str(exc)
        log.warning("deferred: %s", exc)
    except (ApiError, RegsyncError) as exc:
        report.outcome = "failed"
        report.message = f"{type(exc).__name__}: {exc}"
        log.error("pull failed: %s", report.message)
    except BaseException as exc:  # a crash or an interrupt: the ledger must not say "ok"
        report.outcome = "failed"
        report.message = f"interrupted by {type(exc).__name__}"
        raise
    finally:
        if checkfront is not None:
            checkfront.close()
        report.api_calls = usage.snapshot()
        try:
            finish_run(
                engine,
                run_id,
                report.outcome,
                counts=dict(report.totals()),
                api_calls=report.api_calls,
                message=report.message,
            )
        finally:
            if owned:
                engine.dispose()
    return report


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """The heap as it stands (modules, the schema, the clients) out of the collector's reach while streams run.

    A first sync parses tens of thousands of answers; each full collection they set off would walk
    every object of the process again (0.15 s of CPU in a first sync of 3,000 registrations, a tenth
    of what it spends over bare HTTP calls). Unfrozen at the end: a long-lived scheduler collects
    that heap as before.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# What each stream needs committed before it starts; the others run at the same time.
NEEDS: dict[str, tuple[str, ...]] = {
    "sessions": (),
    # One Salesforce stream after the other: the quota governor reads the org's usage from each
    # answer, so two queries in flight at once could both pass its check and overrun the share.
    # (A wide pull's slices do run at once: their calls are checked with those in flight counted
    # as made, clients.usage.ApiUsage.in_flight.)
    "registrations": ("sessions",),
    "booking_sessions": (),  # follows the registrations page by page (FOLLOWS)
    "bookings": (),  # the booking index needs nothing from Salesforce
    "booking_lines": ("registrations", "bookings"),  # lines of the bookings registrations name
}
# A stream that starts with its upstream and reads what it has committed so far, round after round.
FOLLOWS: dict[str, str] = {"booking_sessions": "registrations"}


def _pull_streams(
    ctx: PullContext,
    report: PullReport,
    streams: Sequence[str],
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Pull the streams, each as soon as the streams it needs are done; results in STREAM_ORDER.

    Streams that do not depend on each other run at the same time (their Checkfront calls share
    the client's one window of calls in flight), so no stream waits for work it does not need; a
    follower (FOLLOWS) starts with its upstream and reads each page it commits. A stream whose
    prerequisite failed or was stopped does not start; the first failure (in STREAM_ORDER) is
    raised once every running stream has ended.
    """
    selected = [s for s in STREAM_ORDER if s in streams]
    futures: dict[str, Future[StreamResult | None]] = {}
    followed = {up: Upstream() for name, up in FOLLOWS.items() if name in selected and up in selected}
    ctx = dataclasses.replace(ctx, progress=_signalling(ctx.progress, followed))

    def run(name: str) -> StreamResult | None:
        result: StreamResult | None = None
        try:
            for need in NEEDS[name]:
                if need in futures:
                    done = futures[need].result()  # raises what the prerequisite raised
                    if done is None or done.stopped:
                        return None
            result = _pull_one(ctx, name, since, until, followed.get(FOLLOWS.get(name, "")))
            return result
        finally:  # however it ended (a prerequisite's failure included), its followers are told
            if name in followed:
                followed[name].end(succeeded=result is not None and not result.stopped)

    # checkfront.concurrency = 1 asks for one call at a time: the streams then run one after another.
    workers = len(selected) if ctx.settings.checkfront.concurrency > 1 else 1
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="stream") as pool:
        for name in selected:
            # Each stream in a copy of this context (the warehouse's write-cache setting lives there).
            futures[name] = pool.submit(contextvars.copy_context().run, run, name)
        outcomes: list[tuple[str, StreamResult | None, BaseException | None]] = []
        for name in selected:
            try:
                outcomes.append((name, futures[name].result(), None))
            except BaseException as exc:
                outcomes.append((name, None, exc))
    for _, result, _ in outcomes:
        if result is not None:
            report.streams.append(result)
            if result.stopped:
                report.outcome = "partial"
                report.message = "stopped on request; everything read so far is committed"
    for _, _, error in outcomes:
        if error is not None:
            raise error


def _signalling(progress: Progress | None, followed: dict[str, Upstream]) -> Progress | None:
    """The progress callback, also telling a followed stream's followers of each page it committed."""
    if not followed:
        return progress

    def report(stream: str, rows: int, total: int | None) -> None:
        if stream in followed:
            followed[stream].committed()
        if progress is not None:
            progress(stream, rows, total)

    return report


def _pull_one(
    ctx: PullContext,
    name: str,
    since: datetime | None,
    until: datetime | None,
    upstream: Upstream | None = None,
) -> StreamResult:
    """Pull one stream (a backfill when `since` or `until` is given)."""
    backfill = since is not None or until is not None
    started = time.perf_counter()
    if name in SOQL_STREAMS:
        key = (
            f"backfill:{name}:{since and since.isoformat()}:{until and until.isoformat()}"
            if backfill
            else None
        )
        result = pull_soql_stream(SOQL_STREAMS[name], ctx, since=since, until=until, state_key=key)
    elif name == "booking_sessions":
        result = pull_booking_sessions(ctx, upstream)
    elif name == "bookings":
        # Checkfront filters by one bound: a backfill reads everything modified since --since.
        key = f"backfill:bookings:{since and since.isoformat()}" if backfill else None
        result = pull_bookings(ctx, since=since if backfill else None, state_key=key)
    else:
        result = pull_booking_lines(ctx)
    result.counts["milliseconds"] = round((time.perf_counter() - started) * 1000)
    return result
