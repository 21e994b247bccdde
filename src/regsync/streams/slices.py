"""A wide SOQL pull cut into SystemModstamp slices read at once, each with its own checkpoint.

Against a real org every query page is a round trip, and the pages of one query follow one
another (each needs the locator of the one before): a re-backfill of a million registrations is
some 500 of them in a row. Cut into N contiguous slices of `[start, upper)`, it is N queries whose
pages come at once.

The plan lives in the stream's own state row (its checkpoint), beside the watermark, so it moves
in the transaction of every page a slice commits. Each slice records `at`: its last committed
cursor (its `end` once it is done). The stream's watermark is the committed prefix, the position of
the first slice not done (every row with a cursor below it is committed), never more: a killed run
leaves a watermark as true as today's, and the next run finds the plan and resumes every slice at
its own `at` (less the look-back, as any resumed pull). When the last slice is done the watermark
moves to the plan's upper bound and the plan is dropped, in one transaction.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise
from typing import Any, TypeVar

log = logging.getLogger("regsync.extract")
T = TypeVar("T")


@dataclass(frozen=True)
class Slice:
    """`[start, end)` of the cursor, and how far it is committed (None: nothing yet)."""

    start: datetime
    end: datetime
    at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.at is not None and self.at >= self.end


@dataclass(frozen=True)
class SlicePlan:
    """Contiguous slices covering `[slices[0].start, upper)`."""

    slices: tuple[Slice, ...]

    @property
    def upper(self) -> datetime:
        return self.slices[-1].end

    @property
    def done(self) -> bool:
        return all(s.done for s in self.slices)

    @classmethod
    def cut(cls, start: datetime, upper: datetime, count: int) -> SlicePlan | None:
        """`count` slices of equal width over `[start, upper)` (whole seconds); None: too narrow for two."""
        span = upper - start
        bounds = sorted(
            {start, upper} | {(start + span * i / count).replace(microsecond=0) for i in range(1, count)}
        )
        bounds = [b for b in bounds if start <= b <= upper]
        if len(bounds) < 3:
            return None
        return cls(tuple(Slice(a, b) for a, b in pairwise(bounds)))

    def advanced(self, index: int, at: datetime) -> SlicePlan:
        """This plan with slice `index` committed up to `at` (never moved back)."""
        current = self.slices[index]
        if current.at is not None and at <= current.at:
            return self
        slices = list(self.slices)
        slices[index] = replace(current, at=min(at, current.end))
        return SlicePlan(tuple(slices))

    def watermark(self, floor: datetime | None) -> datetime | None:
        """The committed prefix: where the first slice not done stands; never below `floor`."""
        prefix = self.upper
        for s in self.slices:
            if not s.done:
                prefix = s.at if s.at is not None else s.start
                break
        return prefix if floor is None or prefix > floor else floor

    def checkpoint(self) -> dict[str, Any]:
        return {
            "slices": [
                [s.start.isoformat(), s.end.isoformat(), s.at.isoformat() if s.at else None]
                for s in self.slices
            ]
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any] | None) -> SlicePlan | None:
        """The plan a stream's checkpoint holds, or None (none, or one that cannot be read).

        Dropping an unreadable plan is safe: the watermark beside it is the committed prefix, so
        the pull starts over from there and reads some rows again, none lost.
        """
        if not checkpoint or "slices" not in checkpoint:
            return None
        try:
            slices = tuple(
                Slice(
                    datetime.fromisoformat(start),
                    datetime.fromisoformat(end),
                    datetime.fromisoformat(at) if at is not None else None,
                )
                for start, end, at in checkpoint["slices"]
            )
            contiguous = all(a.end == b.start for a, b in pairwise(slices))
            if not slices or not contiguous or any(s.start >= s.end for s in slices):
                raise ValueError("slices not contiguous")
        except (TypeError, ValueError) as exc:
            log.warning("a stored slice plan cannot be read (%s): the pull goes on from its watermark", exc)
            return None
        return cls(slices)


def run_at_once(
    indices: list[int], read: Callable[[int, threading.Event], T], name: str = "slice"
) -> list[T]:
    """read(index, halt) for every index on a thread of its own; the results in `indices` order.

    `halt` is set as soon as one of them fails, or returns having stopped (it sets it itself):
    the others stop after the page in hand. The first failure (in time) is raised once all have
    ended, so nothing is still writing when the caller handles it.
    """
    halt = threading.Event()
    first: list[BaseException] = []
    lock = threading.Lock()

    def guarded(index: int) -> T:
        try:
            return read(index, halt)
        except BaseException as exc:
            with lock:
                first.append(exc)
            halt.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, len(indices)), thread_name_prefix=name) as pool:
        # Each in a copy of this context (the warehouse's write-cache setting lives there).
        futures = [pool.submit(contextvars.copy_context().run, guarded, i) for i in indices]
        results: list[T] = []
        for future in futures:
            try:
                results.append(future.result())
            except BaseException:  # noqa: S112 - raised below, the first of them
                continue
    if first:
        for later in first[1:]:
            log.warning("%s: also failed: %s: %s", name, type(later).__name__, later)
        raise first[0]
    return results
