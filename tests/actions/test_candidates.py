"""The planner selects exactly what docs/rules.md calls pending or stale, and says why it skips the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from regsync.actions import journal
from regsync.actions.apply import breaker
from regsync.actions.candidates import Candidate, Plan, PlanContext, make_plan, submit_payloads
from regsync.actions.journal import END, KINDS, SUBMIT, list_actions
from regsync.settings.actions import ActionSettings
from tests.actions import HOUR, idle_cart
from tests.reconcile import FRESH, NOW, ago, booking, registration, seed

POLICY = ActionSettings()
DAY = 24 * HOUR


def planned(engine: Engine, policy: ActionSettings = POLICY, **options: int) -> Plan:
    limit = options.pop("limit", None)
    with engine.connect() as connection:
        return make_plan(connection, PlanContext(policy, NOW, **options), KINDS, limit=limit, explained=True)


def reasons(plan: Plan, kind: str) -> dict[str, str]:
    return {e.target_id: e.reason for e in plan.explanations if e.kind == kind}


def texts(plan: Plan) -> dict[str, str]:
    return {e.target_id: e.text for e in plan.explanations}


def chosen(plan: Plan, kind: str) -> list[str]:
    return [c.target_id for c in plan.candidates[kind]]


def seed_drafts(engine: Engine) -> None:
    seed(
        engine,
        registrations_=[
            registration("r_pending", code="B1", cart="c1", created=ago(hours=3)),
            registration("r_part", code="B2"),
            registration("r_flight", code="B3", created=FRESH),
            registration("r_nobook"),
            registration("r_unknown", code="NOPE"),
            registration("r_hold", code="B4"),
            registration("r_noatt", code="B5"),
            registration("r_sessionless", code="B6"),
            registration("r_done", status="Completed", code="B7"),
            registration("r_deleted", code="B8", deleted=True),
            registration("r_toproc", status="To Process", code="B9"),
        ],
        bookings_=[
            booking(1, "B1"),
            booking(2, "B2", status="PART"),
            booking(3, "B3"),
            booking(4, "B4", status="HOLD"),
            *(booking(n, f"B{n}") for n in range(5, 10)),
        ],
        attendees={
            "r_pending": [["S1"], ["S2", "S3"]],
            "r_part": [["S1"]],
            "r_flight": [["S1"]],
            "r_hold": [["S1"]],
            "r_sessionless": [["S1"], []],
            "r_done": [["S1"]],
            "r_deleted": [["S1"]],
            "r_toproc": [["S1"]],
        },
    )


def test_pending_registrations_and_why_the_other_drafts_are_not(warehouse: Engine) -> None:
    seed_drafts(warehouse)
    plan = planned(warehouse)
    assert reasons(plan, SUBMIT) == {
        "r_pending": "pending",
        "r_part": "pending",
        "r_flight": "in_flight",
        "r_nobook": "no_booking",
        "r_unknown": "booking_unknown",
        "r_hold": "booking_unconfirmed",
        "r_noatt": "no_attendees",
        "r_sessionless": "sessionless_attendee",
    }
    assert chosen(plan, SUBMIT) == ["r_pending", "r_part"]  # oldest first
    assert plan.population[SUBMIT] == 8  # every non-deleted Draft
    said = texts(plan)
    assert said["r_flight"] == "in flight (created 15 min ago)"
    assert said["r_hold"] == "booking HOLD not confirmed"
    assert said["r_sessionless"] == "attendee without session ids"
    assert said["r_pending"].startswith("pending: Draft with booking B1 PAID, 2 attendee(s)")


def test_confirmed_statuses_are_configuration(warehouse: Engine) -> None:
    seed_drafts(warehouse)
    plan = planned(warehouse, ActionSettings(confirmed_statuses=("hold",)))
    assert chosen(plan, SUBMIT) == ["r_hold"]
    assert reasons(plan, SUBMIT)["r_pending"] == "booking_unconfirmed"


def test_limit_and_older_than(warehouse: Engine) -> None:
    seed_drafts(warehouse)
    assert chosen(planned(warehouse, limit=1), SUBMIT) == ["r_pending"]
    older = planned(warehouse, older_than_s=int(2.5 * HOUR))
    assert chosen(older, SUBMIT) == ["r_pending"]
    assert reasons(older, SUBMIT)["r_part"] == "too_recent"


def test_submit_payload_is_rebuilt_from_the_warehouse(warehouse: Engine) -> None:
    seed_drafts(warehouse)
    with warehouse.connect() as connection:
        payloads = submit_payloads(connection, ["r_pending", "r_part"])
    assert payloads["r_pending"] == {
        "id": "r_pending",
        "sessionId": "c1",
        "attendeeList": [{"id": "att0", "sessionIds": ["S1"]}, {"id": "att1", "sessionIds": ["S2", "S3"]}],
        "submit": True,
    }
    assert payloads["r_part"] == {
        "id": "r_part",
        "attendeeList": [{"id": "att0", "sessionIds": ["S1"]}],
        "submit": True,
    }
    assert planned(warehouse).candidates[SUBMIT][0].request == payloads["r_pending"]


def seed_sessions(engine: Engine) -> None:
    stale, fresh = 7 * HOUR, 5 * HOUR
    seed(
        engine,
        registrations_=[
            registration("f_stale", status="Failed", cart="c_stale"),
            registration("f_fresh", status="Failed", cart="c_fresh"),
            registration("d_young", cart="c_protected"),
            registration("d_old", cart="c_abandoned", created=ago(days=8)),
            registration("t_young", status="To Process", cart="c_processing"),
            registration("d_deleted", cart="c_deleted_only", deleted=True),
            registration("f_missing", status="Failed", cart="c_missing"),
        ],
        carts=[
            idle_cart("c_stale", stale),
            idle_cart("c_fresh", fresh),
            idle_cart("c_protected", stale),
            idle_cart("c_abandoned", stale),
            idle_cart("c_processing", stale),
            idle_cart("c_deleted_only", stale),
            idle_cart("c_missing", stale, state="missing"),
            idle_cart("c_nobody", stale),  # no registration names it: invisible to the rules
        ],
    )


def test_stale_booking_sessions_and_why_the_others_are_not(warehouse: Engine) -> None:
    seed_sessions(warehouse)
    plan = planned(warehouse)
    assert reasons(plan, END) == {
        "c_stale": "stale",
        "c_fresh": "not_idle",
        "c_protected": "protected",
        "c_abandoned": "stale",
        "c_processing": "protected",
        "c_deleted_only": "stale",
    }
    assert sorted(chosen(plan, END)) == ["c_abandoned", "c_deleted_only", "c_stale"]
    assert plan.population[END] == 6
    assert plan.candidates[END][0].request == {"session_id": plan.candidates[END][0].target_id}
    said = texts(plan)
    assert said["c_protected"] == "protected: draft d_young in progress"
    assert said["c_processing"] == "protected: to process t_young in progress"
    assert said["c_fresh"] == "idle 5 h, not over the 6 h TTL"


def test_the_ttl_is_configuration(warehouse: Engine) -> None:
    seed_sessions(warehouse)
    plan = planned(warehouse, ActionSettings(stale_session_ttl_s=4 * HOUR))
    assert "c_fresh" in chosen(plan, END)


def _journal(engine: Engine, kind: str, target: str, state: str, *, retriable: bool = False) -> None:
    if state == "skipped":
        journal.record_skipped(engine, [(kind, target, "re-read: no longer Draft")], run_id=None)
        return
    action_id = journal.plan_action(engine, kind, target, reason="test", request={}, run_id=None)
    assert action_id is not None
    if state != "planned":
        journal.mark_sent(engine, action_id)
    if state in ("succeeded", "failed"):
        journal.record_result(engine, action_id, state, error="boom", retriable=retriable)


@pytest.mark.parametrize(
    ("state", "retriable", "expected"),
    [
        ("succeeded", False, "done"),
        ("failed", False, "failed_final"),
        ("failed", True, None),
        ("skipped", False, None),
        ("planned", False, "unresolved"),
        ("sent", False, "unresolved"),
    ],
)
def test_the_journal_holds_targets_back(
    warehouse: Engine, state: str, retriable: bool, expected: str | None
) -> None:
    seed_drafts(warehouse)
    seed_sessions(warehouse)
    _journal(warehouse, SUBMIT, "r_pending", state, retriable=retriable)
    _journal(warehouse, END, "c_stale", state, retriable=retriable)
    plan = planned(warehouse)
    assert reasons(plan, SUBMIT)["r_pending"] == (expected or "pending")
    assert reasons(plan, END)["c_stale"] == (expected or "stale")
    assert ("r_pending" in chosen(plan, SUBMIT)) is (expected is None)
    if expected == "failed_final":
        assert texts(plan)["r_pending"] == "failed for good earlier: boom"


def test_one_live_action_per_target(warehouse: Engine) -> None:
    first = journal.plan_action(warehouse, SUBMIT, "r1", reason="pending", request={"id": "r1"}, run_id=None)
    assert first is not None
    assert journal.plan_action(warehouse, SUBMIT, "r1", reason="pending", request={}, run_id=None) is None
    assert journal.plan_action(warehouse, END, "r1", reason="stale", request={}, run_id=None) is not None
    journal.mark_sent(warehouse, first)
    journal.record_result(warehouse, first, "failed", error="HTTP 503", retriable=True)
    again = journal.plan_action(warehouse, SUBMIT, "r1", reason="pending", request={}, run_id=None)
    assert again is not None
    journal.mark_sent(warehouse, again)
    journal.record_result(warehouse, again, "succeeded", response={"id": "r1"})
    rows = list_actions(warehouse, target="r1")
    assert sorted((r["kind"], r["state"], r["retriable"]) for r in rows) == [
        (END, "planned", False),
        (SUBMIT, "failed", True),
        (SUBMIT, "succeeded", False),
    ]
    assert [action.target_id for action in journal.unresolved(warehouse, [END])] == ["r1"]
    assert journal.unresolved(warehouse, [SUBMIT]) == []


def test_list_actions_filters(warehouse: Engine) -> None:
    _journal(warehouse, SUBMIT, "r1", "succeeded")
    _journal(warehouse, SUBMIT, "r2", "failed")
    _journal(warehouse, END, "c1", "skipped")
    assert {r["target_id"] for r in list_actions(warehouse)} == {"r1", "r2", "c1"}
    assert [r["target_id"] for r in list_actions(warehouse, state="failed")] == ["r2"]
    assert [r["error"] for r in list_actions(warehouse, target="r2")] == ["boom"]
    assert list_actions(warehouse, since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(list_actions(warehouse, limit=2)) == 2
    with pytest.raises(ValueError, match="unknown action state"):
        list_actions(warehouse, state="done")


def test_action_settings() -> None:
    assert (POLICY.enabled, POLICY.max_writes, POLICY.max_share, POLICY.in_flight_s) == (False, 200, 0.2, 900)
    assert ActionSettings(confirmed_statuses=(" paid ", "PAID", "part")).confirmed_statuses == (
        "PAID",
        "PART",
    )
    for bad in ({"confirmed_statuses": ()}, {"max_share": 0}, {"batch_size": 0}, {"typo": 1}):
        with pytest.raises(ValidationError):
            ActionSettings(**bad)
    with pytest.raises(ValidationError):
        POLICY.enabled = True  # type: ignore[misc]


def _plan_of(submits: int, ends: int, drafts: int, sessions: int) -> Plan:
    plan = Plan(now=NOW, population={SUBMIT: drafts, END: sessions})
    plan.candidates[SUBMIT] = [Candidate(SUBMIT, f"r{n}", "pending", {}) for n in range(submits)]
    plan.candidates[END] = [Candidate(END, f"c{n}", "stale", {}) for n in range(ends)]
    return plan


def test_breaker() -> None:
    policy = ActionSettings(max_writes=10, max_share=0.5)
    assert breaker(policy, _plan_of(5, 5, 10, 10)) is None
    assert breaker(policy, _plan_of(0, 0, 0, 0)) is None
    assert "max_writes 10" in (breaker(policy, _plan_of(6, 5, 100, 100)) or "")
    assert "max_share 50%" in (breaker(policy, _plan_of(1, 6, 100, 11)) or "")
