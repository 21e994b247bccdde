"""Every warehouse table on the one MetaData: what Alembic's env.py compares the migrations with.

The tables live in four modules (the pull's, the reconcile history, the write-back journal, the
run lock), all on `tables.metadata`. Importing this module imports each of them explicitly, so
the metadata Alembic sees never depends on which modules someone happened to import first (it
once saw only the pull's and the reconcile tables, and autogenerate would have dropped the
journal's indexes and the lock table).
"""

from __future__ import annotations

from types import ModuleType

from sqlalchemy import MetaData

from regsync.warehouse import actions_tables, lock_tables, reconcile_tables, tables

# The modules that declare tables, in the order their migrations first created them.
TABLE_MODULES: tuple[ModuleType, ...] = (tables, reconcile_tables, actions_tables, lock_tables)

metadata: MetaData = tables.metadata
