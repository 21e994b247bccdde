"""`status`, `actions` and `plan` with `--format json`: one JSON document on stdout that scripts parse."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from regsync.actions import journal
from regsync.actions.journal import END, SUBMIT
from regsync.cli import app
from regsync.exitcodes import ExitCode
from regsync.warehouse.locks import open_warehouse_locked
from regsync.warehouse.state import finish_run, start_run, utcnow, write_state
from regsync.warehouse.tables import runs

runner = CliRunner()


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "regsync.toml"
    path.write_text(f'[warehouse]\nurl = "{url}"\n', encoding="utf-8")
    return path


def _json(config: Path, *args: str) -> dict:
    result = runner.invoke(app, ["--config", str(config), *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_status_as_json(warehouse: Engine, warehouse_url: str, tmp_path: Path) -> None:
    run_id = start_run(warehouse, "sync")
    finish_run(
        warehouse,
        run_id,
        "ok",
        counts={"registrations.fetched": 3, "registrations.milliseconds": 4, "sessions.milliseconds": 1},
        api_calls={"salesforce": 2},
    )
    failed = start_run(warehouse, "pull-checkfront")
    finish_run(warehouse, failed, "failed", message="ConnectError: refused")
    with warehouse.begin() as connection:
        write_state(connection, "registrations", utcnow() - timedelta(minutes=5), {"last_id": "a0X"})
    document = _json(_config(tmp_path, warehouse_url), "status")
    assert document["kind"] == "status"
    assert document["streams"]["registrations"]["checkpoint"] == {"last_id": "a0X"}
    assert document["streams"]["registrations"]["watermark"].endswith("Z")
    assert document["rows"]["registrations"] == 0
    assert document["quarantined"] == 0
    assert document["jobs"]["sync"]["run_id"] == run_id
    assert document["jobs"]["sync"]["api_calls"] == {"salesforce": 2}
    assert document["jobs"]["reconcile"] is None
    assert document["last_reconcile"] is None
    fresh = document["freshness"]["systems"]
    assert fresh["salesforce"]["fresh"] is True
    assert fresh["salesforce"]["latest_outcome"] == "ok"
    assert fresh["checkfront"]["fresh"] is False
    assert fresh["checkfront"]["latest_outcome"] == "failed"
    assert document["freshness"]["fresh"] is False
    assert [run["run_id"] for run in document["last_runs"]] == [failed, run_id]


def test_actions_as_json(warehouse: Engine, warehouse_url: str, tmp_path: Path) -> None:
    first = journal.plan_action(warehouse, SUBMIT, "a0X1", reason="pending", request={"x": 1}, run_id=None)
    second = journal.plan_action(warehouse, END, "cart-9", reason="stale", request={}, run_id=None)
    assert first is not None
    assert second is not None
    journal.mark_sent(warehouse, second)
    journal.record_result(warehouse, second, "failed", error="HTTP 500", retriable=True)
    config = _config(tmp_path, warehouse_url)
    document = _json(config, "actions")
    assert document["kind"] == "actions"
    assert document["count"] == 2
    by_id = {a["action_id"]: a for a in document["actions"]}
    assert by_id[first]["state"] == "planned"
    assert by_id[first]["kind"] == SUBMIT
    failed = by_id[second]
    assert (failed["state"], failed["error"], failed["retriable"], failed["target_id"]) == (
        "failed",
        "HTTP 500",
        True,
        "cart-9",
    )
    assert by_id[second]["finished_at"].endswith("Z")
    assert "request" not in by_id[first]  # payloads stay in the journal
    failed_only = _json(config, "actions", "--state", "failed")
    assert [a["action_id"] for a in failed_only["actions"]] == [second]


def test_an_empty_warehouse_is_valid_json_too(warehouse_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, warehouse_url)
    assert _json(config, "actions") == {"schema": 1, "kind": "actions", "count": 0, "actions": []}
    plan = _json(config, "plan")
    assert plan["total"] == 0
    assert plan["breaker"] == {
        "submit-pending": {
            "would_trip": False,
            "reason": "the circuit breaker would not trip: 0 writes <= max_writes 200",
        },
        "close-stale": {
            "would_trip": False,
            "reason": "the circuit breaker would not trip: 0 writes <= max_writes 200",
        },
    }
    assert _json(config, "status")["freshness"]["systems"]["salesforce"]["data_as_of"] is None


def test_an_unknown_format_is_a_usage_error(warehouse_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, warehouse_url)
    for command in ("status", "actions", "plan"):
        result = runner.invoke(app, ["--config", str(config), command, "--format", "xml"])
        assert result.exit_code == ExitCode.USAGE
        assert "--format must be one of table, json" in result.output


def test_ids_are_whole_in_json(warehouse: Engine, warehouse_url: str, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    with warehouse.begin() as connection:
        connection.execute(
            runs.insert().values(run_id=run_id, job="main", started_at=utcnow(), outcome="running", counts={})
        )
    document = _json(_config(tmp_path, warehouse_url), "status")
    assert document["jobs"]["main"]["run_id"] == run_id
    assert document["jobs"]["main"]["ended_at"] is None


def test_status_table_says_how_fresh_the_data_is(tmp_path: Path) -> None:
    """The table form too (on SQLite only: the rich status tables are not this test's subject)."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = open_warehouse_locked(url)
    run_id = start_run(engine, "pull-registrations")
    finish_run(engine, run_id, "ok", counts={"sessions.milliseconds": 1, "registrations.milliseconds": 2})
    engine.dispose()
    result = runner.invoke(app, ["--config", str(_config(tmp_path, url)), "status"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "data as of: Salesforce 20" in said
    assert "Checkfront never" in said
    assert "warning: Checkfront has never been pulled successfully" in said
