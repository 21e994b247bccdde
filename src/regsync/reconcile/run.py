"""One reconcile run: evaluate the rules, remember what was seen when, write the reports."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, select, update

from regsync.reconcile.html import (
    HTML_ROW_LIMIT,
    iter_severity_rows,
    load_history,
    org_url,
    render_html,
    write_html,
)
from regsync.reconcile.report import load_tally, write_csv_reports
from regsync.reconcile.rules import CODES, Mismatch, ReconcileSettings, evaluate_concurrently
from regsync.warehouse.batching import batched
from regsync.warehouse.freshness import Freshness, load_freshness, stamp
from regsync.warehouse.reconcile_tables import mismatches, reconcile_runs
from regsync.warehouse.upsert import insert_new, upsert

log = logging.getLogger("regsync.reconcile")
RECORD_BATCH = 5_000  # mismatches written per statement: the parameter rows of one batch at a time
ReportFormat = Literal["csv", "html", "both"]
FORMATS: tuple[str, ...] = ("csv", "html", "both")


@dataclass(frozen=True)
class RunDiff:
    """How this run's mismatches compare with the previous run's."""

    new: int
    open: int
    resolved: int


@dataclass(frozen=True)
class ReconcileResult:
    """What a reconcile run found and wrote."""

    run_id: str
    at: datetime
    counts: dict[str, int]  # by reason code, every code listed
    total: int
    new: int
    open: int
    resolved: int
    paths: tuple[Path, ...]
    freshness: Freshness | None = None  # how fresh the data behind this run was


def _last_values(found: Mismatch, run_id: str, now: datetime) -> dict[str, Any]:
    """What every run rewrites on a mismatch it sees."""
    return {
        "severity": found.severity,
        "sf_value": found.sf_value,
        "cf_value": found.cf_value,
        "explanation": found.explanation,
        "last_seen": now,
        "last_run_id": run_id,
    }


def _open(connection: Connection, found: Mapping[str, Mismatch], run_id: str, now: datetime) -> None:
    """Mismatches not open before this run (never seen, or resolved and back): first seen now.

    Those never seen are inserted as such (a COPY on PostgreSQL); those resolved and back are
    upserted over their old row.
    """
    m = mismatches
    for batch in batched(list(found.items()), RECORD_BATCH):
        keys = [key for key, _item in batch]
        known = set(connection.execute(select(m.c.mismatch_key).where(m.c.mismatch_key.in_(keys))).scalars())
        rows = [
            {
                **_last_values(item, run_id, now),
                "mismatch_key": key,
                "code": item.code,
                "registration_id": item.registration_id,
                "booking_session_id": item.booking_session_id,
                "booking_code": item.booking_code,
                "first_seen": now,
                "first_run_id": run_id,
                "resolved_at": None,
                "resolved_run_id": None,
            }
            for key, item in batch
        ]
        insert_new(connection, m, [row for row in rows if row["mismatch_key"] not in known])
        upsert(connection, m, [row for row in rows if row["mismatch_key"] in known])


def _shown(found: Mismatch) -> tuple[Any, ...]:
    """What a report shows of a mismatch that a later run may see differently."""
    return (found.severity, found.sf_value, found.cf_value, found.explanation)


def _refresh(
    connection: Connection,
    found: Mapping[str, Mismatch],
    run_id: str,
    now: datetime,
    shown: Mapping[str, tuple[Any, ...]],
) -> None:
    """Mismatches still open: those unchanged marked seen by this run (one UPDATE a batch of keys),
    those whose shown values changed since (`shown`: what the history holds) rewritten whole, seen
    included; first_seen stays.

    Most open mismatches are seen again unchanged, so most of a run's history is the one
    set-based UPDATE, not an UPDATE a row (110,000 of them took 6 s on PostgreSQL).
    """
    if not found:
        return
    m = mismatches
    changed = [(key, item) for key, item in found.items() if shown.get(key) != _shown(item)]
    rewritten = {key for key, _item in changed}
    for keys in batched([key for key in found if key not in rewritten], RECORD_BATCH):
        connection.execute(
            update(m).where(m.c.mismatch_key.in_(keys)).values(last_seen=now, last_run_id=run_id)
        )
    if not changed:
        return
    fields = list(_last_values(changed[0][1], run_id, now))
    statement = (
        update(m)
        .where(m.c.mismatch_key == bindparam("b_key"))
        .values({name: bindparam(f"b_{name}", type_=m.c[name].type) for name in fields})
    )
    for batch in batched(changed, RECORD_BATCH):
        rows = [
            {"b_key": key, **{f"b_{k}": v for k, v in _last_values(item, run_id, now).items()}}
            for key, item in batch
        ]
        connection.execute(statement, rows)


def record_mismatches(
    connection: Connection, found: Sequence[Mismatch], run_id: str, now: datetime
) -> RunDiff:
    """Fold this run's mismatches into the history; those no longer found are resolved now."""
    m = mismatches
    open_now = select(m.c.mismatch_key, m.c.severity, m.c.sf_value, m.c.cf_value, m.c.explanation).where(
        m.c.resolved_at.is_(None)
    )
    shown = {key: tuple(values) for key, *values in connection.execute(open_now)}
    unique = {item.key: item for item in found}  # each key made once (a million calls cost 1.4 s)
    still = {key: item for key, item in unique.items() if key in shown}
    _open(connection, {key: item for key, item in unique.items() if key not in shown}, run_id, now)
    _refresh(connection, still, run_id, now, shown)
    del shown
    gone = (
        update(m)
        .where(m.c.resolved_at.is_(None), m.c.last_run_id != run_id)
        .values(resolved_at=now, resolved_run_id=run_id)
    )
    resolved = connection.execute(gone).rowcount
    return RunDiff(new=len(unique) - len(still), open=len(still), resolved=resolved)


def _record_run(
    connection: Connection, run_id: str, now: datetime, counts: dict[str, int], diff: RunDiff
) -> None:
    connection.execute(
        reconcile_runs.insert().values(
            run_id=run_id,
            at=now,
            total=sum(counts.values()),
            new_count=diff.new,
            open_count=diff.open,
            resolved_count=diff.resolved,
            counts=counts,
        )
    )


def run_reconcile(
    engine: Engine,
    settings: ReconcileSettings,
    *,
    out_dir: Path,
    fmt: ReportFormat,
    now: datetime,
    instance_url: str,
    registration_object: str,
    checkfront_url: str = "",
    history_runs: int = 10,
    excel: bool = False,
) -> ReconcileResult:
    """Evaluate every rule at `now`, record the run and write the reports asked for into out_dir.

    One transaction: if a report cannot be written, the run is not recorded either. Every report
    says how fresh the data was (regsync.warehouse.freshness); record links use the org's own URL only
    (`org_url`: never a login host).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    run_id = str(uuid.uuid4())
    links = {"instance_url": org_url(instance_url), "registration_object": registration_object}
    paths: list[Path] = []
    started = time.perf_counter()
    found = evaluate_concurrently(engine, settings, now)
    evaluated = time.perf_counter()
    log.info("%d mismatch(es) found by the rules in %.1fs", len(found), evaluated - started)
    with engine.begin() as connection:
        by_code = Counter(item.code for item in found)
        counts = {code: by_code[code] for code in CODES}
        diff = record_mismatches(connection, found, run_id, now)
        _record_run(connection, run_id, now, counts, diff)
        total = len(found)
        del found  # recorded: the reports stream the rows back, so both need not be held at once
        recorded = time.perf_counter()
        log.info(
            "history updated in %.1fs: %d new, %d still open, %d resolved",
            recorded - evaluated,
            diff.new,
            diff.open,
            diff.resolved,
        )
        tally = load_tally(connection, run_id)
        freshness = load_freshness(connection, now=now, max_age_s=settings.max_data_age_s)
        for warning in freshness.warnings:
            log.warning("reconcile on stale or incomplete data: %s", warning)
        if fmt in ("csv", "both"):
            paths += write_csv_reports(
                connection,
                run_id,
                settings,
                out_dir,
                tally=tally,
                summary_extra=summary_columns(freshness),
                excel=excel,
                **links,
            )
        if fmt in ("html", "both"):
            history = load_history(connection, history_runs)
            head = list(iter_severity_rows(connection, run_id, limit=HTML_ROW_LIMIT))
            document = render_html(
                head,
                tally,
                settings,
                history,
                at=now,
                checkfront_url=checkfront_url,
                freshness=freshness,
                **links,
            )
            paths.append(write_html(out_dir / "report.html", document))
        log.info("reports written in %.1fs", time.perf_counter() - recorded)
    return ReconcileResult(
        run_id=run_id,
        at=now,
        counts=counts,
        total=total,
        new=diff.new,
        open=diff.open,
        resolved=diff.resolved,
        paths=tuple(paths),
        freshness=freshness,
    )


def summary_columns(freshness: Freshness) -> dict[str, str]:
    """The columns summary.csv adds to every row: data as of when, per system, and any warning."""
    systems = freshness.by_system()
    return {
        "salesforce_data_as_of": stamp(systems["salesforce"].data_as_of),
        "checkfront_data_as_of": stamp(systems["checkfront"].data_as_of),
        "data_warning": "; ".join(freshness.warnings),
    }
