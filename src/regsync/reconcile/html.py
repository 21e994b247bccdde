"""A single self-contained HTML report (inline CSS and SVG, no script) that opens from a mail or a share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from sqlalchemy import Connection, select

from regsync.config import write_private_file
from regsync.reconcile.report import ReportRow, Tally, record_link, stamp, summary_frame
from regsync.reconcile.rules import CODES, ReconcileSettings
from regsync.warehouse.reconcile_tables import reconcile_runs

PALETTE = (
    "#c0392b",
    "#e67e22",
    "#8e44ad",
    "#2980b9",
    "#16a085",
    "#f1c40f",
    "#7f8c8d",
    "#d35400",
    "#27ae60",
    "#e74c3c",
    "#34495e",
    "#1abc9c",
    "#95a5a6",
)  # one per reason code, in CODES order
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.n{text-align:right}
.high{color:#c0392b;font-weight:bold}.medium{color:#d35400}.low{color:#7f8c8d}
"""
_CHART_H, _SLOT, _LEFT, _TOP = 200, 48, 40, 10


@dataclass(frozen=True)
class RunPoint:
    """One past run's counts by reason code, for the chart."""

    at: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.get(code, 0) for code in CODES)


def load_history(connection: Connection, limit: int) -> list[RunPoint]:
    """The last `limit` reconcile runs, oldest first."""
    t = reconcile_runs
    query = select(t.c.at, t.c.counts).order_by(t.c.at.desc(), t.c.run_id.desc()).limit(limit)
    return [RunPoint(at, dict(counts or {})) for at, counts in connection.execute(query)][::-1]


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table whose cells are already-escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: object, css: str = "") -> str:
    attribute = f' class="{_e(css)}"' if css else ""
    return f"<td{attribute}>{_e(value)}</td>"


def bar_chart(history: Sequence[RunPoint]) -> str:
    """Stacked bars: one per run, one colour per reason code, with a legend."""
    if not history:
        return "<p>No reconcile runs recorded yet.</p>"
    peak = max(max(point.total for point in history), 1)
    width = _LEFT + _SLOT * len(history) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_CHART_H + 60}" '
        'role="img" aria-label="Mismatches by reason code over the last runs">',
        f'<text x="4" y="{_TOP + 10}" font-size="11">{peak}</text>',
        f'<text x="4" y="{_TOP + _CHART_H}" font-size="11">0</text>',
    ]
    for index, point in enumerate(history):
        parts += _bar(index, point, peak)
    parts.append("</svg>")
    legend = "".join(
        f'<span style="display:inline-block;margin-right:1em">'
        f'<span style="display:inline-block;width:.8em;height:.8em;background:{colour}"></span> {_e(code)}</span>'
        for code, colour in zip(CODES, PALETTE, strict=True)
    )
    return "".join(parts) + f"<div>{legend}</div>"


def _bar(index: int, point: RunPoint, peak: int) -> list[str]:
    x = _LEFT + index * _SLOT
    bottom = _TOP + _CHART_H
    parts = []
    for code, colour in zip(CODES, PALETTE, strict=True):
        count = int(point.counts.get(code, 0))
        if count <= 0:
            continue
        height = count * _CHART_H / peak
        bottom -= height
        parts.append(
            f'<rect x="{x}" y="{bottom:.1f}" width="{_SLOT - 12}" height="{height:.1f}" fill="{colour}">'
            f"<title>{_e(stamp(point.at))} {_e(code)}: {count}</title></rect>"
        )
    label = f"{point.at:%m-%d %H:%M}"
    parts.append(f'<text x="{x}" y="{_TOP + _CHART_H + 14}" font-size="10">{_e(label)}</text>')
    parts.append(f'<text x="{x}" y="{_TOP + _CHART_H + 28}" font-size="10">{point.total}</text>')
    return parts


def _summary_table(tally: Tally, settings: ReconcileSettings) -> str:
    records = summary_frame(tally, settings).to_dict("records")
    cells = [
        [
            _td(r["code"]),
            _td(r["severity"], str(r["severity"])),
            _td(r["count"], "n"),
            _td(r["new"], "n"),
            _td(r["resolved"], "n"),
            _td(r["description"]),
        ]
        for r in records
    ]
    return _table(["code", "severity", "count", "new", "resolved", "meaning"], cells)


def _link_cell(row: ReportRow, instance_url: str, sobject: str) -> str:
    href = record_link(instance_url, sobject, row.registration_id)
    if not href:
        return _td(row.registration_id)
    return f'<td><a href="{_e(href)}">{_e(row.registration_id)}</a></td>'


HTML_ROW_LIMIT = 2000  # a browser page of 100k rows helps nobody; mismatches.csv has them all


def _mismatch_table(rows: Sequence[ReportRow], total: int, instance_url: str, sobject: str) -> str:
    """The first rows of the report (`rows`, at most HTML_ROW_LIMIT of `total`)."""
    if not rows:
        return "<p>No mismatches.</p>"
    note = ""
    if total > len(rows):
        note = f"<p>The first {len(rows)} of {total} rows; mismatches.csv lists them all.</p>"
    headers = ["status", "code", "severity", "Salesforce", "booking session", "booking code"]
    headers += ["Salesforce value", "Checkfront value", "explanation", "first seen", "last seen"]
    cells = [
        [
            _td(row.status),
            _td(row.code),
            _td(row.severity, row.severity),
            _link_cell(row, instance_url, sobject),
            _td(row.booking_session_id),
            _td(row.booking_code),
            _td(row.sf_value),
            _td(row.cf_value),
            _td(row.explanation),
            _td(stamp(row.first_seen)),
            _td(stamp(row.last_seen)),
        ]
        for row in rows
    ]
    return note + _table(headers, cells)


def render_html(
    head: Sequence[ReportRow],
    tally: Tally,
    settings: ReconcileSettings,
    history: Sequence[RunPoint],
    *,
    at: datetime,
    instance_url: str,
    registration_object: str,
) -> str:
    """The whole report as one HTML document; every value from the data is escaped.

    head: the report's first rows in report order (at most HTML_ROW_LIMIT); tally: its counts.
    """
    counts = {
        status: sum(n for (_, state), n in tally.items() if state == status)
        for status in ("new", "open", "resolved")
    }
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>regsync reconciliation {_e(stamp(at))}</title><style>{_CSS}</style></head><body>"
        f"<h1>Reconciliation at {_e(stamp(at))}</h1>"
        f"<p>{counts['new'] + counts['open']} open mismatches: {counts['new']} new, "
        f"{counts['open']} still open; {counts['resolved']} resolved since the previous run.</p>"
        f"<h2>By reason</h2>{_summary_table(tally, settings)}"
        f"<h2>Last {len(history)} runs</h2>{bar_chart(history)}"
        f"<h2>Mismatches</h2>{_mismatch_table(head, sum(tally.values()), instance_url, registration_object)}"
        "</body></html>\n"
    )


def write_html(path: Path, document: str) -> Path:
    """The report, owner-only: it names records, bookings and carts."""
    write_private_file(path, document)
    return path
