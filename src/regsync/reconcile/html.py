"""A single self-contained HTML report (inline CSS and SVG, no script) that opens from a mail or a share.

What a person reading it needs first: whether the data behind it is fresh (the banner), then the
mismatches worst first (severity, then code), each with what to do about it and links to both
systems. It fits a 1,400-pixel screen without sideways scrolling; the chart's colours are the
Okabe-Ito set (told apart with the common colour-vision deficiencies).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import Connection, case, select

from regsync.config import write_private_file
from regsync.reconcile.report import (
    ReportRow,
    Tally,
    _bytewise,
    _in_report,
    _status,
    neutralise_bidi,
    record_link,
    stamp,
    summary_frame,
)
from regsync.reconcile.rules import CODES, ReconcileSettings
from regsync.warehouse.freshness import Freshness, age_text
from regsync.warehouse.reconcile_tables import mismatches, reconcile_runs

# Okabe & Ito (2008), grey, and four from ColorBrewer's Paired set: one colour per reason code, in
# CODES order, every pair more than 20 CIE76 units apart (tests/reconcile/test_html_browser.py).
PALETTE = (
    "#D55E00",  # vermillion
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#000000",  # black
    "#999999",  # grey
    "#6A3D9A",  # dark purple
    "#8C510A",  # brown
    "#B2DF8A",  # light green
    "#FB9A99",  # pink
)
SEVERITIES = ("high", "medium", "low")
# What an operator does about each reason code (docs/rules.md says what each one means).
WHAT_TO_DO: dict[str, str] = {
    "BOOKING_SESSION_MISSING": (
        "Ask the customer to register again or book by hand in Checkfront, then set the booking code on "
        "the registration; cancel the registration if they gave up."
    ),
    "BOOKING_WITHOUT_REGISTRATION": (
        "Find the registration the booking belongs to and set its booking code; if none exists, "
        "create it or void the booking."
    ),
    "ATTENDEE_COUNT_MISMATCH": (
        "Compare the attendees with the booking's lines: edit the booking's quantities or the "
        "registration's attendees until the seats agree."
    ),
    "ATTENDEE_SESSIONS_MISMATCH": (
        "Check which sessions the attendees chose against the booked items; move the booking lines "
        "or fix the session mapping (Checkfront_Item_Id__c / session_item_mapping)."
    ),
    "COMPLETED_BOOKING_UNPAID": (
        "Collect payment on the Checkfront booking, or reopen the registration if it should not "
        "have been completed."
    ),
    "DRAFT_BOOKING_PAID": (
        "Run `regsync submit-pending --dry-run` to see why it was not submitted; submit it "
        "(or let the next run) once nothing blocks it."
    ),
    "DUPLICATE_REGISTRATION": (
        "Keep the registration that carries the booking and cancel the others pointing at the same "
        "booking session."
    ),
    "AMOUNT_MISMATCH": (
        "Compare the registration amount with the booking total (discounts, taxes, add-ons); "
        "correct whichever is wrong or refund the difference."
    ),
    "BOOKING_NOT_FOUND": (
        "Look the code up in Checkfront: correct a mistyped code on the registration, or find out why "
        "the booking was deleted before confirming the registration."
    ),
    "DUPLICATE_BOOKING_CODE": (
        "Decide which registration the booking belongs to and clear or correct the code on the others."
    ),
    "BOOKING_CODE_MISSING": (
        "Find the customer's booking in Checkfront (their cart was booked or is gone) and set its code "
        "on the registration before it is processed."
    ),
    "REGISTRATION_PARTLY_READ": (
        "Open the record in Salesforce and repair the fields named (regsync holds every write that "
        "depends on it until it reads the record whole); the next sync reads it again."
    ),
    "STALE_DRAFT": (
        "Contact the customer or delete the abandoned draft; `regsync close-stale` frees any seats "
        "its cart still holds."
    ),
}
# Checkfront's staff page of a booking. Checkfront publishes no URL scheme for it (see the report).
CHECKFRONT_BOOKING_PATH = "/booking/{code}"
_CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;padding:1em 1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em;margin:.2em 0}
table{border-collapse:collapse;margin:1em 0;width:100%;table-layout:fixed}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4}
td.n,th.n{text-align:right}
table.rows{font-size:13px}
.high{color:#b03a00;font-weight:bold}.medium{color:#6b4f00}.low{color:#555}
.banner{border:2px solid;padding:.6em 1em;margin:1em 0;border-radius:4px}
.banner.ok{border-color:#2e7d32;background:#edf7ee}
.banner.warn{border-color:#b00020;background:#fdecee}
.banner.warn strong{color:#b00020}
.banner ul{margin:.3em 0 0 1.2em;padding:0}
.legend{display:flex;flex-wrap:wrap;gap:.3em 1.2em;margin:.4em 0}
.legend span.sw{display:inline-block;width:1em;height:1em;vertical-align:-.15em;margin-right:.3em;border:1px solid #555}
.chart{max-width:100%;height:auto}
.todo{color:#333}
"""
# The chart: a slot per run wide enough for its two-line label ("12-03" over "16:20") at 11 px.
_CHART_H, _SLOT, _BAR, _LEFT, _TOP = 200, 64, 40, 48, 20
_LABEL_FONT = 11


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


def iter_severity_rows(
    connection: Connection, run_id: str, *, limit: int | None = None
) -> Iterator[ReportRow]:
    """The run's report rows for the page: severity (high first), code, then new/open/resolved and ids."""
    m = mismatches
    dialect = connection.dialect.name
    status = _status(run_id)
    rank = case((m.c.severity == "high", 0), (m.c.severity == "medium", 1), else_=2)
    status_rank = case((status == "new", 0), (status == "open", 1), else_=2)
    fields = [name for name in ReportRow.__dataclass_fields__ if name != "status"]
    ids = (m.c.registration_id, m.c.booking_code, m.c.booking_session_id)
    query = (
        select(status.label("status"), *(m.c[name] for name in fields))
        .where(_in_report(run_id))
        .order_by(rank, _bytewise(m.c.code, dialect), status_rank, *(_bytewise(c, dialect) for c in ids))
        .limit(limit)
    )
    for row in connection.execute(query).mappings():
        yield ReportRow(**row)


def org_url(instance_url: str) -> str:
    """The org's own URL for record links, or "" when only a login host is known.

    login.salesforce.com and test.salesforce.com serve no records: a link there would send the
    reader to a login page and then nowhere.
    """
    host = (urlsplit(instance_url).hostname or "").lower()
    if host in ("login.salesforce.com", "test.salesforce.com") or not instance_url.startswith("https://"):
        return ""
    return instance_url.rstrip("/")


def booking_link(checkfront_url: str, code: str | None) -> str:
    """The Checkfront staff page of a booking, or "" (no code, or no https account URL)."""
    if not code or not checkfront_url.startswith("https://"):
        return ""
    return checkfront_url.rstrip("/") + CHECKFRONT_BOOKING_PATH.format(code=quote(code, safe=""))


def _e(value: object) -> str:
    return escape(neutralise_bidi("" if value is None else str(value)), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[str] = ()) -> str:
    """A table whose cells are already-escaped HTML; widths (CSS) per column keep it on the page."""
    cols = "".join(f'<col style="width:{w}">' for w in widths)
    colgroup = f"<colgroup>{cols}</colgroup>" if widths else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table>{colgroup}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: object, css: str = "") -> str:
    attribute = f' class="{_e(css)}"' if css else ""
    return f"<td{attribute}>{_e(value)}</td>"


def _a(href: str, text: object) -> str:
    return f'<td><a href="{_e(href)}">{_e(text)}</a></td>' if href else _td(text)


def bar_chart(history: Sequence[RunPoint]) -> str:
    """Stacked bars: one per run, one colour per reason code, a y axis and a legend."""
    if not history:
        return "<p>No reconcile runs recorded yet.</p>"
    peak = max(max(point.total for point in history), 1)
    width = _LEFT + _SLOT * len(history) + 10
    height = _TOP + _CHART_H + 40
    bottom = _TOP + _CHART_H
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Mismatches by reason code over the last runs">',
        f'<line x1="{_LEFT - 4}" y1="{bottom}" x2="{width - 6}" y2="{bottom}" stroke="#444"/>',
        f'<line x1="{_LEFT - 4}" y1="{_TOP}" x2="{_LEFT - 4}" y2="{bottom}" stroke="#444"/>',
    ]
    for value in sorted({0, peak // 2, peak}):
        y = bottom - value * _CHART_H / peak
        parts.append(
            f'<text class="ylabel" x="{_LEFT - 8}" y="{y + 4:.1f}" font-size="{_LABEL_FONT}" '
            f'text-anchor="end">{value}</text>'
        )
        if value:
            parts.append(f'<line x1="{_LEFT - 4}" y1="{y:.1f}" x2="{width - 6}" y2="{y:.1f}" stroke="#ddd"/>')
    for index, point in enumerate(history):
        parts += _bar(index, point, peak)
    parts.append("</svg>")
    legend = "".join(
        f'<span><span class="sw" style="background:{colour}"></span>{_e(code)}</span>'
        for code, colour in zip(CODES, PALETTE, strict=True)
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _bar(index: int, point: RunPoint, peak: int) -> list[str]:
    x = _LEFT + index * _SLOT + (_SLOT - _BAR) / 2
    middle = x + _BAR / 2
    bottom = _TOP + _CHART_H
    top: float = bottom
    parts = []
    for code, colour in zip(CODES, PALETTE, strict=True):
        count = int(point.counts.get(code, 0))
        if count <= 0:
            continue
        height = count * _CHART_H / peak
        top -= height
        parts.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{_BAR}" height="{height:.1f}" fill="{colour}" '
            f'stroke="#fff" stroke-width="0.5"><title>{_e(stamp(point.at))} {_e(code)}: {count}</title></rect>'
        )
    label = (
        f'<text class="xlabel" x="{middle:.1f}" y="{bottom + 15}" font-size="{_LABEL_FONT}" '
        f'text-anchor="middle">{point.at:%m-%d}</text>'
        f'<text class="xlabel" x="{middle:.1f}" y="{bottom + 29}" font-size="{_LABEL_FONT}" '
        f'text-anchor="middle">{point.at:%H:%M}</text>'
    )
    total = (
        f'<text class="total" x="{middle:.1f}" y="{top - 4:.1f}" font-size="{_LABEL_FONT}" '
        f'text-anchor="middle">{point.total}</text>'
    )
    return [*parts, label, total]


def _severity_order(records: list[dict[Hashable, Any]]) -> list[dict[Hashable, Any]]:
    return sorted(records, key=lambda r: (SEVERITIES.index(str(r["severity"])), str(r["code"])))


def _summary_table(tally: Tally, settings: ReconcileSettings) -> str:
    records = _severity_order(summary_frame(tally, settings).to_dict("records"))
    cells = [
        [
            _td(r["code"]),
            _td(r["severity"], str(r["severity"])),
            _td(r["count"], "n"),
            _td(r["new"], "n"),
            _td(r["resolved"], "n"),
            _td(r["description"]),
            _td(WHAT_TO_DO.get(str(r["code"]), ""), "todo"),
        ]
        for r in records
    ]
    headers = ["code", "severity", "count", "new", "resolved", "meaning", "what to do"]
    return _table(headers, cells, ("21%", "6%", "5%", "4%", "7%", "26%", "31%"))


HTML_ROW_LIMIT = 2000  # a browser page of 100k rows helps nobody; mismatches.csv has them all


def _mismatch_table(
    rows: Sequence[ReportRow], total: int, instance_url: str, sobject: str, checkfront_url: str
) -> str:
    """The first rows of the report (`rows`, at most HTML_ROW_LIMIT of `total`), worst first."""
    if not rows:
        return "<p>No mismatches.</p>"
    note = ""
    if total > len(rows):
        note = f"<p>The first {len(rows)} of {total} rows (worst first); mismatches.csv lists them all.</p>"
    headers = ["severity", "code", "status", "Salesforce", "booking session", "booking code"]
    headers += ["Salesforce value", "Checkfront value", "explanation", "first seen", "last seen"]
    cells = [
        [
            _td(row.severity, row.severity),
            _td(row.code),
            _td(row.status),
            _a(record_link(instance_url, sobject, row.registration_id), row.registration_id),
            _td(row.booking_session_id),
            _a(booking_link(checkfront_url, row.booking_code), row.booking_code),
            _td(row.sf_value),
            _td(row.cf_value),
            _td(row.explanation),
            _td(_when(row.first_seen)),
            _td(_when(row.last_seen)),
        ]
        for row in rows
    ]
    widths = ("6%", "19%", "5%", "11%", "10%", "8%", "7%", "7%", "13%", "7%", "7%")
    return note + _table(headers, cells, widths).replace("<table>", '<table class="rows">', 1)


def _when(moment: datetime | None) -> str:
    """'2025-06-01 12:00:00Z': a space where a narrow column may break the line."""
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}Z"


def freshness_banner(freshness: Freshness | None) -> str:
    """Data as of when, per system; a red warning when a pull failed or the data is too old."""
    if freshness is None:
        return ""
    lines = "".join(
        f"<li>{_e(s.name)}: data as of {_e(stamp(s.data_as_of) or 'never')}"
        + (f" ({_e(_age(s.age_s))} old)" if s.age_s is not None else "")
        + "</li>"
        for s in freshness.systems
    )
    if freshness.fresh:
        return f'<div class="banner ok" id="freshness"><strong>Fresh data.</strong><ul>{lines}</ul></div>'
    warnings = "".join(f"<li>{_e(w)}</li>" for w in freshness.warnings)
    return (
        '<div class="banner warn" id="freshness" role="alert"><strong>Warning: this report may be '
        "wrong or incomplete. It was built on data that is stale or from a failed pull; fix the pull "
        f"and reconcile again before acting on it.</strong><ul>{warnings}</ul><ul>{lines}</ul></div>"
    )


def _age(seconds: float | None) -> str:
    return "" if seconds is None else age_text(seconds)


def render_html(
    head: Sequence[ReportRow],
    tally: Tally,
    settings: ReconcileSettings,
    history: Sequence[RunPoint],
    *,
    at: datetime,
    instance_url: str,
    registration_object: str,
    checkfront_url: str = "",
    freshness: Freshness | None = None,
) -> str:
    """The whole report as one HTML document; every value from the data is escaped.

    head: the report's first rows, worst first (`iter_severity_rows`, at most HTML_ROW_LIMIT);
    tally: its counts. instance_url: the org's URL (`org_url`): "" shows ids without links.
    """
    counts = {
        status: sum(n for (_, state), n in tally.items() if state == status)
        for status in ("new", "open", "resolved")
    }
    link_note = ""
    if not org_url(instance_url):
        link_note = (
            "<p>Salesforce ids are not linked: set <code>salesforce.instance_url</code> to your org's "
            "URL (e.g. https://yourorg.my.salesforce.com) to link them.</p>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>regsync reconciliation {_e(stamp(at))}</title><style>{_CSS}</style></head><body>"
        f"<h1>Reconciliation at {_e(stamp(at))}</h1>"
        f"{freshness_banner(freshness)}"
        f"<p>{counts['new'] + counts['open']} open mismatches: {counts['new']} new, "
        f"{counts['open']} still open; {counts['resolved']} resolved since the previous run.</p>"
        f"<h2>By reason</h2>{_summary_table(tally, settings)}"
        f"<h2>{'The last run' if len(history) == 1 else f'Last {len(history)} runs'}</h2>"
        f"{bar_chart(history)}"
        f"<h2>Mismatches</h2>{link_note}"
        f"{_mismatch_table(head, sum(tally.values()), org_url(instance_url), registration_object, checkfront_url)}"
        "</body></html>\n"
    )


def write_html(path: Path, document: str) -> Path:
    """The report, owner-only: it names records, bookings and carts."""
    write_private_file(path, document)
    return path
