"""`regsync schedule`: the APScheduler 3 daemon that runs the jobs on their cadences.

* One BlockingScheduler; its job store is the warehouse (SQLAlchemyJobStore, table
  ``apscheduler_jobs``, created by APScheduler itself outside regsync's migrations), so a restart
  knows when each job was next due and runs a missed one (once, ``coalesce``) if it is late by at
  most ``misfire_grace_s``.
* One worker thread and ``max_instances=1``: jobs run one at a time in a daemon; across processes
  and hosts the warehouse-writer lock (regsync.warehouse.locks) keeps them apart. A job whose lock is held
  elsewhere (a cron run, another daemon) is skipped until its next time.
* SIGTERM / SIGINT: the stop flag asks the running job to stop (it finishes its page, commits and
  records its run), the scheduler waits for it and shuts down; exit code 0.
* A job that raises is logged with its traceback; the daemon carries on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from regsync.config import Settings
from regsync.exitcodes import ExitCode
from regsync.jobs.metrics import emit
from regsync.jobs.registry import run_job
from regsync.settings.jobs import JobSettings, cron_fields
from regsync.warehouse.engine import make_engine
from regsync.warehouse.locks import open_warehouse_locked

log = logging.getLogger("regsync.schedule")

JOBSTORE_TABLE = "apscheduler_jobs"
JOB_REF = "regsync.jobs.schedule:run_scheduled"  # what the job store keeps (a textual reference)


@dataclass
class _Daemon:
    """What run_scheduled needs, set while a daemon runs in this process."""

    settings: Settings
    jobs: JobSettings
    engine: Engine
    stop: threading.Event
    started: threading.Event = field(default_factory=threading.Event)
    runs: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


_DAEMON: _Daemon | None = None


def make_trigger(kind: str, value: Any, tz: ZoneInfo) -> BaseTrigger:
    if kind == "cron":
        return CronTrigger(**cron_fields(value), timezone=tz)
    return IntervalTrigger(seconds=value, timezone=tz)


def planned_jobs(jobs: JobSettings) -> dict[str, tuple[str, BaseTrigger]]:
    """Job -> (label, trigger) for every job that is not off. The label identifies the schedule:
    a stored job with the same label is kept as it is (with its next run time) across restarts."""
    tz = ZoneInfo(jobs.timezone)
    return {
        name: (
            f"{name}: {jobs.cadence[name]} ({jobs.timezone}; grace {jobs.misfire_grace_s}s, "
            f"coalesce {str(jobs.coalesce).lower()})",
            make_trigger(kind, value, tz),
        )
        for name, (kind, value) in jobs.scheduled().items()
    }


def next_run_times(
    jobs: JobSettings, count: int = 3, now: datetime | None = None
) -> dict[str, list[datetime]]:
    """The next `count` run times of each scheduled job (what `regsync schedule --list` prints)."""
    tz = ZoneInfo(jobs.timezone)
    now = now or datetime.now(tz)
    found: dict[str, list[datetime]] = {}
    for name, (_label, trigger) in planned_jobs(jobs).items():
        times: list[datetime] = []
        previous = None
        moment = now
        while len(times) < count:
            upcoming = trigger.get_next_fire_time(previous, moment)
            if upcoming is None:
                break
            times.append(upcoming)
            previous, moment = upcoming, upcoming
        found[name] = times
    return found


def run_scheduled(name: str) -> None:
    """What the scheduler calls (by reference, from the job store): run one job, never raise."""
    daemon = _DAEMON
    if daemon is None:
        log.error("job %s fired outside a running daemon; ignored", name)
        return
    if daemon.stop.is_set():
        log.info("job %s not started: the daemon is stopping", name)
        return
    daemon.runs[name] += 1
    try:
        result = run_job(
            name,
            daemon.settings,
            should_stop=daemon.stop.is_set,
            engine=daemon.engine,
            job_settings=daemon.jobs,
        )

        emit(daemon.settings, result, engine=daemon.engine)  # when [metrics] file is set
    except Exception:
        daemon.errors[name] += 1
        log.exception("job %s raised; the daemon carries on", name)


def _install_jobs(scheduler: BlockingScheduler, jobs: JobSettings) -> None:
    """Make the job store hold exactly the configured schedule (unchanged jobs keep their next run)."""
    existing = {job.id: job for job in scheduler.get_jobs()}
    for name, (label, trigger) in planned_jobs(jobs).items():
        stored = existing.pop(name, None)
        if stored is not None and stored.name == label and stored.func_ref == JOB_REF:
            log.info("schedule: %s, next run %s (kept from the job store)", label, stored.next_run_time)
            continue
        added = scheduler.add_job(
            JOB_REF,
            trigger=trigger,
            args=[name],
            id=name,
            name=label,
            replace_existing=True,
            coalesce=jobs.coalesce,
            max_instances=1,
            misfire_grace_time=jobs.misfire_grace_s,
        )
        log.info("schedule: %s, next run %s", label, getattr(added, "next_run_time", None))
    for stale in existing:
        log.info("schedule: %s is no longer scheduled; removed from the job store", stale)
        scheduler.remove_job(stale)


def build_scheduler(jobs: JobSettings, store_engine: Engine) -> BlockingScheduler:
    return BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=store_engine, tablename=JOBSTORE_TABLE)},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={
            "coalesce": jobs.coalesce,
            "max_instances": 1,
            "misfire_grace_time": jobs.misfire_grace_s,
        },
        timezone=ZoneInfo(jobs.timezone),
    )


def _stop_when_asked(scheduler: BlockingScheduler, daemon: _Daemon) -> None:
    daemon.stop.wait()
    daemon.started.wait()
    log.info("stopping: the running job (if any) finishes its page and commits first")
    with contextlib.suppress(SchedulerNotRunningError):  # start() failed: nothing to stop
        scheduler.shutdown(wait=True)  # waits for the running job


def run_daemon(
    settings: Settings,
    jobs: JobSettings,
    *,
    stop: threading.Event,
    engine: Engine | None = None,
) -> int:
    """Run the scheduler until `stop` is set; returns the exit code (0 after a clean shutdown)."""
    global _DAEMON
    if _DAEMON is not None:
        raise RuntimeError("a daemon is already running in this process")
    owned = engine is None
    engine = engine or open_warehouse_locked(settings.warehouse.url)
    store_engine = make_engine(settings.warehouse.url)  # the job store's own pool (disposed at shutdown)
    scheduler = build_scheduler(jobs, store_engine)
    daemon = _Daemon(settings=settings, jobs=jobs, engine=engine, stop=stop)

    def on_started(_event: SchedulerEvent) -> None:
        _install_jobs(scheduler, jobs)
        daemon.started.set()

    scheduler.add_listener(on_started, EVENT_SCHEDULER_STARTED)
    _DAEMON = daemon
    watcher = threading.Thread(
        target=_stop_when_asked, args=(scheduler, daemon), name="daemon-stop", daemon=True
    )
    watcher.start()
    planned = planned_jobs(jobs)
    log.info(
        "daemon started: %d job(s) scheduled (%s); time zone %s",
        len(planned),
        ", ".join(planned) or "none",
        jobs.timezone,
    )
    try:
        scheduler.start()  # blocks until shutdown
        log.info("daemon stopped: %s", dict(daemon.runs) or "no job ran")
    finally:
        daemon.started.set()  # release the watcher if start() failed
        _DAEMON = None
        store_engine.dispose()
        if owned:
            engine.dispose()
    return int(ExitCode.OK)
