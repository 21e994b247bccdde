"""Every run-ledger row is closed: a pull whose clients cannot be set up closes its own row."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from regsync.config import load_settings
from regsync.errors import ConfigError
from regsync.jobs.pull import run_pull
from regsync.warehouse.state import last_runs


def test_a_pull_whose_client_set_up_fails_closes_its_row(warehouse: Engine) -> None:
    # No Checkfront credentials: the Checkfront client refuses to be built, before any call.
    settings = load_settings(environ={})
    with pytest.raises(ConfigError, match="REGSYNC_CHECKFRONT__API_KEY"):
        run_pull(settings, engine=warehouse, job="sync")
    (row,) = last_runs(warehouse)
    assert row["outcome"] == "failed"
    assert row["ended_at"] is not None
    assert "REGSYNC_CHECKFRONT__API_KEY" in row["message"]
