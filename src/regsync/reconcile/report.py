"""CSV reports of a reconcile run that a spreadsheet opens safely and a diff tool compares byte for byte."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from sqlalchemy import Connection, case, or_, select

from regsync.config import write_private_file
from regsync.reconcile.rules import RULES, ReconcileSettings, severity_of, sort_key
from regsync.warehouse.reconcile_tables import mismatches

STATUSES = ("new", "open", "resolved")
MISMATCH_COLUMNS = (
    "code",
    "severity",
    "salesforce_id",
    "salesforce_link",
    "booking_session_id",
    "booking_code",
    "salesforce_value",
    "checkfront_value",
    "explanation",
    "first_seen",
    "last_seen",
)
DIFF_COLUMNS = (
    "status",
    "code",
    "severity",
    "salesforce_id",
    "booking_session_id",
    "booking_code",
    "salesforce_value",
    "checkfront_value",
    "first_seen",
    "last_seen",
    "resolved_at",
)
SUMMARY_COLUMNS = ("code", "severity", "count", "new", "resolved", "description")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ReportRow:
    """One mismatch as a run saw it: still there (new or open) or gone since the previous run."""

    status: str
    code: str
    severity: str
    registration_id: str | None
    booking_session_id: str | None
    booking_code: str | None
    sf_value: str | None
    cf_value: str | None
    explanation: str | None
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"

    def order(self) -> tuple[Any, ...]:
        ids = (self.registration_id, self.booking_code, self.booking_session_id)
        return (STATUSES.index(self.status), *sort_key(self.code, *ids))


def load_rows(connection: Connection, run_id: str) -> list[ReportRow]:
    """The mismatches run `run_id` found, and those it resolved, in report order."""
    m = mismatches
    status = case(
        (m.c.resolved_run_id == run_id, "resolved"), (m.c.first_run_id == run_id, "new"), else_="open"
    )
    fields = [name for name in ReportRow.__dataclass_fields__ if name != "status"]
    query = select(status.label("status"), *(m.c[name] for name in fields)).where(
        or_(m.c.last_run_id == run_id, m.c.resolved_run_id == run_id)
    )
    rows = [ReportRow(**row) for row in connection.execute(query).mappings()]
    return sorted(rows, key=ReportRow.order)  # in Python: NULL order and collation differ by backend


def neutralise(value: Any) -> Any:
    """Defuse a text cell a spreadsheet would run as a formula (CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def record_link(instance_url: str, sobject: str, record_id: str | None) -> str:
    """The Lightning URL of a Salesforce record, or "" (no id, or no http(s) instance URL)."""
    if not record_id or not instance_url.startswith(("https://", "http://")):
        return ""
    return (
        f"{instance_url.rstrip('/')}/lightning/r/{quote(sobject, safe='')}/{quote(record_id, safe='')}/view"
    )


def stamp(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _record(row: ReportRow) -> dict[str, Any]:
    """The columns mismatches.csv and diff.csv share."""
    return {
        "code": row.code,
        "severity": row.severity,
        "salesforce_id": row.registration_id or "",
        "booking_session_id": row.booking_session_id or "",
        "booking_code": row.booking_code or "",
        "salesforce_value": row.sf_value or "",
        "checkfront_value": row.cf_value or "",
        "first_seen": stamp(row.first_seen),
        "last_seen": stamp(row.last_seen),
    }


def mismatches_frame(rows: Iterable[ReportRow], instance_url: str, sobject: str) -> pd.DataFrame:
    records = [
        {
            **_record(row),
            "salesforce_link": record_link(instance_url, sobject, row.registration_id),
            "explanation": row.explanation or "",
        }
        for row in rows
        if row.is_open
    ]
    return pd.DataFrame(records, columns=list(MISMATCH_COLUMNS))


def diff_frame(rows: Iterable[ReportRow]) -> pd.DataFrame:
    records = [{**_record(row), "status": row.status, "resolved_at": stamp(row.resolved_at)} for row in rows]
    return pd.DataFrame(records, columns=list(DIFF_COLUMNS))


def summary_frame(rows: Sequence[ReportRow], settings: ReconcileSettings) -> pd.DataFrame:
    """Counts by reason code, every code listed (in docs/rules.md order) even at 0."""
    tally = Counter((row.code, row.status) for row in rows)
    records = [
        {
            "code": rule.code,
            "severity": severity_of(settings, rule.code),
            "count": tally[rule.code, "new"] + tally[rule.code, "open"],
            "new": tally[rule.code, "new"],
            "resolved": tally[rule.code, "resolved"],
            "description": rule.description,
        }
        for rule in RULES
    ]
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """UTF-8, "\\n" line ends, no index, every text cell neutralised; owner-only (record ids, carts)."""
    write_private_file(path, frame.map(neutralise).to_csv(index=False, lineterminator="\n"))
    return path


def write_csv_reports(
    rows: Sequence[ReportRow],
    settings: ReconcileSettings,
    out_dir: Path,
    *,
    instance_url: str,
    registration_object: str,
) -> list[Path]:
    """mismatches.csv, summary.csv and diff.csv in out_dir."""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return [
        write_csv(mismatches_frame(rows, instance_url, registration_object), out_dir / "mismatches.csv"),
        write_csv(summary_frame(rows, settings), out_dir / "summary.csv"),
        write_csv(diff_frame(rows), out_dir / "diff.csv"),
    ]
