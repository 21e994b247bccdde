"""A sync killed with SIGKILL at random points, then run again, ends in the uninterrupted warehouse."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from regsync.jobs.pull import run_pull
from regsync.sandbox import Sandbox
from regsync.warehouse.engine import make_engine, migrate
from tests.support.snapshot import diff_snapshots, warehouse_snapshot

pytestmark = pytest.mark.sandbox
ITERATIONS = int(os.environ.get("REGSYNC_CRASH_ITERATIONS", "3"))
REGSYNC = str(Path(sys.executable).with_name("regsync"))


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(4000, seed=21) as box:
        yield box


def test_killed_runs_resume_to_the_same_warehouse(
    sandbox: Sandbox, warehouse_url: str, tmp_path: Path
) -> None:
    reference = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference)
    assert run_pull(sandbox.settings(), engine=reference).outcome == "ok"
    expected = warehouse_snapshot(reference)
    assert all(expected.values()), "the reference run pulled every table"

    config, _ = sandbox.write_config(tmp_path / "crash.toml", warehouse_url)
    rng = random.Random(1234)
    killed = 0
    for _ in range(ITERATIONS):
        child = subprocess.Popen(
            [REGSYNC, "--config", str(config), "--log-format", "text", "sync"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.8, 3.5))  # imports take ~0.7 s; the sync itself a few seconds
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed += 1
        child.wait(timeout=60)
    assert killed > 0, "at least one run was killed mid-way"

    # The run after the crashes is the same command (it migrates a warehouse that no killed run
    # got far enough to create: under load every child may die before that).
    final = subprocess.run(
        [REGSYNC, "--config", str(config), "--log-format", "text", "sync"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    engine = make_engine(warehouse_url)
    diff = diff_snapshots(expected, warehouse_snapshot(engine))
    assert diff.differences == 0, diff.examples
    engine.dispose()
    reference.dispose()
