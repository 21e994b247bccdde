"""`regsync run JOB --metrics-file`: the run's figures in Prometheus text format, replaced atomically.

The output is read back with a strict parser of the text exposition format (HELP and TYPE before
the series, names and labels well formed, no series twice, numbers that parse).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from regsync.cli import app
from regsync.config import Settings, load_settings
from regsync.exitcodes import ExitCode
from regsync.jobs.metrics import Sample, emit, job_samples, metrics_path, render, write_metrics_file
from regsync.jobs.registry import JobResult, run_job
from regsync.reconcile.rules import CODES
from regsync.sandbox import Sandbox
from tests.jobs import write_config

_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """A strict reader of the Prometheus text format (what node_exporter's collector accepts)."""
    assert text.endswith("\n")
    series: Series = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        assert line.strip() == line, f"line {number}: stray whitespace"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, f"line {number}: second HELP for {name}"
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "untyped", "summary", "histogram")
            assert name not in typed, f"line {number}: second TYPE for {name}"
            assert not any(n == name for n, _ in series), f"line {number}: TYPE after samples of {name}"
            typed[name] = kind
            continue
        assert not line.startswith("#"), f"line {number}: unknown comment {line!r}"
        found = _LINE.match(line)
        assert found, f"line {number}: not a sample: {line!r}"
        name = found["name"]
        assert name in typed, f"line {number}: {name} has no TYPE"
        raw = found["labels"] or ""
        labels: list[tuple[str, str]] = []
        position = 0
        while position < len(raw):
            label = _LABEL.match(raw, position)
            assert label, f"line {number}: bad labels {raw!r}"
            value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), label[2])
            labels.append((label[1], value))
            position = label.end()
        assert len({k for k, _ in labels}) == len(labels), f"line {number}: a label twice"
        value = float(found["value"])
        assert not math.isnan(value)
        key = (name, frozenset(labels))
        assert key not in series, f"line {number}: series {key} twice"
        series[key] = value
    return series


def value(series: Series, name: str, **labels: str) -> float:
    return series[(name, frozenset(labels.items()))]


def test_render_escapes_and_refuses_undeclared_names() -> None:
    text = render([Sample("regsync_job_exit_code", (("job", 'we"ird\\job\n'),), 3)])
    assert 'job="we\\"ird\\\\job\\n"' in text
    assert value(parse(text), "regsync_job_exit_code", job='we"ird\\job\n') == 3
    with pytest.raises(ValueError, match="undeclared"):
        render([Sample("regsync_nope", (), 1)])


def test_the_file_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "textfile" / "regsync_main.prom"
    write_metrics_file(target, "# first\n")
    inode = target.stat().st_ino
    write_metrics_file(target, "# second\n")
    assert target.read_text() == "# second\n"
    assert target.stat().st_ino != inode  # a new file renamed over the old one, never rewritten in place
    assert oct(target.stat().st_mode & 0o777) == "0o644"

    def broken(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_metrics_file(target, "# third, never seen\n")
    assert target.read_text() == "# second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["regsync_main.prom"]  # no temp left


def test_metrics_path_per_job() -> None:
    assert metrics_path("/var/lib/ne/regsync_{job}.prom", "close-stale") == Path(
        "/var/lib/ne/regsync_close-stale.prom"
    )


def test_a_locked_run_still_reports(warehouse: Engine) -> None:
    samples = job_samples(
        warehouse,
        job="sync",
        outcome="locked",
        exit_code=5,
        run_id=None,
        counts={},
        api_calls={},
        max_data_age_s=7200,
    )
    series = parse(render(samples))
    assert value(series, "regsync_job_outcome", job="sync", outcome="locked") == 1
    assert value(series, "regsync_job_outcome", job="sync", outcome="ok") == 0
    assert value(series, "regsync_job_exit_code", job="sync") == 5
    assert value(series, "regsync_job_last_success_timestamp_seconds", job="sync") == 0
    assert value(series, "regsync_data_fresh", job="sync", system="salesforce") == 0


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(60, seed=5) as box:
        yield box


@pytest.mark.sandbox
def test_run_main_writes_every_figure(sandbox: Sandbox, warehouse_url: str, tmp_path: Path) -> None:
    config = write_config(sandbox, tmp_path, warehouse_url, jobs={"reports_dir": str(tmp_path / "reports")})
    target = tmp_path / "textfile" / "regsync_{job}.prom"
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "run", "main", "--metrics-file", str(target)])
    assert result.exit_code in (ExitCode.OK, ExitCode.PARTIAL), result.output
    written = tmp_path / "textfile" / "regsync_main.prom"
    series = parse(written.read_text(encoding="utf-8"))
    outcome = "ok" if result.exit_code == ExitCode.OK else "partial"
    assert value(series, "regsync_job_outcome", job="main", outcome=outcome) == 1
    assert value(series, "regsync_job_exit_code", job="main") == result.exit_code
    assert value(series, "regsync_job_duration_seconds", job="main") > 0
    # Records per stream, from the sync step's ledger row.
    for stream in ("sessions", "registrations", "booking_sessions", "bookings", "booking_lines"):
        assert value(series, "regsync_stream_duration_seconds", job="main", stream=stream) >= 0
    assert value(series, "regsync_stream_records", job="main", stream="registrations", what="rows") > 0
    # API calls and the Salesforce quota the sandbox reports in Sforce-Limit-Info.
    assert value(series, "regsync_api_calls", job="main", system="salesforce") > 0
    assert value(series, "regsync_api_calls", job="main", system="checkfront") > 0
    used = value(series, "regsync_salesforce_api_used", job="main")
    most = value(series, "regsync_salesforce_api_max", job="main")
    assert 0 < used <= most
    assert value(series, "regsync_salesforce_api_used_ratio", job="main") == pytest.approx(used / most)
    # Mismatches by code (every code, zeros included) and writes by outcome (writes are off: planned).
    assert {labels for name, labels in series if name == "regsync_mismatches"} == {
        frozenset({("job", "main"), ("code", code)}) for code in CODES
    }
    assert any(name == "regsync_writes" for name, _ in series)
    # Freshness: the sync just ran.
    assert value(series, "regsync_data_fresh", job="main", system="checkfront") == 1
    assert value(series, "regsync_data_age_seconds", job="main", system="salesforce") < 600
    last_ok = value(series, "regsync_job_last_success_timestamp_seconds", job="main")
    if outcome == "ok":
        assert last_ok == value(series, "regsync_job_last_run_timestamp_seconds", job="main")


@pytest.mark.sandbox
def test_the_metrics_setting_and_the_daemon_path(
    sandbox: Sandbox, warehouse_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "regsync_{job}.prom"
    config = write_config(
        sandbox,
        tmp_path,
        warehouse_url,
        metrics={"file": str(target)},
        jobs={"reports_dir": str(tmp_path / "reports")},
    )
    settings = load_settings(config)
    result = run_job("reconcile", settings, job_settings=None)
    assert result.outcome == "ok"
    written = emit(settings, result)
    assert written == tmp_path / "regsync_reconcile.prom"
    series = parse(written.read_text(encoding="utf-8"))
    assert value(series, "regsync_job_outcome", job="reconcile", outcome="ok") == 1
    assert value(series, "regsync_mismatches_changes", job="reconcile", change="new") == 0
    # reconcile before any pull: the figures say the data is not fresh
    assert value(series, "regsync_data_fresh", job="reconcile", system="salesforce") == 0


def test_a_metrics_file_not_ending_in_prom_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "sync", "--metrics-file", str(tmp_path / "x.txt")])
    assert result.exit_code == ExitCode.USAGE
    assert "reads only *.prom files" in result.output
    with pytest.raises(ValueError, match=r"\.prom"):
        Settings(metrics={"file": "/tmp/x.txt"})


def test_unwritable_metrics_never_fail_the_job(warehouse_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings = Settings(warehouse={"url": warehouse_url})
    result = JobResult("ok", ExitCode.OK, "", "sync", None)
    assert emit(settings, result, path=blocker / "under-a-file.prom") is None
