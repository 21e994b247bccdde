"""The daemon (`regsync schedule`): cadences, the job store in the warehouse, failures, SIGTERM.

The soak test runs the real command in a subprocess for REGSYNC_DAEMON_TEST_SECONDS (default 20)
on both databases; set it higher to run the daemon longer.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text

from regsync.exitcodes import ExitCode
from regsync.jobs import registry as registry_module
from regsync.jobs import schedule
from regsync.jobs.registry import JobResult
from regsync.jobs.schedule import JOBSTORE_TABLE, next_run_times, planned_jobs, run_daemon
from regsync.sandbox import Sandbox
from regsync.settings.jobs import JOB_NAMES, JobSettings
from regsync.warehouse.locks import open_warehouse_locked
from regsync.warehouse.tables import booking_lines, bookings
from tests.jobs import (
    BOOT,
    contents,
    ledger,
    lock_rows,
    reference_contents,
    start,
    wait_for,
    write_config,
    write_jobs_file,
)

DAEMON_SECONDS = float(os.environ.get("REGSYNC_DAEMON_TEST_SECONDS", "20"))
WRITES_ON = {"enabled": True, "max_share": 0.5, "max_writes": 1000}


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    engine = open_warehouse_locked(warehouse_url)
    yield engine
    engine.dispose()


def stored_jobs(engine: Engine) -> dict[str, float]:
    with engine.connect() as connection:
        return dict(connection.execute(text(f"SELECT id, next_run_time FROM {JOBSTORE_TABLE}")).all())


class DaemonThread:
    """run_daemon in a thread (the stop event instead of a signal), for in-process tests."""

    def __init__(self, settings: Any, jobs: JobSettings, engine: Engine) -> None:
        self.stop = threading.Event()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, args=(settings, jobs, engine))

    def _run(self, settings: Any, jobs: JobSettings, engine: Engine) -> None:
        self.code = run_daemon(settings, jobs, stop=self.stop, engine=engine)

    def __enter__(self) -> schedule._Daemon:
        self.thread.start()
        return wait_for(
            lambda: schedule._DAEMON if schedule._DAEMON and schedule._DAEMON.started.is_set() else None,
            15,
            "the daemon to start",
        )

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.code == ExitCode.OK


# -- cadences -------------------------------------------------------------------------------------


def test_cadences_become_triggers_in_the_configured_time_zone() -> None:
    jobs = JobSettings.model_validate(
        {
            "timezone": "Europe/Paris",
            "cadence": {"main": "off", "reconcile": "0 6 * * 1-5", "sync": "every 90s"},
        }
    )
    assert set(planned_jobs(jobs)) == {"sync", "reconcile"}
    paris = ZoneInfo("Europe/Paris")
    friday_morning = datetime(2025, 1, 3, 7, 0, tzinfo=paris)
    upcoming = next_run_times(jobs, count=3, now=friday_morning)
    assert [t.strftime("%a %H:%M") for t in upcoming["reconcile"]] == ["Mon 06:00", "Tue 06:00", "Wed 06:00"]
    assert all(t.utcoffset() == paris.utcoffset(friday_morning) for t in upcoming["reconcile"])
    gaps = [(b - a).total_seconds() for a, b in zip(upcoming["sync"], upcoming["sync"][1:], strict=False)]
    assert gaps == [90.0, 90.0]


def test_the_job_store_lives_in_the_warehouse_and_keeps_unchanged_jobs(engine: Engine) -> None:
    from regsync.config import _settings_from

    settings = _settings_from(
        {"warehouse": {"url": str(engine.url.render_as_string(hide_password=False))}}, {}
    )
    hourly = JobSettings.model_validate({"cadence": {"main": "every 1h"}})
    with DaemonThread(settings, hourly, engine):
        pass
    first = stored_jobs(engine)
    assert set(first) == {"main"}
    time.sleep(0.2)
    with DaemonThread(settings, hourly, engine):
        pass
    assert stored_jobs(engine) == first  # unchanged schedule: next run time kept across a restart
    changed = JobSettings.model_validate({"cadence": {"main": "every 2h", "reconcile": "0 6 * * *"}})
    with DaemonThread(settings, changed, engine):
        pass
    again = stored_jobs(engine)
    assert set(again) == {"main", "reconcile"}
    assert again["main"] > first["main"]  # rescheduled: an hour later than before
    with DaemonThread(
        settings, JobSettings.model_validate({"cadence": {"main": "off", "reconcile": "0 6 * * *"}}), engine
    ):
        pass
    assert set(stored_jobs(engine)) == {"reconcile"}  # main turned off: removed from the store


def test_a_job_that_raises_is_logged_and_the_daemon_goes_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    calls: list[str] = []

    def explode(settings: Any, **kwargs: Any) -> JobResult:
        calls.append("explode")
        raise RuntimeError("injected failure")

    def fine(settings: Any, **kwargs: Any) -> JobResult:
        calls.append("fine")
        return JobResult("ok", ExitCode.OK, "fine", "reconcile")

    monkeypatch.setitem(registry_module.JOBS, "close-stale", explode)
    monkeypatch.setitem(registry_module.JOBS, "reconcile", fine)
    jobs = JobSettings.model_validate(
        {
            "cadence": {"main": "off", "close-stale": "every 1s", "reconcile": "every 1s"},
            "reports_dir": str(tmp_path),
        }
    )
    from regsync.config import _settings_from

    settings = _settings_from(
        {"warehouse": {"url": str(engine.url.render_as_string(hide_password=False))}}, {}
    )
    with DaemonThread(settings, jobs, engine) as daemon:
        wait_for(lambda: calls.count("explode") >= 2 and calls.count("fine") >= 2, 20, "two rounds")
    assert daemon.errors["close-stale"] >= 2
    assert "close-stale raised; the daemon carries on" in caplog.text
    assert "injected failure" in caplog.text


# -- the soak test: the real command, every job, SIGTERM mid-job ------------------------------------

FLAKY_BOOT = (
    "from regsync.jobs import registry\n"
    "real = registry.JOBS['reconcile']\n"
    "calls = []\n"
    "def flaky(settings, **kwargs):\n"
    "    calls.append(1)\n"
    "    if len(calls) == 1:\n"
    "        raise RuntimeError('injected failure: the first reconcile blows up')\n"
    "    return real(settings, **kwargs)\n"
    "registry.JOBS['reconcile'] = flaky\n"
) + BOOT

PULLS = ("sync", "pull-registrations", "pull-checkfront", "main")


def test_the_daemon_runs_every_job_survives_a_raise_and_stops_cleanly_on_sigterm(
    warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    with Sandbox.generated(600, seed=5) as sandbox:
        # every call a little slow, so jobs take a second or two and a SIGTERM lands mid-job
        sandbox.faults.add(endpoint="salesforce.query", kind="slow", delay_s=0.4, every=1)
        sandbox.faults.add(endpoint="checkfront.booking.index", kind="slow", delay_s=0.3, every=1)
        config = write_config(
            sandbox, tmp_path, warehouse_url, actions=WRITES_ON, checkfront={"page_limit": 50}
        )
        jobs_file = write_jobs_file(
            tmp_path / "jobs.toml",
            {
                "misfire_grace_s": 120,
                "lock_lease_s": 10,
                "lock_heartbeat_s": 1,
                "reports_dir": str(tmp_path / "reports"),
            },
            {name: "every 3s" for name in JOB_NAMES},
        )
        daemon = start(
            ["--config", str(config), "schedule", "--jobs-file", str(jobs_file)], tmp_path, boot=FLAKY_BOOT
        )
        try:
            began = time.monotonic()

            def every_job_ran() -> bool:
                seen = {row["job"] for row in ledger(engine) if row["outcome"] != "running"}
                return time.monotonic() - began >= DAEMON_SECONDS and set(JOB_NAMES) <= seen

            wait_for(every_job_ran, DAEMON_SECONDS + 90, "every job to run at least once", interval=0.5)
            assert daemon.poll() is None, daemon.communicate()

            def a_pull_running() -> list[str]:
                return [
                    r["run_id"] for r in ledger(engine) if r["outcome"] == "running" and r["job"] in PULLS
                ]

            interrupted = wait_for(a_pull_running, 60, "a pull to be running", interval=0.02)
            daemon.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            _out, err = daemon.communicate(timeout=60)
            stopped_in = time.monotonic() - signalled
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
        assert daemon.returncode == ExitCode.OK, err[-3000:]
        assert stopped_in < 20, stopped_in  # the running job stopped after its page, not its whole run
        assert "signal 15" in err
        # the injected failure was logged, and reconcile ran (for real) after it
        assert "injected failure: the first reconcile blows up" in err
        assert "reconcile raised; the daemon carries on" in err
        assert ledger(engine, "reconcile")
        # nothing left "running"; the interrupted run finished with partial or ok
        rows = ledger(engine)
        assert [r for r in rows if r["outcome"] == "running"] == []
        for run_id in interrupted:
            (row,) = [r for r in rows if r["run_id"] == run_id]
            assert row["outcome"] in ("partial", "ok"), row
            assert row["ended_at"] is not None
        assert {r["job"] for r in rows} >= set(JOB_NAMES)
        assert lock_rows(engine) == []  # the lock was released
        assert set(stored_jobs(engine)) == set(JOB_NAMES)  # the schedule is in the warehouse
        # the warehouse is consistent: every booking line has its booking, and one more sync
        # brings it to what a fresh pull of the sandbox gives. (No safety lag, and a second's
        # pause: a pull leaves changes of the current second - the last write-backs' - to the next
        # run. A fresh pull reads only the booking sessions registrations still need; the
        # warehouse also keeps those it read earlier, now missing, of since-submitted drafts.)
        with engine.connect() as connection:
            orphans = connection.execute(
                select(booking_lines.c.booking_id).where(
                    booking_lines.c.booking_id.not_in(select(bookings.c.booking_id))
                )
            ).all()
        assert orphans == []
        sandbox.faults.clear()
        from regsync.jobs.registry import run_job

        time.sleep(1.1)
        now_and_here = {"checkfront": {"page_limit": 50}, "sync": {"safety_lag_s": 0}}
        assert run_job("sync", sandbox.settings(warehouse_url, **now_and_here), engine=engine).outcome == "ok"
        found, fresh = contents(engine), reference_contents(sandbox, tmp_path, **now_and_here)
        for table in ("booking_sessions", "booking_session_lines"):
            assert fresh.pop(table) <= found.pop(table)
        assert found == fresh
