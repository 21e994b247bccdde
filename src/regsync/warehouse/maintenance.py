"""After a large load, do at once what PostgreSQL's autovacuum would do some time later.

A first sync or a backfill writes hundreds of thousands of rows, and `regsync run main` reconciles
right after it. Until autovacuum comes round, those rows have no planner statistics, no hint bits
(the first query to read each row writes its page again to record that its transaction committed)
and no visibility map (no index-only scans): at 1M registrations a reconcile finding every
mismatch new took 24.4 s after a fill followed by ANALYZE alone, 17.7 s after VACUUM (ANALYZE)
(rules 17.6 s against 10.8 s). PostgreSQL's manual advises ANALYZE once a bulk load is done
("Populating a Database": "Run ANALYZE Afterwards"), and VACUUM is what sets hint bits and the
visibility map. So the pull ends by running `VACUUM (ANALYZE)` on each of regsync's tables that
has changed past autovacuum's own default thresholds since it was last analyzed or vacuumed; an
ordinary incremental run changes far less and runs nothing. SQLite has no such debt (its planner
statistics are opt-in, and it has no hint bits).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from regsync.warehouse.schema import metadata

log = logging.getLogger("regsync.warehouse")
# autovacuum's defaults: analyze past 50 + 10 % of the rows changed, vacuum past 1,000 + 20 % inserted.
ANALYZE_BASE, ANALYZE_SHARE = 50, 0.1
VACUUM_INSERT_BASE, VACUUM_INSERT_SHARE = 1000, 0.2

_DUE = text(
    """
    SELECT relname FROM pg_stat_user_tables
    WHERE schemaname = current_schema() AND relname = ANY(:tables)
      AND (n_mod_since_analyze > :analyze_base + :analyze_share * n_live_tup
           OR n_ins_since_vacuum > :vacuum_base + :vacuum_share * n_live_tup)
    ORDER BY relname
    """
)


def tables_due(engine: Engine) -> list[str]:
    """regsync's tables that autovacuum would vacuum or analyze now (PostgreSQL; [] elsewhere)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        return list(
            connection.execute(
                _DUE,
                {
                    "tables": sorted(metadata.tables),
                    "analyze_base": ANALYZE_BASE,
                    "analyze_share": ANALYZE_SHARE,
                    "vacuum_base": VACUUM_INSERT_BASE,
                    "vacuum_share": VACUUM_INSERT_SHARE,
                },
            ).scalars()
        )


def vacuum_after_load(engine: Engine) -> list[str]:
    """`VACUUM (ANALYZE)` every table `tables_due` names; the tables done."""
    due = tables_due(engine)
    if not due:
        return []
    started = time.perf_counter()
    preparer = engine.dialect.identifier_preparer
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for name in due:  # VACUUM cannot run inside a transaction block
                connection.execute(text(f"VACUUM (ANALYZE) {preparer.quote(name)}"))
    except SQLAlchemyError as exc:  # housekeeping: autovacuum still comes round; the pull stands
        log.warning("VACUUM (ANALYZE) after a large load failed, left to autovacuum: %s", exc)
        return []
    log.info(
        "after a large load: VACUUM (ANALYZE) of %s in %.1fs", ", ".join(due), time.perf_counter() - started
    )
    return due
