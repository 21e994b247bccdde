"""The write-backs replayed from recorded HTTP: what was sent, journaled and stored, offline, on both backends.

Each scenario pulls a small generated dataset into the warehouse, then runs the write-backs
(`run_actions`) against its cassette (`cassettes/<test name>.yaml`); the frozen clocks and what the
sandbox held are in `cassettes/<test name>.expected.json`, the golden API call counts (compared on
replay only) in `cassettes/snapshots/<test name>.json`. Replay also matches request bodies
(`match_bodies`), so an Apex POST or a session end only replays when the same document is sent.
Record: `.venv/bin/pytest tests/cassette --record-mode=rewrite -q -k actions` (docs/cassettes.md).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from regsync.actions import journal
from regsync.actions.apply import APEX_SESSION_REGISTRATION, ActionsReport, plan, run_actions
from regsync.actions.journal import END, SUBMIT, list_actions
from regsync.config import Settings
from regsync.exitcodes import ExitCode
from regsync.jobs.pull import run_pull
from regsync.sandbox import Sandbox
from regsync.sandbox.generator import PAYLOAD, STATUS
from regsync.sandbox.store import REGISTRATION, SESSION_ATTENDEE
from regsync.settings.actions import ActionSettings
from regsync.warehouse.state import last_runs
from regsync.warehouse.tables import booking_sessions, registrations
from tests.support import cassettes
from tests.support.cassettes import Recorded

from .conftest import CASSETTE_DIR, Dataset, Scenario

pytestmark = pytest.mark.block_network  # replay makes no connection (recording is let through)
recorded_scenario = pytest.mark.vcr

# 80 registrations: 3 pending registrations, 2 stale and 1 protected booking session; ~0.25 MB a cassette.
DATASET = Dataset(registrations=80, seed=2)
LOOSE = ActionSettings(max_writes=10_000, max_share=1.0)  # the share breaker trips on small datasets
APEX_PATH = f"/services/apexrest/{APEX_SESSION_REGISTRATION}"
END_PATH = "/api/3.0/booking/session/end"
SESSION_READ_PATH = "/api/3.0/booking/session"


@pytest.fixture
def cassette_dataset() -> Dataset:
    return DATASET


@pytest.fixture
def match_bodies() -> bool:
    return True


def no_sleep(_seconds: float) -> None:
    """Retries wait for nothing (recording and replay)."""


# -- runs ------------------------------------------------------------------------------------------


def pulled(scenario: Scenario) -> Settings:
    """Pull everything at the frozen clock "pull"; the settings for the write-backs that follow."""
    settings = scenario.settings()
    now = scenario.now("pull")
    report = run_pull(settings, engine=scenario.engine, now=lambda: now, sleep=no_sleep)
    assert report.outcome == "ok", report.message
    return settings


def act(scenario: Scenario, settings: Settings, now: datetime, *kinds: str, **options: Any) -> ActionsReport:
    """One write-back run at a frozen clock (`scenario.now(...)`: saved in the expected file)."""
    options.setdefault("action_settings", LOOSE)
    options.setdefault("apply", True)
    return run_actions(
        settings, engine=scenario.engine, kinds=kinds or (SUBMIT, END), now=now, sleep=no_sleep, **options
    )


# -- the sandbox's truth (facts) -------------------------------------------------------------------


def truth(scenario: Scenario) -> tuple[list[str], list[str], list[str]]:
    """Pending registrations, stale and protected booking sessions, as the generator planted them."""
    pending = scenario.fact("pending", lambda box: sorted(box.truth.pending_registrations))
    stale = scenario.fact("stale", lambda box: sorted(box.truth.stale_booking_sessions))
    protected = scenario.fact(
        "protected",
        lambda box: sorted(c.booking_session_id for c in box.truth.cases if c.kind == "protected_session"),
    )
    assert pending
    assert stale
    assert protected
    assert not set(stale) & set(protected)
    return pending, stale, protected


def payload_pairs(box: Sandbox, registration_id: str) -> list[list[str]]:
    payload = json.loads(box.store.salesforce.tables[REGISTRATION][registration_id][PAYLOAD])
    return sorted([a["id"], s] for a in payload["attendeeList"] for s in a["sessionIds"])


def salesforce_state(box: Sandbox, ids: Iterable[str]) -> dict[str, list[Any]]:
    """Registration id -> [Status, all its payload's Session Attendees exist] in the sandbox."""
    table = box.store.salesforce.tables[SESSION_ATTENDEE].values()
    existing = {(r["conference360__Attendee__c"], r["conference360__Session__c"]) for r in table}
    return {
        reg: [
            box.store.salesforce.tables[REGISTRATION][reg][STATUS],
            {tuple(p) for p in payload_pairs(box, reg)} <= existing,
        ]
        for reg in ids
    }


def cart_ended(box: Sandbox, ids: Iterable[str]) -> dict[str, bool]:
    carts = box.store.checkfront.booking_sessions
    return {cart: carts[cart]["ended"] is not None for cart in ids}


# -- what the cassette shows -----------------------------------------------------------------------


def apex_posts(calls: Iterable[Recorded]) -> list[Recorded]:
    return [c for c in calls if c.method == "POST" and c.path == APEX_PATH]


def submitted(calls: Iterable[Recorded]) -> Counter[str]:
    """Registration id -> sessionRegistration POSTs for it."""
    return Counter(c.json()["id"] for c in apex_posts(calls))


def ended(calls: Iterable[Recorded]) -> Counter[str]:
    """Booking session id -> end calls for it."""
    return Counter(c.form()["session_id"] for c in calls if c.method == "POST" and c.path == END_PATH)


def soql(calls: Iterable[Recorded], sobject: str) -> list[Recorded]:
    """The SOQL queries on one object, in recorded order."""
    return [
        c
        for c in calls
        if c.path.rstrip("/").endswith(("/query", "/queryAll")) and f"FROM {sobject} " in c.query.get("q", "")
    ]


def records(call: Recorded) -> list[dict[str, Any]]:
    body = call.response_json()
    assert call.status == 200, body
    return body["records"]


# -- what the warehouse holds ----------------------------------------------------------------------


def journal_rows(engine: Engine, kind: str) -> dict[str, dict[str, Any]]:
    rows = [row for row in list_actions(engine) if row["kind"] == kind]
    by_target = {row["target_id"]: row for row in rows}
    assert len(by_target) == len(rows), "one action per target"
    return by_target


def statuses(engine: Engine, ids: Iterable[str]) -> dict[str, str]:
    query = select(registrations.c.id, registrations.c.status).where(registrations.c.id.in_(list(ids)))
    with engine.connect() as connection:
        return {row[0]: row[1] for row in connection.execute(query)}


def cart_states(engine: Engine, ids: Iterable[str]) -> dict[str, str]:
    query = select(booking_sessions.c.id, booking_sessions.c.state).where(
        booking_sessions.c.id.in_(list(ids))
    )
    with engine.connect() as connection:
        return {row[0]: row[1] for row in connection.execute(query)}


# -- the scenarios ---------------------------------------------------------------------------------


@recorded_scenario
def test_pending_registrations_are_completed_and_a_second_run_sends_nothing(
    scenario: Scenario, vcr: Any
) -> None:
    engine = scenario.engine
    pending, _, _ = truth(scenario)
    pairs = scenario.fact("pairs", lambda box: {reg: payload_pairs(box, reg) for reg in pending})
    settings = pulled(scenario)
    sf = settings.salesforce
    assert statuses(engine, pending) == dict.fromkeys(pending, "Draft")

    start = cassettes.mark(vcr)
    report = act(scenario, settings, scenario.now("actions"), SUBMIT)
    calls = cassettes.since(vcr, start)

    assert (report.outcome, report.exit_code, report.breaker_tripped) == ("ok", ExitCode.OK, False)
    n = len(pending)
    assert {k: report.counts[f"{SUBMIT}.{k}"] for k in ("planned", "sent", "succeeded", "confirmed")} == (
        dict.fromkeys(("planned", "sent", "succeeded", "confirmed"), n)
    )
    # One POST per pending registration, each the payload the journal holds, each answered 200.
    assert submitted(calls) == Counter(dict.fromkeys(pending, 1))
    rows = journal_rows(engine, SUBMIT)
    assert set(rows) == set(pending)
    for post in apex_posts(calls):
        row = rows[post.json()["id"]]
        assert post.status == 200
        assert post.json() == row["request"]
        assert post.json()["submit"] is True
        assert post.response_json()["id"] == row["target_id"]
        assert (
            sorted([a["id"], s] for a in row["request"]["attendeeList"] for s in a["sessionIds"])
            == (pairs[row["target_id"]])
        )
    # The confirming reads follow the POSTs: the status query answers Completed, the Session
    # Attendee query holds every (attendee, Session) pair of every payload.
    last_post = max(i for i, c in enumerate(calls) if c.path == APEX_PATH)
    status_reads = soql(calls, sf.objects.registration)
    assert len(status_reads) == 2  # the re-read before sending, the confirmation after
    assert calls.index(status_reads[0]) < min(i for i, c in enumerate(calls) if c.path == APEX_PATH)
    assert {r["Id"]: r[sf.registration_fields.status] for r in records(status_reads[0])} == (
        dict.fromkeys(pending, "Draft")
    )
    assert calls.index(status_reads[1]) > last_post
    assert {r["Id"]: r[sf.registration_fields.status] for r in records(status_reads[1])} == (
        dict.fromkeys(pending, "Completed")
    )
    (attendee_read,) = soql(calls, sf.objects.session_attendee)
    assert calls.index(attendee_read) > last_post
    attendee, session = sf.session_fields.attendee_attendee, sf.session_fields.attendee_session
    found = {(r[attendee], r[session]) for r in records(attendee_read)}
    assert all({tuple(p) for p in pairs[reg]} <= found for reg in pending)
    # Journal, warehouse and ledger follow.
    for reg, row in rows.items():
        assert (row["state"], row["error"], row["run_id"]) == ("succeeded", None, report.run_id)
        assert row["confirmation"] == {
            "confirmed": True,
            "status": "Completed",
            "session_attendees": len(pairs[reg]),
            "expected": len(pairs[reg]),
            "missing": [],
        }
        assert row["sent_at"] <= row["finished_at"]
    assert statuses(engine, pending) == dict.fromkeys(pending, "Completed")
    run = last_runs(engine, 1)[0]
    assert (run["job"], run["outcome"], run["counts"][f"{SUBMIT}.confirmed"]) == ("submit-pending", "ok", n)
    scenario.check_snapshot("api_calls", report.api_calls)
    # What the sandbox ended up holding (checked live while recording).
    assert scenario.fact("salesforce_after", lambda box: salesforce_state(box, pending)) == {
        reg: ["Completed", True] for reg in pending
    }

    start = cassettes.mark(vcr)
    again = act(scenario, settings, scenario.now("again"), SUBMIT)
    second = cassettes.since(vcr, start)

    assert (again.outcome, again.counts[f"{SUBMIT}.planned"], again.total("sent")) == ("ok", 0, 0)
    assert not apex_posts(second)
    assert not [c for c in second if c.is_write]
    assert journal_rows(engine, SUBMIT).keys() == rows.keys()  # nothing journaled again
    assert [r["job"] for r in last_runs(engine, 3)] == ["submit-pending", "submit-pending", "pull"]
    scenario.finish(vcr)


@recorded_scenario
def test_stale_sessions_are_ended_and_protected_ones_are_not(scenario: Scenario, vcr: Any) -> None:
    engine = scenario.engine
    _, stale, protected = truth(scenario)
    settings = pulled(scenario)
    assert cart_states(engine, stale + protected) == dict.fromkeys(stale + protected, "alive")
    now = scenario.now("actions")  # the plan's clock and the run's
    reasons = {
        e.target_id: e.reason
        for e in plan(settings, engine=engine, kinds={END}, now=now, action_settings=LOOSE).explanations
    }
    assert {cart: reasons[cart] for cart in stale + protected} == {
        **dict.fromkeys(stale, "stale"),
        **dict.fromkeys(protected, "protected"),
    }

    start = cassettes.mark(vcr)
    report = act(scenario, settings, now, END)
    calls = cassettes.since(vcr, start)

    assert (report.outcome, report.exit_code) == ("ok", ExitCode.OK)
    # The recorded end calls name exactly the stale booking sessions, once each.
    assert ended(calls) == Counter(dict.fromkeys(stale, 1))
    assert [c for c in calls if c.is_write] == [c for c in calls if c.path == END_PATH]
    assert all(c.status == 200 for c in calls if c.path == END_PATH)
    # Each was re-read just before (one read each, before its end); protected ones were not touched.
    reads = [c.query["session_id"] for c in calls if c.method == "GET" and c.path == SESSION_READ_PATH]
    assert sorted(reads) == stale
    first_end = min(i for i, c in enumerate(calls) if c.path == END_PATH)
    assert all(
        i < first_end for i, c in enumerate(calls) if c.method == "GET" and c.path == SESSION_READ_PATH
    )
    assert not [c for c in calls for cart in protected if cart in c.uri + c.request_body]
    rows = journal_rows(engine, END)
    assert {cart: row["state"] for cart, row in rows.items()} == dict.fromkeys(stale, "succeeded")
    assert all(row["request"] == {"session_id": cart} for cart, row in rows.items())
    assert cart_states(engine, stale + protected) == {
        **dict.fromkeys(stale, "missing"),
        **dict.fromkeys(protected, "alive"),
    }
    run = last_runs(engine, 1)[0]
    assert (run["job"], run["outcome"], run["counts"][f"{END}.succeeded"]) == (
        "close-stale",
        "ok",
        len(stale),
    )
    scenario.check_snapshot("api_calls", report.api_calls)
    assert scenario.fact("ended_in_checkfront", lambda box: cart_ended(box, stale + protected)) == {
        **dict.fromkeys(stale, True),
        **dict.fromkeys(protected, False),
    }
    scenario.finish(vcr)


@recorded_scenario
def test_dry_run_sends_nothing(scenario: Scenario, vcr: Any) -> None:
    engine = scenario.engine
    pending, stale, protected = truth(scenario)
    settings = pulled(scenario)

    start = cassettes.mark(vcr)
    report = act(scenario, settings, scenario.now("actions"), dry_run=True)  # apply=True too: dry run wins

    assert (report.outcome, report.dry_run, report.run_id) == ("dry-run", True, None)
    assert report.exit_code == ExitCode.OK
    assert sorted(c.target_id for c in report.plan.candidates[SUBMIT]) == pending
    assert sorted(c.target_id for c in report.plan.candidates[END]) == stale
    assert {e.target_id for e in report.plan.explanations if e.reason == "protected"} == set(protected)
    assert cassettes.since(vcr, start) == []  # it did not even talk to the APIs
    everything = cassettes.recorded(vcr)
    assert everything  # the pull
    assert not [c for c in everything if c.is_write]  # the whole cassette: no write request at all
    assert list_actions(engine) == []
    assert [r["job"] for r in last_runs(engine)] == ["pull"]
    assert statuses(engine, pending) == dict.fromkeys(pending, "Draft")
    assert cart_states(engine, stale) == dict.fromkeys(stale, "alive")
    scenario.finish(vcr)


@recorded_scenario
def test_the_circuit_breaker_trips_and_nothing_is_written(scenario: Scenario, vcr: Any) -> None:
    engine = scenario.engine
    pending, stale, _ = truth(scenario)
    settings = pulled(scenario)
    policy = ActionSettings(max_writes=1, max_share=1.0)

    start = cassettes.mark(vcr)
    report = act(scenario, settings, scenario.now("actions"), action_settings=policy)
    calls = cassettes.since(vcr, start)

    assert report.breaker_tripped
    assert (report.outcome, report.exit_code) == ("failed", ExitCode.BREAKER)
    assert "max_writes 1" in (report.message or "")
    assert (report.counts[f"{SUBMIT}.planned"], report.counts[f"{END}.planned"]) == (len(pending), len(stale))
    assert report.total("sent") == 0
    assert not [c for c in calls if c.is_write]
    assert not [c for c in cassettes.recorded(vcr) if c.is_write]
    assert list_actions(engine) == []
    run = last_runs(engine, 1)[0]
    assert (run["job"], run["outcome"], run["counts"]["breaker_tripped"]) == ("write-back", "failed", 1)
    assert "max_writes 1" in run["message"]
    assert statuses(engine, pending) == dict.fromkeys(pending, "Draft")
    assert cart_states(engine, stale) == dict.fromkeys(stale, "alive")
    scenario.finish(vcr)


@recorded_scenario
def test_business_error_is_journaled_and_the_others_succeed(scenario: Scenario, vcr: Any) -> None:
    engine = scenario.engine
    pending, _, _ = truth(scenario)
    assert len(pending) >= 2
    settings = pulled(scenario)
    if scenario.recording:
        scenario.live.faults.add(
            endpoint="salesforce.apex.session_registration", kind="status", status=400, nth=[1]
        )

    start = cassettes.mark(vcr)
    report = act(scenario, settings, scenario.now("actions"), SUBMIT)
    calls = cassettes.since(vcr, start)

    assert (report.outcome, report.exit_code) == ("partial", ExitCode.PARTIAL)
    assert "1 failed" in (report.message or "")
    order = [c.target_id for c in report.plan.candidates[SUBMIT]]
    assert sorted(order) == pending
    refused, *others = order
    assert scenario.fact("injected", lambda box: dict(box.faults.injected)) == {"status_400": 1}
    # Every pending registration was sent once; the first answer is the 400, the others 200.
    posts = apex_posts(calls)
    assert [p.json()["id"] for p in posts] == order
    assert [p.status for p in posts] == [400] + [200] * len(others)
    message = posts[0].response_json()[0]["message"]
    rows = journal_rows(engine, SUBMIT)
    failed = rows[refused]
    assert (failed["state"], failed["retriable"]) == ("failed", False)
    assert message in failed["error"]
    assert failed["confirmation"]["confirmed"] is False
    assert failed["confirmation"]["status"] == "Draft"
    assert {reg: rows[reg]["state"] for reg in others} == dict.fromkeys(others, "succeeded")
    assert all(rows[reg]["confirmation"]["confirmed"] for reg in others)
    assert {k: report.counts[f"{SUBMIT}.{k}"] for k in ("sent", "failed", "succeeded", "confirmed")} == {
        "sent": len(pending),
        "failed": 1,
        "succeeded": len(others),
        "confirmed": len(others),
    }
    assert statuses(engine, pending) == {refused: "Draft", **dict.fromkeys(others, "Completed")}
    run = last_runs(engine, 1)[0]
    assert (run["outcome"], run["counts"][f"{SUBMIT}.failed"]) == ("partial", 1)
    assert scenario.fact("salesforce_after", lambda box: salesforce_state(box, pending)) == {
        refused: ["Draft", False],
        **{reg: ["Completed", True] for reg in others},
    }
    scenario.finish(vcr)


@recorded_scenario
def test_crash_between_send_and_record_is_recovered_by_a_read(
    scenario: Scenario, vcr: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = scenario.engine
    pending, _, _ = truth(scenario)
    settings = pulled(scenario)
    sf = settings.salesforce
    record_result = journal.record_result
    killed: list[str] = []

    def killed_once(engine: Engine, action_id: str, state: str, **kwargs: Any) -> None:
        if state == "succeeded" and not killed:
            killed.append(action_id)
            raise RuntimeError("killed between the send and its record")
        record_result(engine, action_id, state, **kwargs)

    monkeypatch.setattr(journal, "record_result", killed_once)

    start = cassettes.mark(vcr)
    with pytest.raises(RuntimeError, match="killed"):
        act(scenario, settings, scenario.now("crashed"), SUBMIT)
    crashed = cassettes.since(vcr, start)

    (limbo,) = [row for row in list_actions(engine) if row["state"] != "skipped"]
    target = limbo["target_id"]
    assert (limbo["action_id"], limbo["state"], limbo["finished_at"]) == (killed[0], "sent", None)
    assert submitted(crashed) == Counter({target: 1})  # sent, answered, not recorded
    assert apex_posts(crashed)[0].status == 200
    assert last_runs(engine, 1)[0]["outcome"] == "failed"
    assert statuses(engine, [target]) == {target: "Draft"}  # the warehouse does not know yet

    start = cassettes.mark(vcr)
    report = act(scenario, settings, scenario.now("recovered"), SUBMIT)
    recovered = cassettes.since(vcr, start)

    assert report.outcome == "ok", report.message
    assert report.counts[f"{SUBMIT}.recovered_succeeded"] == 1
    # Resolved by reading the registration, never by sending it again.
    retrieve = f"/sobjects/{sf.objects.registration}/{target}"
    reads = [c for c in recovered if c.method == "GET" and c.path.endswith(retrieve)]
    assert len(reads) == 1
    assert reads[0].response_json()[sf.registration_fields.status] == "Completed"
    assert recovered.index(reads[0]) < min(i for i, c in enumerate(recovered) if c.is_write)
    assert target not in submitted(recovered)
    assert submitted(recovered) == Counter(dict.fromkeys(set(pending) - {target}, 1))
    # The whole cassette: exactly one POST per pending registration, the crashed one included.
    assert submitted(cassettes.recorded(vcr)) == Counter(dict.fromkeys(pending, 1))
    (row,) = list_actions(engine, target=target)
    assert (row["action_id"], row["state"], row["response"]) == (
        limbo["action_id"],
        "succeeded",
        {"recovered_from": "sent"},
    )
    assert {reg: r["state"] for reg, r in journal_rows(engine, SUBMIT).items()} == dict.fromkeys(
        pending, "succeeded"
    )
    assert statuses(engine, pending) == dict.fromkeys(pending, "Completed")
    assert scenario.fact("salesforce_after", lambda box: salesforce_state(box, pending)) == {
        reg: ["Completed", True] for reg in pending
    }
    scenario.finish(vcr)


# -- the cassettes themselves ----------------------------------------------------------------------

ACTION_SCENARIOS = sorted(
    name
    for name, value in dict(globals()).items()
    if name.startswith("test_") and any(m.name == "vcr" for m in getattr(value, "pytestmark", []))
)


def test_every_write_back_scenario_has_a_small_cassette_and_expectations() -> None:
    assert len(ACTION_SCENARIOS) == 6
    for name in ACTION_SCENARIOS:
        cassette = CASSETTE_DIR / f"{name}.yaml"
        assert cassette.is_file(), f"{cassette.name} is missing: record it (docs/cassettes.md)"
        assert cassette.stat().st_size < 1_000_000, cassette.name
        expected = cassettes.load_expected(cassettes.expected_path(CASSETTE_DIR, name))
        assert expected["recorded"] == dataclasses.asdict(DATASET), name
        assert "pull" in expected["now"], name  # the frozen clocks replay runs at
        assert {"pending", "stale", "protected"} <= set(expected["facts"]), name


# -- the helpers, without cassettes ----------------------------------------------------------------


@dataclasses.dataclass
class FakeRequest:
    """What vcrpy hands the hooks and matchers (method, uri, headers, body)."""

    method: str
    uri: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclasses.dataclass
class FakeCassette:
    """The parts of a vcr Cassette that `recorded`, `mark` and `since` read."""

    data: list[tuple[FakeRequest, dict[str, Any]]]
    play_counts: Counter[int] = dataclasses.field(default_factory=Counter)


def answer(status: int = 200, body: str = "{}") -> dict[str, Any]:
    return {"status": {"code": status, "message": ""}, "headers": {}, "body": {"string": body}}


def test_bodies_match_by_content_not_by_layout() -> None:
    def apex(body: str) -> FakeRequest:
        return FakeRequest(
            "POST", f"https://a{APEX_PATH}", {"Content-Type": "application/json"}, body.encode()
        )

    def end(body: str) -> FakeRequest:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return FakeRequest("POST", f"https://a{END_PATH}", form, body.encode())

    cassettes.match_body(apex('{"id": "a1", "submit": true}'), apex('{"submit":true,"id":"a1"}'))
    cassettes.match_body(end("session_id=x&b=1"), end("b=1&session_id=x"))
    cassettes.match_body(FakeRequest("GET", "https://a/x", {}), FakeRequest("GET", "https://b/x", {}, b""))
    different = [
        (apex('{"id": "a1", "submit": true}'), apex('{"id": "a2", "submit": true}')),
        (apex('{"id": "a1", "submit": true}'), apex('{"id": "a1", "submit": false}')),
        (end("session_id=x"), end("session_id=y")),
        (end("session_id=x"), FakeRequest("POST", f"https://a{END_PATH}", {})),
    ]
    for one, other in different:
        with pytest.raises(AssertionError):
            cassettes.match_body(one, other)


def test_since_a_mark_lists_what_was_recorded_or_played() -> None:
    token = FakeRequest("POST", "https://a/services/oauth2/token", {}, b"grant_type=password")
    read = FakeRequest("GET", "https://a/api/3.0/booking/session?session_id=x", {})
    post = FakeRequest("POST", f"https://a{APEX_PATH}", {}, b'{"id": "a1"}')
    recording = FakeCassette([(token, answer())])
    start = cassettes.mark(recording)
    recording.data += [(read, answer()), (post, answer(400, '[{"message": "no"}]'))]
    calls = cassettes.since(recording, start)
    assert [(c.method, c.path, c.status) for c in calls] == [
        ("GET", SESSION_READ_PATH, 200),
        ("POST", APEX_PATH, 400),
    ]
    assert (calls[0].query, calls[1].json(), calls[1].response_json()) == (
        {"session_id": "x"},
        {"id": "a1"},
        [{"message": "no"}],
    )
    assert [c.is_write for c in cassettes.recorded(recording)] == [False, False, True]

    replay = FakeCassette(recording.data, Counter({0: 1}))
    start = cassettes.mark(replay)
    replay.play_counts[2] += 1
    assert [c.path for c in cassettes.since(replay, start)] == [APEX_PATH]
    assert cassettes.since(replay, cassettes.mark(replay)) == []
