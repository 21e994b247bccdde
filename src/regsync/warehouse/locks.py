"""One run at a time, across processes and hosts.

APScheduler's ``max_instances`` only holds inside one process; cron on two hosts, a daemon plus a
manual ``regsync run``, or two overlapping cron lines are separate processes. Every job therefore
takes a lock in the warehouse itself for as long as it runs:

* PostgreSQL: ``pg_try_advisory_lock(key)`` on a dedicated connection held for the job's duration.
  The key is a stable 64-bit hash of the lock name and the warehouse's schema. The server drops the
  lock the moment that connection ends, so a crashed or killed holder never blocks its successor.
  A ``job_locks`` row beside it only says who holds it (for messages and ``regsync status``).
* SQLite: the ``job_locks`` row IS the lock: taken with one atomic conditional upsert (insert, or
  take over a row whose lease has expired), renewed by a heartbeat thread while the job runs. A
  holder that crashed keeps others out until its lease ends; then the next run takes over.

A holder that finds it no longer owns its lock (its connection dropped, or it stalled past its
lease and was taken over) sets ``lost``; jobs treat that as a stop request.

``open_warehouse_locked`` also serializes schema migrations, so two processes started at once on
a fresh warehouse do not both create its tables.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, func, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from regsync.errors import LockHeldError
from regsync.warehouse.engine import make_engine, migrate
from regsync.warehouse.lock_tables import job_locks
from regsync.warehouse.state import close_crashed_runs, utcnow
from regsync.warehouse.upsert import upsert

try:  # POSIX only; elsewhere SQLite migrations are simply not serialized
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("regsync.locks")

# Every job takes this one lock; see docs/operations.md ("Locks") for why one lock is right.
LOCK_NAME = "warehouse-writer"
MIGRATIONS_LOCK = "migrations"


def never() -> bool:
    return False


def advisory_key(name: str, scope: str = "") -> int:
    """A stable signed 64-bit key for pg_advisory_lock: the same name and schema, the same key."""
    digest = hashlib.blake2b(f"regsync:{scope}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def new_holder_id() -> str:
    """host:pid:random: unique per lock attempt, readable by an operator."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def application_name(holder_id: str) -> str:
    """What the advisory lock's connection calls itself in pg_stat_activity (63 bytes at most)."""
    return f"regsync:{holder_id}"[:63]


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment is not None else "?"


def process_gone(pid: int) -> bool:
    """Whether no process `pid` exists on this host (a pid we may not signal exists)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, under another user
        return False
    return False


def holder_is_dead(holder: Holder) -> bool:
    """A holder on this very host whose process no longer exists: it can hold nothing any more.

    A holder on another host, or whose pid is alive (or was reused), is judged by its lease alone.
    """
    return holder.host == socket.gethostname() and holder.pid is not None and process_gone(holder.pid)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its job_locks row (or PostgreSQL's lock table) says."""

    holder: str
    job: str
    host: str
    pid: int | None
    acquired_at: datetime | None
    heartbeat_at: datetime | None
    lease_until: datetime | None
    name: str = LOCK_NAME

    @classmethod
    def of(cls, row: Any) -> Holder:
        return cls(
            holder=row["holder"],
            job=row["job"],
            host=row["host"],
            pid=row["pid"],
            acquired_at=row["acquired_at"],
            heartbeat_at=row["heartbeat_at"],
            lease_until=row["lease_until"],
            name=row["name"],
        )

    def expired(self, now: datetime | None = None) -> bool:
        return self.lease_until is not None and self.lease_until < (now or utcnow())

    def describe(self, *, lease: bool = True) -> str:
        text = (
            f"job {self.job!r} on {self.host} (pid {self.pid}, holder {self.holder}) "
            f"since {_when(self.acquired_at)}, last heartbeat {_when(self.heartbeat_at)}"
        )
        if lease and self.lease_until is not None:
            state = "expired" if self.expired() else "until"
            text += f", lease {state} {_when(self.lease_until)}"
        return text


class LockHeld(LockHeldError):
    """The lock is held by another run (and we were not asked to wait, or gave up waiting)."""

    def __init__(self, name: str, holder: Holder | None, *, lease: bool = True) -> None:
        self.name = name
        self.holder = holder
        who = holder.describe(lease=lease) if holder is not None else "another run (just released?)"
        super().__init__(f"lock {name!r} is held by {who}")


class JobLock:
    """A lock held for one job's duration; `lost` is set if it is found gone while held."""

    backend = "abstract"

    def __init__(self, engine: Engine, name: str, *, job: str, lease_s: float, heartbeat_s: float) -> None:
        self.engine = engine
        self.name = name
        self.job = job
        self.lease = timedelta(seconds=lease_s)
        self.heartbeat_s = heartbeat_s
        self.holder_id = new_holder_id()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.lost = threading.Event()
        self.held = False
        self.took_over: Holder | None = None  # the expired holder this lock replaced, if any
        self._stop_beating = threading.Event()
        self._beater: threading.Thread | None = None

    # -- the contract -------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Take the lock if it is free (or its lease expired); never blocks on another holder."""
        if self.held:
            raise RuntimeError(f"lock {self.name!r} is already held by this object")
        if not self._try_acquire():
            return False
        self.held = True
        self._stop_beating.clear()
        self._beater = threading.Thread(
            target=self._heartbeat_loop, name=f"lock-heartbeat-{self.name}", daemon=True
        )
        self._beater.start()
        return True

    def release(self) -> None:
        """Stop the heartbeat and give the lock up (idempotent)."""
        if not self.held:
            return
        self._stop_beating.set()
        if self._beater is not None:
            self._beater.join()
        try:
            self._release()
        except Exception as exc:  # the lease (or the closed connection) frees it anyway
            log.warning("could not release lock %s cleanly: %s", self.name, exc)
        self.held = False

    def current_holder(self) -> Holder | None:
        raise NotImplementedError

    # -- backends -----------------------------------------------------------------------------
    def _try_acquire(self) -> bool:
        raise NotImplementedError

    def _renew(self) -> bool:
        """Extend the hold; False when it is found gone (taken over)."""
        raise NotImplementedError

    def _renew_failed(self, exc: Exception) -> bool:
        """Whether a renewal that raised means the lock is lost."""
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _row(self, now: datetime) -> dict[str, Any]:
        return {
            "name": self.name,
            "holder": self.holder_id,
            "job": self.job,
            "host": self.host,
            "pid": self.pid,
            "acquired_at": now,
            "heartbeat_at": now,
            "lease_until": now + self.lease,
        }

    def _heartbeat_loop(self) -> None:
        while not self._stop_beating.wait(self.heartbeat_s):
            try:
                still_ours = self._renew()
            except Exception as exc:
                if not self._renew_failed(exc):
                    log.warning("could not renew lock %s (will retry): %s", self.name, exc)
                    continue
                still_ours = False
                log.error("lock %s lost: %s", self.name, exc)
            if not still_ours:
                holder = None
                with contextlib.suppress(Exception):
                    holder = self.current_holder()
                who = holder.describe() if holder is not None else "nobody"
                log.error(
                    "lock %s is no longer ours (now held by %s): stopping after this page", self.name, who
                )
                self.lost.set()
                return


class LeaseLock(JobLock):
    """The job_locks row is the lock: atomic conditional upsert, a lease, a heartbeat (SQLite)."""

    backend = "lease"

    def __init__(self, engine: Engine, name: str, **kwargs: Any) -> None:
        super().__init__(engine, name, **kwargs)
        self._valid_until = 0.0  # monotonic time our last confirmed lease ends

    def _insert(self) -> Any:
        from sqlalchemy.dialects import postgresql, sqlite

        return (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(job_locks)

    def _try_acquire(self) -> bool:
        now = utcnow()
        row = self._row(now)
        statement = self._insert().values(**row)
        with self.engine.begin() as connection:
            before = (
                connection.execute(select(job_locks).where(job_locks.c.name == self.name)).mappings().first()
            )
            # Only a lease that has run out is taken over, or at once one whose holder is a process
            # of this host that no longer exists (the same holder id: a live one never matches).
            takeable = job_locks.c.lease_until < now
            if before is not None and holder_is_dead(Holder.of(before)):
                takeable = or_(takeable, job_locks.c.holder == before["holder"])
            statement = statement.on_conflict_do_update(
                index_elements=["name"],
                set_={key: statement.excluded[key] for key in row if key != "name"},
                where=takeable,
            )
            connection.execute(statement)
            holder = connection.execute(
                select(job_locks.c.holder).where(job_locks.c.name == self.name)
            ).scalar_one()
        if holder != self.holder_id:
            return False
        self._valid_until = time.monotonic() + self.lease.total_seconds()
        if before is not None:
            self.took_over = Holder.of(before)
            why = "its process is gone" if holder_is_dead(self.took_over) else "its lease had expired"
            log.warning(
                "lock %s: took over from %s (%s: crashed or stalled)",
                self.name,
                self.took_over.describe(),
                why,
            )
        return True

    def _renew(self) -> bool:
        now = utcnow()
        with self.engine.begin() as connection:
            renewed = connection.execute(
                update(job_locks)
                .where(job_locks.c.name == self.name, job_locks.c.holder == self.holder_id)
                .values(heartbeat_at=now, lease_until=now + self.lease)
            ).rowcount
        if renewed == 1:
            self._valid_until = time.monotonic() + self.lease.total_seconds()
        return renewed == 1

    def _renew_failed(self, exc: Exception) -> bool:
        # A busy database is not a lost lock, until our last confirmed lease has run out.
        return time.monotonic() >= self._valid_until

    def _release(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(job_locks).where(job_locks.c.name == self.name, job_locks.c.holder == self.holder_id)
            )

    def current_holder(self) -> Holder | None:
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(job_locks).where(job_locks.c.name == self.name)).mappings().first()
            )
        return Holder.of(row) if row is not None else None


def _schema(connection: Connection) -> str:
    return connection.execute(text("SELECT current_schema()")).scalar_one() or ""


_PG_HOLDER = text(
    """
    SELECT l.pid, a.application_name, a.client_addr, a.backend_start
    FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = :high AND l.objid::bigint = :low
    """
)


def advisory_holder(connection: Connection, name: str) -> Holder | None:
    """Who holds advisory lock `name` in this database and schema right now (None: nobody)."""
    key = advisory_key(name, _schema(connection))
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    held = connection.execute(_PG_HOLDER, {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}).first()
    if held is None:
        return None
    row = connection.execute(select(job_locks).where(job_locks.c.name == name)).mappings().first()
    if row is not None and application_name(row["holder"]) == held.application_name:
        return Holder.of(row)
    return Holder(  # held, but not (yet) labelled: say what PostgreSQL knows
        holder=held.application_name or f"backend {held.pid}",
        job="?",
        host=str(held.client_addr or "local socket"),
        pid=None,
        acquired_at=held.backend_start,
        heartbeat_at=None,
        lease_until=None,
        name=name,
    )


class AdvisoryLock(JobLock):
    """pg_try_advisory_lock on a dedicated connection held for the job's duration (PostgreSQL)."""

    backend = "advisory"

    def __init__(self, engine: Engine, name: str, **kwargs: Any) -> None:
        super().__init__(engine, name, **kwargs)
        self.key: int | None = None
        self._lock_engine: Engine | None = None
        self._connection: Connection | None = None

    def _try_acquire(self) -> bool:
        # Its own engine without a pool: closing the connection really ends the session, and with
        # it any advisory lock left behind by a failed unlock.
        lock_engine = create_engine(
            self.engine.url,
            poolclass=NullPool,
            connect_args={"application_name": application_name(self.holder_id)},
        )
        connection = lock_engine.connect()
        try:
            self.key = advisory_key(self.name, _schema(connection))
            got = bool(connection.execute(select(func.pg_try_advisory_lock(self.key))).scalar_one())
            connection.commit()  # session-level lock: it outlives the transaction
        except BaseException:
            connection.close()
            lock_engine.dispose()
            raise
        if not got:
            connection.close()
            lock_engine.dispose()
            return False
        self._connection, self._lock_engine = connection, lock_engine
        try:
            with self.engine.begin() as labels:
                before = (
                    labels.execute(select(job_locks).where(job_locks.c.name == self.name)).mappings().first()
                )
                upsert(labels, job_locks, [self._row(utcnow())])
        except Exception as exc:  # the label is informative; the advisory lock is what counts
            log.warning("lock %s: could not record its holder: %s", self.name, exc)
            return True
        if before is not None:  # a holder that released would have removed its label: it died
            self.took_over = Holder.of(before)
            log.warning(
                "lock %s: the previous holder ended without releasing it (crashed?): %s",
                self.name,
                self.took_over.describe(lease=False),
            )
        return True

    def _renew(self) -> bool:
        assert self._connection is not None
        self._connection.execute(text("SELECT 1"))  # raises if the session (and the lock) is gone
        self._connection.commit()
        now = utcnow()
        with contextlib.suppress(Exception), self.engine.begin() as labels:
            labels.execute(
                update(job_locks)
                .where(job_locks.c.name == self.name, job_locks.c.holder == self.holder_id)
                .values(heartbeat_at=now, lease_until=now + self.lease)
            )
        return True

    def _renew_failed(self, exc: Exception) -> bool:
        return True  # the session holding the advisory lock is gone: so is the lock

    def _release(self) -> None:
        try:
            if self._connection is not None and self.key is not None:
                self._connection.execute(select(func.pg_advisory_unlock(self.key)))
                self._connection.commit()
        finally:
            if self._connection is not None:
                self._connection.close()
            if self._lock_engine is not None:
                self._lock_engine.dispose()
            self._connection = self._lock_engine = None
            with self.engine.begin() as labels:
                labels.execute(
                    delete(job_locks).where(
                        job_locks.c.name == self.name, job_locks.c.holder == self.holder_id
                    )
                )

    def current_holder(self) -> Holder | None:
        with self.engine.connect() as connection:
            return advisory_holder(connection, self.name)


def make_lock(
    engine: Engine,
    name: str = LOCK_NAME,
    *,
    job: str,
    lease_s: float = 120.0,
    heartbeat_s: float = 20.0,
    backend: str | None = None,
) -> JobLock:
    """The lock for this warehouse: advisory on PostgreSQL, a lease row elsewhere (or as `backend` says)."""
    chosen = backend or ("advisory" if engine.dialect.name == "postgresql" else "lease")
    kind = {"advisory": AdvisoryLock, "lease": LeaseLock}[chosen]
    return kind(engine, name, job=job, lease_s=lease_s, heartbeat_s=heartbeat_s)


def _pause(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep in short slices so a stop request ends a wait promptly."""
    deadline = time.monotonic() + seconds
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


@contextlib.contextmanager
def hold(
    engine: Engine,
    name: str = LOCK_NAME,
    *,
    job: str,
    lease_s: float = 120.0,
    heartbeat_s: float = 20.0,
    wait: bool = False,
    poll_s: float = 5.0,
    timeout_s: float | None = None,
    should_stop: Callable[[], bool] = never,
    backend: str | None = None,
) -> Iterator[JobLock]:
    """Hold the lock for the block. Raises LockHeld at once, or (wait=True) polls until it is free.

    A wait ends with LockHeld when `timeout_s` passes or `should_stop()` says so.
    """
    lock = make_lock(engine, name, job=job, lease_s=lease_s, heartbeat_s=heartbeat_s, backend=backend)
    started = time.monotonic()
    announced = False
    while not lock.acquire():
        holder = lock.current_holder()
        timed_out = timeout_s is not None and time.monotonic() - started >= timeout_s
        if not wait or timed_out or should_stop():
            raise LockHeld(name, holder, lease=lock.backend == "lease")
        if not announced:
            who = holder.describe(lease=lock.backend == "lease") if holder else "another run"
            log.info("lock %s is held by %s; waiting (polling every %gs)", name, who, poll_s)
            announced = True
        _pause(poll_s, should_stop)
    try:
        if lock.took_over is not None:
            close_runs_of(engine, lock.took_over)
        yield lock
    finally:
        lock.release()


def close_runs_of(engine: Engine, dead: Holder) -> int:
    """The runs a dead holder left "running" (it could not record its end) are closed as crashed."""
    if dead.acquired_at is None:
        return 0
    message = (
        f"crashed: its process ended without closing this run "
        f"(lock holder {dead.holder}, job {dead.job!r} on {dead.host}, pid {dead.pid})"
    )
    count = close_crashed_runs(engine, dead.acquired_at, message)
    if count:
        log.warning("closed %d run(s) of the dead holder %s as crashed", count, dead.holder)
    return count


def current_holders(engine: Engine) -> list[tuple[Holder, str]]:
    """Every recorded holder with its state: 'held', 'expired' (SQLite) or 'stale label' (PostgreSQL)."""
    with engine.connect() as connection:
        rows = [Holder.of(r) for r in connection.execute(select(job_locks)).mappings()]
        if engine.dialect.name != "postgresql":
            return [(h, "expired: the next run takes over" if h.expired() else "held") for h in rows]
        found: list[tuple[Holder, str]] = []
        for name in sorted({h.name for h in rows} | {LOCK_NAME}):
            live = advisory_holder(connection, name)
            if live is not None:
                found.append((live, "held (advisory)"))
        live_ids = {h.holder for h, _ in found}
        found += [(h, "stale label: not held") for h in rows if h.holder not in live_ids]
        return found


# -- migrations, one process at a time --------------------------------------------------------------


@contextlib.contextmanager
def _migrations_guard(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            key = advisory_key(MIGRATIONS_LOCK, _schema(connection))
            connection.execute(select(func.pg_advisory_lock(key)))
            connection.commit()
            try:
                yield
            finally:
                connection.execute(select(func.pg_advisory_unlock(key)))
                connection.commit()
        return
    database = make_url(str(engine.url)).database
    if fcntl is None or engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    guard = Path(f"{database}.migrate-lock")
    fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # SQLite DDL is not transactional here: one migrator at a time
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def open_warehouse_locked(url: str, **kwargs: Any) -> Engine:
    """open_warehouse, with migrations serialized across processes (two first runs at once are safe)."""
    engine = make_engine(url, **kwargs)
    try:
        with _migrations_guard(engine):
            migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
