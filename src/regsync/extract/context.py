"""What a pull needs from outside (injected), and what it reports back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.salesforce import SalesforceClient
from regsync.clients.usage import ApiUsage
from regsync.config import Settings


def _utcnow() -> datetime:
    return datetime.now(UTC)


Progress = Callable[[str, int, int | None], None]  # (stream, rows done in this step, total or None)


@dataclass
class PullContext:
    """The clients, the warehouse and the run a pull works for."""

    settings: Settings
    engine: Engine
    usage: ApiUsage
    run_id: str | None = None
    salesforce: SalesforceClient | None = None
    checkfront: CheckfrontClient | None = None
    now: Callable[[], datetime] = _utcnow
    progress: Progress | None = None
    should_stop: Callable[[], bool] = lambda: False

    def report(self, stream: str, rows: int, total: int | None = None) -> None:
        if self.progress is not None:
            self.progress(stream, rows, total)


@dataclass
class StreamResult:
    """Counts of one stream's pull."""

    stream: str
    counts: Counter[str] = field(default_factory=Counter)
    stopped: bool = False  # asked to stop (signal); everything read so far is committed

    @property
    def quarantined(self) -> int:
        return self.counts["quarantined"]
