"""The run lock on both databases: exclusion, naming the holder, waiting, leases, dead holders."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from regsync.warehouse.engine import make_engine
from regsync.warehouse.lock_tables import job_locks
from regsync.warehouse.locks import (
    LOCK_NAME,
    LockHeld,
    advisory_key,
    current_holders,
    hold,
    make_lock,
    open_warehouse_locked,
)
from regsync.warehouse.state import utcnow
from tests.jobs import lock_rows, wait_for

FAST = {"lease_s": 2.0, "heartbeat_s": 0.2}


def test_advisory_key_is_stable_and_signed_64_bit() -> None:
    key = advisory_key("warehouse-writer", "public")
    assert key == advisory_key("warehouse-writer", "public")  # the same in every process
    assert -(2**63) <= key < 2**63
    assert advisory_key("warehouse-writer", "other") != key
    assert advisory_key("migrations", "public") != key
    # pinned: a change here would let an old and a new version run side by side
    assert advisory_key("warehouse-writer", "") == advisory_key("warehouse-writer")


def test_second_holder_is_refused_at_once_with_the_holder_named(warehouse: Engine) -> None:
    with hold(warehouse, job="sync", **FAST) as first:
        assert first.held
        started = time.monotonic()
        with pytest.raises(LockHeld) as refused, hold(warehouse, job="reconcile", **FAST):
            pytest.fail("a second holder got the lock")
        assert time.monotonic() - started < 2
        message = str(refused.value)
        assert "'sync'" in message
        assert socket.gethostname() in message
        assert f"pid {os.getpid()}" in message
        assert refused.value.holder is not None
        assert refused.value.holder.holder == first.holder_id
        assert [h.holder for h, state in current_holders(warehouse) if state.startswith("held")] == [
            first.holder_id
        ]
    assert lock_rows(warehouse) == []  # released: label / lease row gone
    with hold(warehouse, job="reconcile", **FAST) as again:
        assert again.held


def test_wait_gets_the_lock_once_the_holder_releases(warehouse: Engine) -> None:
    released_at: list[float] = []
    taken = threading.Event()

    def holder() -> None:
        with hold(warehouse, job="sync", **FAST):
            taken.set()
            time.sleep(1.0)
            released_at.append(time.monotonic())

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait(5)
    with hold(warehouse, job="main", wait=True, poll_s=0.1, **FAST) as lock:
        got_at = time.monotonic()
        assert lock.held
    thread.join()
    assert released_at
    assert got_at >= released_at[0]


def test_wait_gives_up_after_its_timeout_or_a_stop_request(warehouse: Engine) -> None:
    with hold(warehouse, job="sync", **FAST):
        started = time.monotonic()
        with (
            pytest.raises(LockHeld),
            hold(warehouse, job="main", wait=True, poll_s=0.1, timeout_s=0.5, **FAST),
        ):
            pass
        assert 0.5 <= time.monotonic() - started < 3
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        with (
            pytest.raises(LockHeld),
            hold(warehouse, job="main", wait=True, poll_s=5, should_stop=stop.is_set, **FAST),
        ):
            pass
        assert time.monotonic() - started < 3  # the stop request ended a 5 s poll early


@pytest.mark.parametrize("backend", ["lease"])
def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(warehouse: Engine, backend: str) -> None:
    now = utcnow()
    with warehouse.begin() as connection:
        connection.execute(
            job_locks.insert().values(
                name=LOCK_NAME,
                holder="deadhost:4242:0123456789ab",
                job="sync",
                host="deadhost",
                pid=4242,
                acquired_at=now - timedelta(minutes=10),
                heartbeat_at=now - timedelta(minutes=5),
                lease_until=now + timedelta(seconds=60),
            )
        )
    live = make_lock(warehouse, job="main", backend=backend, **FAST)
    assert not live.acquire()  # lease still running: the holder may be alive
    assert "deadhost" in str(LockHeld(LOCK_NAME, live.current_holder()))
    with warehouse.begin() as connection:
        connection.execute(update(job_locks).values(lease_until=now - timedelta(seconds=1)))
    lock = make_lock(warehouse, job="main", backend=backend, **FAST)
    assert lock.acquire()
    try:
        assert lock.took_over is not None
        assert lock.took_over.holder == "deadhost:4242:0123456789ab"
        assert [row["holder"] for row in lock_rows(warehouse)] == [lock.holder_id]
    finally:
        lock.release()


def test_the_heartbeat_extends_the_lease_while_the_job_runs(warehouse: Engine) -> None:
    lock = make_lock(warehouse, job="sync", backend="lease", lease_s=1.0, heartbeat_s=0.2)
    assert lock.acquire()
    try:
        first = lock_rows(warehouse)[0]["lease_until"]
        time.sleep(1.5)  # longer than the lease: only the heartbeat keeps it ours
        assert not make_lock(warehouse, job="main", backend="lease", lease_s=1.0, heartbeat_s=0.2).acquire()
        row = lock_rows(warehouse)[0]
        assert row["holder"] == lock.holder_id
        assert row["lease_until"] > first
        assert not lock.lost.is_set()
    finally:
        lock.release()


def test_a_holder_that_was_taken_over_finds_out_and_sets_lost(warehouse: Engine) -> None:
    lock = make_lock(warehouse, job="sync", backend="lease", lease_s=1.0, heartbeat_s=0.1)
    assert lock.acquire()
    try:
        with warehouse.begin() as connection:  # what a successor does after our lease ran out
            connection.execute(update(job_locks).values(holder="otherhost:1:ffffffffffff"))
        assert lock.lost.wait(3)
    finally:
        lock.release()
    assert [row["holder"] for row in lock_rows(warehouse)] == ["otherhost:1:ffffffffffff"]


HOLD_AND_SLEEP = """
import sys, time
from regsync.warehouse.locks import hold, open_warehouse_locked
engine = open_warehouse_locked(sys.argv[1])
with hold(engine, job="sync", lease_s=float(sys.argv[2]), heartbeat_s=0.2):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_is_succeeded_at_once(warehouse_url: str) -> None:
    """kill -9 the holder: PostgreSQL frees the advisory lock with its session; on SQLite the dead
    holder ran on this host and its pid is gone, so its 600 s lease does not keep the next run out."""
    engine = open_warehouse_locked(warehouse_url)
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_SLEEP, warehouse_url, "600"], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            _succeed_the_killed(engine, process)
        finally:
            if process.poll() is None:
                process.kill()
            engine.dispose()


def _succeed_the_killed(engine: Engine, process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld) as refused, hold(engine, job="main", **FAST):
        pass
    assert f"pid {process.pid}" in str(refused.value)
    process.send_signal(signal.SIGKILL)
    process.wait(10)

    def take() -> object:
        lock = make_lock(engine, job="main", lease_s=2.0, heartbeat_s=0.2)
        return lock if lock.acquire() else None

    lock = wait_for(take, 10, "the dead holder's lock")  # far less than its 600 s lease
    try:
        assert lock.took_over is not None
        assert str(process.pid) in lock.took_over.holder
    finally:
        lock.release()


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


def _insert_holder(warehouse: Engine, host: str, pid: int) -> None:
    now = utcnow()
    with warehouse.begin() as connection:
        connection.execute(
            job_locks.insert().values(
                name=LOCK_NAME,
                holder=f"{host}:{pid}:0123456789ab",
                job="sync",
                host=host,
                pid=pid,
                acquired_at=now - timedelta(minutes=1),
                heartbeat_at=now,
                lease_until=now + timedelta(seconds=120),
            )
        )


@pytest.mark.parametrize(
    ("where", "taken"),
    [("this host, pid gone", True), ("this host, pid alive", False), ("another host, pid gone", False)],
)
def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(
    warehouse: Engine, where: str, taken: bool
) -> None:
    host = socket.gethostname() if where.startswith("this host") else "otherhost"
    pid = os.getppid() if where.endswith("alive") else _dead_pid()
    _insert_holder(warehouse, host, pid)
    lock = make_lock(warehouse, job="main", backend="lease", **FAST)
    try:
        assert lock.acquire() is taken  # the lease runs for another 120 s either way
        if taken:
            assert lock.took_over is not None
            assert lock.took_over.pid == pid
    finally:
        lock.release()


def test_the_successor_of_a_dead_holder_closes_its_runs_as_crashed(warehouse: Engine) -> None:
    from regsync.warehouse.state import finish_run, last_runs, start_run

    earlier = start_run(warehouse, "sync")  # a run that ended normally before the dead holder
    finish_run(warehouse, earlier, "ok")
    time.sleep(0.01)
    _insert_holder(warehouse, socket.gethostname(), _dead_pid())
    orphan = start_run(warehouse, "sync")  # the dead holder's run: it never recorded its end
    with hold(warehouse, job="main", **FAST):
        rows = {row["run_id"]: row for row in last_runs(warehouse)}
    assert rows[earlier]["outcome"] == "ok"
    assert rows[orphan]["outcome"] == "crashed"
    assert rows[orphan]["ended_at"] is not None
    assert "crashed" in rows[orphan]["message"]


def test_first_migrations_started_at_once_are_serialized(warehouse_url: str) -> None:
    """Several processes opening a fresh warehouse together must not create its tables twice."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        try:
            barrier.wait()
            open_warehouse_locked(warehouse_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = make_engine(warehouse_url)
    try:
        assert lock_rows(engine) == []  # migrated: the table exists
    finally:
        engine.dispose()
