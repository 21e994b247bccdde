"""CSV reports of a reconcile run that a spreadsheet opens safely and a diff tool compares byte for byte."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from sqlalchemy import Connection, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from regsync.config import open_private_file
from regsync.reconcile.rules import RULES, ReconcileSettings, severity_of, sort_key
from regsync.warehouse.batching import batched
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
# Unicode bidirectional embedding, override and isolate controls: a value holding one can show its
# text reordered in a spreadsheet or a browser ("Trojan Source"), so a booking code or a name reads
# as something it is not.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# The set of a column's first characters and one character-class scan of its cells joined tell
# that no cell needs neutralising (most columns of most reports), without a call per cell.
_FORMULA_FIRST = frozenset(_FORMULA_START)
EXCEL_BOM = "\ufeff"  # UTF-8's byte order mark: how Excel knows a CSV file is UTF-8


@dataclass(frozen=True, slots=True)
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


REPORT_BATCH = 5_000  # rows read, framed and written at a time: memory stays flat in report size


def _status(run_id: str) -> ColumnElement[str]:
    m = mismatches
    return case(
        (m.c.resolved_run_id == run_id, "resolved"), (m.c.first_run_id == run_id, "new"), else_="open"
    )


def _in_report(run_id: str) -> ColumnElement[bool]:
    m = mismatches
    return or_(m.c.last_run_id == run_id, m.c.resolved_run_id == run_id)


def _bytewise(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """A text column ordered as Python orders str (NULL as ""): by code point, which is UTF-8 byte
    order (SQLite's BINARY collation; PostgreSQL's "C"), whatever the database's locale."""
    value = func.coalesce(column, "")
    return value.collate("C") if dialect == "postgresql" else value


def iter_rows(
    connection: Connection, run_id: str, *, limit: int | None = None, batch: int = REPORT_BATCH
) -> Iterator[ReportRow]:
    """The mismatches run `run_id` found, and those it resolved, in report order (`ReportRow.order`).

    Sorted by the database and streamed (a server-side cursor on PostgreSQL), so a report of a
    hundred thousand rows is never held whole.
    """
    m = mismatches
    dialect = connection.dialect.name
    status = _status(run_id)
    rank = case((status == "new", 0), (status == "open", 1), else_=2)
    fields = [name for name in ReportRow.__dataclass_fields__ if name != "status"]
    ids = (m.c.code, m.c.registration_id, m.c.booking_code, m.c.booking_session_id)
    query = (
        select(status.label("status"), *(m.c[name] for name in fields))
        .where(_in_report(run_id))
        .order_by(rank, *(_bytewise(column, dialect) for column in ids))
        .limit(limit)
        .execution_options(yield_per=batch)
    )
    for row in connection.execute(query).mappings():
        yield ReportRow(**row)


Tally = Counter[tuple[str, str]]


def load_tally(connection: Connection, run_id: str) -> Tally:
    """How many rows of the run's report have each (reason code, status), counted by the database."""
    m = mismatches
    status = _status(run_id).label("status")
    query = select(m.c.code, status, func.count()).where(_in_report(run_id)).group_by(m.c.code, status)
    return Counter({(code, state): count for code, state, count in connection.execute(query)})


def neutralise_bidi(text: str) -> str:
    """Every bidirectional control shown as its code point ("[U+202E]"): seen, never obeyed.

    For every report format (CSV here, HTML in reconcile.html).
    """
    return _BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m[0]):04X}]", text)


def neutralise(value: Any) -> Any:
    """Defuse a text cell a spreadsheet would run as a formula (CSV injection) or display reordered
    (bidirectional controls)."""
    if not isinstance(value, str):
        return value
    value = neutralise_bidi(value)
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


@functools.lru_cache(maxsize=64)
def _record_base(instance_url: str, sobject: str) -> str:
    return f"{instance_url.rstrip('/')}/lightning/r/{quote(sobject, safe='')}/"


def record_link(instance_url: str, sobject: str, record_id: str | None) -> str:
    """The Lightning URL of a Salesforce record, or "" (no id, or no http(s) instance URL)."""
    if not record_id or not instance_url.startswith(("https://", "http://")):
        return ""
    # A Salesforce id is letters and digits: quoted only when it is something else.
    safe_id = record_id if record_id.isascii() and record_id.isalnum() else quote(record_id, safe="")
    return f"{_record_base(instance_url, sobject)}{safe_id}/view"


@functools.lru_cache(maxsize=4096)  # a run's rows share a few first_seen / last_seen times
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


def summary_frame(
    tally: Tally, settings: ReconcileSettings, extra: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Counts by reason code, every code listed (in docs/rules.md order) even at 0; `extra`
    columns (how fresh the data was) repeated on every row."""
    extra = dict(extra or {})
    records = [
        {
            "code": rule.code,
            "severity": severity_of(settings, rule.code),
            "count": tally[rule.code, "new"] + tally[rule.code, "open"],
            "new": tally[rule.code, "new"],
            "resolved": tally[rule.code, "resolved"],
            "description": rule.description,
            **extra,
        }
        for rule in RULES
    ]
    return pd.DataFrame(records, columns=[*SUMMARY_COLUMNS, *extra])


def _neutralised(values: list[Any]) -> list[Any]:
    """A column's cells, each neutralised; the column as it is when one scan finds nothing to do."""
    texts = [v for v in values if isinstance(v, str)]
    if _FORMULA_FIRST.isdisjoint({v[:1] for v in texts}) and _BIDI_CONTROLS.search("".join(texts)) is None:
        return values
    return [neutralise(value) for value in values]


def csv_text(frame: pd.DataFrame, *, header: bool = True) -> str:
    """UTF-8 text, "\n" line ends, no index, every text cell neutralised."""
    safe = pd.DataFrame(
        {name: _neutralised(frame[name].tolist()) for name in frame.columns}, columns=frame.columns
    )
    return safe.to_csv(index=False, header=header, lineterminator="\n")


def write_csv(frame: pd.DataFrame, path: Path, *, excel: bool = False) -> Path:
    """One frame as a CSV file, owner-only (it names records and carts); `excel`: with a BOM."""
    with open_private_file(path) as handle:
        handle.write((EXCEL_BOM if excel else "") + csv_text(frame))
    return path


def write_csv_reports(
    connection: Connection,
    run_id: str,
    settings: ReconcileSettings,
    out_dir: Path,
    *,
    tally: Tally,
    instance_url: str,
    registration_object: str,
    summary_extra: Mapping[str, str] | None = None,
    excel: bool = False,
) -> list[Path]:
    """mismatches.csv, summary.csv and diff.csv in out_dir, each replaced whole or not at all.

    mismatches.csv and diff.csv are written in one streamed pass over the run's rows, a batch at a
    time; a batch's CSV text is exactly that of its rows in a whole-report frame. `excel`: each
    file starts with a UTF-8 byte order mark, without which Excel reads UTF-8 as a legacy code page.
    """
    bom = EXCEL_BOM if excel else ""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    found_path, diff_path = out_dir / "mismatches.csv", out_dir / "diff.csv"
    with open_private_file(found_path) as found_file, open_private_file(diff_path) as diff_file:
        found_file.write(bom + csv_text(mismatches_frame((), instance_url, registration_object)))
        diff_file.write(bom + csv_text(diff_frame(())))
        for rows in batched(iter_rows(connection, run_id), REPORT_BATCH):
            found = mismatches_frame(rows, instance_url, registration_object)
            found_file.write(csv_text(found, header=False) if len(found) else "")
            diff_file.write(csv_text(diff_frame(rows), header=False))
    summary_path = write_csv(
        summary_frame(tally, settings, summary_extra), out_dir / "summary.csv", excel=excel
    )
    return [found_path, summary_path, diff_path]
