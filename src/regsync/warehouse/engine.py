"""Open the warehouse from a URL and bring its schema up to date with Alembic."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from regsync.errors import ConfigError, RegsyncError, WarehouseError

MIGRATIONS = Path(__file__).parent / "migrations"
# SQLite's page cache per connection (PRAGMA cache_size, in KiB): its own default for readers, and
# a large one for the pull while it writes (`bulk_write_cache`). Past a few hundred thousand
# registrations the indexes outgrow 2 MB and every batched upsert re-reads its B-tree pages from
# the OS: 64 MB made a 300k pull 13 % faster. The reconcile's scans gain nothing from it and would
# hold it on each of their connections (1M: 218 MB peak with 2 MB, 386-488 MB with 64 MB).
#
# The pull's streams run at once, each on its own pooled connection, and a pooled connection keeps
# its filled cache: five of them held ~320 MB at 1M (peak RSS 407 MB). So the large caches share
# one budget, SQLite's process-wide soft heap limit: past it, a connection recycles its own least
# recently used pages instead of taking more (docs: "PRAGMA soft_heap_limit"), and the pull's
# SQLite memory stays near the budget however many streams write.
READ_CACHE_KIB = 2_000
WRITE_CACHE_KIB = 65_536
WRITE_CACHE_BUDGET_BYTES = 80 * 1024 * 1024
_cache_kib: ContextVar[int] = ContextVar("regsync_sqlite_cache_kib", default=READ_CACHE_KIB)


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _create_sqlite_file(path: Path) -> None:
    """The SQLite file and its folder, owner-only; a path that cannot be made is named."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a directory it creates: owner-only
    except OSError as exc:
        raise _path_error(exc, f"cannot create the SQLite warehouse's folder {path.parent}") from None
    if path.is_dir():
        raise ConfigError(f"warehouse.url: {path} is a directory, not an SQLite file")
    if not path.exists():
        try:
            # The warehouse holds attendee data: owner-only from the first byte.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, stat.S_IRUSR | stat.S_IWUSR))
        except OSError as exc:
            raise _path_error(exc, f"cannot create the SQLite warehouse {path}") from None


def _path_error(exc: OSError, what: str) -> RegsyncError:
    """A full disk is trouble of the moment (exit 1); anything else the configuration must fix (78)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return WarehouseError(f"{what}: {exc.strerror}")
    return ConfigError(f"warehouse.url: {what}: {exc.strerror or exc}")


def explain_warehouse_error(exc: BaseException, url: str) -> RegsyncError:
    """One line saying what is wrong with the warehouse at `url` (never its password).

    ConfigError when the configuration must change (no such database, refused login, a path SQLite
    cannot open); WarehouseError when it is trouble of the moment (server down, disk full, read-only).
    """
    text = str(getattr(exc, "orig", None) or exc)
    lowered = text.lower()
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL: config validation names it
        return WarehouseError(f"warehouse: {first}")
    if parsed.get_backend_name() == "sqlite":
        where = f"the SQLite warehouse {parsed.database or ':memory:'}"
        if "unable to open database file" in lowered:
            return ConfigError(
                f"warehouse.url: cannot open {where} (does its folder exist, may we write it?)"
            )
        if "readonly database" in lowered or "read-only" in lowered:
            return WarehouseError(f"{where} is read-only: regsync must be able to write it and its folder")
        if "disk is full" in lowered or "disk i/o error" in lowered:
            return WarehouseError(f"cannot write {where}: {first} (disk full?)")
        if "file is not a database" in lowered:
            return ConfigError(f"warehouse.url: {where} is not an SQLite database")
        return WarehouseError(f"{where}: {first}")
    server = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    database = parsed.database or "(default)"
    if "does not exist" in lowered and "database" in lowered:
        return ConfigError(
            f"warehouse.url: the PostgreSQL database {database!r} does not exist on {server}; create it "
            f"(createdb {database}) or correct the URL"
        )
    if "password authentication failed" in lowered or ("role" in lowered and "does not exist" in lowered):
        return ConfigError(
            f"warehouse.url: PostgreSQL at {server} refused the login of user {parsed.username!r}"
        )
    if "connection refused" in lowered:
        return WarehouseError(f"cannot connect to the PostgreSQL warehouse at {server}: connection refused")
    if "translate host name" in lowered or "name or service not known" in lowered or "nodename" in lowered:
        return WarehouseError(
            f"cannot connect to the PostgreSQL warehouse at {server}: DNS: the host name does not resolve"
        )
    if "timeout" in lowered or "timed out" in lowered:
        return WarehouseError(f"cannot connect to the PostgreSQL warehouse at {server}: timed out")
    if "no space left" in lowered or "disk full" in lowered:
        return WarehouseError(
            f"the PostgreSQL warehouse {database!r} at {server} is out of disk space: {first}"
        )
    return WarehouseError(f"the PostgreSQL warehouse {database!r} at {server}: {first}")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the warehouse URL (sqlite:///file.db or postgresql+psycopg://...)."""
    path = _sqlite_file(url)
    if path is not None:
        _create_sqlite_file(path)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        kwargs.setdefault("connect_args", {"timeout": 30})
    elif url.startswith("postgresql+psycopg"):
        # No server-side prepared statements: psycopg prepares a statement after 5 runs, and a
        # generic plan made while a first sync was filling an empty table (a sequential scan)
        # stays cached on the pooled connection for the rest of the load. Planning per statement
        # costs well under a millisecond on our batched statements.
        kwargs.setdefault("connect_args", {"prepare_threshold": None})
    engine = create_engine(url, **kwargs)
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if path is not None:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "checkout")
        def _cache_size(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            # Pooled connections keep their setting until someone wants another: a connection the
            # lock heartbeat borrows mid-pull is shrunk and then enlarged again (a refill, cheap).
            wanted = _cache_kib.get()
            if record.info.get("cache_kib") != wanted:
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA cache_size=-{wanted}")  # shrinking it frees the pages
                if wanted > READ_CACHE_KIB:  # all the large caches together stay within one budget
                    cursor.execute(f"PRAGMA soft_heap_limit={WRITE_CACHE_BUDGET_BYTES}")
                cursor.close()
                record.info["cache_kib"] = wanted

    return engine


@contextmanager
def bulk_write_cache(kib: int = WRITE_CACHE_KIB) -> Iterator[None]:
    """SQLite connections checked out inside this block (in this thread) get a `kib` page cache."""
    token = _cache_kib.set(kib)
    try:
        yield
    finally:
        _cache_kib.reset(token)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % (URL-encoded options) must be doubled.
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Upgrade the warehouse schema to `revision` (idempotent; "heads": every branch of migrations)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_warehouse(url: str, **kwargs: Any) -> Engine:
    """make_engine + migrate: what every command that touches the warehouse calls."""
    engine = make_engine(url, **kwargs)
    migrate(engine)
    return engine
