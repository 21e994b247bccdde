"""A job's figures in the Prometheus text format, for node_exporter's textfile collector.

`regsync run JOB --metrics-file PATH` (or `[metrics] file`) rewrites PATH after every run: outcome,
exit code, duration, records per stream, API calls and the Salesforce quota used, mismatches by
code, writes by outcome, the last success time and how fresh each system's data is. Every series
carries a `job` label, so one file per job (`{job}` in the path) never collides in the collector.
The file is written beside itself under a name the collector ignores, then renamed over the old
one: a scrape never reads half a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from regsync import definitions as words
from regsync.warehouse.engine import make_engine
from regsync.warehouse.freshness import PULL_JOBS, load_freshness
from regsync.warehouse.tables import runs

OUTCOMES = ("ok", "partial", "deferred", "failed", "locked")
WRITE_JOBS = ("submit-pending", "close-stale", "write-back")
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@dataclass(frozen=True)
class Sample:
    """One series: name{labels} value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


# name -> (type, help)
HELP: dict[str, tuple[str, str]] = {
    "regsync_job_outcome": ("gauge", "1 for the outcome of the job's last run, 0 for the others."),
    "regsync_job_exit_code": ("gauge", "Exit code of the job's last run (docs/operations.md)."),
    "regsync_job_last_run_timestamp_seconds": ("gauge", "When the job's last run ended (Unix time)."),
    "regsync_job_last_success_timestamp_seconds": (
        "gauge",
        "When the job last ended ok (Unix time); 0 if never.",
    ),
    "regsync_job_duration_seconds": ("gauge", "How long the job's last run took."),
    "regsync_stream_records": ("gauge", "Records of the last run per stream and what happened to them."),
    "regsync_stream_duration_seconds": ("gauge", "Time the last run spent on each stream."),
    "regsync_api_calls": ("gauge", "API calls the last run made, per system."),
    "regsync_salesforce_api_used": ("gauge", "Salesforce daily API requests used (Sforce-Limit-Info)."),
    "regsync_salesforce_api_max": ("gauge", "Salesforce daily API request limit (Sforce-Limit-Info)."),
    "regsync_salesforce_api_used_ratio": ("gauge", "Share of the Salesforce daily API limit used."),
    "regsync_mismatches": ("gauge", "Open mismatches the last reconcile found, by reason code."),
    "regsync_mismatches_changes": ("gauge", "Mismatches new, still open and resolved in the last reconcile."),
    "regsync_writes": ("gauge", "Write-backs of the last run by kind and outcome."),
    "regsync_breaker_tripped": ("gauge", "1 when the last write-back run tripped the circuit breaker."),
    "regsync_data_last_pull_timestamp_seconds": (
        "gauge",
        "When each system was last pulled successfully (Unix time); 0 if never.",
    ),
    "regsync_data_age_seconds": ("gauge", "Age of each system's data at the end of the run."),
    "regsync_data_fresh": (
        "gauge",
        "1 when the system's data is fresh (latest pull ok, within max_data_age_s).",
    ),
}


def metrics_path(template: str | Path, job: str) -> Path:
    """The file for this job: `{job}` in the template becomes the job's name."""
    return Path(str(template).replace("{job}", job))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(samples: Iterable[Sample]) -> str:
    """The text exposition format: # HELP and # TYPE once per name, then its series, names sorted."""
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        if not _NAME.match(sample.name) or sample.name not in HELP:
            raise ValueError(f"undeclared metric name {sample.name!r}")
        by_name.setdefault(sample.name, []).append(sample)
    lines: list[str] = []
    for name in sorted(by_name):
        kind, text = HELP[name]
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for sample in sorted(by_name[name], key=lambda s: s.labels):
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sample.labels)
            lines.append(f"{name}{{{labels}}} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


def write_metrics_file(path: Path, text: str) -> Path:
    """Write beside the target under a name the collector ignores, then rename over it (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # node_exporter runs as another user; counts only, no data
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _ts(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _ledger(engine: Engine, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not run_ids:
        return []
    with engine.connect() as connection:
        rows = connection.execute(select(runs).where(runs.c.run_id.in_(list(run_ids)))).mappings()
        return [dict(row) for row in rows]


def _last_success(engine: Engine, job: str) -> datetime | None:
    query = (
        select(runs.c.ended_at)
        .where(runs.c.job == job, runs.c.outcome == "ok")
        .order_by(runs.c.started_at.desc())
        .limit(1)
    )
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _pull_samples(job: str, counts: Mapping[str, Any]) -> list[Sample]:
    samples = []
    for key, value in counts.items():
        number = _int(value)
        stream, _, what = key.partition(".")
        if number is None or not what:
            continue
        if what == "milliseconds":
            samples.append(
                Sample("regsync_stream_duration_seconds", (("job", job), ("stream", stream)), number / 1000)
            )
        else:
            samples.append(
                Sample("regsync_stream_records", (("job", job), ("stream", stream), ("what", what)), number)
            )
    return samples


def _write_samples(job: str, counts: Mapping[str, Any]) -> list[Sample]:
    samples = []
    for key, value in counts.items():
        number = _int(value)
        if number is None:
            continue
        if key == "breaker_tripped":
            samples.append(Sample("regsync_breaker_tripped", (("job", job),), number))
            continue
        kind, _, outcome = key.partition(".")
        if outcome:
            labels = (("job", job), ("kind", kind), ("outcome", outcome))
            samples.append(Sample("regsync_writes", labels, number))
    return samples


def _reconcile_samples(job: str, counts: Mapping[str, Any]) -> list[Sample]:
    samples = [
        Sample("regsync_mismatches", (("code", code), ("job", job)), _int(counts.get(f"code.{code}")) or 0)
        for code in words.REASON_CODES
    ]
    for change in ("new", "open", "resolved"):
        number = _int(counts.get(change))
        if number is not None:
            samples.append(Sample("regsync_mismatches_changes", (("change", change), ("job", job)), number))
    return samples


def _api_samples(job: str, calls: Mapping[str, Any]) -> list[Sample]:
    samples = []
    for key, value in calls.items():
        number = _int(value)
        if key.endswith("_calls") and number is not None:
            samples.append(
                Sample("regsync_api_calls", (("job", job), ("system", key[: -len("_calls")])), number)
            )
    used, _, most = str(calls.get("sf_api_usage") or "").partition("/")
    if used.isdigit() and most.isdigit():
        samples.append(Sample("regsync_salesforce_api_used", (("job", job),), int(used)))
        samples.append(Sample("regsync_salesforce_api_max", (("job", job),), int(most)))
        if int(most):
            samples.append(
                Sample("regsync_salesforce_api_used_ratio", (("job", job),), int(used) / int(most))
            )
    return samples


def job_samples(
    engine: Engine,
    *,
    job: str,
    outcome: str,
    exit_code: int,
    run_id: str | None,
    counts: Mapping[str, Any],
    api_calls: Mapping[str, Any],
    max_data_age_s: int,
    now: datetime | None = None,
) -> list[Sample]:
    """Every figure of one job run, read back from the run ledger (main: from its steps' rows too)."""
    now = now or datetime.now(UTC)
    label = (("job", job),)
    samples = [
        Sample("regsync_job_outcome", (("job", job), ("outcome", name)), int(name == outcome))
        for name in OUTCOMES
    ]
    samples.append(Sample("regsync_job_exit_code", label, exit_code))
    step_ids = [
        step.get("run_id") for step in (counts.get("steps") or {}).values() if isinstance(step, Mapping)
    ]
    rows = {row["run_id"]: row for row in _ledger(engine, [i for i in (run_id, *step_ids) if i])}
    top = rows.get(run_id or "")
    ended = (top or {}).get("ended_at") or now
    samples.append(Sample("regsync_job_last_run_timestamp_seconds", label, _ts(ended)))
    if top is not None:
        samples.append(
            Sample("regsync_job_duration_seconds", label, (ended - top["started_at"]).total_seconds())
        )
    last_ok = _last_success(engine, job)
    samples.append(Sample("regsync_job_last_success_timestamp_seconds", label, _ts(last_ok)))
    for row in rows.values():
        row_counts = row["counts"] or {}
        if row["job"] in PULL_JOBS:
            samples += _pull_samples(job, row_counts)
        elif row["job"] in WRITE_JOBS:
            samples += _write_samples(job, row_counts)
        elif row["job"] == "reconcile":
            samples += _reconcile_samples(job, row_counts)
    samples += _api_samples(job, (top or {}).get("api_calls") or api_calls)
    with engine.connect() as connection:
        freshness = load_freshness(connection, now=now, max_age_s=max_data_age_s)
    for system in freshness.systems:
        labels = (("job", job), ("system", system.system))
        samples.append(Sample("regsync_data_last_pull_timestamp_seconds", labels, _ts(system.data_as_of)))
        if system.age_s is not None:
            samples.append(Sample("regsync_data_age_seconds", labels, max(0.0, system.age_s)))
        samples.append(Sample("regsync_data_fresh", labels, int(system.fresh)))
    return _merged(samples)


def _merged(samples: Iterable[Sample]) -> list[Sample]:
    """Series named twice (a stream pulled by two steps) are summed: each series appears once."""
    totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for sample in samples:
        key = (sample.name, sample.labels)
        if sample.name.startswith(("regsync_stream_", "regsync_writes", "regsync_api_calls")):
            totals[key] = totals.get(key, 0) + sample.value
        else:
            totals[key] = sample.value
    return [Sample(name, labels, value) for (name, labels), value in totals.items()]


def emit(
    settings: Any, result: Any, *, path: str | Path | None = None, engine: Engine | None = None
) -> Path | None:
    """Write a JobResult's metrics to `path` (else `[metrics] file`); None when neither is set.

    A metrics file that cannot be written is logged, never a failed job: the run itself went as
    its exit code says.
    """
    import logging

    template = path or getattr(getattr(settings, "metrics", None), "file", "")
    if not template:
        return None
    target = metrics_path(template, result.job)
    owned = engine is None
    try:
        if engine is None:
            engine = make_engine(settings.warehouse.url)
        samples = job_samples(
            engine,
            job=result.job,
            outcome=result.outcome,
            exit_code=int(result.exit_code),
            run_id=result.run_id,
            counts=result.counts,
            api_calls=result.api_calls,
            max_data_age_s=settings.reconcile.max_data_age_s,
        )
        return write_metrics_file(target, render(samples))
    except Exception as exc:
        logging.getLogger("regsync.metrics").error("could not write the metrics file %s: %s", target, exc)
        return None
    finally:
        if owned and engine is not None:
            engine.dispose()
