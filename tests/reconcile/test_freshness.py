"""Freshness: a report built after a failed or old pull says so, in HTML, summary.csv and `run main`."""

from __future__ import annotations

import csv
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from regsync.config import Settings
from regsync.exitcodes import ExitCode
from regsync.jobs import registry
from regsync.jobs.registry import JobContext, JobResult, run_job
from regsync.reconcile.rules import ReconcileSettings
from regsync.reconcile.run import run_reconcile
from regsync.settings.jobs import JobSettings
from regsync.warehouse.freshness import age_text, load_freshness
from regsync.warehouse.tables import runs
from tests.reconcile import NOW, ago, registration, seed

SF_COUNTS = {"sessions.milliseconds": 3, "registrations.fetched": 2, "registrations.milliseconds": 5}
CF_COUNTS = {"booking_sessions.milliseconds": 1, "bookings.milliseconds": 1, "booking_lines.milliseconds": 1}


def ledger_row(
    engine: Engine,
    job: str,
    outcome: str,
    started: datetime,
    *,
    counts: dict[str, Any] | None = None,
    message: str | None = None,
) -> str:
    run_id = str(uuid.uuid4())
    with engine.begin() as connection:
        connection.execute(
            runs.insert().values(
                run_id=run_id,
                job=job,
                started_at=started,
                ended_at=None if outcome == "running" else started + timedelta(minutes=2),
                outcome=outcome,
                counts=counts if counts is not None else {**SF_COUNTS, **CF_COUNTS},
                api_calls={},
                message=message,
            )
        )
    return run_id


def _freshness(engine: Engine, max_age_s: int = 7200) -> Any:
    with engine.connect() as connection:
        return load_freshness(connection, now=NOW, max_age_s=max_age_s)


def test_never_pulled_is_not_fresh(warehouse: Engine) -> None:
    found = _freshness(warehouse)
    assert not found.fresh
    assert [s.data_as_of for s in found.systems] == [None, None]
    assert any("Salesforce has never been pulled successfully" in w for w in found.warnings)
    assert any("Checkfront has never been pulled successfully" in w for w in found.warnings)
    assert found.as_of_text() == "data as of: Salesforce never, Checkfront never"


def test_a_recent_successful_sync_is_fresh_as_of_its_end(warehouse: Engine) -> None:
    ledger_row(warehouse, "sync", "ok", ago(minutes=30))
    ledger_row(warehouse, "reconcile", "failed", ago(minutes=5), counts={})  # not a pull: ignored
    found = _freshness(warehouse)
    assert found.fresh, found.warnings
    assert {s.system: s.data_as_of for s in found.systems} == {
        "salesforce": ago(minutes=28),
        "checkfront": ago(minutes=28),
    }
    assert found.systems[0].age_s == 28 * 60


def test_a_failed_latest_pull_warns_and_keeps_the_older_as_of(warehouse: Engine) -> None:
    ledger_row(warehouse, "sync", "ok", ago(minutes=40))
    failed = ledger_row(
        warehouse, "sync", "failed", ago(minutes=10), counts={}, message="AuthenticationError: HTTP 401"
    )
    found = _freshness(warehouse)
    assert not found.fresh
    salesforce = found.by_system()["salesforce"]
    assert salesforce.data_as_of == ago(minutes=38)
    assert salesforce.latest is not None
    assert salesforce.latest.run_id == failed
    assert salesforce.latest_failed
    assert any(
        f"run {failed[:8]}" in w and "ended failed: AuthenticationError: HTTP 401" in w
        for w in salesforce.warnings
    )


def test_data_older_than_max_age_is_stale(warehouse: Engine) -> None:
    ledger_row(warehouse, "sync", "ok", ago(hours=5))
    found = _freshness(warehouse, max_age_s=7200)
    assert not found.fresh
    assert any(
        "Salesforce data is 4 h 58 min old, older than max_data_age_s (2 h)" in w for w in found.warnings
    )
    assert _freshness(warehouse, max_age_s=6 * 3600).fresh


def test_each_system_is_judged_on_its_own_pulls(warehouse: Engine) -> None:
    ledger_row(warehouse, "pull-checkfront", "ok", ago(hours=10), counts=CF_COUNTS)
    ledger_row(warehouse, "pull-registrations", "ok", ago(minutes=20), counts=SF_COUNTS)
    ledger_row(warehouse, "pull-checkfront", "deferred", ago(minutes=15), counts={}, message="quota")
    found = _freshness(warehouse).by_system()
    assert found["salesforce"].fresh
    assert not found["checkfront"].fresh
    assert found["checkfront"].data_as_of == ago(hours=10) + timedelta(minutes=2)
    assert any("ended deferred: quota" in w for w in found["checkfront"].warnings)


def test_a_sync_of_some_streams_does_not_freshen_the_others(warehouse: Engine) -> None:
    ledger_row(warehouse, "sync", "ok", ago(hours=9))
    ledger_row(warehouse, "sync", "ok", ago(minutes=5), counts={"registrations.milliseconds": 4})
    salesforce = _freshness(warehouse).by_system()["salesforce"]
    assert salesforce.stream_as_of["registrations"] == ago(minutes=3)
    assert salesforce.stream_as_of["sessions"] == ago(hours=9) + timedelta(minutes=2)
    assert not salesforce.fresh  # sessions are 9 hours old


def test_a_pull_still_running_is_said_so(warehouse: Engine) -> None:
    ledger_row(warehouse, "sync", "ok", ago(minutes=50))
    ledger_row(warehouse, "sync", "running", ago(minutes=3), counts={})
    assert any("has not finished" in w for w in _freshness(warehouse).warnings)


def test_age_text() -> None:
    assert [age_text(s) for s in (42, 60, 3720, 7200, 90061, 86400)] == [
        "42 s",
        "1 min",
        "1 h 2 min",
        "2 h",
        "1 d 1 h",
        "1 d",
    ]


def _report(engine: Engine, out: Path) -> Any:
    seed(engine, registrations_=[registration("r1", created=ago(days=8))])
    return run_reconcile(
        engine,
        ReconcileSettings(),
        out_dir=out,
        fmt="both",
        now=NOW,
        instance_url="https://example.my.salesforce.com",
        registration_object="conference360__Event_Registration_Submission__c",
    )


def test_reports_after_a_failed_pull_say_so(warehouse: Engine, tmp_path: Path) -> None:
    ledger_row(warehouse, "sync", "ok", ago(hours=30))
    ledger_row(warehouse, "sync", "failed", ago(minutes=10), counts={}, message="ConnectError: refused")
    result = _report(warehouse, tmp_path)
    assert result.freshness is not None
    assert not result.freshness.fresh
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'class="banner warn"' in page
    assert "this report may be wrong or incomplete" in page
    assert "ConnectError: refused" in page
    assert "Salesforce: data as of 2025-05-31T06:02:00Z (1 d 5 h old)" in page
    with (tmp_path / "summary.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["salesforce_data_as_of"] for row in rows} == {"2025-05-31T06:02:00Z"}
    assert all("ended failed: ConnectError: refused" in row["data_warning"] for row in rows)
    assert all("older than max_data_age_s" in row["data_warning"] for row in rows)


def test_reports_on_fresh_data_say_as_of_when(warehouse: Engine, tmp_path: Path) -> None:
    ledger_row(warehouse, "sync", "ok", ago(minutes=20))
    _report(warehouse, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'class="banner ok"' in page
    assert "banner warn" not in page
    assert "Checkfront: data as of 2025-06-01T11:42:00Z (18 min old)" in page
    with (tmp_path / "summary.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["checkfront_data_as_of"], r["data_warning"]) for r in rows} == {("2025-06-01T11:42:00Z", "")}


def test_run_main_says_whether_reconcile_ran_on_fresh_data(
    warehouse: Engine, warehouse_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """A sync that fails: main still reconciles (it reports), and its summary says on what data."""

    def failing_sync(ctx: JobContext) -> JobResult:
        run_id = ledger_row(ctx.engine, "sync", "failed", ctx.now() - timedelta(minutes=10), counts={})
        return JobResult("failed", ExitCode.FAILED, "ConnectError", "sync", run_id)

    settings = Settings(warehouse={"url": warehouse_url})
    jobs = JobSettings.model_validate({"reports_dir": str(tmp_path / "reports"), "report_format": "csv"})
    monkeypatch.setitem(registry.BODIES, "sync", failing_sync)
    result = run_job("main", settings, engine=warehouse, job_settings=jobs, now=lambda: NOW)
    assert "reconcile ok on STALE OR INCOMPLETE data" in result.summary
    assert result.exit_code == ExitCode.FAILED

    def good_sync(ctx: JobContext) -> JobResult:
        run_id = ledger_row(ctx.engine, "sync", "ok", ctx.now() - timedelta(minutes=3))
        return JobResult("ok", ExitCode.OK, "", "sync", run_id)

    monkeypatch.setitem(registry.BODIES, "sync", good_sync)
    result = run_job("main", settings, engine=warehouse, job_settings=jobs, now=lambda: NOW)
    assert "reconcile ok on fresh data" in result.summary, result.summary
