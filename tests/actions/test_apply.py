"""Write-backs against the sandbox: what is sent, what is journaled, what the remote ends up as."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import Engine, select

from regsync.actions import journal
from regsync.actions.apply import ActionsReport, plan, run_actions
from regsync.actions.journal import END, SUBMIT, list_actions
from regsync.config import Settings
from regsync.exitcodes import ExitCode
from regsync.jobs.pull import run_pull
from regsync.sandbox.generator import PAYLOAD, STATUS
from regsync.sandbox.server import Sandbox
from regsync.sandbox.store import REGISTRATION, SESSION_ATTENDEE
from regsync.settings.actions import ActionSettings
from regsync.warehouse.state import last_runs
from regsync.warehouse.tables import booking_sessions, registrations

pytestmark = pytest.mark.sandbox

LOOSE = ActionSettings(max_writes=10_000, max_share=1.0)
APEX = "salesforce.apex.session_registration"
CF_END = "checkfront.booking_session.end"


def no_sleep(_seconds: float) -> None:
    return None


@contextmanager
def pulled(
    warehouse: Engine, registrations_: int = 300, **overrides: Any
) -> Iterator[tuple[Sandbox, Settings]]:
    """A started sandbox with a generated dataset, pulled into the warehouse; request log cleared."""
    with Sandbox.generated(registrations_, seed=5) as sandbox:
        settings = sandbox.settings(**overrides)
        assert run_pull(settings, engine=warehouse, sleep=no_sleep).outcome == "ok"
        sandbox.clear_requests()
        yield sandbox, settings


def act(warehouse: Engine, settings: Settings, *kinds: str, **options: Any) -> ActionsReport:
    options.setdefault("action_settings", LOOSE)
    options.setdefault("apply", True)
    return run_actions(settings, engine=warehouse, kinds=kinds or (SUBMIT, END), sleep=no_sleep, **options)


def submitted(sandbox: Sandbox) -> Counter[str]:
    """Registration id -> number of sessionRegistration POSTs for it."""
    return Counter(json.loads(r.body)["id"] for r in sandbox.writes() if r.endpoint == APEX)


def ended(sandbox: Sandbox) -> Counter[str]:
    """Booking session id -> number of end calls for it."""
    return Counter(
        parse_qs(r.body.decode())["session_id"][0] for r in sandbox.writes() if r.endpoint == CF_END
    )


def journal_states(warehouse: Engine, kind: str) -> dict[str, str]:
    return {row["target_id"]: row["state"] for row in list_actions(warehouse) if row["kind"] == kind}


def sf_record(sandbox: Sandbox, registration_id: str) -> dict[str, Any]:
    return sandbox.store.salesforce.tables[REGISTRATION][registration_id]


def wanted_pairs(sandbox: Sandbox, registration_id: str) -> set[tuple[str, str]]:
    payload = json.loads(sf_record(sandbox, registration_id)[PAYLOAD])
    return {(a["id"], s) for a in payload["attendeeList"] for s in a["sessionIds"]}


def session_attendees(sandbox: Sandbox) -> set[tuple[str, str]]:
    table = sandbox.store.salesforce.tables[SESSION_ATTENDEE].values()
    return {(r["conference360__Attendee__c"], r["conference360__Session__c"]) for r in table}


def test_pending_registrations_are_submitted_once(warehouse: Engine) -> None:
    with pulled(warehouse) as (sandbox, settings):
        pending = set(sandbox.truth.pending_registrations)
        pairs = {reg: wanted_pairs(sandbox, reg) for reg in pending}
        assert not any(p <= session_attendees(sandbox) for p in pairs.values())
        # enabled in the settings: no apply flag needed
        report = act(
            warehouse,
            settings,
            SUBMIT,
            apply=False,
            action_settings=LOOSE.model_copy(update={"enabled": True}),
        )
        assert (report.outcome, report.exit_code, report.breaker_tripped) == ("ok", ExitCode.OK, False)
        assert submitted(sandbox) == Counter(dict.fromkeys(pending, 1))
        assert all(sf_record(sandbox, reg)[STATUS] == "Completed" for reg in pending)
        assert all(pairs[reg] <= session_attendees(sandbox) for reg in pending)
        rows = [row for row in list_actions(warehouse) if row["kind"] == SUBMIT]
        assert {row["target_id"] for row in rows} == pending
        assert all(row["state"] == "succeeded" and row["confirmation"]["confirmed"] for row in rows)
        assert all(row["run_id"] == report.run_id and row["sent_at"] <= row["finished_at"] for row in rows)
        with warehouse.connect() as connection:
            query = select(registrations.c.status).where(registrations.c.id.in_(pending))
            assert set(connection.execute(query).scalars()) == {"Completed"}
        run = last_runs(warehouse, 1)[0]
        assert (run["job"], run["outcome"], run["counts"][f"{SUBMIT}.confirmed"]) == (
            "submit-pending",
            "ok",
            len(pending),
        )

        sandbox.clear_requests()
        again = act(warehouse, settings, SUBMIT)
        assert again.outcome == "ok"
        assert again.counts[f"{SUBMIT}.planned"] == 0
        assert sandbox.writes() == []


def test_stale_sessions_are_ended_and_protected_ones_are_not(warehouse: Engine) -> None:
    with pulled(warehouse) as (sandbox, settings):
        stale = set(sandbox.truth.stale_booking_sessions)
        protected = {
            case.booking_session_id for case in sandbox.truth.cases if case.kind == "protected_session"
        }
        assert stale
        assert protected
        assert not stale & protected
        report = act(warehouse, settings, END)
        assert report.outcome == "ok"
        assert ended(sandbox) == Counter(dict.fromkeys(stale, 1))
        carts = sandbox.store.checkfront.booking_sessions
        assert all(carts[cart]["ended"] is not None for cart in stale)
        assert all(carts[cart]["ended"] is None for cart in protected)
        assert journal_states(warehouse, END) == dict.fromkeys(stale, "succeeded")
        with warehouse.connect() as connection:
            query = select(booking_sessions.c.state).where(booking_sessions.c.id.in_(stale))
            assert set(connection.execute(query).scalars()) == {"missing"}
        assert last_runs(warehouse, 1)[0]["job"] == "close-stale"

        sandbox.clear_requests()
        assert act(warehouse, settings, END).counts[f"{END}.planned"] == 0
        assert sandbox.writes() == []


@pytest.mark.parametrize(
    "options",
    [
        {"dry_run": True},
        {"apply": False},  # and actions.enabled is false
    ],
)
def test_dry_run_and_disabled_writes_send_and_journal_nothing(
    warehouse: Engine, options: dict[str, Any]
) -> None:
    with pulled(warehouse) as (sandbox, settings):
        report = act(warehouse, settings, **options)
        assert report.dry_run
        assert report.outcome == "dry-run"
        assert report.run_id is None
        assert {c.target_id for c in report.plan.candidates[SUBMIT]} == set(
            sandbox.truth.pending_registrations
        )
        assert {c.target_id for c in report.plan.candidates[END]} == set(sandbox.truth.stale_booking_sessions)
        assert any(e.reason == "protected" for e in report.plan.explanations)
        assert sandbox.requests == []
        assert list_actions(warehouse) == []
        assert [run["job"] for run in last_runs(warehouse)] == ["pull"]


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        (ActionSettings(max_writes=3), "max_writes 3"),
        (ActionSettings(max_share=0.05, max_writes=1000), "max_share 5%"),
    ],
)
def test_the_circuit_breaker_writes_nothing(warehouse: Engine, policy: ActionSettings, why: str) -> None:
    with pulled(warehouse) as (sandbox, settings):
        report = act(warehouse, settings, action_settings=policy)
        assert report.breaker_tripped
        assert report.exit_code == ExitCode.BREAKER
        assert why in (report.message or "")
        assert sandbox.writes() == []
        assert list_actions(warehouse) == []
        run = last_runs(warehouse, 1)[0]
        assert (run["job"], run["outcome"], run["counts"]["breaker_tripped"]) == ("write-back", "failed", 1)
        assert why in run["message"]


@pytest.mark.parametrize("kind", [SUBMIT, END])
def test_a_crash_after_the_send_is_recovered_by_reading_never_by_resending(
    warehouse: Engine, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    record_result = journal.record_result
    killed: list[str] = []

    def killed_once(engine: Engine, action_id: str, state: str, **kwargs: Any) -> None:
        if state == "succeeded" and not killed:
            killed.append(action_id)
            raise RuntimeError("killed between the send and its record")
        record_result(engine, action_id, state, **kwargs)

    monkeypatch.setattr(journal, "record_result", killed_once)
    sent = submitted if kind == SUBMIT else ended
    with pulled(warehouse) as (sandbox, settings):
        with pytest.raises(RuntimeError, match="killed"):
            act(warehouse, settings, kind)
        (limbo,) = [row for row in list_actions(warehouse) if row["state"] != "skipped"]
        assert (limbo["action_id"], limbo["state"]) == (killed[0], "sent")
        assert sent(sandbox) == Counter({limbo["target_id"]: 1})
        assert last_runs(warehouse, 1)[0]["outcome"] == "failed"

        report = act(warehouse, settings, kind)
        assert report.outcome == "ok"
        assert report.counts[f"{kind}.recovered_succeeded"] == 1
        (recovered,) = list_actions(warehouse, target=limbo["target_id"])
        assert (recovered["state"], recovered["response"]) == ("succeeded", {"recovered_from": "sent"})
        expected = (
            sandbox.truth.pending_registrations if kind == SUBMIT else sandbox.truth.stale_booking_sessions
        )
        assert sent(sandbox) == Counter(dict.fromkeys(expected, 1))  # the killed target: still one call
        reads = {"salesforce.retrieve", "checkfront.booking_session.get"}
        assert any(
            r.endpoint in reads and limbo["target_id"] in r.path + json.dumps(r.query)
            for r in sandbox.requests
        )


def test_business_errors_are_journaled_and_the_run_goes_on(warehouse: Engine) -> None:
    with pulled(warehouse) as (sandbox, settings):
        order = [c.target_id for c in plan(settings, engine=warehouse, kinds={SUBMIT}).candidates[SUBMIT]]
        behind_our_back, refused, *others = order
        sandbox.store.update_sf(REGISTRATION, behind_our_back, {STATUS: "Completed"})
        sandbox.faults.add(endpoint=APEX, kind="status", status=400, nth=[1])
        report = act(warehouse, settings, SUBMIT)
        assert (report.outcome, report.exit_code) == ("partial", ExitCode.PARTIAL)
        assert submitted(sandbox) == Counter(dict.fromkeys([refused, *others], 1))
        (skipped,) = list_actions(warehouse, target=behind_our_back)
        assert (skipped["state"], skipped["reason"], skipped["sent_at"]) == (
            "skipped",
            "no longer Draft: Completed",
            None,
        )
        (failed,) = list_actions(warehouse, target=refused)
        assert (failed["state"], failed["retriable"]) == ("failed", False)
        assert "sandbox fault: HTTP 400" in failed["error"]
        assert sf_record(sandbox, refused)[STATUS] == "Draft"
        assert journal_states(warehouse, SUBMIT) == {
            behind_our_back: "skipped",
            refused: "failed",
            **dict.fromkeys(others, "succeeded"),
        }

        sandbox.clear_requests()
        again = act(warehouse, settings, SUBMIT)
        assert again.counts[f"{SUBMIT}.planned"] == 0  # a final failure is not retried; the skip is known
        assert sandbox.writes() == []


def test_a_retriable_failure_is_planned_again_by_a_later_run(warehouse: Engine) -> None:
    with pulled(warehouse, retry={"attempts": 2}) as (sandbox, settings):
        sandbox.faults.add(endpoint=APEX, kind="status", status=503, every=1, times=1)
        first = act(warehouse, settings, SUBMIT)
        assert first.outcome == "partial"
        (failed,) = [row for row in list_actions(warehouse) if row["state"] == "failed"]
        assert failed["retriable"] is True
        assert "503" in failed["error"]
        assert "still Draft" in failed["error"]
        target = failed["target_id"]
        # A 503 without Retry-After may come after Apex ran: read back (still a Draft), not resent.
        assert submitted(sandbox)[target] == 1

        second = act(warehouse, settings, SUBMIT)
        assert second.outcome == "ok"
        assert second.counts[f"{SUBMIT}.succeeded"] == 1
        assert sorted(row["state"] for row in list_actions(warehouse, target=target)) == [
            "failed",
            "succeeded",
        ]
        assert sf_record(sandbox, target)[STATUS] == "Completed"


def test_acted_on_sets_equal_the_truth_on_2000_registrations(warehouse: Engine) -> None:
    with pulled(warehouse, registrations_=2000) as (sandbox, settings):
        truth = sandbox.truth
        report = act(warehouse, settings)
        assert report.outcome == "ok"
        done = {
            (row["kind"], row["target_id"]) for row in list_actions(warehouse) if row["state"] == "succeeded"
        }
        for kind, expected in ((SUBMIT, truth.pending_registrations), (END, truth.stale_booking_sessions)):
            acted = {target for k, target in done if k == kind}
            assert expected, kind
            assert len(acted & set(expected)) / len(acted) == 1.0  # precision
            assert len(acted & set(expected)) / len(expected) == 1.0  # recall
        submits, ends = len(truth.pending_registrations), len(truth.stale_booking_sessions)
        calls = report.api_calls
        # One POST per submit plus three batched SOQL reads (re-read, status, Session Attendees).
        assert calls["salesforce_calls"] == submits + 3
        # One re-read plus one end per stale booking session.
        assert calls["checkfront_calls"] == 2 * ends


def test_the_quota_defers_the_run_and_the_unsent_rest_waits(warehouse: Engine) -> None:
    with pulled(warehouse) as (sandbox, settings):
        assert sandbox.salesforce is not None
        # The re-read and two POSTs go through; the third POST meets REQUEST_LIMIT_EXCEEDED.
        sandbox.faults.salesforce.request_limit_after = sandbox.salesforce.api_usage + 3
        report = act(warehouse, settings, SUBMIT)
        assert (report.outcome, report.exit_code) == ("deferred", ExitCode.DEFERRED)
        states = Counter(row["state"] for row in list_actions(warehouse))
        assert states == Counter({"succeeded": 2, "failed": 1})
        (failed,) = list_actions(warehouse, state="failed")
        assert failed["retriable"] is True

        sandbox.faults.salesforce.request_limit_after = None
        assert act(warehouse, settings, SUBMIT).outcome == "ok"
        succeeded = {row["target_id"] for row in list_actions(warehouse, state="succeeded")}
        assert succeeded == set(sandbox.truth.pending_registrations)
        assert all(
            sf_record(sandbox, reg)[STATUS] == "Completed" for reg in sandbox.truth.pending_registrations
        )
