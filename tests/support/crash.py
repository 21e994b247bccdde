"""Crash/resume: `regsync run main` killed with SIGKILL at chosen points, then run clean, must end
where one uninterrupted run ends: the same warehouse, the same remote state, no write sent twice.

Two sandboxes hold the same generated data with the same absolute timestamps (see
`aligned_sandbox`): the reference one gets one uninterrupted `run main` into its own SQLite
warehouse, the test one gets the killed runs and a clean one. The reference runs *last*, at the
same time as the clean run, so both are judged at the same wall-clock "now": write-back rules are
monotonic in time (a draft only leaves "in flight", a cart only gets staler), so whatever a killed
run did earlier, the reference does too. Comparisons ignore when the remote rows last changed
(`WRITE_TIME_COLUMNS`): the same write made at another moment stamps them differently.

The three kill points, each verified before it is counted:

* ``pull_page``: while a page of the pull is in flight (the k-th pull request just reached the
  emulator; the child is receiving or loading it).
* ``upsert_watermark``: the page's rows are written but the watermark covering them is not
  committed. PostgreSQL: the harness takes ``LOCK TABLE stream_state IN EXCLUSIVE MODE``, the
  child blocks on its watermark write inside the page's transaction (seen in ``pg_locks``,
  together with the data tables it has already written; after an empty last page, on the window's
  closing watermark, the rows being those of earlier pages), and is killed there. SQLite cannot
  show that much: the child is killed while it holds the database's write lock (the WAL write-lock
  byte of ``-shm``, probed with ``lockf(F_TEST)``, which takes nothing) right after a watermark
  page it requested, which is that page's load transaction but for a rare heartbeat.
* ``send_journal``: a ``slow`` fault delays the answer to the k-th write *after* the emulator
  applied it; the child is killed while waiting, the request log shows the write arrived, and the
  journal shows the action still "sent".

Both pull points also check the ledger afterwards: the child's sync step must still be "running",
i.e. the kill landed inside the pull.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from regsync.sandbox import Sandbox
from regsync.sandbox.http import LoggedRequest
from regsync.warehouse.actions_tables import actions
from regsync.warehouse.engine import make_engine
from regsync.warehouse.tables import runs
from tests.support.snapshot import (
    WRITE_TIME_COLUMNS,
    Snapshot,
    diff_snapshots,
    remote_snapshot,
    warehouse_snapshot,
)
from tests.support.writes import END_ENDPOINT, SUBMIT_ENDPOINT, writes_reached, writes_sent_twice

REGSYNC = str(Path(sys.executable).with_name("regsync"))
KILL_POINTS = ("pull_page", "upsert_watermark", "send_journal")
DATA_TABLES = ("sf_sessions", "registrations", "registration_attendees", "bookings", "raw_archive")
# Lease short enough that a killed SQLite holder blocks its successor for seconds, not minutes.
FAST_LOCKS = {"lock_lease_s": 3, "lock_heartbeat_s": 1, "lock_poll_s": 0.2}
WAL_WRITE_LOCK = 120  # offset of the WAL write lock in SQLite's -shm file (WALINDEX_LOCK_OFFSET)
SLOW_WRITE_S = 30.0  # how long the emulator sits on an applied write's answer


# -- shared with tests.support.concurrency --------------------------------------------------------


def aligned_sandbox(registrations: int, seed: int, at: float) -> Sandbox:
    """A generated sandbox whose data is shifted to `at` exactly, whenever it is generated.

    The generator moves every timestamp by whole seconds to the store clock's "now"; two sandboxes
    generated a moment apart could differ by a second. Generating with the clock set to `at`, then
    putting the clock back on the wall, gives byte-identical data and the same live clock.
    """
    from regsync.sandbox.generator import GeneratorConfig, populate

    sandbox = Sandbox()
    clock = sandbox.store.clock
    clock.advance(at - clock.now())
    sandbox.truth = populate(GeneratorConfig(registrations=registrations, seed=seed), sandbox.store)
    clock.offset = 0.0
    return sandbox


def twin_sandboxes(registrations: int, seed: int) -> tuple[Sandbox, Sandbox]:
    """Two started sandboxes holding the same data: the reference run's and the harness's."""
    at = float(int(time.time())) + 0.25
    return aligned_sandbox(registrations, seed, at).start(), aligned_sandbox(registrations, seed, at).start()


def harness_config(
    sandbox: Sandbox, path: Path, warehouse_url: str, jobs: dict[str, Any] | None = None
) -> Path:
    """A config with writes on and a breaker that never trips (this harness is not testing it)."""
    extra: dict[str, dict[str, Any]] = {
        "actions": {"enabled": True, "max_share": 1.0, "max_writes": 1_000_000},
        "jobs": {"reports_dir": str(path.parent / "reports"), **(jobs or {})},
    }
    config, _ = sandbox.write_config(path, warehouse_url, extra=extra)
    return config


def regsync_command(config: Path, *args: str) -> list[str]:
    """The console script with JSON logs (one line per event: easy to search for what happened)."""
    return [REGSYNC, "--config", str(config), "--log-format", "json", *args]


def start_child(command: Sequence[str], logs: Path, name: str, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a regsync process with its output kept in files (looked at for tracebacks)."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.out", "wb") as out, open(logs / f"{name}.err", "wb") as err:
        return subprocess.Popen(list(command), stdout=out, stderr=err, cwd=cwd)


def tracebacks(logs: Path) -> list[str]:
    """Names of child logs that contain a Python traceback (a crash regsync did not handle)."""
    return sorted(
        p.name for p in logs.glob("*.err") if b"Traceback (most recent call last)" in p.read_bytes()
    )


def compare(
    reference_engine: Engine, engine: Engine, reference: Sandbox, sandbox: Sandbox
) -> tuple[int, int, int, list[str]]:
    """(rows compared, lost, duplicated, examples) of warehouse and remote state vs the reference."""
    expected: Snapshot = warehouse_snapshot(reference_engine, ignore=WRITE_TIME_COLUMNS)
    actual: Snapshot = warehouse_snapshot(engine, ignore=WRITE_TIME_COLUMNS)
    empty = sorted(name for name, rows in expected.items() if not rows)
    warehouse = diff_snapshots(expected, actual)
    remote = diff_snapshots(remote_snapshot(reference), remote_snapshot(sandbox))
    examples = [f"warehouse {e}" for e in warehouse.examples] + [f"remote {e}" for e in remote.examples]
    if empty:
        examples.insert(0, f"the reference left tables empty (nothing compared there): {', '.join(empty)}")
    return (
        warehouse.compared + remote.compared,
        warehouse.lost + remote.lost,
        warehouse.duplicated + remote.duplicated,
        examples,
    )


# -- the request log ---------------------------------------------------------------------------------


def _is_state_page(request: LoggedRequest) -> bool:
    """A pull page whose load writes a watermark (SOQL window pages, booking index pages)."""
    if request.endpoint in ("salesforce.query", "salesforce.query_more"):
        # The pull reads deleted rows too (queryAll); re-reads do not. A queryAll cursor's
        # nextRecordsUrl continues under /query/, so its pages are told by the cursor the sandbox
        # logged, not by the path.
        return bool(request.tags.get("all_rows")) or "/queryAll" in request.path
    return request.endpoint == "checkfront.booking.index"


class _Phase:
    """Follows one child's requests: which belong to its pull, and when the pull is over."""

    def __init__(self) -> None:
        self.pull = 0
        self.state_pages = 0
        self.index_seen = False
        self.pull_over = False

    def see(self, request: LoggedRequest) -> bool:
        """Count a request; True when it is a pull request (False once the pull is over)."""
        if self.pull_over or request.endpoint == "salesforce.oauth.token" or request.fault is not None:
            return False
        endpoint = request.endpoint
        if _is_state_page(request):
            self.index_seen |= endpoint == "checkfront.booking.index"
            self.state_pages += 1
        elif endpoint == "checkfront.booking.get" or (
            endpoint == "checkfront.booking_session.get" and not self.index_seen
        ):
            pass
        else:
            self.pull_over = True
            return False
        self.pull += 1
        return True


# -- the report --------------------------------------------------------------------------------------


@dataclass
class CrashReport:
    """What the crash/resume run did and found; `differences` and `writes_sent_twice` must be 0."""

    iterations: int
    kills: dict[str, int]
    records_compared: int
    records_lost: int
    records_duplicated: int
    differences: int
    writes_sent_twice: int
    seconds: float
    missed: int = 0  # runs not killed at a verified kill point (they count for nothing)
    clean_exit_code: int | None = None
    writes_expected: int = 0  # writes the reference made (the send/journal point needs some)
    tracebacks: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)  # one per iteration

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the harness -------------------------------------------------------------------------------------


@dataclass
class _Harness:
    sandbox: Sandbox
    config: Path
    warehouse_url: str
    workdir: Path
    rng: random.Random
    full_pull: int  # pull requests of one uninterrupted pull from scratch
    full_state_pages: int
    engine: Engine | None = None
    pull_done: int = 0
    state_pages_done: int = 0
    runs: int = 0
    last_write: str = ""

    @property
    def is_postgres(self) -> bool:
        return self.warehouse_url.startswith("postgresql")

    def warehouse(self) -> Engine:
        if self.engine is None:
            self.engine = make_engine(self.warehouse_url)
        return self.engine

    def release_warehouse(self) -> None:
        """SQLite: hold no connection while a child runs (our own locks would muddle the probe)."""
        if self.engine is not None and not self.is_postgres:
            self.engine.dispose()

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        self.runs += 1
        since = len(self.sandbox.requests)
        command = regsync_command(self.config, "run", "--wait", "--wait-timeout", "120", "main")
        child = start_child(command, self.workdir / "logs", f"run-{self.runs:03d}", self.workdir)
        return child, since

    def remaining_writes(self) -> dict[str, list[str]]:
        """Writes the ground truth still calls for: pending drafts still Draft, stale carts alive."""
        from regsync.sandbox.store import REGISTRATION

        truth, store = self.sandbox.truth, self.sandbox.store
        with store.lock:
            registrations = store.salesforce.tables[REGISTRATION]
            carts = store.checkfront.booking_sessions
            submits = [
                r
                for r in truth.pending_registrations
                if registrations.get(r, {}).get("conference360__Status__c") == "Draft"
            ]
            ends = [
                s
                for s in truth.stale_booking_sessions
                if s in carts and carts[s].get("ended") is None and not carts[s].get("booking_code")
            ]
        return {SUBMIT_ENDPOINT: submits, END_ENDPOINT: ends}

    # -- one iteration -----------------------------------------------------------------------------
    def iteration(self, point: str) -> dict[str, Any]:
        self.release_warehouse()
        if point == "send_journal":
            return self._send_journal()
        return self._pull_kill(point)

    def _pull_kill(self, point: str) -> dict[str, Any]:
        if point == "pull_page":  # not the very last requests: the pull may be over in a blink
            left = max(3, (self.full_pull - self.pull_done) * 9 // 10)
        else:
            left = max(2, self.full_state_pages - self.state_pages_done)
        target = self.rng.randint(1, left)
        child, since = self.start()
        phase = _Phase()
        detail: dict[str, Any] = {"point": point, "target": target}
        try:
            while True:
                for request in self.sandbox.requests[since:]:
                    since += 1
                    is_pull = phase.see(request)
                    hit = phase.pull == target if point == "pull_page" else phase.state_pages == target
                    if is_pull and hit and (point == "pull_page" or _is_state_page(request)):
                        detail["request"] = request.endpoint
                        verified = (
                            self._kill_in_page(child, detail)
                            if point == "pull_page"
                            else self._kill_before_watermark(child, detail)
                        )
                        if verified and not self._pull_in_progress():
                            verified, detail["missed"] = False, "the pull had finished when the kill landed"
                        return self._ended(child, detail, phase, verified)
                if phase.pull_over or child.poll() is not None:
                    detail["missed"] = "the pull ended before the kill point"
                    return self._ended(child, detail, phase, False)
                time.sleep(0.003)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()

    def _ended(
        self, child: subprocess.Popen[bytes], detail: dict[str, Any], phase: _Phase, killed: bool
    ) -> dict[str, Any]:
        if not killed:
            child.wait(timeout=300)
        else:
            child.wait()
        detail["killed"] = killed
        detail["exit_code"] = child.returncode
        self.pull_done += phase.pull
        self.state_pages_done += phase.state_pages
        return detail

    def _kill_in_page(self, child: subprocess.Popen[bytes], detail: dict[str, Any]) -> bool:
        time.sleep(self.rng.uniform(0.0, 0.02))  # somewhere in receiving, parsing or loading it
        if child.poll() is not None:
            return False
        child.send_signal(signal.SIGKILL)
        return True

    def _kill_before_watermark(self, child: subprocess.Popen[bytes], detail: dict[str, Any]) -> bool:
        if self.is_postgres:
            return self._kill_blocked_on_watermark(child, detail)
        return self._kill_holding_write_lock(child, detail)

    def _kill_blocked_on_watermark(self, child: subprocess.Popen[bytes], detail: dict[str, Any]) -> bool:
        """PostgreSQL: block the watermark write with a table lock, kill the child while it waits."""
        engine = self.warehouse()
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                connection.execute(text("SET LOCAL lock_timeout = '20s'"))
                try:
                    connection.execute(text("LOCK TABLE stream_state IN EXCLUSIVE MODE"))
                except OperationalError as exc:  # the child kept it past lock_timeout
                    detail["missed"] = f"could not lock stream_state: {exc.orig}"
                    return False
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and child.poll() is None:
                    waiting = connection.execute(
                        text(
                            "SELECT pid FROM pg_locks WHERE relation = 'stream_state'::regclass "
                            "AND NOT granted AND pid <> pg_backend_pid()"
                        )
                    ).scalar()
                    if waiting is not None:
                        written = connection.execute(
                            text(
                                "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                "WHERE l.pid = :pid AND l.granted AND l.mode = 'RowExclusiveLock' "
                                "AND c.relname = ANY(:tables) AND c.relnamespace = "
                                "(SELECT relnamespace FROM pg_class WHERE oid = 'stream_state'::regclass)"
                            ),
                            {"pid": waiting, "tables": list(DATA_TABLES)},
                        ).scalars()
                        detail["rows_written_in_the_transaction"] = sorted(set(written))
                        child.send_signal(signal.SIGKILL)
                        child.wait()
                        return True
                    time.sleep(0.005)
                detail["missed"] = "the child never blocked on its watermark"
                return False
            finally:
                transaction.rollback()

    def _kill_holding_write_lock(self, child: subprocess.Popen[bytes], detail: dict[str, Any]) -> bool:
        """SQLite: kill while the child holds the write lock of the transaction loading the page."""
        database = make_url(self.warehouse_url).database
        deadline = time.monotonic() + 30
        # The -shm file appears when the child first opens the warehouse: under load that can come
        # after this point is armed.
        while not os.path.exists(f"{database}-shm"):
            if time.monotonic() > deadline or child.poll() is not None:
                detail["missed"] = "the child never opened the warehouse"
                return False
            time.sleep(0.005)
        fd = os.open(f"{database}-shm", os.O_RDWR)
        try:
            while time.monotonic() < deadline and child.poll() is None:
                if _write_locked(fd):
                    time.sleep(0.002)
                    if _write_locked(fd):  # still held: a page's load, not a heartbeat's blink
                        child.send_signal(signal.SIGKILL)
                        child.wait()
                        detail["write_lock_held"] = True
                        return True
                time.sleep(0.0005)
            detail["missed"] = "the child never took the write lock"
            return False
        finally:
            os.close(fd)

    def _send_journal(self) -> dict[str, Any]:
        remaining = self.remaining_writes()
        endpoints = [e for e, targets in remaining.items() if targets]
        detail: dict[str, Any] = {"point": "send_journal"}
        if not endpoints:  # everything is written: interrupt a pull instead
            return self._pull_kill(self.rng.choice(("pull_page", "upsert_watermark")))
        # Submits first (main sends them before any end, so a run cut in its ends has none left),
        # then alternate, so both kinds of write get interrupted.
        endpoint = SUBMIT_ENDPOINT
        if not remaining[SUBMIT_ENDPOINT] or (self.last_write == SUBMIT_ENDPOINT and remaining[END_ENDPOINT]):
            endpoint = END_ENDPOINT
        self.last_write = endpoint
        target = self.rng.randint(1, len(remaining[endpoint]))
        detail.update(endpoint=endpoint, target=target)
        self.sandbox.faults.add(endpoint=endpoint, kind="slow", delay_s=SLOW_WRITE_S, nth=[target], times=1)
        child, since = self.start()
        phase = _Phase()
        seen = 0
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                for request in self.sandbox.requests[since:]:
                    since += 1
                    phase.see(request)
                    if request.endpoint != endpoint or request.fault is not None:
                        continue
                    seen += 1
                    if seen == target:
                        child.send_signal(signal.SIGKILL)
                        killed_at = time.time()
                        child.wait()
                        reached = list(writes_reached([request]))
                        written = reached[0][1] if reached else "?"
                        detail.update(
                            written=written,
                            reached_before_kill=bool(reached) and request.at <= killed_at,
                            journal_state=self._journal_state(written),
                        )
                        detail["killed"] = detail["reached_before_kill"] and detail["journal_state"] == "sent"
                        return self._finish_send(child, detail, phase)
                if child.poll() is not None:
                    detail["missed"] = "the run ended before the slowed write"
                    return self._finish_send(child, detail, phase)
                time.sleep(0.003)
            detail["missed"] = "timed out"
            return self._finish_send(child, detail, phase)
        finally:
            self.sandbox.faults.clear()
            if child.poll() is None:
                child.kill()
                child.wait()

    def _finish_send(
        self, child: subprocess.Popen[bytes], detail: dict[str, Any], phase: _Phase
    ) -> dict[str, Any]:
        child.wait(timeout=300)
        detail.setdefault("killed", False)
        detail["exit_code"] = child.returncode
        self.pull_done += phase.pull
        self.state_pages_done += phase.state_pages
        return detail

    def _pull_in_progress(self) -> bool:
        """The killed child's sync step is still "running" in the ledger: it died inside the pull."""
        with self.warehouse().connect() as connection:
            outcome = connection.execute(
                select(runs.c.outcome).where(runs.c.job == "sync").order_by(runs.c.started_at.desc()).limit(1)
            ).scalar()
        self.release_warehouse()
        return outcome == "running"

    def _journal_state(self, target_id: str) -> str | None:
        with self.warehouse().connect() as connection:
            states = list(
                connection.execute(select(actions.c.state).where(actions.c.target_id == target_id)).scalars()
            )
        self.release_warehouse()
        live = [s for s in states if s != "skipped"]
        return live[-1] if len(live) == 1 else (",".join(live) or None)


def _write_locked(fd: int) -> bool:
    """Whether another process holds SQLite's WAL write lock (F_TEST only looks; it takes nothing)."""
    os.lseek(fd, WAL_WRITE_LOCK, os.SEEK_SET)
    try:
        os.lockf(fd, os.F_TEST, 1)
    except OSError:
        return True
    return False


def _plan(iterations: int, rng: random.Random) -> list[str]:
    """Both pull points first (while there is a pull to interrupt), then two writes, then any."""
    first = ["pull_page", "upsert_watermark"]
    rng.shuffle(first)
    order = [*first, "send_journal", "send_journal"]
    while len(order) < iterations:
        order.append(rng.choice(KILL_POINTS))
    return order[:iterations]


def _probe_pull(sandbox: Sandbox, workdir: Path) -> tuple[int, int]:
    """Pull requests (and watermark pages) of one uninterrupted pull from scratch: the kill range."""
    from regsync.jobs.pull import run_pull
    from regsync.warehouse.engine import migrate

    engine = make_engine(f"sqlite:///{workdir / 'probe.db'}")
    migrate(engine)
    since = len(sandbox.requests)
    report = run_pull(sandbox.settings(), engine=engine)
    engine.dispose()
    if report.outcome != "ok":
        raise RuntimeError(f"the probe pull failed: {report.message}")
    phase = _Phase()
    for request in sandbox.requests[since:]:
        phase.see(request)
    return phase.pull, phase.state_pages


def clean_and_reference(
    config: Path, test_dir: Path, reference: Sandbox, reference_dir: Path
) -> tuple[int, str]:
    """The clean run on the test side and the reference run, started together (same "now").

    Returns the clean run's exit code and the reference warehouse's URL; the reference must exit 0.
    """
    reference_url = f"sqlite:///{reference_dir / 'warehouse.db'}"
    reference_config = harness_config(reference, reference_dir / "regsync.toml", reference_url)
    children = [
        start_child(regsync_command(config, "run", "--wait", "main"), test_dir / "logs", "clean", test_dir),
        start_child(
            regsync_command(reference_config, "run", "main"), reference_dir / "logs", "main", reference_dir
        ),
    ]
    try:
        clean, reference_code = (child.wait(timeout=600) for child in children)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    if reference_code != 0:
        raise RuntimeError(f"the reference run exited {reference_code}; see {reference_dir / 'logs'}")
    return clean, reference_url


def run_crash_resume(
    *,
    iterations: int,
    registrations: int,
    seed: int,
    warehouse_url: str,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
) -> CrashReport:
    """Kill `regsync run main` `iterations` times at seeded points, run it clean, compare (see module)."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _message: None)
    rng = random.Random(seed)
    reference, sandbox = twin_sandboxes(registrations, seed)
    harness: _Harness | None = None
    reference_engine: Engine | None = None
    try:
        (workdir / "reference").mkdir(exist_ok=True)
        (workdir / "test").mkdir(exist_ok=True)
        full_pull, full_state_pages = _probe_pull(reference, workdir / "reference")
        reference.clear_requests()
        config = harness_config(sandbox, workdir / "test" / "regsync.toml", warehouse_url, FAST_LOCKS)
        harness = _Harness(sandbox, config, warehouse_url, workdir / "test", rng, full_pull, full_state_pages)
        kills = dict.fromkeys(KILL_POINTS, 0)
        missed = 0
        details = []
        for number, point in enumerate(_plan(iterations, rng), 1):
            detail = harness.iteration(point)
            details.append(detail)
            if detail.get("killed"):
                kills[detail["point"]] += 1
            else:
                missed += 1
            say(f"iteration {number}/{iterations}: {json.dumps(detail, default=str)}")
        sandbox.faults.clear()
        harness.release_warehouse()
        logs = workdir / "test" / "logs"
        clean, reference_url = clean_and_reference(config, workdir / "test", reference, workdir / "reference")
        reference_engine = make_engine(reference_url)
        compared, lost, duplicated, examples = compare(
            reference_engine, harness.warehouse(), reference, sandbox
        )
        expected_writes = Counter(key[0] for key in writes_reached(reference.requests))
        return CrashReport(
            iterations=iterations,
            kills=kills,
            records_compared=compared,
            records_lost=lost,
            records_duplicated=duplicated,
            differences=lost + duplicated,
            writes_sent_twice=writes_sent_twice(sandbox.requests),
            seconds=round(time.monotonic() - started, 2),
            missed=missed,
            clean_exit_code=clean,
            writes_expected=sum(expected_writes.values()),
            tracebacks=tracebacks(logs),
            examples=examples,
            details=details,
        )
    finally:
        if harness is not None and harness.engine is not None:
            harness.engine.dispose()
        if reference_engine is not None:
            reference_engine.dispose()
        sandbox.stop()
        reference.stop()
