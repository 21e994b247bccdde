"""What regsync writes that holds data or secrets is owner-only (files 0600, directories 0700), whatever the umask.

The warehouse holds attendee data, the config and env files hold secrets, the reports name records,
bookings and Checkfront carts (a cart id opens the cart).

Elsewhere: report CSV cells cannot carry spreadsheet formulas —
tests/reconcile/test_report.py::test_neutralise and ::test_formulas_are_neutralised_in_the_csv;
ids and dates cannot change the structure of a SOQL query — the soql.literal, soql.in_list and
soql.window surfaces of tests/reliability/test_hostile_input.py (parsed back by the sandbox's
SOQL parser) and tests/unit/test_soql_builder.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regsync.config import write_private_file
from regsync.reconcile.rules import ReconcileSettings
from regsync.reconcile.run import run_reconcile
from regsync.sandbox import Sandbox
from regsync.warehouse.engine import open_warehouse
from regsync.warehouse.state import finish_run, start_run

OWNER_FILE = 0o600
OWNER_DIR = 0o700


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The usual umask and the most permissive one: the modes must not depend on it."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_sqlite_warehouse_its_wal_and_its_directory_are_owner_only(tmp_path: Path, umask: int) -> None:
    database = tmp_path / "data" / "warehouse.db"
    engine = open_warehouse(f"sqlite:///{database}")
    try:
        run_id = start_run(engine, "permissions")  # a write: the WAL and shared-memory files exist
        finish_run(engine, run_id, "ok", counts={}, api_calls={}, message=None)
        written = sorted(database.parent.iterdir())
        assert {p.name for p in written} >= {"warehouse.db", "warehouse.db-wal", "warehouse.db-shm"}
        assert {p.name: mode(p) for p in written} == {p.name: OWNER_FILE for p in written}
        assert mode(database.parent) == OWNER_DIR
    finally:
        engine.dispose()


def test_config_and_env_files_written_by_regsync_are_owner_only(tmp_path: Path, umask: int) -> None:
    with Sandbox(state_dir=tmp_path / "sandbox") as sandbox:
        config, env_file = sandbox.write_config(tmp_path / "etc" / "regsync.toml")
    assert mode(config) == OWNER_FILE
    assert mode(env_file) == OWNER_FILE
    assert mode(config.parent) == OWNER_DIR
    # rewriting an existing file that someone loosened tightens it again
    env_file.chmod(0o644)
    write_private_file(env_file, "REGSYNC_SALESFORCE__PASSWORD=x\n")
    assert mode(env_file) == OWNER_FILE


def test_reports_and_their_directory_are_owner_only(tmp_path: Path, umask: int) -> None:
    engine = open_warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        result = run_reconcile(
            engine,
            ReconcileSettings(),
            out_dir=tmp_path / "reports" / "today",
            fmt="both",
            now=datetime(2026, 1, 1, tzinfo=UTC),
            instance_url="https://org.example.invalid",
            registration_object="conference360__Event_Registration_Submission__c",
        )
    finally:
        engine.dispose()
    assert {p.name for p in result.paths} == {"mismatches.csv", "summary.csv", "diff.csv", "report.html"}
    assert {p.name: mode(p) for p in result.paths} == {p.name: OWNER_FILE for p in result.paths}
    assert mode(tmp_path / "reports" / "today") == OWNER_DIR
