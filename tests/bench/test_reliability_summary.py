"""bench/reliability.py never reads a figure a harness did not report as 0: it fails, naming it."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.concurrency import ConcurrencyReport
from tests.support.crash import CrashReport
from tests.support.hostile import HostileReport
from tests.support.leaks import LeakReport
from tests.support.soak import SoakReport

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_reliability", BENCH / "reliability.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _reports() -> dict[str, Any]:
    """One real report of each harness, as a clean run fills it."""
    return {
        "soak": SoakReport(runs=2, faults_injected={"status_429": 3, "drop": 1}, records_compared=500),
        "crash": CrashReport(
            iterations=4,
            kills={"page": 4},
            records_compared=300,
            records_lost=0,
            records_duplicated=0,
            differences=0,
            writes_sent_twice=0,
            seconds=1.0,
        ),
        "concurrency": ConcurrencyReport(
            concurrent_runs=15,
            rounds=1,
            exit_codes=Counter({0: 15}),
            lock_refusals=0,
            duplicate_rows=0,
            writes_sent_twice=0,
            differences=0,
        ),
        "hostile": HostileReport(examples=10, seed=1, inputs_tried=130),
        "leaks": LeakReport(secrets=16, artifacts_scanned=80),
    }


def _results(bench: ModuleType, **figures_by_section: dict[str, Any]) -> dict[str, list[Any]]:
    results = {}
    for section, report in _reports().items():
        figures = report.as_dict() | figures_by_section.get(section, {})
        figures = {key: value for key, value in figures.items() if value != "DROP"}
        results[section] = [bench.Result(f"{section} on sqlite", figures)]
    return results


def test_the_real_harness_reports_carry_every_required_figure(bench: ModuleType) -> None:
    reports = _reports()
    assert set(bench.REQUIRED) == set(reports)
    for section, keys in bench.REQUIRED.items():
        figures = reports[section].as_dict()
        assert [key for key in keys if key not in figures] == [], section


def test_a_clean_run_sums_to_its_figures(bench: ModuleType) -> None:
    summary = bench.summarize(_results(bench))
    assert summary["soak_runs"] == 2
    assert summary["faults_injected"] == 4
    assert summary["crash_iterations"] == 4
    assert summary["concurrent_runs"] == 15
    assert summary["hostile_inputs"] == 130
    assert summary["records_compared"] == 800
    assert [summary[key] for key in bench.BAD] == [0] * len(bench.BAD)


def test_problems_are_counted(bench: ModuleType) -> None:
    summary = bench.summarize(
        _results(
            bench,
            soak={"records_lost": 2, "crashes": ["boom"]},
            concurrency={"duplicate_rows": 3, "unexpected_exits": ["x exited 1"]},
            leaks={"secrets_leaked": 1},
        )
    )
    assert summary["records_lost"] == 2
    assert summary["records_duplicated"] == 3
    assert summary["crashes"] == 2
    assert summary["secrets_leaked"] == 1


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("soak", "records_lost"),
        ("crash", "writes_sent_twice"),
        ("concurrency", "duplicate_rows"),
        ("concurrency", "tracebacks"),
        ("hostile", "failures"),
        ("leaks", "secrets_leaked"),
    ],
)
def test_a_figure_not_reported_fails_naming_it(bench: ModuleType, section: str, key: str) -> None:
    with pytest.raises(bench.MissingFigures, match=f"{section} on sqlite: did not report '{key}'"):
        bench.summarize(_results(bench, **{section: {key: "DROP"}}))
    with pytest.raises(bench.MissingFigures, match=f"did not report '{key}'"):
        bench.summarize(_results(bench, **{section: {key: None}}))


def test_a_harness_that_checked_nothing_fails(bench: ModuleType) -> None:
    with pytest.raises(bench.MissingFigures, match=r"hostile on sqlite: reported 'inputs_tried' = 0"):
        bench.summarize(_results(bench, hostile={"inputs_tried": 0}))
    with pytest.raises(bench.MissingFigures, match=r"'faults_injected' = \{\}"):
        bench.summarize(_results(bench, soak={"faults_injected": {}}))
    results = _results(bench)
    del results["leaks"]
    with pytest.raises(bench.MissingFigures, match="leaks: no harness result at all"):
        bench.summarize(results)


def test_main_exits_non_zero_and_names_the_missing_figure(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = _reports()

    class Partial:
        """A soak report whose harness stopped counting lost records."""

        def as_dict(self) -> dict[str, Any]:
            figures = reports["soak"].as_dict()
            del figures["records_lost"]
            return figures

    def harness(report: Any) -> Any:
        return lambda **_kwargs: report

    monkeypatch.setattr(
        bench,
        "PER_DATABASE",
        (
            ("soak", "fault soak", harness(Partial()), lambda s: {}),
            ("crash", "crash/resume", harness(reports["crash"]), lambda s: {}),
            ("concurrency", "concurrency", harness(reports["concurrency"]), lambda s: {}),
        ),
    )
    monkeypatch.setattr(bench, "run_hostile", harness(reports["hostile"]))
    monkeypatch.setattr(bench, "run_leak_scan", harness(reports["leaks"]))
    monkeypatch.setattr(sys, "argv", ["reliability.py", "--quick", "--db", "sqlite"])
    with pytest.raises(SystemExit) as exited:
        bench.main()
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "fault soak on sqlite: did not report 'records_lost'" in err
    assert '"error": "missing figures"' in out.strip().splitlines()[-1]
