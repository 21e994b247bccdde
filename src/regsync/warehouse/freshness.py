"""How fresh the warehouse is: when each system was last pulled successfully, and whether to trust it.

A report built after a failed pull must not read like good news. This module reads the run ledger
(`runs`) and the stream watermarks (`stream_state`) and says, per system, when its data was last
pulled completely, whether the latest pull of it failed or never finished, and whether the data is
older than `[reconcile] max_data_age_s`. Reports, `run main` and the metrics file all show it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from regsync.warehouse.tables import runs, stream_state

SYSTEM_STREAMS: Mapping[str, tuple[str, ...]] = {
    "salesforce": ("sessions", "registrations"),
    "checkfront": ("booking_sessions", "bookings", "booking_lines"),
}
SYSTEM_NAMES = {"salesforce": "Salesforce", "checkfront": "Checkfront"}
# Ledger jobs that pull, and the systems a job pulls when its counts do not say which streams ran.
PULL_JOBS: Mapping[str, tuple[str, ...]] = {
    "sync": ("salesforce", "checkfront"),
    "backfill": ("salesforce", "checkfront"),
    "pull": ("salesforce", "checkfront"),
    "pull-registrations": ("salesforce",),
    "pull-checkfront": ("checkfront",),
}
GOOD_OUTCOMES = ("ok", "partial")  # a partial pull committed what it read (quarantine, a stop)


def age_text(seconds: float) -> str:
    """90061 -> '1 d 1 h', 3720 -> '1 h 2 min', 42 -> '42 s'."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def stamp(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class Attempt:
    """One pull run as the ledger holds it."""

    run_id: str
    job: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    message: str | None


@dataclass(frozen=True)
class SystemFreshness:
    """One system's data: as of when, the latest attempt, and what is wrong with it ([] = fresh)."""

    system: str
    data_as_of: datetime | None  # the oldest of its streams' last successful pulls (their end)
    stream_as_of: Mapping[str, datetime | None]
    watermarks: Mapping[str, datetime | None]
    latest: Attempt | None  # the latest pull attempt that included this system
    age_s: float | None
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return SYSTEM_NAMES[self.system]

    @property
    def fresh(self) -> bool:
        return not self.warnings

    @property
    def latest_failed(self) -> bool:
        return self.latest is not None and self.latest.outcome not in GOOD_OUTCOMES


@dataclass(frozen=True)
class Freshness:
    """Every system's freshness at `at`, judged against `max_age_s`."""

    at: datetime
    max_age_s: int
    systems: tuple[SystemFreshness, ...] = field(default=())

    @property
    def fresh(self) -> bool:
        return all(system.fresh for system in self.systems)

    @property
    def warnings(self) -> list[str]:
        return [warning for system in self.systems for warning in system.warnings]

    def as_of_text(self) -> str:
        """'data as of: Salesforce 2025-01-31T10:00:00Z, Checkfront never'."""
        return "data as of: " + ", ".join(f"{s.name} {stamp(s.data_as_of)}" for s in self.systems)

    def verdict(self) -> str:
        """One line for a console or a job summary."""
        if self.fresh:
            return f"fresh data ({self.as_of_text()})"
        return f"STALE OR INCOMPLETE DATA ({self.as_of_text()}): " + "; ".join(self.warnings)

    def by_system(self) -> dict[str, SystemFreshness]:
        return {s.system: s for s in self.systems}

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON output, metrics)."""
        return {
            "at": stamp(self.at),
            "max_data_age_s": self.max_age_s,
            "fresh": self.fresh,
            "systems": {
                s.system: {
                    "data_as_of": None if s.data_as_of is None else stamp(s.data_as_of),
                    "age_s": None if s.age_s is None else round(s.age_s),
                    "latest_outcome": None if s.latest is None else s.latest.outcome,
                    "latest_run_id": None if s.latest is None else s.latest.run_id,
                    "fresh": s.fresh,
                    "warnings": list(s.warnings),
                }
                for s in self.systems
            },
        }


def _streams_of(job: str, counts: Mapping[str, Any] | None) -> set[str]:
    """The streams a pull run covered: those its counts name (every stream records its time)."""
    named = {key.split(".", 1)[0] for key in (counts or {}) if "." in key}
    known = {stream for streams in SYSTEM_STREAMS.values() for stream in streams}
    streams = named & known
    if streams:
        return streams
    return {stream for system in PULL_JOBS.get(job, ()) for stream in SYSTEM_STREAMS[system]}


def _systems_of(streams: Iterable[str]) -> set[str]:
    wanted = set(streams)
    return {system for system, names in SYSTEM_STREAMS.items() if wanted & set(names)}


def _completed_streams(row: RowMapping) -> set[str]:
    """The streams a successful run pulled to the end (a stopped partial run names its last one, too:
    that stream counts as not completed)."""
    streams = _streams_of(row["job"], row["counts"])
    if row["outcome"] == "partial" and "stopped" in (row["message"] or ""):
        order = [s for names in SYSTEM_STREAMS.values() for s in names]
        done = sorted(streams, key=order.index)
        return set(done[:-1])
    return streams


def load_freshness(connection: Connection, *, now: datetime, max_age_s: int) -> Freshness:
    """Walk the pull runs newest first until every stream has a success and every system an attempt."""
    t = runs
    query = (
        select(t.c.run_id, t.c.job, t.c.started_at, t.c.ended_at, t.c.outcome, t.c.counts, t.c.message)
        .where(t.c.job.in_(tuple(PULL_JOBS)))
        .order_by(t.c.started_at.desc(), t.c.run_id.desc())
        .execution_options(yield_per=200)
    )
    every_stream = [s for names in SYSTEM_STREAMS.values() for s in names]
    succeeded: dict[str, datetime] = {}
    latest: dict[str, Attempt] = {}
    result = connection.execute(query)
    try:
        _walk(result.mappings(), succeeded, latest, len(every_stream))
    finally:
        result.close()  # the walk stops early: release PostgreSQL's server-side cursor now
    marks = {
        name: mark
        for name, mark in connection.execute(select(stream_state.c.stream, stream_state.c.watermark))
    }
    systems = tuple(
        _judge(system, streams, succeeded, latest.get(system), marks, now, max_age_s)
        for system, streams in SYSTEM_STREAMS.items()
    )
    return Freshness(at=now, max_age_s=max_age_s, systems=systems)


def _walk(
    rows: Iterable[RowMapping],
    succeeded: dict[str, datetime],
    latest: dict[str, Attempt],
    streams_known: int,
) -> None:
    for row in rows:
        streams = _streams_of(row["job"], row["counts"])
        attempt = Attempt(
            row["run_id"], row["job"], row["started_at"], row["ended_at"], row["outcome"], row["message"]
        )
        for system in _systems_of(streams):
            latest.setdefault(system, attempt)
        if row["outcome"] in GOOD_OUTCOMES:
            for stream in _completed_streams(row):
                succeeded.setdefault(stream, row["ended_at"] or row["started_at"])
        if len(succeeded) == streams_known and len(latest) == len(SYSTEM_STREAMS):
            return


def _judge(
    system: str,
    streams: tuple[str, ...],
    succeeded: Mapping[str, datetime],
    latest: Attempt | None,
    marks: Mapping[str, datetime | None],
    now: datetime,
    max_age_s: int,
) -> SystemFreshness:
    name = SYSTEM_NAMES[system]
    stream_as_of = {stream: succeeded.get(stream) for stream in streams}
    missing = [stream for stream, at in stream_as_of.items() if at is None]
    as_of = None if missing else min(at for at in stream_as_of.values() if at is not None)
    age = None if as_of is None else (now - as_of).total_seconds()
    warnings: list[str] = []
    if latest is not None and latest.outcome not in GOOD_OUTCOMES:
        what = "has not finished" if latest.outcome == "running" else f"ended {latest.outcome}"
        why = f": {latest.message}" if latest.message else ""
        warnings.append(
            f"the latest {name} pull (run {latest.run_id[:8]}, {latest.job}, started "
            f"{stamp(latest.started_at)}) {what}{why}"
        )
    if missing:
        warnings.append(
            f"{name} has never been pulled successfully ({', '.join(missing)}): the report cannot be trusted"
        )
    elif age is not None and age > max_age_s:
        warnings.append(
            f"{name} data is {age_text(age)} old, older than max_data_age_s ({age_text(max_age_s)})"
        )
    return SystemFreshness(
        system=system,
        data_as_of=as_of,
        stream_as_of=stream_as_of,
        watermarks={stream: marks.get(stream) for stream in streams},
        latest=latest,
        age_s=age,
        warnings=tuple(warnings),
    )
