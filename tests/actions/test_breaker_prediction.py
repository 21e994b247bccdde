"""The breaker, predicted: `plan` and `--dry-run` say whether `--apply` would trip it and why; a handful
of writes on a small org is never blocked by the share rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from regsync.actions.apply import breaker, breaker_verdict, predict_breaker, run_actions
from regsync.actions.candidates import Candidate, Plan
from regsync.actions.journal import END, SUBMIT, list_actions
from regsync.cli import app
from regsync.config import Settings
from regsync.exitcodes import ExitCode
from regsync.settings.actions import ActionSettings
from tests.actions.test_candidates import seed_drafts
from tests.reconcile import NOW


def plan_of(submits: int, drafts: int, ends: int = 0, sessions: int = 0) -> Plan:
    plan = Plan(now=NOW, population={SUBMIT: drafts, END: sessions})
    plan.candidates[SUBMIT] = [Candidate(SUBMIT, f"r{n}", "pending", {}) for n in range(submits)]
    plan.candidates[END] = [Candidate(END, f"c{n}", "stale", {}) for n in range(ends)]
    return plan


def test_a_handful_of_writes_on_a_small_org_passes() -> None:
    """3 submits of 4 drafts is 75 %, far over the default max_share of 20 %, but only 3 writes."""
    policy = ActionSettings()
    assert (policy.max_share, policy.share_min_writes) == (0.2, 5)
    verdict = breaker_verdict(policy, plan_of(3, 4))
    assert not verdict.trips
    assert "3 submit_registration of 4 eligible (75%): under share_min_writes 5" in verdict.reason
    assert breaker(policy, plan_of(4, 4)) is None


def test_the_share_rule_applies_from_share_min_writes() -> None:
    policy = ActionSettings()
    assert "5 submit_registration of 6 eligible (83%) > max_share 20%" in (
        breaker(policy, plan_of(5, 6)) or ""
    )
    assert breaker(policy, plan_of(5, 25)) is None  # exactly 20 %
    assert breaker(policy, plan_of(6, 25)) is not None
    assert breaker(ActionSettings(share_min_writes=1), plan_of(1, 4)) is not None


def test_max_writes_counts_whatever_the_share() -> None:
    verdict = breaker_verdict(ActionSettings(max_writes=3), plan_of(2, 100, ends=2, sessions=100))
    assert verdict.trips
    assert verdict.reason.startswith("circuit breaker: 4 writes planned > max_writes 3")


def test_the_prediction_is_per_command_as_apply_runs_them() -> None:
    """submit-pending --apply and close-stale --apply each meet the breaker with their own kind."""
    verdicts = predict_breaker(ActionSettings(max_writes=3), plan_of(2, 100, ends=3, sessions=100))
    assert {command: v.trips for command, v in verdicts.items()} == {
        "submit-pending": False,
        "close-stale": False,
    }
    verdicts = predict_breaker(ActionSettings(max_writes=2), plan_of(2, 100, ends=3, sessions=100))
    assert {command: v.trips for command, v in verdicts.items()} == {
        "submit-pending": False,
        "close-stale": True,
    }


def test_a_dry_run_predicts_the_breaker_and_writes_nothing(warehouse: Engine, warehouse_url: str) -> None:
    seed_drafts(warehouse)
    settings = Settings(warehouse={"url": warehouse_url})
    report = run_actions(
        settings,
        engine=warehouse,
        dry_run=True,
        kinds=(SUBMIT,),
        now=NOW,
        action_settings=ActionSettings(max_writes=1),
    )
    assert report.dry_run
    assert report.breaker_prediction is not None
    assert report.breaker_prediction.trips
    assert "2 writes planned > max_writes 1" in report.breaker_prediction.reason
    assert list_actions(warehouse) == []
    passing = run_actions(settings, engine=warehouse, dry_run=True, kinds=(SUBMIT,), now=NOW)
    assert passing.breaker_prediction is not None
    assert not passing.breaker_prediction.trips


def _config(tmp_path: Path, url: str, actions: str = "") -> Path:
    path = tmp_path / "regsync.toml"
    path.write_text(f'[warehouse]\nurl = "{url}"\n[actions]\n{actions}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(("actions", "trips"), [("", False), ("max_writes = 1", True)])
def test_plan_says_whether_apply_would_trip(
    warehouse: Engine, warehouse_url: str, tmp_path: Path, actions: str, trips: bool
) -> None:
    seed_drafts(warehouse)
    config = _config(tmp_path, warehouse_url, actions)
    runner = CliRunner()
    shown = runner.invoke(app, ["--config", str(config), "plan", "--no-explain"])
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.stdout.splitlines() if x.startswith("breaker (submit-pending --apply)"))
    assert ("WOULD TRIP" in line) is trips
    assert ("would pass" in line) is not trips
    as_json = runner.invoke(app, ["--config", str(config), "plan", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["kind"] == "plan"
    assert document["breaker"]["submit-pending"]["would_trip"] is trips
    assert document["breaker"]["close-stale"]["would_trip"] is False
    submits = [c["target_id"] for c in document["candidates"][SUBMIT]]
    assert {"r_pending", "r_part"} <= set(submits)
    assert document["eligible"][SUBMIT] == 8
    assert {e["target_id"]: e["decision"] for e in document["explanations"]}["r_nobook"] == "skip"
    dry = runner.invoke(app, ["--config", str(config), "submit-pending", "--dry-run"])
    assert dry.exit_code == ExitCode.OK, dry.output
    assert ("breaker (--apply): WOULD TRIP" in dry.stdout) is trips


def test_a_write_job_with_writes_off_says_what_the_breaker_would_do(
    warehouse: Engine, warehouse_url: str, tmp_path: Path
) -> None:
    from regsync.jobs.registry import run_job

    seed_drafts(warehouse)
    settings = Settings(warehouse={"url": warehouse_url}, actions={"max_writes": 1})
    result = run_job("submit-pending", settings, engine=warehouse)
    assert result.exit_code == ExitCode.OK
    assert "nothing sent: writes are off" in result.summary
    assert "circuit breaker: " in result.summary
    assert "> max_writes 1" in result.summary
    assert list_actions(warehouse) == []
