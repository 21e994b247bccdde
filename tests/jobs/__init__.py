"""Helpers of the jobs tests: regsync's command line in a subprocess, configs, ledger and table reads.

Until regsync.cli wires `register(app)`, the subprocess runs a tiny boot script that registers the jobs
commands on regsync's own Typer app (register is idempotent, so this keeps working once wired).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from regsync.sandbox import DEMO, Sandbox
from regsync.warehouse.engine import make_engine
from regsync.warehouse.lock_tables import job_locks
from regsync.warehouse.tables import runs
from tests.support.snapshot import READ_TIME_COLUMNS, warehouse_snapshot

BOOT = (
    "from regsync.cli import app\n"
    "from regsync.cli.jobs import register\n"
    "register(app)\n"
    "app(prog_name='regsync')\n"
)

SECRETS = (
    DEMO.sf_password,
    DEMO.sf_security_token,
    DEMO.sf_consumer_secret,
    DEMO.sf_session_id,
    DEMO.cf_api_key,
    DEMO.cf_api_secret,
    DEMO.cf_token,
)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without REGSYNC_* overrides; wide columns so rich does not wrap lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    env.update(COLUMNS="250", NO_COLOR="1", PYTHONUNBUFFERED="1", **extra)
    return env


def regsync_cmd(*args: str, boot: str = BOOT) -> list[str]:
    return [sys.executable, "-c", boot, *args]


def start(
    args: Sequence[str], cwd: Path, *, boot: str = BOOT, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        regsync_cmd(*args, boot=boot),
        cwd=cwd,
        env=env or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_jobs_file(path: Path, jobs: dict[str, Any], cadence: dict[str, str] | None = None) -> Path:
    lines = ["[jobs]"]
    for key, value in jobs.items():
        lines.append(f"{key} = {_toml(value)}")
    if cadence:
        lines.append("\n[jobs.cadence]")
        lines += [f'"{name}" = {_toml(spec)}' for name, spec in cadence.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tomllib.loads(path.read_text(encoding="utf-8"))  # written right
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(sandbox: Sandbox, tmp_path: Path, url: str, **extra: dict[str, Any]) -> Path:
    config, _env = sandbox.write_config(tmp_path / "regsync.toml", url, extra=extra or None)
    return config


def ledger(engine: Engine, job: str | None = None) -> list[dict[str, Any]]:
    query = select(runs).order_by(runs.c.started_at)
    if job is not None:
        query = query.where(runs.c.job == job)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def lock_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(select(job_locks)).mappings()]


def contents(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """What the pull tables hold, without the columns that only say when a row was read."""
    return warehouse_snapshot(engine)


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per pull table, counted (a duplicate would show here even where a set would hide it)."""
    with engine.connect() as connection:
        return {table.name: len(connection.execute(select(table)).all()) for table in READ_TIME_COLUMNS}


def reference_contents(
    sandbox: Sandbox, tmp_path: Path, name: str = "reference.db", **overrides: dict[str, Any]
) -> dict[str, set[tuple[Any, ...]]]:
    """The tables after one uninterrupted sync of the same sandbox into a fresh SQLite warehouse."""
    from regsync.jobs.pull import run_pull
    from regsync.warehouse.engine import migrate

    url = f"sqlite:///{tmp_path / name}"
    engine = make_engine(url)
    try:
        migrate(engine)
        report = run_pull(sandbox.settings(url, **overrides), engine=engine, job="sync")
        assert report.outcome == "ok", report.message
        return contents(engine)
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def comparable_counts(counts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in counts.items() if not k.endswith("milliseconds")}
