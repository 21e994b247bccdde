"""Booking sessions follow the registrations page by page (issue 16: no stream waits for work it
does not depend on), without reading a cart twice or moving their watermark too early."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, select

from regsync.clients.factory import make_clients
from regsync.clients.usage import ApiUsage
from regsync.config import Settings
from regsync.extract.context import PullContext, Upstream
from regsync.jobs.pull import PullReport, run_pull
from regsync.sandbox import Sandbox
from regsync.streams.checkfront import pull_booking_sessions
from regsync.warehouse.engine import make_engine
from regsync.warehouse.state import read_state
from regsync.warehouse.tables import registrations

pytestmark = pytest.mark.sandbox
CART_READ = "checkfront.booking_session.get"


def no_sleep(_seconds: float) -> None:
    return None


def _cart_reads(box: Sandbox) -> Counter[str]:
    return Counter(r.query["session_id"][0] for r in box.requests if r.endpoint == CART_READ)


def _context(settings: Settings, engine: Engine) -> PullContext:
    usage = ApiUsage()
    salesforce, checkfront = make_clients(settings, usage, no_sleep, no_sleep)
    return PullContext(
        settings=settings, engine=engine, usage=usage, salesforce=salesforce, checkfront=checkfront
    )


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_carts_are_read_before_the_registrations_end_each_once(engine: Engine, warehouse_url: str) -> None:
    with Sandbox.generated(150, seed=5) as box:
        settings = box.settings(warehouse_url)
        first = run_pull(settings, engine=engine, streams=["sessions", "registrations"], sleep=no_sleep)
        assert first.outcome == "ok", first.message
        with engine.connect() as connection:
            named = set(
                connection.execute(
                    select(registrations.c.booking_session_id).where(
                        registrations.c.booking_session_id.is_not(None)
                    )
                ).scalars()
            )
        assert named
        # One cart answers 400 to every read: a failed read, not repeated by the later rounds.
        box.faults.add(endpoint=CART_READ, kind="status", status=400, nth=[2])
        box.clear_requests()
        ctx = _context(settings, engine)
        upstream = Upstream()
        with ThreadPoolExecutor(max_workers=1) as pool:
            follower = pool.submit(pull_booking_sessions, ctx, upstream)
            time.sleep(0.2)
            assert not _cart_reads(box), "nothing is read before the registrations commit a page"
            upstream.committed()  # their first page
            assert _wait_for(lambda: sum(_cart_reads(box).values()) >= len(named) - 1)
            assert not follower.done(), "it follows the registrations until they end"
            upstream.committed()  # another page (nothing new to read)
            upstream.committed()
            upstream.end(succeeded=True)
            result = follower.result(timeout=60)
        assert ctx.checkfront is not None
        ctx.checkfront.close()
        reads = _cart_reads(box)
    assert set(reads) == named  # every cart a registration names was read
    assert max(reads.values()) == 1, reads.most_common(3)  # none twice, the failed one included
    assert result.counts["errors"] == 1
    with engine.connect() as connection:
        assert read_state(connection, "booking_sessions").watermark is None  # a read failed: look again


def test_the_watermark_waits_for_the_registrations_to_finish(engine: Engine, warehouse_url: str) -> None:
    with Sandbox.generated(60, seed=6) as box:
        settings = box.settings(warehouse_url)
        assert (
            run_pull(settings, engine=engine, streams=["sessions", "registrations"], sleep=no_sleep).outcome
            == "ok"
        )
        ctx = _context(settings, engine)
        failed = Upstream()
        failed.committed()
        failed.end(succeeded=False)  # the registrations stream failed after a page
        result = pull_booking_sessions(ctx, failed)
        assert result.counts["errors"] == 0
        assert result.counts["rows"] > 0
        with engine.connect() as connection:
            assert read_state(connection, "booking_sessions").watermark is None
        finished = Upstream()
        finished.end(succeeded=True)
        pull_booking_sessions(ctx, finished)
        assert ctx.checkfront is not None
        ctx.checkfront.close()
        with engine.connect() as connection:
            assert read_state(connection, "booking_sessions").watermark is not None


def test_a_failed_prerequisite_of_the_registrations_still_ends_their_followers(warehouse_url: str) -> None:
    """The Sessions query fails: the registrations never start, and booking sessions, which follow
    them, must hear of it and end (not wait for a page that never comes)."""
    with Sandbox.generated(40, seed=7) as box:
        box.faults.add(endpoint="salesforce.query", kind="status", status=400, nth=[1])
        settings = box.settings(warehouse_url)
        reports: list[PullReport] = []
        pulling = threading.Thread(
            target=lambda: reports.append(run_pull(settings, sleep=no_sleep)), daemon=True
        )
        pulling.start()
        pulling.join(timeout=120)
        assert not pulling.is_alive(), "the pull hangs: a follower waits for registrations that never start"
    (report,) = reports
    assert report.outcome == "failed"
    assert [s.stream for s in report.streams if s.stream == "registrations"] == []
    engine = make_engine(warehouse_url)
    with engine.connect() as connection:
        assert read_state(connection, "booking_sessions").watermark is None
    engine.dispose()
