"""Progress of a long pull: a rich bar on a terminal, plain periodic log lines otherwise (cron)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from regsync.extract.context import Progress as ProgressCallback

log = logging.getLogger("regsync.progress")


@contextmanager
def progress_reporter(console: Console, *, every_s: float = 10.0) -> Iterator[ProgressCallback]:
    """Yield a callback (stream, rows, total) that shows progress the right way for the output."""
    if console.is_terminal:
        bars = Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        tasks: dict[str, TaskID] = {}

        def on_terminal(stream: str, rows: int, total: int | None) -> None:
            if stream not in tasks:
                tasks[stream] = bars.add_task(stream, total=total)
            bars.update(tasks[stream], advance=rows, total=total)

        with bars:
            yield on_terminal
        return

    done: dict[str, int] = {}
    last = [time.monotonic()]

    def on_log(stream: str, rows: int, total: int | None) -> None:
        done[stream] = done.get(stream, 0) + rows
        if time.monotonic() - last[0] >= every_s or (total is not None and done[stream] >= total):
            last[0] = time.monotonic()
            log.info("%s: %d%s records", stream, done[stream], f"/{total}" if total else "")

    yield on_log
