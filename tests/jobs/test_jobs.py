"""The jobs as cron runs them (`regsync run JOB`, subprocesses) and as functions, on both databases."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine
from typer.testing import CliRunner

from regsync.cli import app
from regsync.cli.jobs import register
from regsync.exitcodes import ExitCode
from regsync.jobs import registry as registry_module
from regsync.jobs.registry import JOBS, JobResult, run_job
from regsync.jobs.status import jobs_status
from regsync.sandbox import Sandbox
from regsync.settings.jobs import JOB_NAMES, JobSettings, packaged_defaults
from regsync.warehouse.locks import hold, open_warehouse_locked
from tests.jobs import (
    SECRETS,
    comparable_counts,
    contents,
    ledger,
    lock_rows,
    reference_contents,
    row_counts,
    start,
    wait_for,
    write_config,
    write_jobs_file,
)

pytestmark = pytest.mark.sandbox
WRITES_ON = {"enabled": True, "max_share": 0.5, "max_writes": 1000}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(600, seed=3) as box:
        yield box


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    engine = open_warehouse_locked(warehouse_url)
    yield engine
    engine.dispose()


def slow(sandbox: Sandbox, query_s: float = 1.0, index_s: float = 0.2) -> None:
    """Make a sync last a few seconds, so two runs started together certainly overlap."""
    sandbox.faults.add(endpoint="salesforce.query", kind="slow", delay_s=query_s, every=1)
    sandbox.faults.add(endpoint="checkfront.booking.index", kind="slow", delay_s=index_s, every=1)


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def together(*commands: list[str], cwd: Path) -> list[tuple[int, str, str, float, int]]:
    """Start the commands at once; (exit code, stdout, stderr, seconds it lived, pid) of each."""
    results: list[Any] = [None] * len(commands)

    def run(index: int, process: subprocess.Popen[str], began: float) -> None:
        code, out, err = finish(process)
        results[index] = (code, out, err, time.monotonic() - began, process.pid)

    processes = [(start(args, cwd), time.monotonic()) for args in commands]
    threads = [threading.Thread(target=run, args=(i, p, t)) for i, (p, t) in enumerate(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- two runs at once ------------------------------------------------------------------------------


def test_two_runs_at_once_one_runs_the_other_exits_lock_held(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path, warehouse_url)
    slow(sandbox)
    args = ["--config", str(config), "run", "sync"]
    results = together(args, args, cwd=tmp_path)
    assert sorted(r[0] for r in results) == [ExitCode.OK, ExitCode.LOCK_HELD], [r[:3] for r in results]
    winner = next(r for r in results if r[0] == ExitCode.OK)
    loser = next(r for r in results if r[0] == ExitCode.LOCK_HELD)
    # a clear message naming the holder: its job, host and pid
    assert "held by job 'sync'" in loser[2]
    assert f"pid {winner[4]}" in loser[2]
    # "at once": the refused run was over long before the (slowed) winner finished
    assert winner[3] > 3
    assert loser[3] < winner[3] - 1.5, (loser[3], winner[3])
    ledger_rows = ledger(engine, "sync")
    assert len(ledger_rows) == 1, ledger_rows  # the refused run recorded nothing
    assert ledger_rows[0]["outcome"] == "ok"
    # no row written twice: the same contents (and row counts) as one uninterrupted run
    sandbox.faults.clear()
    assert contents(engine) == reference_contents(sandbox, tmp_path)
    assert row_counts(engine) == {name: len(rows) for name, rows in contents(engine).items()}
    assert lock_rows(engine) == []


def test_with_wait_the_second_run_runs_after_the_first(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path, warehouse_url)
    jobs_file = write_jobs_file(tmp_path / "jobs.toml", {"lock_poll_s": 0.2})
    slow(sandbox)
    args = ["--config", str(config), "run", "sync", "--wait", "--jobs-file", str(jobs_file)]
    outcomes = together(args, args, cwd=tmp_path)
    assert [o[0] for o in outcomes] == [ExitCode.OK, ExitCode.OK], [o[:3] for o in outcomes]
    assert any("waiting" in o[2] for o in outcomes)
    rows = ledger(engine, "sync")
    assert [row["outcome"] for row in rows] == ["ok", "ok"]
    assert rows[1]["started_at"] >= rows[0]["ended_at"]  # one after the other, never together
    # the second run found what the first wrote: nothing new to insert
    assert not any(k.endswith(".inserted") and v for k, v in rows[1]["counts"].items())
    sandbox.faults.clear()
    reference = reference_contents(sandbox, tmp_path)
    assert contents(engine) == reference
    single = ledger(open_warehouse_locked(f"sqlite:///{tmp_path / 'reference.db'}"), "sync")
    assert comparable_counts(rows[0]["counts"]) == comparable_counts(single[0]["counts"])


def test_a_killed_run_is_succeeded_at_once_and_its_run_closed_as_crashed(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path, warehouse_url)
    # A lease far longer than the test: on SQLite the successor must not wait for it, because the
    # dead holder ran on this host and its pid is gone.
    jobs_file = write_jobs_file(tmp_path / "jobs.toml", {"lock_lease_s": 600, "lock_heartbeat_s": 0.5})
    slow(sandbox, query_s=3.0)
    args = ["--config", str(config), "run", "sync", "--jobs-file", str(jobs_file)]
    victim = start(args, tmp_path)
    wait_for(lambda: [r for r in ledger(engine, "sync") if r["outcome"] == "running"], 30, "the run to start")
    victim.send_signal(signal.SIGKILL)
    finish(victim)
    sandbox.faults.clear()
    code, _, err = finish(start(args, tmp_path))
    assert code == ExitCode.OK, err
    assert f"pid {victim.pid}" in err  # the successor names the holder it replaced
    rows = ledger(engine, "sync")
    assert [row["outcome"] for row in rows] == ["crashed", "ok"]  # not "running" forever
    assert rows[0]["ended_at"] is not None
    assert "crashed" in rows[0]["message"]
    assert f"pid {victim.pid}" in rows[0]["message"]
    assert contents(engine) == reference_contents(sandbox, tmp_path)


# -- logs -----------------------------------------------------------------------------------------


def test_json_logs_carry_run_id_and_job_and_no_secret(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path, warehouse_url)
    # some trouble to log about: a 503 the retry policy absorbs
    sandbox.faults.add(endpoint="salesforce.query", kind="status", status=503, nth=[1])
    env_args = ["--config", str(config), "--log-format", "json", "run", "sync"]
    code, out, err = finish(start(env_args, tmp_path))
    assert code == ExitCode.OK, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) >= 3
    entries = [json.loads(line) for line in lines]  # every line is JSON
    (run,) = ledger(engine, "sync")
    for entry in entries:
        assert entry["job"] == "sync", entry
        assert entry["run_id"] == run["run_id"], entry
    assert any(entry["level"] == "warning" for entry in entries)  # the retried 503
    assert any("finished" in entry["message"] for entry in entries)
    for secret in SECRETS:
        assert secret not in err
        assert secret not in out
    assert run["run_id"] in out  # the one-line summary on stdout


def test_a_signal_under_json_logs_is_logged_as_json_and_the_pull_stops_after_its_page(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path, warehouse_url)
    slow(sandbox, query_s=1.0)
    process = start(["--config", str(config), "--log-format", "json", "sync"], tmp_path)
    wait_for(lambda: [r for r in ledger(engine, "sync") if r["outcome"] == "running"], 30, "the run to start")
    process.send_signal(signal.SIGTERM)
    code, _out, err = finish(process)
    assert code in (ExitCode.OK, ExitCode.PARTIAL), err
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert any(entry["message"].startswith("signal 15: finishing the current page") for entry in entries), err
    (run,) = ledger(engine, "sync")
    assert run["outcome"] in ("ok", "partial")
    assert run["ended_at"] is not None


# -- the jobs as functions ------------------------------------------------------------------------


def test_main_runs_its_steps_in_order_under_one_umbrella_run(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = sandbox.settings(warehouse_url, actions=WRITES_ON)
    result = run_job("main", settings, engine=engine, job_settings=JobSettings(reports_dir=tmp_path / "r"))
    assert (result.outcome, result.exit_code) == ("ok", ExitCode.OK), result.summary
    rows = ledger(engine)
    assert [r["job"] for r in rows] == ["main", "sync", "submit-pending", "close-stale", "reconcile"]
    assert all(r["outcome"] == "ok" for r in rows)
    umbrella = rows[0]
    steps = umbrella["counts"]["steps"]
    assert list(steps) == ["sync", "submit-pending", "close-stale", "reconcile"]
    assert {name: step["run_id"] for name, step in steps.items()} == {r["job"]: r["run_id"] for r in rows[1:]}
    assert umbrella["ended_at"] >= rows[-1]["ended_at"]
    assert umbrella["api_calls"]["salesforce_calls"] == sum(
        r["api_calls"].get("salesforce_calls", 0) for r in rows[1:]
    )
    assert sandbox.writes()  # write-backs were on and had work
    assert (tmp_path / "r" / "report.html").exists()
    assert rows[-1]["counts"]["reports"]
    assert lock_rows(engine) == []


def test_main_outcome_is_the_worst_of_its_steps(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sandbox.settings(warehouse_url)
    jobs = JobSettings(reports_dir=tmp_path / "r")

    def partial_close(ctx: Any) -> JobResult:
        return JobResult("partial", ExitCode.PARTIAL, "2 failed", "close-stale")

    def broken_submit(ctx: Any) -> JobResult:
        raise RuntimeError("bug in submit")

    monkeypatch.setitem(registry_module.BODIES, "close-stale", partial_close)
    result = run_job("main", settings, engine=engine, job_settings=jobs)
    assert (result.outcome, result.exit_code) == ("partial", ExitCode.PARTIAL)

    monkeypatch.setitem(registry_module.BODIES, "submit-pending", broken_submit)
    result = run_job("main", settings, engine=engine, job_settings=jobs)
    assert (result.outcome, result.exit_code) == ("failed", ExitCode.FAILED)
    assert "submit-pending failed" in result.summary
    assert "reconcile ok" in result.summary  # a failed step does not stop the report
    assert ledger(engine, "main")[-1]["outcome"] == "failed"
    assert all(r["outcome"] != "running" for r in ledger(engine))


def test_no_write_back_after_a_failed_sync(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = sandbox.settings(warehouse_url, actions=WRITES_ON)
    sandbox.faults.add(endpoint="salesforce.oauth.token", kind="status", status=400, every=1)
    result = run_job("main", settings, engine=engine, job_settings=JobSettings(reports_dir=tmp_path / "r"))
    assert (result.outcome, result.exit_code) == ("failed", ExitCode.FAILED)
    assert "submit-pending skipped (sync failed)" in result.summary
    assert "close-stale skipped (sync failed)" in result.summary
    assert sandbox.writes() == []
    assert [r["job"] for r in ledger(engine)] == ["main", "sync", "reconcile"]


def test_write_backs_with_writes_off_plan_and_record_but_send_nothing(
    sandbox: Sandbox, warehouse_url: str, engine: Engine
) -> None:
    settings = sandbox.settings(warehouse_url)  # actions.enabled is false by default
    assert run_job("sync", settings, engine=engine).outcome == "ok"
    result = run_job("submit-pending", settings, engine=engine)
    assert (result.outcome, result.exit_code) == ("ok", ExitCode.OK)
    assert "nothing sent" in result.summary
    (row,) = ledger(engine, "submit-pending")
    assert row["outcome"] == "ok"
    assert row["counts"]["submit_registration.planned"] > 0
    assert sandbox.writes() == []


def test_the_circuit_breaker_exit_code_survives_main(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = sandbox.settings(warehouse_url, actions={**WRITES_ON, "max_writes": 1})
    result = run_job("main", settings, engine=engine, job_settings=JobSettings(reports_dir=tmp_path / "r"))
    assert result.exit_code == ExitCode.BREAKER
    assert result.outcome == "failed"
    assert sandbox.writes() == []


def test_a_job_whose_lock_is_held_does_not_start(
    sandbox: Sandbox, warehouse_url: str, engine: Engine
) -> None:
    settings = sandbox.settings(warehouse_url)
    with hold(engine, job="reconcile", lease_s=10, heartbeat_s=1):
        result = run_job("sync", settings, engine=engine)
    assert (result.outcome, result.exit_code) == ("locked", ExitCode.LOCK_HELD)
    assert "held by job 'reconcile'" in result.summary
    assert ledger(engine) == []
    assert sandbox.requests == []  # not one API call


def test_a_stop_request_ends_a_pull_after_its_page(
    sandbox: Sandbox, warehouse_url: str, engine: Engine
) -> None:
    settings = sandbox.settings(warehouse_url, checkfront={"page_limit": 50})
    pages: list[str] = []

    def progress(stream: str, rows: int, total: int | None) -> None:
        pages.append(stream)

    result = run_job(
        "sync", settings, engine=engine, progress=progress, should_stop=lambda: "bookings" in pages
    )
    assert (result.outcome, result.exit_code) == ("partial", ExitCode.PARTIAL)
    (row,) = ledger(engine, "sync")
    assert row["outcome"] == "partial"
    assert row["counts"]["bookings.pages"] == 1  # stopped after the page in hand, committed
    assert run_job("sync", settings, engine=engine).outcome == "ok"  # and the next run resumes


def test_status_shows_runs_locks_actions_and_the_last_report(
    sandbox: Sandbox, warehouse_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = sandbox.settings(warehouse_url, actions=WRITES_ON)
    jobs = JobSettings(reports_dir=tmp_path / "reports")
    assert run_job("main", settings, engine=engine, job_settings=jobs).outcome == "ok"
    console = Console(width=250, record=True)
    with hold(engine, job="close-stale", lease_s=10, heartbeat_s=1) as lock:
        console.print(jobs_status(settings))
    text = console.export_text()
    for name in JOB_NAMES:
        assert name in text
    assert lock.holder_id in text
    assert "close-stale" in text
    assert str(tmp_path / "reports" / "report.html") in text
    assert "0 open" in text
    assert "never" in text  # pull-registrations never ran on its own


# -- the command line -----------------------------------------------------------------------------


def test_cli_usage_and_config_errors(sandbox: Sandbox, tmp_path: Path) -> None:
    register(app)
    register(app)  # idempotent: the lead's wiring and the tests can both call it
    assert [c.name for c in app.registered_commands].count("run") == 1
    config = write_config(sandbox, tmp_path, f"sqlite:///{tmp_path / 'w.db'}")
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "run", "nope"])
    assert result.exit_code == ExitCode.USAGE
    bad = write_jobs_file(tmp_path / "bad.toml", {"lock_lease_s": 10, "lock_heartbeat_s": 9})
    result = runner.invoke(app, ["--config", str(config), "run", "sync", "--jobs-file", str(bad)])
    assert result.exit_code == ExitCode.CONFIG
    result = runner.invoke(
        app, ["--config", str(config), "schedule", "--jobs-file", str(tmp_path / "none.toml")]
    )
    assert result.exit_code == ExitCode.CONFIG
    listed = write_jobs_file(
        tmp_path / "list.toml", {"timezone": "Europe/Paris"}, {"reconcile": "0 6 * * 1-5"}
    )
    result = runner.invoke(app, ["--config", str(config), "schedule", "--list", "--jobs-file", str(listed)])
    assert result.exit_code == ExitCode.OK, result.output
    assert "Europe/Paris" in result.output
    assert "06:00:00 CE" in result.output  # CET or CEST: 06:00 local time


def test_the_schedule_file_is_the_packaged_default() -> None:
    shipped = REPO / "jobs" / "schedule.toml"
    assert shipped.is_symlink()
    assert shipped.resolve() == (REPO / "src" / "regsync" / "settings" / "default_schedule.toml").resolve()
    defaults = packaged_defaults()
    assert set(defaults["cadence"]) == set(JOB_NAMES) == set(JOBS)
    settings = JobSettings()
    assert settings.cadence == defaults["cadence"]
    assert settings.scheduled() == {"main": ("cron", "*/15 * * * *")}


def test_overrides_merge_over_the_defaults_job_by_job() -> None:
    settings = JobSettings.model_validate(
        {"timezone": "Europe/London", "cadence": {"submit_pending": "every 10m"}}
    )
    assert settings.timezone == "Europe/London"
    assert settings.cadence["submit-pending"] == "every 10m"
    assert settings.cadence["main"] == "*/15 * * * *"  # untouched
    assert settings.lock_lease_s == packaged_defaults()["lock_lease_s"]
    for bad in (
        {"timezone": "Mars/Olympus"},
        {"cadence": {"nightly": "off"}},
        {"cadence": {"main": "every 0.5s"}},
        {"cadence": {"main": "*/15 * * *"}},
        {"cadence": {"main": "0 6 * * 8"}},
        {"misfire_grace_s": 0},
        {"surprise": 1},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError
            JobSettings.model_validate(bad)


def test_crontab_day_of_week_means_what_it_means_in_cron() -> None:
    from regsync.settings.jobs import crontab_days

    assert crontab_days("1-5") == "mon,tue,wed,thu,fri"
    assert crontab_days("0") == crontab_days("7") == "sun"
    assert crontab_days("*/2") == "sun,tue,thu,sat"
    assert crontab_days("5-7") == "sun,fri,sat"
    assert crontab_days("sat,sun") == "sun,sat"
    assert crontab_days("*") == "*"
