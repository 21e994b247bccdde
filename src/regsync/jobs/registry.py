"""The jobs: each one function usable from `regsync run JOB` (cron), the daemon and tests.

Every job has the same shape::

    job(settings, *, should_stop=..., wait=False, engine=None, job_settings=None, ...) -> JobResult

and, for its whole duration, holds the warehouse-writer lock (regsync.warehouse.locks) and stamps every log
line with its job name and run id (regsync.logs.CONTEXT). The functions underneath (run_pull,
run_actions) record their own runs in the ledger; a job adds a ledger row only where nothing
else does (reconcile; write-backs while writes are off) and `main` adds one umbrella row.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import Insert

from regsync.actions.apply import policy_of, run_actions
from regsync.config import Settings
from regsync.errors import ConfigError, RegsyncError
from regsync.exitcodes import ExitCode
from regsync.extract.context import Progress
from regsync.jobs.pull import run_pull
from regsync.logs import CONTEXT
from regsync.settings.jobs import JOB_NAMES, JobSettings
from regsync.warehouse.engine import explain_warehouse_error
from regsync.warehouse.locks import LOCK_NAME, LockHeld, hold, never, open_warehouse_locked
from regsync.warehouse.state import finish_run, start_run, utcnow
from regsync.warehouse.tables import runs

log = logging.getLogger("regsync.jobs")

OUTCOME_RANK = {"ok": 0, "partial": 1, "deferred": 2, "failed": 3}
EXIT_RANK = {
    ExitCode.OK: 0,
    ExitCode.PARTIAL: 1,
    ExitCode.DEFERRED: 2,
    ExitCode.BREAKER: 3,
    ExitCode.FAILED: 4,
}
OUTCOME_EXIT = {
    "ok": ExitCode.OK,
    "partial": ExitCode.PARTIAL,
    "deferred": ExitCode.DEFERRED,
    "failed": ExitCode.FAILED,
}
SALESFORCE_STREAMS = ("sessions", "registrations")
CHECKFRONT_STREAMS = ("booking_sessions", "bookings", "booking_lines")
MAIN_STEPS = ("sync", "submit-pending", "close-stale", "reconcile")
WRITE_STEPS = ("submit-pending", "close-stale")


@dataclass(frozen=True)
class JobResult:
    """How a job ended: outcome (ok | partial | deferred | failed | locked), exit code, one line."""

    outcome: str
    exit_code: ExitCode
    summary: str
    job: str = ""
    run_id: str | None = None
    counts: Mapping[str, Any] = field(default_factory=dict)
    api_calls: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class JobContext:
    """What a job body gets: settings, the warehouse, the schedule settings and the stop request."""

    name: str
    settings: Settings
    engine: Engine
    jobs: JobSettings
    should_stop: Callable[[], bool] = never
    progress: Progress | None = None
    sleep: Callable[[float], None] | None = None
    now: Callable[[], datetime] = utcnow


def job_settings_of(settings: Settings, override: JobSettings | None = None) -> JobSettings:
    """The [jobs] settings: the override given, else settings.jobs (once wired), else the defaults."""
    if override is not None:
        return override
    configured = getattr(settings, "jobs", None)
    return configured if isinstance(configured, JobSettings) else JobSettings.model_validate({})


def worst(results: list[JobResult]) -> tuple[str, ExitCode]:
    """The worst outcome and exit code among results (ok when there are none)."""
    if not results:
        return "ok", ExitCode.OK
    outcome = max((r.outcome for r in results), key=lambda o: OUTCOME_RANK.get(o, 3))
    code = max((r.exit_code for r in results), key=lambda c: EXIT_RANK.get(c, 4))
    return outcome, code


def _summarize(counts: Mapping[str, Any], limit: int = 8) -> str:
    shown = [
        f"{k}={v}" for k, v in counts.items() if isinstance(v, int) and v and not k.endswith("milliseconds")
    ]
    return ", ".join(shown[:limit]) + (", ..." if len(shown) > limit else "")


# -- the run id in every log line -----------------------------------------------------------------


@contextlib.contextmanager
def _stamp_runs(engine: Engine) -> Iterator[None]:
    """Put the run id of the first ledger row this job starts into CONTEXT, the moment it is written.

    run_pull and run_actions create their run ids inside; listening for the ledger INSERT on the
    engine we hand them gives the id before any of their log lines, without a second ledger row.
    """

    def after_execute(_conn: Any, clause: Any, *_args: Any) -> None:
        if CONTEXT.run_id is None and isinstance(clause, Insert) and clause.table is runs:
            CONTEXT.run_id = clause.compile().params.get("run_id")
            log.info("job %s started: run %s", CONTEXT.job, CONTEXT.run_id)

    event.listen(engine, "after_execute", after_execute)
    try:
        yield
    finally:
        event.remove(engine, "after_execute", after_execute)


# -- the job wrapper --------------------------------------------------------------------------------

Body = Callable[[JobContext], JobResult]


class Job:
    """A job: its body run under the lock, with log context, never raising for an ordinary failure."""

    def __init__(self, name: str, body: Body, doc: str) -> None:
        self.name = name
        self.body = body
        self.__doc__ = doc

    def __repr__(self) -> str:
        return f"Job({self.name!r})"

    def __call__(
        self,
        settings: Settings,
        *,
        should_stop: Callable[[], bool] = never,
        wait: bool = False,
        wait_timeout_s: float | None = None,
        engine: Engine | None = None,
        job_settings: JobSettings | None = None,
        progress: Progress | None = None,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> JobResult:
        jobs = job_settings_of(settings, job_settings)
        previous = (CONTEXT.job, CONTEXT.run_id)
        CONTEXT.job, CONTEXT.run_id = self.name, None
        try:
            owned = engine is None
            try:
                engine = engine or open_warehouse_locked(settings.warehouse.url)
            except SQLAlchemyError as exc:
                explained = explain_warehouse_error(exc, settings.warehouse.url)  # one line, no password
                if isinstance(explained, ConfigError):
                    raise explained from None  # no such database, login refused: exit 78, like a bad key
                log.error("job %s: cannot open the warehouse: %s", self.name, explained)
                return JobResult(
                    "failed", ExitCode.FAILED, f"cannot open the warehouse: {explained}", self.name
                )
            try:
                return self._locked(
                    settings, engine, jobs, should_stop, wait, wait_timeout_s, progress, sleep, now
                )
            finally:
                if owned:
                    engine.dispose()
        finally:
            CONTEXT.job, CONTEXT.run_id = previous

    def _locked(
        self,
        settings: Settings,
        engine: Engine,
        jobs: JobSettings,
        should_stop: Callable[[], bool],
        wait: bool,
        wait_timeout_s: float | None,
        progress: Progress | None,
        sleep: Callable[[float], None] | None,
        now: Callable[[], datetime] | None,
    ) -> JobResult:
        try:
            with hold(
                engine,
                LOCK_NAME,
                job=self.name,
                lease_s=jobs.lock_lease_s,
                heartbeat_s=jobs.lock_heartbeat_s,
                wait=wait,
                poll_s=jobs.lock_poll_s,
                timeout_s=wait_timeout_s,
                should_stop=should_stop,
            ) as lock:
                ctx = JobContext(
                    name=self.name,
                    settings=settings,
                    engine=engine,
                    jobs=jobs,
                    should_stop=lambda: should_stop() or lock.lost.is_set(),
                    progress=progress,
                    sleep=sleep,
                    now=now or utcnow,
                )
                with _stamp_runs(engine):
                    result = self._run_body(ctx)
                if lock.lost.is_set():
                    result = JobResult(
                        "failed",
                        ExitCode.FAILED,
                        f"lost the {LOCK_NAME} lock while running (stalled past its lease?); "
                        f"stopped after the page in hand. {result.summary}",
                        self.name,
                        result.run_id,
                        result.counts,
                        result.api_calls,
                    )
        except LockHeld as exc:
            log.warning("job %s not started: %s", self.name, exc)
            return JobResult("locked", ExitCode.LOCK_HELD, str(exc), self.name)
        level = logging.INFO if result.exit_code == ExitCode.OK else logging.WARNING
        if result.outcome == "failed":
            level = logging.ERROR
        log.log(
            level,
            "job %s finished: %s (exit %d): %s",
            self.name,
            result.outcome,
            result.exit_code,
            result.summary,
        )
        return result

    def _run_body(self, ctx: JobContext) -> JobResult:
        try:
            return self.body(ctx)
        except Exception as exc:  # reported (exit 1, logged with its traceback), never a crash
            log.exception("job %s failed: %s", self.name, exc)
            return JobResult(
                "failed", ExitCode.FAILED, f"{type(exc).__name__}: {exc}", self.name, CONTEXT.run_id
            )


# -- bodies -----------------------------------------------------------------------------------------


def _pull_body(job: str, streams: tuple[str, ...]) -> Body:
    def body(ctx: JobContext) -> JobResult:
        if ctx.should_stop():
            return JobResult("partial", ExitCode.PARTIAL, "stopped before it started", job)
        report = run_pull(
            ctx.settings,
            engine=ctx.engine,
            job=job,
            streams=streams,
            should_stop=ctx.should_stop,
            progress=ctx.progress,
            sleep=ctx.sleep,
        )
        counts = dict(report.totals())
        summary = _summarize(counts) or "nothing new"
        if report.message:
            summary += f"; {report.message}"
        return JobResult(
            report.outcome,
            OUTCOME_EXIT[report.outcome],
            summary,
            job,
            report.run_id,
            counts,
            report.api_calls,
        )

    return body


def _write_body(job: str, kind: str) -> Body:
    def body(ctx: JobContext) -> JobResult:
        if ctx.should_stop():
            return JobResult("partial", ExitCode.PARTIAL, "stopped before it started", job)
        if not policy_of(ctx.settings).enabled:
            # Writes are off: run_actions only plans and records nothing; this row says the job ran.
            run_id = start_run(ctx.engine, job)
            planned: dict[str, int] = {}
            outcome, message = "failed", "interrupted"
            try:
                report = run_actions(ctx.settings, engine=ctx.engine, kinds=(kind,), now=ctx.now())
                planned = {f"{k}.planned": len(v) for k, v in report.plan.candidates.items()}
                outcome, message = "ok", f"nothing sent: {report.message}"
                if report.breaker_prediction is not None:  # what --apply / enabled writes would meet
                    message += f"; {report.breaker_prediction.reason}"
            finally:
                finish_run(ctx.engine, run_id, outcome, counts=planned, message=message)
            summary = f"{_summarize(planned) or 'nothing to do'}; {message}"
            return JobResult("ok", ExitCode.OK, summary, job, run_id, planned)
        report = run_actions(ctx.settings, engine=ctx.engine, kinds=(kind,), sleep=ctx.sleep, now=ctx.now())
        counts = dict(report.counts)
        summary = _summarize(counts) or "nothing to do"
        if report.message:
            summary += f"; {report.message}"
        return JobResult(
            report.outcome, report.exit_code, summary, job, report.run_id, counts, report.api_calls
        )

    return body


def _reconcile_body(ctx: JobContext) -> JobResult:
    from regsync.reconcile.run import run_reconcile  # start-up time: pulls and writes never load pandas

    if ctx.should_stop():
        return JobResult("partial", ExitCode.PARTIAL, "stopped before it started", "reconcile")
    sf = ctx.settings.salesforce
    # run_reconcile records its own reconcile_runs row but not the run ledger: this is its ledger row.
    run_id = start_run(ctx.engine, "reconcile")
    outcome, message, counts = "failed", "interrupted", {}
    try:
        result = run_reconcile(
            ctx.engine,
            ctx.settings.reconcile,
            out_dir=ctx.jobs.reports_dir,
            fmt=ctx.jobs.report_format,
            now=ctx.now(),
            instance_url=sf.instance_url or sf.login_url,
            registration_object=sf.objects.registration,
            checkfront_url=ctx.settings.checkfront.base_url,
        )
        fresh = result.freshness
        counts = {
            "mismatches": result.total,
            "new": result.new,
            "open": result.open,
            "resolved": result.resolved,
            **{f"code.{code}": n for code, n in result.counts.items() if n},
            "reconcile_run_id": result.run_id,
            "reports": [str(path) for path in result.paths],
            "data_fresh": int(fresh is None or fresh.fresh),
        }
        outcome = "ok"
        message = (
            f"{result.total} mismatch(es): {result.new} new, {result.open} still open, "
            f"{result.resolved} resolved; reports in {ctx.jobs.reports_dir}"
        )
        if fresh is not None:
            message += f"; {fresh.verdict()}"
    except (RegsyncError, SQLAlchemyError, OSError, ValueError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        log.error("reconcile failed: %s", message)
    finally:
        finish_run(ctx.engine, run_id, outcome, counts=counts, message=message)
    return JobResult(outcome, OUTCOME_EXIT[outcome], message, "reconcile", run_id, counts)


def _merge_calls(results: list[JobResult]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for result in results:
        for key, value in result.api_calls.items():
            if isinstance(value, int) and isinstance(merged.get(key, 0), int):
                merged[key] = merged.get(key, 0) + value
            else:
                merged[key] = value
    return merged


def _on_data(result: JobResult) -> str:
    """' on fresh data' / ' on STALE data' after a reconcile step (regsync.warehouse.freshness)."""
    fresh = result.counts.get("data_fresh")
    if fresh is None:
        return ""
    return " on fresh data" if fresh else " on STALE OR INCOMPLETE data (see its warnings)"


def _main_body(ctx: JobContext) -> JobResult:
    """sync -> submit-pending -> close-stale -> reconcile; the outcome is the worst of the steps.

    No write-back after a sync that failed or was deferred (nothing written from a warehouse we
    could not refresh); reconcile still reports. A stop request ends the run between steps.
    """
    run_id = start_run(ctx.engine, "main")
    CONTEXT.run_id = run_id
    done: dict[str, JobResult] = {}
    skipped: dict[str, str] = {}
    try:
        for step in MAIN_STEPS:
            if ctx.should_stop():
                skipped.update({s: "stop requested" for s in MAIN_STEPS if s not in done})
                break
            sync = done.get("sync")
            if step in WRITE_STEPS and sync is not None and sync.outcome in ("failed", "deferred"):
                skipped[step] = f"sync {sync.outcome}"
                continue
            log.info("main: step %s", step)
            try:
                done[step] = BODIES[step](ctx)
            except Exception as exc:  # one step's bug must not leave the umbrella run "running"
                log.exception("main: step %s failed: %s", step, exc)
                done[step] = JobResult("failed", ExitCode.FAILED, f"{type(exc).__name__}: {exc}", step)
    except BaseException as exc:
        finish_run(ctx.engine, run_id, "failed", message=f"interrupted: {type(exc).__name__}")
        raise
    results = list(done.values())
    outcome, code = worst(results)
    if "stop requested" in skipped.values() and OUTCOME_RANK[outcome] < OUTCOME_RANK["partial"]:
        outcome, code = "partial", ExitCode.PARTIAL
    steps = {
        name: {"outcome": r.outcome, "exit_code": int(r.exit_code), "run_id": r.run_id}
        for name, r in done.items()
    }
    parts = [f"{name} {r.outcome}{_on_data(r)}" for name, r in done.items()]
    parts += [f"{name} skipped ({why})" for name, why in skipped.items()]
    message = "; ".join(parts)
    calls = _merge_calls(results)
    finish_run(
        ctx.engine,
        run_id,
        outcome,
        counts={"steps": steps, "skipped": skipped},
        api_calls=calls,
        message=message,
    )
    return JobResult(outcome, code, message, "main", run_id, {"steps": steps, "skipped": skipped}, calls)


BODIES: dict[str, Body] = {
    "pull-registrations": _pull_body("pull-registrations", SALESFORCE_STREAMS),
    "pull-checkfront": _pull_body("pull-checkfront", CHECKFRONT_STREAMS),
    "sync": _pull_body("sync", SALESFORCE_STREAMS + CHECKFRONT_STREAMS),
    "submit-pending": _write_body("submit-pending", "submit_registration"),
    "close-stale": _write_body("close-stale", "end_booking_session"),
    "reconcile": _reconcile_body,
    "main": _main_body,
}

pull_registrations = Job(
    "pull-registrations",
    BODIES["pull-registrations"],
    "Pull the Salesforce streams (Sessions, registrations).",
)
pull_checkfront = Job(
    "pull-checkfront",
    BODIES["pull-checkfront"],
    "Pull the Checkfront streams (booking sessions, bookings, booking lines).",
)
sync = Job("sync", BODIES["sync"], "Pull every stream, Salesforce then Checkfront.")
submit_pending = Job(
    "submit-pending", BODIES["submit-pending"], "Submit draft registrations whose booking is confirmed."
)
close_stale = Job(
    "close-stale", BODIES["close-stale"], "End stale Checkfront booking sessions holding seats."
)
reconcile = Job("reconcile", BODIES["reconcile"], "Find every mismatch and write the reports.")
main = Job("main", BODIES["main"], "sync, then submit-pending, close-stale and reconcile, in that order.")

# Name -> job. Tests may put their own callables here (same signature) to inject failures.
JOBS: dict[str, Callable[..., JobResult]] = {
    job.name: job
    for job in (pull_registrations, pull_checkfront, sync, submit_pending, close_stale, reconcile, main)
}
assert tuple(JOBS) == JOB_NAMES, "settings/jobs.py JOB_NAMES and the registry must list the same jobs"


def run_job(name: str, settings: Settings, **kwargs: Any) -> JobResult:
    """Run job `name` (see Job.__call__ for the keyword arguments)."""
    try:
        job = JOBS[name]
    except KeyError:
        raise RegsyncError(f"unknown job {name!r}; known: {', '.join(JOBS)}") from None
    return job(settings, **kwargs)
