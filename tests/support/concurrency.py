"""Concurrency: every job and writer command started at once, round after round, on one warehouse and
one sandbox. The run lock must make them take turns (or refuse with exit 5); afterwards no table
holds a duplicate, no write went out twice, every exit code is a documented one (never a
traceback), no run is left "running", and one clean run ends where a clean reference ends.

The reference (its own sandbox with the same data, see `crash.aligned_sandbox`) runs last, beside
the clean run, so both warehouses are judged at the same wall-clock "now" (see
`tests.support.crash`).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, and_, func, or_, select

from regsync.exitcodes import ExitCode
from regsync.warehouse.actions_tables import actions
from regsync.warehouse.engine import make_engine
from regsync.warehouse.schema import metadata
from regsync.warehouse.tables import bookings, runs
from tests.support.crash import (
    clean_and_reference,
    compare,
    harness_config,
    regsync_command,
    start_child,
    tracebacks,
    twin_sandboxes,
)
from tests.support.writes import writes_sent_twice

# What a concurrent command may exit with: done, partly done, refused by the lock, mismatches found.
ALLOWED_EXITS = frozenset({ExitCode.OK, ExitCode.PARTIAL, ExitCode.LOCK_HELD, ExitCode.MISMATCHES})


def round_commands(reports: Path) -> list[tuple[str, list[str]]]:
    """(name, regsync arguments) of one round: every job, the interactive writers, three readers."""
    return [
        ("run-main", ["run", "main"]),
        ("run-main-wait", ["run", "--wait", "--wait-timeout", "240", "main"]),
        ("run-sync", ["run", "sync"]),
        ("run-pull-registrations", ["run", "pull-registrations"]),
        ("run-pull-checkfront", ["run", "pull-checkfront"]),
        ("run-submit-pending", ["run", "--wait", "--wait-timeout", "240", "submit-pending"]),
        ("run-close-stale", ["run", "--wait", "--wait-timeout", "240", "close-stale"]),
        ("run-reconcile", ["run", "reconcile"]),
        ("sync", ["sync"]),
        ("submit-pending-apply", ["submit-pending", "--apply"]),
        ("close-stale-apply", ["close-stale", "--apply"]),
        ("reconcile", ["reconcile", "--out", str(reports), "--fail-on-mismatch"]),
        ("status", ["status"]),
        ("plan", ["plan", "--no-explain"]),
        ("actions", ["actions", "--limit", "5"]),
    ]


@dataclass
class ConcurrencyReport:
    """What the concurrency rounds did and found; every list must be empty, every count 0."""

    concurrent_runs: int  # processes started
    rounds: int
    exit_codes: Counter[int]
    lock_refusals: int
    duplicate_rows: int
    writes_sent_twice: int
    differences: int  # rows (warehouse + remote) that differ from the clean reference
    records_compared: int = 0
    max_overlap: int = 0  # most regsync processes alive at one moment
    clean_exit_code: int | None = None
    runs_left_running: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # process label -> exit code
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["exit_codes"] = {str(code): n for code, n in sorted(self.exit_codes.items())}
        return out


def _primary_key_duplicates(engine: Engine, table: Table) -> int:
    key = list(table.primary_key.columns)
    if not key:
        return 0
    grouped = select(*key).group_by(*key).having(func.count() > 1).subquery()
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(grouped)).scalar_one())


def _grouped_duplicates(engine: Engine, columns: list[Any], where: Any = None) -> int:
    query = select(*columns).group_by(*columns).having(func.count() > 1)
    if where is not None:
        query = query.where(where)
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def duplicate_rows(engine: Engine) -> dict[str, int]:
    """Keys held by more than one row: every table by primary key, plus the natural keys.

    Natural keys: a booking code; a journal target held by two live actions (planned, sent,
    succeeded or failed for good), or done twice.
    """
    found: dict[str, int] = {}
    for table in metadata.sorted_tables:
        with engine.connect() as connection:
            exists = engine.dialect.has_table(connection, table.name)
        if exists:
            found[table.name] = _primary_key_duplicates(engine, table)
    found["bookings.code"] = _grouped_duplicates(engine, [bookings.c.code])
    holding = or_(
        actions.c.state.in_(("planned", "sent", "succeeded")),
        and_(actions.c.state == "failed", actions.c.retriable.is_(False)),
    )
    found["actions.held_target"] = _grouped_duplicates(engine, [actions.c.kind, actions.c.target_id], holding)
    found["actions.succeeded_target"] = _grouped_duplicates(
        engine, [actions.c.kind, actions.c.target_id], actions.c.state == "succeeded"
    )
    return {name: n for name, n in found.items() if n}


def _running(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(runs).where(runs.c.outcome == "running")
            ).scalar_one()
        )


def run_concurrency(
    *,
    rounds: int,
    registrations: int,
    seed: int,
    warehouse_url: str,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
) -> ConcurrencyReport:
    """Start every command of `round_commands` at once, `rounds` times; then check (see module)."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _message: None)
    rng = random.Random(seed)
    reference, sandbox = twin_sandboxes(registrations, seed)
    engine: Engine | None = None
    reference_engine: Engine | None = None
    try:
        test_dir, reference_dir = workdir / "test", workdir / "reference"
        test_dir.mkdir(exist_ok=True)
        reference_dir.mkdir(exist_ok=True)
        config = harness_config(sandbox, test_dir / "regsync.toml", warehouse_url, {"lock_poll_s": 0.2})
        logs = test_dir / "logs"
        exit_codes: Counter[int] = Counter()
        unexpected: list[str] = []
        outcomes: dict[str, int] = {}
        started_runs = max_overlap = 0
        for number in range(1, rounds + 1):
            commands = round_commands(test_dir / "reports")
            rng.shuffle(commands)
            children = []
            for name, arguments in commands:
                started_runs += 1
                label = f"round{number:02d}-{name}"
                children.append(
                    (label, start_child(regsync_command(config, *arguments), logs, label, test_dir))
                )
                time.sleep(rng.uniform(0.0, 0.15))  # staggered, so they meet at different steps
                max_overlap = max(max_overlap, sum(child.poll() is None for _, child in children))
            deadline = time.monotonic() + 600
            while any(child.poll() is None for _, child in children) and time.monotonic() < deadline:
                max_overlap = max(max_overlap, sum(child.poll() is None for _, child in children))
                time.sleep(0.05)
            for label, child in children:
                if child.poll() is None:
                    child.kill()
                    unexpected.append(f"{label}: still running after 600 s (killed)")
                code = outcomes[label] = child.wait()
                exit_codes[code] += 1
                if code not in ALLOWED_EXITS:
                    unexpected.append(f"{label}: exit {code}")
            say(f"round {number}/{rounds}: exit codes so far {dict(exit_codes)}")

        clean, reference_url = clean_and_reference(config, test_dir, reference, reference_dir)
        engine = make_engine(warehouse_url)
        reference_engine = make_engine(reference_url)
        compared, lost, duplicated, examples = compare(reference_engine, engine, reference, sandbox)
        duplicates = duplicate_rows(engine)
        return ConcurrencyReport(
            concurrent_runs=started_runs,
            rounds=rounds,
            exit_codes=exit_codes,
            lock_refusals=exit_codes[ExitCode.LOCK_HELD],
            duplicate_rows=sum(duplicates.values()),
            writes_sent_twice=writes_sent_twice(sandbox.requests),
            differences=lost + duplicated,
            records_compared=compared,
            max_overlap=max_overlap,
            clean_exit_code=clean,
            runs_left_running=_running(engine),
            unexpected_exits=unexpected,
            tracebacks=tracebacks(logs),
            duplicates=duplicates,
            runs=outcomes,
            examples=examples,
            seconds=round(time.monotonic() - started, 2),
        )
    finally:
        for opened in (engine, reference_engine):
            if opened is not None:
                opened.dispose()
        sandbox.stop()
        reference.stop()
