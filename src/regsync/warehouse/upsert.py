"""Set-based upserts (INSERT ... ON CONFLICT), the same call on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement


def _insert(connection: Connection, table: Table) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for dialect {dialect}")


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    newer_by: str | None = None,
    update: bool = True,
) -> None:
    """Insert rows, updating those whose primary key exists.

    newer_by: a column (e.g. system_modstamp) that must not go backwards: a row older than the
    stored one leaves it untouched, so a backfill never overwrites a newer incremental read.
    update=False: insert-or-ignore (for append-only tables such as the raw archive).
    """
    if not rows:
        return
    keys = [column.name for column in table.primary_key.columns]
    statement = _insert(connection, table)
    if not update:
        connection.execute(statement.on_conflict_do_nothing(index_elements=keys), list(rows))
        return
    columns = [name for name in rows[0] if name not in keys]
    if not columns:
        connection.execute(statement.on_conflict_do_nothing(index_elements=keys), list(rows))
        return
    where: ColumnElement[bool] | None = None
    if newer_by is not None:
        where = table.c[newer_by] <= statement.excluded[newer_by]
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=keys,
            set_={name: statement.excluded[name] for name in columns},
            where=where,
        ),
        list(rows),
    )


def replace_children(
    connection: Connection,
    table: Table,
    parent_column: str,
    parent_ids: Sequence[Any],
    rows: Sequence[dict[str, Any]],
) -> None:
    """Make the child rows of these parents exactly `rows` (delete then insert, one transaction)."""
    if not parent_ids:
        return
    column = table.c[parent_column]
    for start in range(0, len(parent_ids), 500):
        connection.execute(delete(table).where(column.in_(list(parent_ids[start : start + 500]))))
    if rows:
        connection.execute(_insert(connection, table).on_conflict_do_nothing(), list(rows))


__all__ = ["replace_children", "upsert"]
