"""Reports: spreadsheet-safe, byte-stable, with first/last seen and a diff against the previous run."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, delete, inspect, select, update

from regsync.reconcile import report
from regsync.reconcile.report import (
    DIFF_COLUMNS,
    MISMATCH_COLUMNS,
    ReportRow,
    iter_rows,
    load_tally,
    neutralise,
    write_csv_reports,
)
from regsync.reconcile.rules import CODES, Mismatch
from regsync.reconcile.run import ReconcileResult, record_mismatches, run_reconcile
from regsync.warehouse.reconcile_tables import mismatches, reconcile_runs
from regsync.warehouse.tables import bookings, metadata, registrations
from tests.reconcile import DEFAULTS, NOW, ago, booking, registration, seed

INSTANCE = "https://example.my.salesforce.com"
OBJECT = "conference360__Event_Registration_Submission__c"


def _run(engine: Engine, out: Path, *, hours: float = 0, fmt: str = "csv") -> ReconcileResult:
    return run_reconcile(
        engine,
        DEFAULTS,
        out_dir=out,
        fmt=fmt,  # type: ignore[arg-type]
        now=NOW + timedelta(hours=hours),
        instance_url=INSTANCE,
        registration_object=OBJECT,
    )


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _seed_two(engine: Engine, *, reverse: bool = False) -> None:
    """r1: amount mismatch on B1; r2: a stale draft."""
    regs = [
        registration("r1", status="Completed", code="B1", amount="10.00"),
        registration("r2", created=ago(days=8)),
    ]
    books = [booking(1, "B1", total="12.00", status="PAID")]
    seed(engine, registrations_=regs[::-1] if reverse else regs, bookings_=books)


def test_neutralise() -> None:
    for risky in ("=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(risky) == "'" + risky
    assert neutralise("plain =1") == "plain =1"
    assert neutralise(7) == 7
    assert neutralise("") == ""


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["a", "b=1", 3, None], ["a", "b=1", 3, None]),  # nothing to do: the column as it is
        (["a", "=1", "x\u202ey"], ["a", "'=1", "x[U+202E]y"]),
        (["a\n=b", "-c"], ["a\n=b", "'-c"]),  # "=" after a cell's own newline starts no formula
        (["a\n=b"], ["a\n=b"]),  # ... and only costs the slow path
        ([7, "@x"], [7, "'@x"]),
    ],
)
def test_a_column_is_neutralised_cell_by_cell_only_when_a_cell_needs_it(
    cells: list[object], expected: list[object]
) -> None:
    assert (
        report.csv_text(pd.DataFrame({"c": cells}), header=False).splitlines()
        == pd.DataFrame({"c": expected}).to_csv(index=False, header=False, lineterminator="\n").splitlines()
    )
    assert [neutralise(cell) for cell in cells] == expected


def test_formulas_are_neutralised_in_the_csv(warehouse: Engine, tmp_path: Path) -> None:
    evil = '=HYPERLINK("http://x","y")'
    seed(
        warehouse,
        registrations_=[registration("r1", cart=evil), registration("r2", cart=evil)],
        bookings_=[booking(1, "@evil")],
    )
    _run(warehouse, tmp_path)
    rows = _read(tmp_path / "mismatches.csv")
    assert [row["code"] for row in rows] == [
        "BOOKING_WITHOUT_REGISTRATION",
        "DUPLICATE_REGISTRATION",
        "DUPLICATE_REGISTRATION",
    ]
    assert rows[0]["booking_code"] == "'@evil"
    assert rows[0]["salesforce_link"] == ""
    assert {row["booking_session_id"] for row in rows[1:]} == {"'" + evil}
    assert rows[1]["salesforce_link"] == f"{INSTANCE}/lightning/r/{OBJECT}/r1/view"
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())


def test_same_input_gives_byte_identical_files(warehouse: Engine, tmp_path: Path) -> None:
    _seed_two(warehouse)
    first = _run(warehouse, tmp_path / "a")
    # wipe everything, load the same rows in another order, run again at the same "now"
    with warehouse.begin() as connection:
        for table in (mismatches, reconcile_runs, registrations, bookings):
            connection.execute(delete(table))
    _seed_two(warehouse, reverse=True)
    second = _run(warehouse, tmp_path / "b")
    assert first.run_id != second.run_id
    assert [p.name for p in first.paths] == ["mismatches.csv", "summary.csv", "diff.csv"]
    for name in ("mismatches.csv", "summary.csv", "diff.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    header = (tmp_path / "a" / "mismatches.csv").read_bytes().split(b"\n")[0]
    assert header == ",".join(MISMATCH_COLUMNS).encode()
    assert b"\r\n" not in (tmp_path / "a" / "mismatches.csv").read_bytes()


def test_diff_new_open_resolved(warehouse: Engine, tmp_path: Path) -> None:
    _seed_two(warehouse)
    first = _run(warehouse, tmp_path / "1")
    assert (first.total, first.new, first.open, first.resolved) == (2, 2, 0, 0)
    assert {row["status"] for row in _read(tmp_path / "1" / "diff.csv")} == {"new"}

    with warehouse.begin() as connection:  # fixed at the source
        connection.execute(update(bookings).where(bookings.c.code == "B1").values(total=Decimal("10.00")))
    second = _run(warehouse, tmp_path / "2", hours=1)
    assert (second.total, second.new, second.open, second.resolved) == (1, 0, 1, 1)
    assert second.counts["AMOUNT_MISMATCH"] == 0
    assert [row["code"] for row in _read(tmp_path / "2" / "mismatches.csv")] == ["STALE_DRAFT"]
    diff = _read(tmp_path / "2" / "diff.csv")
    assert list(diff[0]) == list(DIFF_COLUMNS)
    assert [(row["status"], row["code"], row["salesforce_id"]) for row in diff] == [
        ("open", "STALE_DRAFT", "r2"),
        ("resolved", "AMOUNT_MISMATCH", "r1"),
    ]
    assert (diff[0]["first_seen"], diff[0]["last_seen"]) == ("2025-06-01T12:00:00Z", "2025-06-01T13:00:00Z")
    assert (diff[1]["last_seen"], diff[1]["resolved_at"]) == ("2025-06-01T12:00:00Z", "2025-06-01T13:00:00Z")

    third = _run(warehouse, tmp_path / "3", hours=2)  # nothing changed: resolved ones are not repeated
    assert (third.total, third.new, third.open, third.resolved) == (1, 0, 1, 0)
    with warehouse.connect() as connection:
        stored = connection.execute(select(mismatches.c.code, mismatches.c.resolved_at)).all()
        runs = connection.execute(select(reconcile_runs.c.total).order_by(reconcile_runs.c.at)).scalars()
        assert list(runs) == [2, 1, 1]
    assert sorted(stored) == [("AMOUNT_MISMATCH", NOW + timedelta(hours=1)), ("STALE_DRAFT", None)]


def test_reappearing_mismatch_is_new_again(warehouse: Engine, tmp_path: Path) -> None:
    _seed_two(warehouse)
    _run(warehouse, tmp_path / "1")
    with warehouse.begin() as connection:
        connection.execute(update(bookings).values(total=Decimal("10.00")))
    _run(warehouse, tmp_path / "2", hours=1)
    with warehouse.begin() as connection:
        connection.execute(update(bookings).values(total=Decimal("11.00")))
    third = _run(warehouse, tmp_path / "3", hours=2)
    assert (third.new, third.open, third.resolved) == (1, 1, 0)
    amount = next(r for r in _read(tmp_path / "3" / "mismatches.csv") if r["code"] == "AMOUNT_MISMATCH")
    assert (amount["first_seen"], amount["checkfront_value"]) == ("2025-06-01T14:00:00Z", "11.00")


def test_summary_lists_every_code_even_at_zero(warehouse: Engine, tmp_path: Path) -> None:
    result = _run(warehouse, tmp_path)
    summary = _read(tmp_path / "summary.csv")
    assert [row["code"] for row in summary] == list(CODES)
    assert {row["count"] for row in summary} == {"0"}
    assert result.counts == dict.fromkeys(CODES, 0)
    assert _read(tmp_path / "mismatches.csv") == []
    assert (tmp_path / "diff.csv").read_text(encoding="utf-8") == ",".join(DIFF_COLUMNS) + "\n"


def test_html_is_self_contained_and_escaped(warehouse: Engine, tmp_path: Path) -> None:
    script = "<script>alert(1)</script>"
    seed(warehouse, registrations_=[registration("r1", cart=script), registration("r2", cart=script)])
    _run(warehouse, tmp_path, fmt="both")
    with warehouse.begin() as connection:
        connection.execute(delete(registrations).where(registrations.c.id == "r2"))
    result = _run(warehouse, tmp_path, hours=1, fmt="html")
    assert [p.name for p in result.paths] == ["report.html"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert script not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "src=" not in page
    assert "<link" not in page
    assert page.count("<svg") == 1
    assert page.count("<rect") == 1  # first run: one DUPLICATE bar; second run: nothing to draw
    assert "Last 2 runs" in page
    assert f'href="{INSTANCE}/lightning/r/{OBJECT}/r1/view"' in page


def test_migration_matches_the_tables(warehouse: Engine) -> None:
    names = set(inspect(warehouse).get_table_names())
    assert {"reconcile_runs", "mismatches"} <= names
    with warehouse.connect() as connection:
        context = MigrationContext.configure(connection)
        ours = [
            d for d in compare_metadata(context, metadata) if _touches(d, {"reconcile_runs", "mismatches"})
        ]
    assert ours == []


def _touches(difference: object, tables: set[str]) -> bool:
    text = repr(difference)
    return any(f"'{table}'" in text for table in tables)


def _mismatch(
    code: str, registration_id: str | None, session_id: str | None, booking_code: str | None
) -> Mismatch:
    return Mismatch(code, "low", registration_id, session_id, booking_code, "=SUM(A1)", "cf", "why")


# Ids that sort differently under a locale collation, case folding or NULLS LAST than by code point.
_AWKWARD = ["a", "B", "b", "Z", "_x", "é", "e", "ß", "z9", "Ω", "日本", "a b", "a-b", "ab"]


def test_the_database_orders_the_report_as_python_does(warehouse: Engine) -> None:
    found = [
        _mismatch(code, registration_id, session_id, booking_code)
        for code in ("STALE_DRAFT", "AMOUNT_MISMATCH")
        for registration_id in [None, *_AWKWARD[::3]]
        for booking_code in [None, *_AWKWARD[1::4]]
        for session_id in [None, *_AWKWARD[2::5]]
    ]
    with warehouse.begin() as connection:
        record_mismatches(connection, found[: len(found) // 2], "run-1", NOW)
    with warehouse.begin() as connection:
        record_mismatches(connection, found[len(found) // 3 :], "run-2", NOW + timedelta(hours=1))
        streamed = list(iter_rows(connection, "run-2", batch=7))
        tally = load_tally(connection, "run-2")
    assert [row.status for row in streamed].count("resolved") == len(found) // 3
    assert streamed == sorted(streamed, key=ReportRow.order)
    assert len(streamed) == len(found) == sum(tally.values())
    assert tally == Counter((row.code, row.status) for row in streamed)


def test_a_mismatch_seen_again_keeps_first_seen_and_shows_its_new_values(warehouse: Engine) -> None:
    same = _mismatch("STALE_DRAFT", "r1", "s1", None)
    before = _mismatch("AMOUNT_MISMATCH", "r2", None, "B2")
    after = Mismatch(before.code, "high", "r2", None, "B2", "120.00", "100.00", "now differs by 20")
    later = NOW + timedelta(hours=1)
    with warehouse.begin() as connection:
        record_mismatches(connection, [same, before], "run-1", NOW)
    with warehouse.begin() as connection:
        diff = record_mismatches(connection, [same, after], "run-2", later)
        rows = {row.mismatch_key: row for row in connection.execute(select(mismatches))}
    assert (diff.new, diff.open, diff.resolved) == (0, 2, 0)
    for key in (same.key, after.key):
        assert (rows[key].first_seen, rows[key].first_run_id) == (NOW, "run-1")
        assert (rows[key].last_seen, rows[key].last_run_id) == (later, "run-2")
    assert (rows[same.key].sf_value, rows[same.key].explanation) == (same.sf_value, same.explanation)
    changed = rows[after.key]
    assert (changed.severity, changed.sf_value, changed.cf_value, changed.explanation) == (
        "high",
        "120.00",
        "100.00",
        "now differs by 20",
    )


def test_streamed_batches_write_the_same_bytes_as_one_frame(
    warehouse: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = [_mismatch("STALE_DRAFT", f"r{n:03}", f"s{n}", None) for n in range(23)]
    with warehouse.begin() as connection:
        record_mismatches(connection, found, "run-1", NOW)
    written = {}
    for size in (4, 1000):
        monkeypatch.setattr(report, "REPORT_BATCH", size)
        out = tmp_path / str(size)
        with warehouse.begin() as connection:
            tally = load_tally(connection, "run-1")
            write_csv_reports(
                connection,
                "run-1",
                DEFAULTS,
                out,
                tally=tally,
                instance_url=INSTANCE,
                registration_object=OBJECT,
            )
        written[size] = {
            name: (out / name).read_bytes() for name in ("mismatches.csv", "diff.csv", "summary.csv")
        }
    assert written[4] == written[1000]
    rows = _read(tmp_path / "4" / "mismatches.csv")
    assert [row["salesforce_id"] for row in rows] == [f"r{n:03}" for n in range(23)]
    assert rows[-1]["salesforce_value"] == "'=SUM(A1)"  # neutralised in every batch
