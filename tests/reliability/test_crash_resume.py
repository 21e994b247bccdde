"""`regsync run main` killed with SIGKILL in a page of the pull, between a page's rows and its
watermark, and between a write and its journal entry, then run clean: it must end exactly where one
uninterrupted run ends (warehouse and remote state), with no write sent twice.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from regsync.actions import journal
from regsync.actions.apply import run_actions
from regsync.actions.journal import END, SUBMIT, list_actions
from regsync.jobs.pull import run_pull
from regsync.sandbox import Sandbox
from regsync.sandbox.store import SESSION_ATTENDEE
from regsync.settings.actions import ActionSettings
from regsync.warehouse.tables import booking_sessions, registrations
from tests.support.crash import KILL_POINTS, run_crash_resume
from tests.support.snapshot import diff_snapshots, remote_snapshot
from tests.support.writes import END_ENDPOINT, SUBMIT_ENDPOINT, writes_reached

pytestmark = pytest.mark.sandbox
# At least 4: both pull kill points, then one interrupted submit and one interrupted end.
ITERATIONS = max(4, int(os.environ.get("REGSYNC_CRASH_ITERATIONS", "4")))
REGISTRATIONS = 1500
LOOSE = ActionSettings(max_writes=10_000, max_share=1.0)


def test_killed_main_runs_resume_to_the_uninterrupted_result(warehouse_url: str, tmp_path: Path) -> None:
    report = run_crash_resume(
        iterations=ITERATIONS,
        registrations=REGISTRATIONS,
        seed=7,
        warehouse_url=warehouse_url,
        workdir=tmp_path / "crash",
    )
    shown = report.as_dict()
    # Not vacuous: every kind of kill point was reached and verified, and there were writes to cut.
    assert all(report.kills[point] >= 1 for point in KILL_POINTS), shown["details"]
    interrupted = {d["endpoint"] for d in report.details if d["point"] == "send_journal" and d["killed"]}
    assert interrupted == {SUBMIT_ENDPOINT, END_ENDPOINT}, shown["details"]
    assert report.writes_expected > 0
    assert report.records_compared > 10_000

    assert report.clean_exit_code == 0
    assert report.tracebacks == []
    assert (report.records_lost, report.records_duplicated, report.differences) == (0, 0, 0), report.examples
    assert report.writes_sent_twice == 0


@pytest.mark.parametrize("kind", [SUBMIT, END])
def test_writes_of_a_batch_cut_short_are_confirmed_and_stored_by_the_next_run(
    warehouse: Engine, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A run dies after three journaled successes (the fourth write sent, not recorded): the next
    run confirms and stores the three before planning, recovers the fourth, and resends none."""
    with Sandbox.generated(300, seed=5) as sandbox:
        settings = sandbox.settings()
        assert run_pull(settings, engine=warehouse).outcome == "ok"
        expected = (
            sandbox.truth.pending_registrations if kind == SUBMIT else sandbox.truth.stale_booking_sessions
        )
        assert len(expected) >= 4
        record_result = journal.record_result
        recorded: list[str] = []

        def dies_after_three(engine: Engine, action_id: str, state: str, **kwargs: Any) -> None:
            if len(recorded) == 3:
                raise RuntimeError("killed after three writes")
            record_result(engine, action_id, state, **kwargs)
            recorded.append(action_id)

        monkeypatch.setattr(journal, "record_result", dies_after_three)
        with pytest.raises(RuntimeError, match="killed"):
            run_actions(settings, engine=warehouse, kinds=(kind,), apply=True, action_settings=LOOSE)
        monkeypatch.undo()
        rows = list_actions(warehouse)
        done = sorted(r["target_id"] for r in rows if r["state"] == "succeeded")
        (limbo,) = [r["target_id"] for r in rows if r["state"] == "sent"]
        assert len(done) == 3
        assert _warehouse_states(warehouse, kind, done) == dict.fromkeys(done, _BEFORE[kind])

        report = run_actions(settings, engine=warehouse, kinds=(kind,), apply=True, action_settings=LOOSE)
        assert report.outcome == "ok", report.message
        assert _warehouse_states(warehouse, kind, [*done, limbo]) == dict.fromkeys(
            [*done, limbo], _AFTER[kind]
        )
        if kind == SUBMIT:
            assert report.counts[f"{SUBMIT}.confirmed"] == len(expected) - 1  # all but the recovered one
            confirmed = {r["target_id"]: r["confirmation"] for r in list_actions(warehouse)}
            assert all(confirmed[target]["confirmed"] for target in done)
        else:
            assert report.counts[f"{END}.stored_after_interruption"] == 3
        reached = Counter(
            target for (_, target), n in writes_reached(sandbox.requests).items() for _ in range(n)
        )
        assert reached == Counter(dict.fromkeys(expected, 1))


_BEFORE = {SUBMIT: "Draft", END: "alive"}
_AFTER = {SUBMIT: "Completed", END: "missing"}


def _warehouse_states(engine: Engine, kind: str, targets: list[str]) -> dict[str, str]:
    table = registrations if kind == SUBMIT else booking_sessions
    column = table.c.status if kind == SUBMIT else table.c.state
    with engine.connect() as connection:
        return dict(connection.execute(select(table.c.id, column).where(table.c.id.in_(targets))).all())


def test_a_snapshot_diff_counts_lost_changed_and_extra_rows() -> None:
    expected = {"t": {(1, "a", 2), (2, "b", 3)}, "u": {(1,)}}
    actual = {"t": {(1, "a", 5), (3, "c", 3)}, "u": {(1,), (2,)}}
    diff = diff_snapshots(expected, actual)
    assert (diff.compared, diff.lost, diff.duplicated, diff.differences) == (3, 2, 3, 5)
    assert diff.by_table == {"t": {"lost": 2, "duplicated": 2}, "u": {"lost": 0, "duplicated": 1}}
    assert "t 1: [2] expected 2 found 5" in diff.examples
    assert diff_snapshots(expected, expected).differences == 0


def test_the_remote_snapshot_sees_a_second_identical_session_attendee() -> None:
    sandbox = Sandbox.generated(60, seed=3)
    before = remote_snapshot(sandbox)
    assert before["registrations"]
    assert before["session_attendees"]
    existing = next(iter(sandbox.store.salesforce.tables[SESSION_ATTENDEE].values()))
    copy = {k: v for k, v in existing.items() if k not in ("Id", "CreatedDate")}
    sandbox.store.insert_sf(SESSION_ATTENDEE, copy)  # the same pair again: what a resend would do
    diff = diff_snapshots(before, remote_snapshot(sandbox))
    assert (diff.lost, diff.duplicated) == (0, 1)
    assert diff.by_table == {"session_attendees": {"lost": 0, "duplicated": 1}}
