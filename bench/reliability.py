"""Break regsync on purpose and count what survived: faults, kills, overlaps, hostile input, leaks.

One command runs the five harnesses of tests/support/ (the same ones tests/reliability/
runs in a bounded form) and prints what each did; the last line is one JSON object with at
least soak_runs, faults_injected, crash_iterations, concurrent_runs, hostile_inputs,
records_lost, records_duplicated, writes_sent_twice, secrets_leaked. The exit code is 1 when any
of the last four (or another problem a harness counts) is not zero, and 2 when a harness did not
report a figure the summary needs, or reported that it checked nothing (the figure is named on
stderr and in the last line): a figure that is not there is never counted as 0.

    python bench/reliability.py [--quick] [--db sqlite|postgresql|both] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test support (tests/support)
from _common import bench_warehouse_url, emit
from tests.support.concurrency import run_concurrency
from tests.support.crash import run_crash_resume
from tests.support.hostile import run_hostile
from tests.support.leaks import run_leak_scan
from tests.support.soak import run_soak


@dataclass(frozen=True)
class Sizes:
    """How hard each harness pushes: --quick for a few minutes, the default for a longer soak."""

    soak_runs: int
    soak_registrations: int
    crash_iterations: int
    crash_registrations: int
    concurrency_rounds: int
    concurrency_registrations: int
    hostile_examples: int
    leak_registrations: int


QUICK = Sizes(2, 300, 4, 1500, 1, 300, 100, 150)
FULL = Sizes(10, 400, 12, 3000, 3, 1000, 1000, 300)


# The harnesses run once per database, each with the sizes it takes from Sizes.
PER_DATABASE: tuple[tuple[str, str, Callable[..., Any], Callable[[Sizes], dict[str, int]]], ...] = (
    ("soak", "fault soak", run_soak, lambda s: {"runs": s.soak_runs, "registrations": s.soak_registrations}),
    (
        "crash",
        "crash/resume",
        run_crash_resume,
        lambda s: {"iterations": s.crash_iterations, "registrations": s.crash_registrations},
    ),
    (
        "concurrency",
        "concurrency",
        run_concurrency,
        lambda s: {"rounds": s.concurrency_rounds, "registrations": s.concurrency_registrations},
    ),
)
# Per-run and per-process detail: in the harnesses' reports, not on the terminal.
VERBOSE = frozenset({"per_run", "details", "runs", "by_entity", "faults_by_endpoint", "endpoints_called"})


# The figures each harness must report. One that is missing (a field renamed, a harness that
# stopped counting) or None fails the run, naming it: read as 0 it would pass for "nothing lost".
REQUIRED: dict[str, tuple[str, ...]] = {
    "soak": (
        "runs",
        "faults_injected",
        "records_compared",
        "records_lost",
        "records_duplicated",
        "differences",
        "writes_sent_twice",
        "writes_missing",
        "writes_unexpected",
        "quarantined_not_recovered",
        "unexplained",
        "crashes",
    ),
    "crash": (
        "iterations",
        "records_compared",
        "records_lost",
        "records_duplicated",
        "differences",
        "writes_sent_twice",
        "tracebacks",
    ),
    "concurrency": (
        "concurrent_runs",
        "duplicate_rows",
        "differences",
        "writes_sent_twice",
        "unexpected_exits",
        "tracebacks",
    ),
    "hostile": ("inputs_tried", "failures"),
    "leaks": ("secrets", "artifacts_scanned", "secrets_leaked"),
}
# What each harness must have done at all: 0 here means it checked nothing, which is no pass.
MUST_BE_POSITIVE: dict[str, tuple[str, ...]] = {
    "soak": ("runs", "faults_injected", "records_compared"),
    "crash": ("iterations", "records_compared"),
    "concurrency": ("concurrent_runs",),
    "hostile": ("inputs_tried",),
    "leaks": ("secrets", "artifacts_scanned"),
}


class MissingFigures(Exception):
    """A harness did not report a figure the summary needs (or reported that it did nothing)."""


@dataclass(frozen=True)
class Result:
    label: str  # "fault soak on sqlite"
    figures: dict[str, Any]


def check_figures(results: dict[str, list[Result]]) -> list[str]:
    """Every required figure a harness did not report, or reported as None or as 0 work done."""
    problems: list[str] = []
    for section, keys in REQUIRED.items():
        if not results.get(section):
            problems.append(f"{section}: no harness result at all")
            continue
        for result in results[section]:
            missing = [key for key in keys if result.figures.get(key) is None]
            problems += [f"{result.label}: did not report {key!r}" for key in missing]
            for key in MUST_BE_POSITIVE.get(section, ()):
                value = result.figures.get(key)
                if key not in missing and not _amount(value):
                    problems.append(f"{result.label}: reported {key!r} = {value!r} (nothing was checked)")
    return problems


def _amount(value: Any) -> int:
    """A count, a list (its length) or a {kind: count} mapping (its total) as one number."""
    if isinstance(value, dict):
        return sum(int(v) for v in value.values())
    if isinstance(value, list):
        return len(value)
    return int(value)


def summarize(results: dict[str, list[Result]]) -> dict[str, Any]:
    """The summary's figures; raises MissingFigures naming every figure a harness did not report."""
    problems = check_figures(results)
    if problems:
        raise MissingFigures("; ".join(problems))

    def total(section: str, key: str) -> int:
        return sum(_amount(result.figures[key]) for result in results[section])

    faults: Counter[str] = Counter()
    for result in results["soak"]:
        faults.update(result.figures["faults_injected"])
    lost = sum(total(s, "records_lost") for s in ("soak", "crash"))  # concurrency: in `differences`
    duplicated = sum(total(s, "records_duplicated") for s in ("soak", "crash"))
    duplicated += total("concurrency", "duplicate_rows")
    differences = sum(total(s, "differences") for s in ("soak", "crash", "concurrency"))
    twice = sum(total(s, "writes_sent_twice") for s in ("soak", "crash", "concurrency"))
    # Anything else a harness counts as wrong: a traceback, an unexpected exit, a write missing or
    # unexpected, a quarantined record never recovered, a problem the soak could not explain.
    crashes = total("soak", "crashes") + total("crash", "tracebacks")
    crashes += total("concurrency", "tracebacks") + total("concurrency", "unexpected_exits")
    other = sum(
        total("soak", key)
        for key in ("writes_missing", "writes_unexpected", "quarantined_not_recovered", "unexplained")
    )
    return {
        "soak_runs": total("soak", "runs"),
        "faults_injected": sum(faults.values()),
        "faults_by_kind": dict(sorted(faults.items())),
        "crash_iterations": total("crash", "iterations"),
        "concurrent_runs": total("concurrency", "concurrent_runs"),
        "hostile_inputs": total("hostile", "inputs_tried"),
        "hostile_failures": total("hostile", "failures"),
        "records_compared": total("soak", "records_compared") + total("crash", "records_compared"),
        "records_lost": lost,
        "records_duplicated": duplicated,
        "differences": differences,
        "writes_sent_twice": twice,
        "crashes": crashes,
        "other_problems": other,
        "secrets_checked": total("leaks", "secrets"),
        "artifacts_scanned": total("leaks", "artifacts_scanned"),
        "secrets_leaked": total("leaks", "secrets_leaked"),
    }


BAD = (
    "records_lost",
    "records_duplicated",
    "differences",
    "writes_sent_twice",
    "secrets_leaked",
    "crashes",
    "other_problems",
    "hostile_failures",
)


def _timed(label: str, call: Callable[[], Any]) -> Result:
    print(f"== {label}", flush=True)
    started = time.perf_counter()
    figures = call().as_dict()
    figures.setdefault("seconds", round(time.perf_counter() - started, 1))
    for key, value in figures.items():
        if key not in VERBOSE and not (isinstance(value, list) and not value):
            print(f"   {key}: {value}", flush=True)
    return Result(label, figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a bounded run of a few minutes")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    databases = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    started = time.perf_counter()
    results: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="regsync-reliability-") as scratch, ExitStack() as stack:
        root = Path(scratch)
        for db in databases:
            for name, label, harness, sized in PER_DATABASE:
                work = root / db / name
                work.mkdir(parents=True)
                url = stack.enter_context(bench_warehouse_url(db, work))
                run = partial(
                    harness, **sized(sizes), seed=args.seed, warehouse_url=url, workdir=work / "run"
                )
                results.setdefault(name, []).append(_timed(f"{label} on {db}", run))
        hostile = partial(run_hostile, examples=sizes.hostile_examples, seed=args.seed)
        results["hostile"] = [_timed("hostile input", hostile)]
        leaks = partial(run_leak_scan, workdir=root / "leaks", registrations=sizes.leak_registrations)
        results["leaks"] = [_timed("secrets", leaks)]

    try:
        figures = summarize(results)
    except MissingFigures as exc:
        print(f"bench/reliability.py: {exc}", file=sys.stderr, flush=True)
        emit(
            {
                "quick": args.quick,
                "databases": list(databases),
                "error": "missing figures",
                "missing": str(exc),
            }
        )
        raise SystemExit(2) from exc
    summary = {"quick": args.quick, "databases": list(databases), **figures}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    emit(summary)
    if any(summary[key] for key in BAD):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
