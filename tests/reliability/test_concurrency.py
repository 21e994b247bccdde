"""Every job and writer command started at once on one warehouse and one sandbox: the run lock makes
them take turns or refuse (exit 5), nothing is duplicated or written twice, no exit code is
undocumented, and a clean run afterwards ends where a clean reference ends.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regsync.exitcodes import ExitCode
from tests.support.concurrency import ALLOWED_EXITS, round_commands, run_concurrency

pytestmark = pytest.mark.sandbox
ROUNDS = int(os.environ.get("REGSYNC_CONCURRENCY_ROUNDS", "1"))
REGISTRATIONS = 1000


def test_overlapping_jobs_take_turns_and_end_like_one_clean_run(warehouse_url: str, tmp_path: Path) -> None:
    report = run_concurrency(
        rounds=ROUNDS,
        registrations=REGISTRATIONS,
        seed=11,
        warehouse_url=warehouse_url,
        workdir=tmp_path / "concurrency",
    )
    per_round = len(round_commands(tmp_path))
    assert report.concurrent_runs == ROUNDS * per_round
    assert sum(report.exit_codes.values()) == report.concurrent_runs
    # Not vacuous: they really overlapped, the lock refused some and let others work.
    assert report.max_overlap >= per_round // 2
    assert report.lock_refusals >= 1
    assert report.exit_codes[ExitCode.OK] >= 1
    assert report.records_compared > 5_000

    assert set(report.exit_codes) <= ALLOWED_EXITS, report.unexpected_exits
    assert report.unexpected_exits == []
    assert report.tracebacks == []
    assert report.runs_left_running == 0
    assert (report.duplicate_rows, report.duplicates) == (0, {})
    assert report.writes_sent_twice == 0
    assert report.clean_exit_code == 0
    assert report.differences == 0, report.examples
