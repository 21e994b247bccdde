"""`sync` exits 3 for what went wrong in this run, not for records still in quarantine from earlier runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from regsync.cli import app
from regsync.exitcodes import ExitCode
from regsync.jobs.pull import run_pull
from regsync.sandbox import Sandbox
from regsync.warehouse.locks import open_warehouse_locked
from regsync.warehouse.status import quarantine_summary

pytestmark = pytest.mark.sandbox
NO_SLEEP = {"sleep": lambda _s: None}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(200, seed=5) as box:
        yield box


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    engine = open_warehouse_locked(warehouse_url)
    yield engine
    engine.dispose()


def _spoil_a_booking(sandbox: Sandbox) -> None:
    """Two bookings with one code: the later stays in quarantine run after run (nothing fixes it)."""
    store = sandbox.store.checkfront
    first, second = sorted(store.bookings)[:2]
    store.bookings[second]["code"] = store.bookings[first]["code"]


def test_standing_quarantine_is_counted_but_is_no_alert_of_later_runs(
    sandbox: Sandbox, engine: Engine
) -> None:
    _spoil_a_booking(sandbox)
    settings = sandbox.settings(str(engine.url.render_as_string(hide_password=False)))
    first = run_pull(settings, engine=engine, **NO_SLEEP)
    assert first.outcome == "partial", first.message
    assert first.new_quarantined == 1
    assert first.open_quarantined == 1

    again = run_pull(settings, engine=engine, **NO_SLEEP)
    assert again.outcome == "ok", again.message  # nothing new went wrong
    assert again.new_quarantined == 0
    assert again.open_quarantined == 1
    assert "still in quarantine" in (again.message or "")
    assert quarantine_summary(engine) == {"checkfront.bookings": 1}


def test_sync_exits_3_once_then_0_while_the_record_stays_quarantined(
    sandbox: Sandbox, warehouse_url: str, tmp_path: Path
) -> None:
    _spoil_a_booking(sandbox)
    config, _ = sandbox.write_config(tmp_path / "regsync.toml", warehouse_url)
    runner = CliRunner()
    first = runner.invoke(app, ["--config", str(config), "sync"])
    assert first.exit_code == ExitCode.PARTIAL, first.output
    second = runner.invoke(app, ["--config", str(config), "sync"])
    assert second.exit_code == ExitCode.OK, second.output
    status = runner.invoke(app, ["--config", str(config), "status"])
    assert status.exit_code == 0, status.output
    assert "quarantine" in status.output
    assert "checkfront.bookings" in status.output
