"""The migrations and the Table objects describe one schema: Alembic's autogenerate finds nothing to do.

The migrations create the warehouse; the Table objects are what the code reads and writes. Were
they to drift, `alembic revision --autogenerate` would propose dropping what the code relies on
(it once would have dropped the write-back journal's indexes and the lock table, because env.py
saw only the tables one module happened to register). Checked on SQLite and PostgreSQL, over
every table, in-process and through env.py in a fresh interpreter.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, Table, create_engine, inspect, text

import regsync.warehouse
from regsync.warehouse.engine import make_engine
from regsync.warehouse.schema import TABLE_MODULES, metadata
from regsync.warehouse.tables import metadata as tables_metadata

ALEMBIC_OWN = {"alembic_version"}


def _warehouse_modules() -> list[str]:
    prefix = regsync.warehouse.__name__ + "."
    return sorted(
        info.name
        for info in pkgutil.walk_packages(regsync.warehouse.__path__, prefix)
        if ".migrations" not in info.name
    )


def _declared_tables(module_name: str) -> set[str]:
    """The names of the tables a module declares (`Table("name", ...)` in its source)."""
    source = Path(importlib.import_module(module_name).__file__ or "").read_text(encoding="utf-8")
    return set(re.findall(r'\bTable\(\s*"(\w+)"', source))


def test_every_table_the_warehouse_declares_is_on_the_one_metadata() -> None:
    declared = {name: _declared_tables(name) for name in _warehouse_modules()}
    declaring = {name for name, found in declared.items() if found}
    assert declaring == {module.__name__ for module in TABLE_MODULES}
    names = set().union(*declared.values())
    assert len(names) >= 16, sorted(names)
    assert set(metadata.tables) == names
    assert metadata is tables_metadata
    for module in TABLE_MODULES:
        for value in vars(module).values():
            if isinstance(value, Table):
                assert metadata.tables[value.name] is value, value.name


def test_autogenerate_finds_no_difference_on_a_migrated_warehouse(warehouse: Engine) -> None:
    migrated = set(inspect(warehouse).get_table_names()) - ALEMBIC_OWN
    assert migrated == set(metadata.tables)
    with warehouse.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_env_py_sees_every_table_from_a_fresh_interpreter(warehouse_url: str, tmp_path: Path) -> None:
    """`alembic check` through env.py, in a process that imported nothing of regsync beforehand."""
    script = (
        "import sys\n"
        "from alembic import command\n"
        "from regsync.warehouse.engine import alembic_config, make_engine, migrate\n"
        "engine = make_engine(sys.argv[1])\n"
        "migrate(engine)\n"
        "command.check(alembic_config(engine))\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, warehouse_url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "No new upgrade operations detected" in done.stdout + done.stderr


# -- what autogenerate does not compare: an index's predicate (the journal's partial unique index) --


def _index_definitions(engine: Engine) -> dict[str, str]:
    """Each index as the database itself prints it, without schema names."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            )
        else:
            rows = connection.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")
            )
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            return {name: " ".join(sql.replace(f"{schema}.", "").split()) for name, sql in rows}
    return {name: " ".join(sql.split()) for name, sql in rows}


@pytest.fixture
def created_from_metadata(warehouse_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A second, empty database of the same backend, built by metadata.create_all."""
    if warehouse_url.startswith("sqlite"):
        engine = make_engine(f"sqlite:///{tmp_path / 'from_metadata.db'}")
        metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    base = warehouse_url.split("?")[0]
    schema = f"m_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{base}?options=-csearch_path%3D{schema}")
    try:
        metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_indexes_and_their_predicates_match_the_metadata(
    warehouse: Engine, created_from_metadata: Engine
) -> None:
    migrated = {
        name: sql for name, sql in _index_definitions(warehouse).items() if "alembic_version" not in sql
    }
    declared = _index_definitions(created_from_metadata)
    assert "uq_actions_idempotency_key" in declared
    assert "WHERE" in declared["uq_actions_idempotency_key"].upper()
    assert migrated == declared
