"""The driver: hypothesis generates inputs for each surface and every outcome is counted, then the pull."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from tests.support.hostile.end_to_end import check_end_to_end
from tests.support.hostile.outcomes import HostileFailure
from tests.support.hostile.report import HostileReport
from tests.support.hostile.surfaces import SURFACES, Surface, outcome_of


def _drive(surface: Surface, report: HostileReport, examples: int, seed: int) -> None:
    """Let hypothesis generate up to `examples` inputs for one surface; count every outcome."""

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # count, do not shrink: the tests shrink
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis_seed(seed)
    @given(surface.strategy)
    def one(value: Any) -> None:
        try:
            report.record(surface.name, outcome_of(surface, value))
        except HostileFailure as exc:
            report.record(surface.name, "failure", str(exc))

    one()


def run_hostile(
    *,
    examples: int,
    seed: int,
    surfaces: Iterable[str] | None = None,
    end_to_end: bool = True,
    warehouse_url: str | None = None,
) -> HostileReport:
    """Drive every surface (or those named) with up to `examples` inputs each, then the sandbox pull.

    `warehouse_url`: where the end-to-end pull writes (default: a SQLite file in a temporary
    directory); pass an empty PostgreSQL schema to check that backend too.
    """
    started = time.perf_counter()
    report = HostileReport(examples=examples, seed=seed)
    retry_log = logging.getLogger("regsync.retry")
    level = retry_log.level
    retry_log.setLevel(logging.ERROR)  # thousands of deliberate retries are not news
    try:
        for name in surfaces if surfaces is not None else SURFACES:
            _drive(SURFACES[name], report, examples, seed)
        if end_to_end:
            check_end_to_end(report, seed=seed, warehouse_url=warehouse_url)
    finally:
        retry_log.setLevel(level)
    report.seconds = time.perf_counter() - started
    return report
