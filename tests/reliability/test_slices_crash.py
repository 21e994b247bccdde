"""A pull whose registrations are read in SystemModstamp slices, killed with SIGKILL while the slices
run, then run again: it must end where one uninterrupted single-query pull ends, with no
registration lost or duplicated and no slice plan left behind (issue 16, item 2).

`regsync sync` runs in a child process against the sandbox, with pages of 200
(`[salesforce] query_batch_size`) so 1,800 registrations are a first page and two pages for each of
four slices, and a Salesforce round trip of 0.4 s so the slices are caught in flight. A kill is
counted only when the warehouse shows it landed inside the plan: the plan is in the state row, some
slice has committed a page, and some slice is not done.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from regsync.jobs.pull import run_pull
from regsync.normalize.coerce import sf_datetime
from regsync.sandbox import Sandbox
from regsync.sandbox.store import REGISTRATION
from regsync.streams.slices import SlicePlan
from regsync.warehouse.engine import make_engine, migrate
from regsync.warehouse.state import read_state
from regsync.warehouse.tables import registrations
from tests.support.snapshot import diff_snapshots, warehouse_snapshot

pytestmark = pytest.mark.sandbox
REGSYNC = str(Path(sys.executable).with_name("regsync"))
REGISTRATIONS = 1800
SMALL_PAGES = {"query_batch_size": 200}
SF_STREAMS = ("sessions", "registrations")
SF_TABLES = {"sf_sessions", "registrations", "registration_attendees", "registration_attendee_sessions"}
KILLS = 2


def sync_command(config: Path) -> list[str]:
    streams = [arg for stream in SF_STREAMS for arg in ("--stream", stream)]
    return [REGSYNC, "--config", str(config), "--log-format", "json", "sync", *streams]


def plan_in_flight(engine: Engine) -> SlicePlan | None:
    """The slice plan when a kill now would land inside it: a page committed, a slice unfinished."""
    with engine.connect() as connection:
        plan = SlicePlan.from_checkpoint(read_state(connection, "registrations").checkpoint)
    if plan is None or plan.done or not any(s.at is not None for s in plan.slices):
        return None
    return plan


def stored_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(registrations)).scalar_one())


def kill_inside_the_plan(config: Path, engine: Engine, logs: Path, run: int, committed_at_least: int) -> bool:
    """Start a sync; SIGKILL it once the plan is in flight with `committed_at_least` rows stored."""
    with open(logs / f"run-{run}.err", "wb") as err:
        child = subprocess.Popen(sync_command(config), stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if plan_in_flight(engine) is not None and stored_count(engine) >= committed_at_least:
                child.send_signal(signal.SIGKILL)
                child.wait()
                return plan_in_flight(engine) is not None  # the kill landed inside the plan
            time.sleep(0.01)
        return False
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_a_pull_killed_while_its_slices_run_resumes_to_the_single_query_result(
    warehouse_url: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    reference = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference)
    engine = make_engine(warehouse_url)
    migrate(engine)
    try:
        with Sandbox.generated(REGISTRATIONS, seed=8, latency="salesforce=0.4s") as box:
            one_query = box.settings(sync={"soql_slices": 1}, salesforce=SMALL_PAGES)
            assert run_pull(one_query, engine=reference, streams=SF_STREAMS).outcome == "ok"
            config, _ = box.write_config(
                tmp_path / "regsync.toml",
                warehouse_url,
                extra={"salesforce": SMALL_PAGES, "sync": {"slice_min_pages": 2}},
            )
            killed = 0
            for run in range(1, 6):
                # The first kill after the first slice page; later ones further on in the plan.
                wanted = 200 if killed == 0 else stored_count(engine) + 200
                killed += kill_inside_the_plan(config, engine, logs, run, wanted)
                if killed == KILLS:
                    break
            assert killed == KILLS, f"only {killed} kills landed inside a slice plan; see {logs}"
            plan = plan_in_flight(engine)
            assert plan is not None
            assert len(plan.slices) == 4
            assert stored_count(engine) < REGISTRATIONS, "the killed runs left work for the clean one"

            clean = subprocess.run(sync_command(config), capture_output=True, timeout=300)
            assert clean.returncode == 0, clean.stderr.decode()[-2000:]
            assert b"Traceback" not in clean.stderr
            stamps = [
                sf_datetime(r["SystemModstamp"], "SystemModstamp")
                for r in box.store.salesforce.tables[REGISTRATION].values()
            ]
    finally:
        engine.dispose()

    engine = make_engine(warehouse_url)
    try:
        expected = {k: v for k, v in warehouse_snapshot(reference).items() if k in SF_TABLES}
        got = {k: v for k, v in warehouse_snapshot(engine).items() if k in SF_TABLES}
        assert len(expected["registrations"]) == REGISTRATIONS
        diff = diff_snapshots(expected, got)
        assert (diff.lost, diff.duplicated, diff.differences) == (0, 0, 0), diff.examples
        with engine.connect() as connection:
            state = read_state(connection, "registrations")
        assert state.checkpoint is None or SlicePlan.from_checkpoint(state.checkpoint) is None, "plan left"
        assert state.watermark is not None
        assert state.watermark > max(stamps), "the watermark covers every registration"
    finally:
        engine.dispose()
        reference.dispose()
