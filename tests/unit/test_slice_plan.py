"""The slice plan of a wide SOQL pull: contiguous cuts, the committed prefix, a checkpoint that survives."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from regsync.streams.slices import SlicePlan, run_at_once

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_cuts_are_contiguous_whole_seconds_covering_the_range() -> None:
    start = T0 + timedelta(microseconds=1)  # callers floor; the cut keeps what it is given
    plan = SlicePlan.cut(start, T0 + 10 * DAY + timedelta(seconds=7), 4)
    assert plan is not None
    assert plan.slices[0].start == start
    assert plan.upper == T0 + 10 * DAY + timedelta(seconds=7)
    assert all(a.end == b.start for a, b in zip(plan.slices, plan.slices[1:], strict=False))
    assert all(s.start.microsecond == 0 for s in plan.slices[1:])
    assert len(plan.slices) == 4
    assert SlicePlan.cut(T0, T0 + timedelta(seconds=1), 4) is None  # too narrow for two slices


def test_the_watermark_is_the_committed_prefix_and_never_goes_back() -> None:
    plan = SlicePlan.cut(T0, T0 + 4 * DAY, 4)
    assert plan is not None
    assert plan.watermark(None) == T0
    plan = plan.advanced(1, T0 + DAY + timedelta(hours=5))  # a later slice ahead: no prefix yet
    assert plan.watermark(None) == T0
    plan = plan.advanced(0, T0 + timedelta(hours=3))
    assert plan.watermark(None) == T0 + timedelta(hours=3)
    assert plan.watermark(T0 + DAY) == T0 + DAY  # the floor: the stream's watermark before the plan
    plan = plan.advanced(0, T0 + timedelta(hours=1))  # never moved back
    assert plan.slices[0].at == T0 + timedelta(hours=3)
    plan = plan.advanced(0, T0 + 2 * DAY)  # a window end past the slice: capped, done
    assert plan.slices[0].done
    assert plan.watermark(None) == T0 + DAY + timedelta(hours=5)
    for index in (1, 2, 3):
        plan = plan.advanced(index, plan.slices[index].end)
    assert plan.done
    assert plan.watermark(None) == plan.upper


def test_the_checkpoint_round_trips_and_a_spoiled_one_is_dropped() -> None:
    plan = SlicePlan.cut(T0, T0 + 4 * DAY, 2)
    assert plan is not None
    plan = plan.advanced(1, T0 + 3 * DAY)
    assert SlicePlan.from_checkpoint(plan.checkpoint()) == plan
    assert SlicePlan.from_checkpoint({"window_end": T0.isoformat()}) is None  # an ordinary checkpoint
    gap = plan.checkpoint()
    gap["slices"][1][0] = (T0 + 3 * DAY).isoformat()
    for spoiled in (gap, {"slices": []}, {"slices": [["x", "y", None]]}, {"slices": [[1]]}):
        assert SlicePlan.from_checkpoint(spoiled) is None


def test_the_first_failure_stops_the_others_and_is_raised() -> None:
    started = threading.Barrier(3)
    stopped: list[int] = []

    def read(index: int, halt: threading.Event) -> int:
        started.wait(timeout=10)
        if index == 1:
            raise LookupError("slice 1 failed")
        assert halt.wait(timeout=10), "the others are told to stop"
        stopped.append(index)
        return index

    with pytest.raises(LookupError, match="slice 1"):
        run_at_once([0, 1, 2], read)
    assert sorted(stopped) == [0, 2]  # both had ended when the failure was raised
    assert run_at_once([2, 0], lambda index, _halt: index * 10) == [20, 0]
