"""What a pull needs from outside (injected), and what it reports back."""

from __future__ import annotations

import threading
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


class Upstream:
    """What a stream that follows another sees of it while both run: its commits, and its end.

    The follower reads what the upstream stream has committed so far, waits for more, and reads
    once more after the end: its work starts with the upstream's first page, not after its last.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._commits = 0
        self._ended = False
        self.succeeded = False

    def committed(self) -> None:
        """The upstream stream committed another page."""
        with self._changed:
            self._commits += 1
            self._changed.notify_all()

    def end(self, *, succeeded: bool) -> None:
        """The upstream stream ended (`succeeded`: finished, neither failed nor stopped)."""
        with self._changed:
            self._ended, self.succeeded = True, succeeded
            self._changed.notify_all()

    def wait(self, seen: int) -> tuple[int, bool]:
        """Block until a commit after the `seen`-th, or the end; (commits so far, ended)."""
        with self._changed:
            self._changed.wait_for(lambda: self._commits > seen or self._ended)
            return self._commits, self._ended


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
