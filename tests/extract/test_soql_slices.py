"""Issue 16 item 2: a wide Salesforce pull is read in SystemModstamp slices at once, each with its
own checkpoint, and ends exactly where one query would: same rows, same watermark, nothing left.

The sandbox pages by 2,000; these tests ask for 200 a page (`[salesforce] query_batch_size`, sent as
`Sforce-Query-Options` as Salesforce allows) so 1,800 registrations make the pages a plan of four
slices needs.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from regsync.config import Settings
from regsync.jobs.pull import PullReport, run_pull
from regsync.normalize.coerce import sf_datetime
from regsync.sandbox import Sandbox
from regsync.sandbox.store import REGISTRATION
from regsync.streams.slices import SlicePlan
from regsync.warehouse.engine import make_engine, migrate
from regsync.warehouse.state import StreamState, all_states, read_state
from regsync.warehouse.tables import registrations
from tests.support.snapshot import Snapshot, diff_snapshots, warehouse_snapshot

pytestmark = pytest.mark.sandbox
SF_STREAMS = ("sessions", "registrations")
PAGE = 200
REGISTRATIONS = 1800  # a first page, then eight: two for each of four slices
LATENCY_S = 0.3  # the sandbox's Salesforce round trip: calls made one after another are this far apart


def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


SMALL_PAGES = {"query_batch_size": PAGE}  # [salesforce] query_batch_size: Sforce-Query-Options


def one_query(box: Sandbox) -> Settings:
    return box.settings(sync={"soql_slices": 1}, salesforce=SMALL_PAGES)


def sliced(box: Sandbox) -> Settings:
    """Slices of two pages at least: this test's 1,800 registrations are 9 pages of 200."""
    return box.settings(sync={"slice_min_pages": 2}, salesforce=SMALL_PAGES)


def ticking(base: datetime) -> Callable[[], datetime]:
    """A clock a microsecond further on each reading: every page's synced_at is its own."""
    ticks = itertools.count()
    return lambda: base + timedelta(microseconds=next(ticks))


def bulk_queries(box: Sandbox) -> list[Any]:
    """The registration stream's window queries (not the Failed messages, not re-reads by Id)."""
    return [
        r
        for r in box.requests
        if r.endpoint == "salesforce.query"
        and any(
            "Event_Registration_Submission__c" in q and "'Failed'" not in q and " IN (" not in q
            for q in r.query.get("q", [])
        )
    ]


def lower_bounds(queries: list[Any]) -> list[datetime]:
    """The `SystemModstamp >= ...` bound of each window query."""
    return [
        datetime.fromisoformat(match)
        for r in queries
        for q in r.query["q"]
        for match in re.findall(r"SystemModstamp >= (\S+) AND", q)
    ]


def pull(box: Sandbox, engine: Engine, now: Callable[[], datetime], **kwargs: Any) -> PullReport:
    settings = kwargs.pop("settings", None) or sliced(box)
    return run_pull(settings, engine=engine, now=now, sleep=no_sleep, **kwargs)


def stream_counts(report: PullReport, name: str) -> Any:
    return next(s.counts for s in report.streams if s.stream == name)


def registration_state(engine: Engine) -> StreamState:
    with engine.connect() as connection:
        return read_state(connection, "registrations")


def states(engine: Engine) -> dict[str, Any]:
    """Every stream's state row: the Salesforce ones with watermark and checkpoint."""
    return {
        s.stream: (s.watermark, s.checkpoint) if s.stream in SF_STREAMS else "" for s in all_states(engine)
    }


def same_warehouse(expected: Snapshot, engine: Engine) -> None:
    diff = diff_snapshots(expected, warehouse_snapshot(engine))
    assert diff.differences == 0, diff.examples


def test_a_wide_pull_in_slices_loads_what_one_query_loads(engine: Engine, reference: Engine) -> None:
    base = datetime.now(UTC)
    with Sandbox.generated(REGISTRATIONS, seed=8, latency=f"salesforce={LATENCY_S}s") as box:
        one = pull(box, reference, ticking(base), settings=one_query(box))
        assert one.outcome == "ok", one.message
        assert len(bulk_queries(box)) == 1
        box.clear_requests()

        # While the slices commit, each commit must see every page with an earlier synced_at
        # already committed: the booking sessions follow the registrations in synced_at order.
        watcher = make_engine(engine.url.render_as_string(hide_password=False))
        seen: list[tuple[int, datetime]] = []
        lock = threading.Lock()

        def observe(stream: str, _rows: int, _total: int | None) -> None:
            if stream == "registrations":
                with watcher.connect() as connection:
                    count, latest = connection.execute(
                        select(func.count(), func.max(registrations.c.synced_at))
                    ).one()
                with lock:
                    seen.append((count, latest))

        sliced = pull(box, engine, ticking(base), progress=observe)
        assert sliced.outcome == "ok", sliced.message
        queries = bulk_queries(box)
    counts = stream_counts(sliced, "registrations")
    assert counts["slices"] == 4
    assert len(queries) == 1 + 4  # the first page's query, then one per slice
    firsts = [r.at for r in queries[1:]]
    assert max(firsts) - min(firsts) < LATENCY_S, "the slices' queries went out at once"
    same_warehouse(warehouse_snapshot(reference), engine)  # booking sessions and lines included
    assert states(engine) == states(reference)  # same watermarks, no slice plan left

    with watcher.connect() as connection:
        for count, latest in seen:
            at_or_before = connection.execute(
                select(func.count()).select_from(registrations).where(registrations.c.synced_at <= latest)
            ).scalar_one()
            assert at_or_before == count, "a page committed after another had an earlier synced_at"
    watcher.dispose()
    assert len(seen) == counts["pages"]


def test_a_narrow_run_is_one_query_as_before(engine: Engine, reference: Engine) -> None:
    base = datetime.now(UTC)
    with Sandbox.generated(REGISTRATIONS, seed=8) as box:
        assert pull(box, engine, lambda: base, streams=SF_STREAMS).outcome == "ok"
        box.clear_requests()
        later = base + timedelta(seconds=120)
        again = pull(box, engine, lambda: later, streams=SF_STREAMS)
        assert again.outcome == "ok"
        assert len(bulk_queries(box)) == 1
        assert "slices" not in stream_counts(again, "registrations")
    # A wide window that one page holds is one query too (the first sync of a small org).
    with Sandbox.generated(150, seed=8) as small:
        report = pull(small, reference, lambda: base, streams=SF_STREAMS)
        assert report.outcome == "ok"
        assert len(bulk_queries(small)) == 1


def unfinished(plan: SlicePlan) -> int:
    return sum(not s.done for s in plan.slices)


def assert_prefix_committed(box: Sandbox, engine: Engine) -> SlicePlan:
    """Everything below the watermark, and below each slice's own position, is in the warehouse."""
    state = registration_state(engine)
    plan = SlicePlan.from_checkpoint(state.checkpoint)
    assert plan is not None, "the plan is kept for the next run"
    assert state.watermark is not None
    assert state.watermark < plan.upper
    with engine.connect() as connection:
        stored = set(connection.execute(select(registrations.c.id)).scalars())
    stamps = {
        r["Id"]: sf_datetime(r["SystemModstamp"], "SystemModstamp")
        for r in box.store.salesforce.tables[REGISTRATION].values()
    }
    below = {i for i, stamp in stamps.items() if stamp < state.watermark}
    assert below, "the watermark moved while the slices ran"
    assert below <= stored
    for piece in plan.slices:
        if piece.at is not None:
            assert {i for i, stamp in stamps.items() if piece.start <= stamp < piece.at} <= stored
    assert len(stored) < len(stamps), "stopped before the end"
    return plan


def test_a_stopped_pull_resumes_each_slice_where_it_stopped(engine: Engine, reference: Engine) -> None:
    base = datetime.now(UTC)
    with Sandbox.generated(REGISTRATIONS, seed=8) as box:
        assert pull(box, reference, lambda: base, streams=SF_STREAMS, settings=one_query(box)).outcome == "ok"
        expected = warehouse_snapshot(reference)
        box.clear_requests()
        pages = itertools.count(1)
        committed = [0]

        def count_pages(stream: str, _rows: int, _total: int | None) -> None:
            if stream == "registrations":
                committed[0] = next(pages)

        stopped = pull(
            box,
            engine,
            lambda: base,
            streams=SF_STREAMS,
            progress=count_pages,
            should_stop=lambda: committed[0] >= 3,
        )
        assert stopped.outcome == "partial"
        plan = assert_prefix_committed(box, engine)
        assert len(plan.slices) == 4
        assert any(s.at is not None for s in plan.slices), "slices had committed pages"
        box.clear_requests()

        resumed = pull(box, engine, lambda: base, streams=SF_STREAMS)
        assert resumed.outcome == "ok", resumed.message
        # The slices not done, each from where it stood, then the look-back to this run's upper
        # bound: no slice read again from its start, no new plan.
        lookback = timedelta(seconds=box.settings().sync.lookback_s)
        resumes = [
            max(s.start, s.at - lookback).replace(microsecond=0) if s.at is not None else s.start
            for s in plan.slices
            if not s.done
        ]
        assert sorted(lower_bounds(bulk_queries(box))) == sorted([*resumes, plan.upper - lookback])
        assert stream_counts(resumed, "registrations")["slices"] == unfinished(plan)
    same_warehouse(expected, engine)
    assert states(engine) == states(reference)


@pytest.mark.parametrize("fault", ["quota", "error"])
def test_a_failing_slice_stops_them_all_and_the_next_run_finishes(
    engine: Engine, reference: Engine, fault: str
) -> None:
    """The quota reached (or a query refused) in one slice: every slice stops, the run ends as it
    would without slices (deferred, failed), and the next run finishes the plan."""
    base = datetime.now(UTC)
    with Sandbox.generated(REGISTRATIONS, seed=8) as box:
        assert box.salesforce is not None
        org = box.salesforce
        assert pull(box, reference, lambda: base, streams=SF_STREAMS, settings=one_query(box)).outcome == "ok"
        expected = warehouse_snapshot(reference)
        pages = itertools.count(1)

        def trip(stream: str, _rows: int, _total: int | None) -> None:
            if stream == "registrations" and next(pages) == 2 and fault == "quota":
                org.daily_limit = 1  # every answer now reports the whole allowance used

        if fault == "error":
            box.faults.add(endpoint="salesforce.query_more", kind="status", status=400, nth=[4])
        failed = pull(box, engine, lambda: base, streams=SF_STREAMS, progress=trip)
        assert failed.outcome == ("deferred" if fault == "quota" else "failed"), failed.message
        assert not [t for t in threading.enumerate() if "slice" in t.name], "a slice still runs"
        assert_prefix_committed(box, engine)
        org.daily_limit = 5_000_000
        box.faults.clear()
        resumed = pull(box, engine, lambda: base, streams=SF_STREAMS)
        assert resumed.outcome == "ok", resumed.message
    same_warehouse(expected, engine)
    assert states(engine) == states(reference)
