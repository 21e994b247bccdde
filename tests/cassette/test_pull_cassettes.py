"""The pull replayed from recorded HTTP: exact outcomes offline, on SQLite and PostgreSQL.

Each scenario test runs the real pull against its cassette (`cassettes/<test name>.yaml`) and
checks what it did against `cassettes/<test name>.expected.json` (what the sandbox held when the
cassette was recorded: facts) and, on replay only, against `cassettes/snapshots/<test name>.json`
(what the recording run produced: golden snapshots). While recording (`--record-mode=rewrite`) the
same assertions run against the live sandbox, and the snapshots are written, not compared.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select

from regsync.jobs.pull import run_pull
from regsync.normalize.coerce import sf_datetime
from regsync.sandbox import DEMO, Sandbox
from regsync.sandbox.store import ATTENDEE, REGISTRATION, SESSION, SandboxStore
from regsync.warehouse.state import last_runs, read_state
from regsync.warehouse.tables import (
    booking_lines,
    booking_session_lines,
    booking_sessions,
    bookings,
    quarantine,
    raw_archive,
    registration_attendee_sessions,
    registration_attendees,
    registrations,
    sf_sessions,
)
from tests.support import cassettes
from tests.support.cassettes import FAKE_BASE_URL, Scrubber

from .conftest import CASSETTE_DIR, Scenario, demo_secrets

pytestmark = pytest.mark.block_network  # replay makes no connection (recording is let through)
recorded_scenario = pytest.mark.vcr

SALESFORCE_STREAMS = ("sessions", "registrations")
COUNTED = (
    registrations,
    registration_attendees,
    registration_attendee_sessions,
    sf_sessions,
    booking_sessions,
    booking_session_lines,
    bookings,
    booking_lines,
    quarantine,
    raw_archive,
)
SAFETY_LAG = timedelta(seconds=60)  # SyncSettings.safety_lag_s
TIMINGS = frozenset({"milliseconds"})


def no_sleep(_seconds: float) -> None:
    """Retries wait for nothing on replay (and while recording: the sandbox does not care)."""


# -- what the sandbox holds and what the warehouse holds ------------------------------------------


def sandbox_registrations(store: SandboxStore) -> dict[str, list[Any]]:
    return {
        r["Id"]: [
            r["conference360__Status__c"],
            sf_datetime(r["SystemModstamp"], "x").isoformat(),
            r["IsDeleted"],
            r["Checkfront_Booking_Code__c"],
        ]
        for r in store.salesforce.tables[REGISTRATION].values()
    }


def warehouse_registrations(engine: Engine) -> dict[str, list[Any]]:
    r = registrations.c
    with engine.connect() as connection:
        rows = connection.execute(select(r.id, r.status, r.system_modstamp, r.is_deleted, r.booking_code))
        return {row[0]: [row[1], row[2].isoformat(), row[3], row[4]] for row in rows}


def warehouse_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in COUNTED
        }


def warehouse_booking_states(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(select(booking_sessions.c.id, booking_sessions.c.state))
        return dict(sorted((row[0], row[1]) for row in rows))


def expected_booking_states(box: Sandbox, ids: list[str], now: datetime) -> dict[str, str]:
    """alive: the cart exists, has not ended and was touched within its TTL; else missing."""
    cf = box.store.checkfront
    out = {}
    for session_id in ids:
        session = cf.booking_sessions.get(session_id)
        alive = (
            session is not None
            and session.get("ended") is None
            and now.timestamp() - session["modified"] <= cf.session_ttl_s
        )
        out[session_id] = "alive" if alive else "missing"
    return out


def stream_counts(report: Any, name: str) -> dict[str, int]:
    """A stream's counts without the timings (those differ from run to run)."""
    stream = next(s for s in report.streams if s.stream == name)
    return {k: v for k, v in stream.counts.items() if k not in TIMINGS}


def watermark(engine: Engine, stream: str) -> datetime | None:
    with engine.connect() as connection:
        return read_state(connection, stream).watermark


def make_changes(box: Sandbox) -> dict[str, str]:
    """Change one Draft, delete another, create a new registration (as users would in Salesforce)."""
    store = box.store
    drafts = sorted(
        r["Id"]
        for r in store.salesforce.tables[REGISTRATION].values()
        if r["conference360__Status__c"] == "Draft" and not r["IsDeleted"]
    )
    store.update_sf(REGISTRATION, drafts[0], {"conference360__Status__c": "Failed"})
    store.delete_sf(REGISTRATION, drafts[1])
    attendee = min(store.salesforce.tables[ATTENDEE])
    session = min(store.salesforce.tables[SESSION])
    payload = {"sessionId": "cassette-new-cart", "attendeeList": [{"id": attendee, "sessionIds": [session]}]}
    created = store.insert_sf(
        REGISTRATION,
        {
            "Name": "ERS-cassette-new",
            "conference360__Status__c": "Draft",
            "conference360__Attendee_JSON__c": json.dumps(payload),
        },
    )
    return {"updated": drafts[0], "deleted": drafts[1], "created": created["Id"]}


def stamps_by_id(box: Sandbox) -> dict[str, str]:
    return {
        r["Id"]: sf_datetime(r["SystemModstamp"], "x").isoformat()
        for r in box.store.salesforce.tables[REGISTRATION].values()
    }


# -- the scenarios ---------------------------------------------------------------------------------


@recorded_scenario
def test_full_first_sync(scenario: Scenario, vcr: Any) -> None:
    mirror = scenario.fact("registrations", lambda box: sandbox_registrations(box.store))
    sessions = scenario.fact("sf_sessions", lambda box: sorted(box.store.salesforce.tables[SESSION]))
    booking_ids = scenario.fact("bookings", lambda box: sorted(box.store.checkfront.bookings))
    now = scenario.now("run")
    engine = scenario.engine

    report = run_pull(scenario.settings(), engine=engine, now=lambda: now, sleep=no_sleep, pace=no_sleep)

    assert report.outcome == "ok", report.message
    assert warehouse_registrations(engine) == mirror  # every field we compare, every id
    deleted = sorted(i for i, row in mirror.items() if row[2])
    assert deleted, "the dataset holds soft-deleted registrations"
    assert all(warehouse_registrations(engine)[i][2] is True for i in deleted)
    counts = warehouse_counts(engine)
    scenario.check_snapshot("counts", counts)
    assert counts["registrations"] == len(mirror)
    assert counts["sf_sessions"] == len(sessions)
    assert counts["bookings"] == len(booking_ids)
    assert counts["quarantine"] == 0
    assert counts["booking_lines"] > 0
    with engine.connect() as connection:
        assert sorted(connection.execute(select(bookings.c.booking_id)).scalars()) == booking_ids
    states = warehouse_booking_states(engine)
    assert set(states.values()) == {"alive", "missing"}
    assert states == scenario.fact(
        "booking_session_states", lambda box: expected_booking_states(box, list(states), now)
    )
    for stream in ("sessions", "registrations", "bookings"):
        assert watermark(engine, stream) == now - SAFETY_LAG, stream
    # One page per Salesforce stream, and one for the error messages of the Failed registrations
    # (the bulk query selects one long text area, so Salesforce keeps its batches at 2,000).
    assert report.api_calls["salesforce_calls"] == 3
    assert report.api_calls["salesforce_auth_calls"] == 1
    scenario.check_snapshot("api_calls", report.api_calls)
    scenario.finish(vcr)


@recorded_scenario
def test_incremental_sync_after_changes_and_deletes(scenario: Scenario, vcr: Any) -> None:
    engine = scenario.engine
    settings = scenario.settings()
    first_now = scenario.now("first")
    first = run_pull(settings, engine=engine, now=lambda: first_now, sleep=no_sleep, pace=no_sleep)
    assert first.outcome == "ok", first.message
    before = warehouse_counts(engine)
    scenario.check_snapshot("counts_first", before)

    changes = scenario.fact("changes", make_changes)  # made in the sandbox only while recording
    mirror = scenario.fact("registrations_after", lambda box: sandbox_registrations(box.store))
    second_now = scenario.now("second", plus_s=120)  # past the safety lag of the changes
    again = run_pull(settings, engine=engine, now=lambda: second_now, sleep=no_sleep, pace=no_sleep)

    assert again.outcome == "ok", again.message
    mirrored = warehouse_registrations(engine)
    assert mirrored == mirror
    assert mirrored[changes["updated"]][0] == "Failed"
    assert mirrored[changes["deleted"]][2] is True  # soft-deleted, kept
    assert changes["created"] in mirrored
    after = warehouse_counts(engine)
    assert after["registrations"] == before["registrations"] + 1
    scenario.check_snapshot("counts_second", after)
    delta = stream_counts(again, "registrations")
    assert delta["deleted"] >= 1
    assert delta["rows"] >= 2  # the change and the new one (plus look-back re-reads)
    scenario.check_snapshot("registrations_second", delta)
    assert watermark(engine, "registrations") == second_now - SAFETY_LAG
    assert second_now - SAFETY_LAG > first_now - SAFETY_LAG
    # One (small) page per stream, and one for the error message of the registration now Failed.
    assert again.api_calls["salesforce_calls"] == 3
    scenario.check_snapshot("api_calls_second", again.api_calls)
    scenario.finish(vcr)


@recorded_scenario
def test_backfill_interrupted_after_first_page_then_resumed(scenario: Scenario, vcr: Any) -> None:
    engine = scenario.engine
    stamps = {k: datetime.fromisoformat(v) for k, v in scenario.fact("stamps", stamps_by_id).items()}
    now = scenario.now("run")
    since, until = now - timedelta(days=180), now - timedelta(days=30)
    settings = scenario.settings(sync={"window_days": 30})
    first_window = sorted(i for i, s in stamps.items() if since <= s < since + timedelta(days=30))
    in_range = sorted(i for i, s in stamps.items() if since <= s < until)
    outside = sorted(set(stamps) - set(in_range))
    assert first_window
    assert len(in_range) > len(first_window)
    assert outside
    key = f"backfill:registrations:{since.isoformat()}:{until.isoformat()}"

    stopped = run_pull(
        settings,
        engine=engine,
        streams=("registrations",),
        since=since,
        until=until,
        should_stop=lambda: True,  # a signal right after the first page
        now=lambda: now,
        sleep=no_sleep,
        pace=no_sleep,
    )
    assert stopped.outcome == "partial"
    assert sorted(warehouse_registrations(engine)) == first_window
    assert watermark(engine, key) == max(stamps[i] for i in first_window)
    assert watermark(engine, "registrations") is None  # a backfill leaves the incremental state alone

    resumed_now = scenario.now("resumed")
    resumed = run_pull(
        settings,
        engine=engine,
        streams=("registrations",),
        since=since,
        until=until,
        now=lambda: resumed_now,
        sleep=no_sleep,
        pace=no_sleep,
    )
    assert resumed.outcome == "ok", resumed.message
    held = warehouse_registrations(engine)
    assert sorted(held) == in_range
    assert not set(outside) & set(held)
    assert watermark(engine, key) == until
    rest = stream_counts(resumed, "registrations")
    assert rest["pages"] > 1  # the remaining windows of 30 days, one page each
    scenario.check_snapshot("resumed_counts", rest)
    counts = warehouse_counts(engine)
    scenario.check_snapshot("counts", counts)
    scenario.finish(vcr)


@recorded_scenario
def test_token_expiry_mid_run(scenario: Scenario, vcr: Any) -> None:
    if scenario.recording:
        scenario.live.faults.salesforce.token_expire_after = 1  # the 2nd data call finds it revoked
    mirror = scenario.fact("registrations", lambda box: sandbox_registrations(box.store))
    now = scenario.now("run")

    report = run_pull(
        scenario.settings(),
        engine=scenario.engine,
        streams=SALESFORCE_STREAMS,
        now=lambda: now,
        sleep=no_sleep,
        pace=no_sleep,
    )

    assert report.outcome == "ok", report.message
    assert report.api_calls["salesforce_auth_calls"] == 2  # logged in again, once
    assert scenario.fact("injected", lambda box: dict(box.faults.injected)) == {"token_expired": 1}
    assert warehouse_registrations(scenario.engine) == mirror
    calls = cassettes.recorded(vcr)
    logins = [i for i, c in enumerate(calls) if c.path == "/services/oauth2/token"]
    refused = [i for i, c in enumerate(calls) if c.status == 401]
    assert len(logins) == 2
    assert len(refused) == 1
    assert logins[0] < refused[0] < logins[1]
    assert calls[refused[0]].request_headers["authorization"] == "Bearer REDACTED-1"
    after = [c for c in calls[logins[1] + 1 :] if c.service == "salesforce"]
    assert after
    assert all(c.request_headers["authorization"] == "Bearer REDACTED-2" for c in after)
    assert calls[refused[0]].uri == after[0].uri  # the refused query, sent again with the new token
    scenario.finish(vcr)


@recorded_scenario
def test_rate_limits_and_outages_with_retry_after(scenario: Scenario, vcr: Any) -> None:
    if scenario.recording:
        faults = scenario.live.faults
        faults.add(endpoint="salesforce.query", kind="status", status=503, retry_after=3, nth=[1])
        faults.add(endpoint="salesforce.query", kind="status", status=429, retry_after=2, nth=[2])
        faults.add(endpoint="checkfront.booking.index", kind="status", status=429, retry_after=1, nth=[1])
        faults.add(
            endpoint="checkfront.booking_session.get", kind="status", status=503, retry_after=4, every=9
        )
        faults.add(endpoint="checkfront.booking.get", kind="status", status=429, retry_after=5, nth=[2, 7])
    mirror = scenario.fact("registrations", lambda box: sandbox_registrations(box.store))
    booking_count = scenario.fact("booking_count", lambda box: len(box.store.checkfront.bookings))
    now = scenario.now("run")
    sleeps: list[float] = []

    report = run_pull(
        scenario.settings(), engine=scenario.engine, now=lambda: now, sleep=sleeps.append, pace=no_sleep
    )

    assert report.outcome == "ok", report.message
    assert warehouse_registrations(scenario.engine) == mirror
    counts = warehouse_counts(scenario.engine)
    assert counts["bookings"] == booking_count
    scenario.check_snapshot("counts", counts)
    injected = scenario.fact("injected", lambda box: dict(box.faults.injected))
    throttled = [c for c in cassettes.recorded(vcr) if c.status in (429, 503)]
    by_kind = Counter(f"{c.service} {c.status}" for c in throttled)
    assert set(by_kind) == {"salesforce 429", "salesforce 503", "checkfront 429", "checkfront 503"}
    assert by_kind["salesforce 429"] + by_kind["checkfront 429"] == injected["status_429"]
    assert by_kind["salesforce 503"] + by_kind["checkfront 503"] == injected["status_503"]
    scenario.check_snapshot("throttled", dict(by_kind))
    # every wait is the Retry-After the service sent (threads make the order vary, not the values)
    assert sorted(sleeps) == sorted(float(c.response_headers["retry-after"]) for c in throttled)
    scenario.check_snapshot("sleeps", sorted(sleeps))
    scenario.finish(vcr)


@recorded_scenario
def test_quota_stop_is_deferred_then_resumed(scenario: Scenario, vcr: Any) -> None:
    engine = scenario.engine
    if scenario.recording:
        assert scenario.live.salesforce is not None
        scenario.live.salesforce.daily_limit = 1  # after the first call the org reports 1/1 used
    mirror = scenario.fact("registrations", lambda box: sandbox_registrations(box.store))
    sessions = scenario.fact("sf_sessions", lambda box: sorted(box.store.salesforce.tables[SESSION]))
    settings = scenario.settings()
    first_now = scenario.now("deferred")

    deferred = run_pull(
        settings,
        engine=engine,
        streams=SALESFORCE_STREAMS,
        now=lambda: first_now,
        sleep=no_sleep,
        pace=no_sleep,
    )

    assert deferred.outcome == "deferred"
    assert "share" in (deferred.message or "")
    assert deferred.api_calls["sf_api_usage"] == "1/1"  # read from the replayed Sforce-Limit-Info
    assert last_runs(engine, 1)[0]["outcome"] == "deferred"
    counts = warehouse_counts(engine)
    assert counts["sf_sessions"] == len(sessions)
    assert counts["registrations"] == 0  # stopped before the call, not after it
    assert watermark(engine, "registrations") is None

    if scenario.recording:
        assert scenario.live.salesforce is not None
        scenario.live.salesforce.daily_limit = 5_000_000  # a new day
    second_now = scenario.now("resumed")
    resumed = run_pull(
        settings,
        engine=engine,
        streams=SALESFORCE_STREAMS,
        now=lambda: second_now,
        sleep=no_sleep,
        pace=no_sleep,
    )

    assert resumed.outcome == "ok", resumed.message
    assert warehouse_registrations(engine) == mirror
    assert str(resumed.api_calls["sf_api_usage"]).endswith("/5000000")
    scenario.check_snapshot("api_calls_resumed", resumed.api_calls)
    assert last_runs(engine, 1)[0]["outcome"] == "ok"
    assert watermark(engine, "registrations") == second_now - SAFETY_LAG
    scenario.finish(vcr)


# -- the cassettes themselves ----------------------------------------------------------------------

SCENARIOS = sorted(
    name.removeprefix("test_")
    for name, value in dict(globals()).items()
    if name.startswith("test_") and any(m.name == "vcr" for m in getattr(value, "pytestmark", []))
)


SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def cassette_files() -> list[Path]:
    """Every file under cassettes/: the cassettes, their expectations and their snapshots."""
    return sorted(p for p in CASSETTE_DIR.rglob("*") if p.is_file()) if CASSETTE_DIR.is_dir() else []


def test_every_scenario_has_a_cassette_and_expectations() -> None:
    assert len(SCENARIOS) == 6
    names = {p.name for p in cassette_files()}
    for scenario in SCENARIOS:
        assert f"test_{scenario}.yaml" in names, scenario
        assert f"test_{scenario}.expected.json" in names, scenario


def test_cassettes_are_small() -> None:
    sizes = {p.name: p.stat().st_size for p in cassette_files()}
    assert all(size < 2_000_000 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 6_000_000, sizes  # the pull's and the write-backs' cassettes


def test_cassettes_hold_no_secrets() -> None:
    files = cassette_files()
    assert files, "no cassettes: record them (docs/cassettes.md)"
    secrets = demo_secrets()
    for path in files:
        text = path.read_text(encoding="utf-8")
        leaks = cassettes.find_leaks(text, secrets)
        if path.suffix == ".yaml":  # bodies as the client saw them, not as YAML folded them
            for interaction in yaml.load(text, Loader=SafeLoader)["interactions"]:
                leaks += cassettes.find_leaks(json.dumps(interaction, default=str), secrets)
        assert not leaks, f"{path.name}: {leaks[:5]}"
        assert "127.0.0.1" not in text, f"{path.name}: the sandbox's address was recorded"


def test_cassettes_keep_the_salesforce_limit_header() -> None:
    text = (CASSETTE_DIR / "test_quota_stop_is_deferred_then_resumed.yaml").read_text(encoding="utf-8")
    assert "Sforce-Limit-Info" in text
    assert "api-usage=1/1" in text


# -- the helpers, without cassettes ----------------------------------------------------------------


@dataclasses.dataclass
class FakeRequest:
    """What vcrpy hands the hooks and matchers (method, uri, headers, body)."""

    method: str
    uri: str
    headers: dict[str, str]
    body: bytes | None = None


def test_scrubber_removes_credentials_and_keeps_quota_headers() -> None:
    scrubber = Scrubber(secrets=demo_secrets(), origins=["https://127.0.0.1:4321"])
    login = scrubber.request(
        FakeRequest(
            "POST",
            "https://127.0.0.1:4321/services/oauth2/token",
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "x",
                "Host": "127.0.0.1:4321",
            },
            (
                f"grant_type=password&client_id={DEMO.sf_consumer_key}&client_secret={DEMO.sf_consumer_secret}"
                f"&username={DEMO.sf_username}&password={DEMO.sf_password}{DEMO.sf_security_token}"
            ).encode(),
        )
    )
    assert login.uri == f"{FAKE_BASE_URL}/services/oauth2/token"
    assert login.body == (b"grant_type=password&client_id=&client_secret=&username=&password=")
    assert set(login.headers) == {"Content-Type"}
    token = "00D5g000004AbCdEFG!AQ" + "x" * 60
    answer = scrubber.response(
        {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Content-Length": ["999"], "Set-Cookie": ["sid=abc123; path=/; secure"]},
            "body": {
                "string": json.dumps(
                    {
                        "access_token": token,
                        "instance_url": "https://127.0.0.1:4321",
                        "signature": "c2lnbmF0dXJlLXNpZ25hdHVyZQ==",
                        "token_type": "Bearer",
                    }
                ).encode()
            },
        }
    )
    body = json.loads(answer["body"]["string"])
    assert body == {
        "access_token": "REDACTED-1",
        "instance_url": FAKE_BASE_URL,
        "signature": "REDACTED",
        "token_type": "Bearer",
    }
    assert answer["headers"]["Content-Length"] == [str(len(answer["body"]["string"]))]
    assert answer["headers"]["Set-Cookie"] == ["sid=REDACTED; path=/; secure"]
    query = scrubber.request(
        FakeRequest(
            "GET",
            "https://127.0.0.1:4321/services/data/v60.0/query/?q=x",
            {"Authorization": f"Bearer {token}"},
        )
    )
    assert query.headers == {"Authorization": "Bearer REDACTED-1"}
    basic = cassettes.basic_auth_value(DEMO.cf_api_key, DEMO.cf_api_secret)
    checkfront = scrubber.request(
        FakeRequest("GET", "https://127.0.0.1:4321/api/3.0/ping", {"Authorization": f"Basic {basic}"})
    )
    assert checkfront.headers == {"Authorization": "Basic REDACTED"}
    data = scrubber.response(
        {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Sforce-Limit-Info": ["api-usage=3/5000"], "Date": ["Mon"]},
            "body": {"string": b'{"records":[{"code":"ABCD-1","username":"kept"}]}'},
        }
    )
    assert data["headers"] == {"Sforce-Limit-Info": ["api-usage=3/5000"]}
    assert data["body"]["string"] == b'{"records":[{"code":"ABCD-1","username":"kept"}]}'
    leaked = f'Authorization: Bearer {token} "access_token": "{token}" {DEMO.cf_api_secret} Basic {basic}'
    assert len(cassettes.find_leaks(leaked, demo_secrets())) >= 4
    assert (
        cassettes.find_leaks('"access_token":"REDACTED-12" Bearer REDACTED-3 Basic Admission', demo_secrets())
        == []
    )


def test_matching_ignores_host_port_and_the_clock_but_not_content() -> None:
    def request(uri: str, method: str = "GET") -> FakeRequest:
        return FakeRequest(method, uri, {})

    soql = "SELECT Id FROM X WHERE SystemModstamp >= {} AND SystemModstamp < {} ORDER BY SystemModstamp ASC, Id ASC"
    a = request(
        "https://127.0.0.1:4321/services/data/v60.0/queryAll/?q="
        + soql.format("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    )
    b = request(
        f"{FAKE_BASE_URL}/services/data/v60.0/queryAll/?q="
        + soql.format("2027-03-04T05:06:07Z", "2027-03-05T00:00:00Z")
    )
    cassettes.match_request(a, b)
    cassettes.match_request(
        request("https://a:1/api/3.0/booking/index?limit=100&page=1&last_modified=%3E1767225600"),
        request("https://b:2/api/3.0/booking/index?page=1&last_modified=%3E1800000000&limit=100"),
    )
    different = [
        (a, request(a.uri.replace("FROM X", "FROM Y"))),
        (a, request(a.uri, "POST")),
        (
            request("https://a/api/3.0/booking/session?session_id=abc"),
            request("https://a/api/3.0/booking/session?session_id=abd"),
        ),
        (
            request("https://a/api/3.0/booking/index?page=1"),
            request("https://a/api/3.0/booking/index?page=2"),
        ),
        (request("https://a/api/3.0/booking/AB-1"), request("https://a/api/3.0/booking/AB-2")),
    ]
    for one, other in different:
        with pytest.raises(AssertionError):
            cassettes.match_request(one, other)
