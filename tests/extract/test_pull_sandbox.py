"""The pull against a live sandbox: exact, incremental, resumable, fault-tolerant, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from regsync.jobs.pull import run_pull
from regsync.normalize.coerce import sf_datetime
from regsync.sandbox import Sandbox
from regsync.sandbox.store import ATTENDEE, REGISTRATION, SESSION, SandboxStore
from regsync.warehouse.state import last_runs
from regsync.warehouse.tables import booking_lines, booking_sessions, bookings, quarantine, registrations

pytestmark = pytest.mark.sandbox
NO_SLEEP = {"sleep": lambda _s: None}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(600, seed=3) as box:
        yield box


def sandbox_registrations(store: SandboxStore) -> dict[str, tuple[Any, ...]]:
    return {
        r["Id"]: (
            r["conference360__Status__c"],
            sf_datetime(r["SystemModstamp"], "x"),
            r["IsDeleted"],
            r["Checkfront_Booking_Code__c"],
        )
        for r in store.salesforce.tables[REGISTRATION].values()
    }


def warehouse_registrations(engine: Engine) -> dict[str, tuple[Any, ...]]:
    r = registrations.c
    with engine.connect() as connection:
        rows = connection.execute(select(r.id, r.status, r.system_modstamp, r.is_deleted, r.booking_code))
        return {row[0]: tuple(row[1:]) for row in rows}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_full_then_incremental_sync_is_exact(sandbox: Sandbox, engine: Engine) -> None:
    settings = sandbox.settings()
    report = run_pull(settings, engine=engine, **NO_SLEEP)
    assert report.outcome == "ok", report.message
    assert warehouse_registrations(engine) == sandbox_registrations(sandbox.store)
    assert count(engine, bookings) == len(sandbox.store.checkfront.bookings)
    first_calls = report.api_calls["salesforce_calls"]
    assert first_calls <= 4  # one page per stream (600 rows), nothing wasted

    # change, delete and create in Salesforce; the next run picks up exactly those
    store = sandbox.store
    drafts = [
        r
        for r in store.salesforce.tables[REGISTRATION].values()
        if r["conference360__Status__c"] == "Draft" and not r["IsDeleted"]
    ]
    store.update_sf(REGISTRATION, drafts[0]["Id"], {"conference360__Status__c": "Failed"})
    store.delete_sf(REGISTRATION, drafts[1]["Id"])
    attendee = next(iter(store.salesforce.tables[ATTENDEE]))
    session = next(iter(store.salesforce.tables[SESSION]))
    payload = {"sessionId": "newcart", "attendeeList": [{"id": attendee, "sessionIds": [session]}]}
    created = store.insert_sf(
        REGISTRATION,
        {
            "Name": "ERS-new",
            "conference360__Status__c": "Draft",
            "conference360__Attendee_JSON__c": json.dumps(payload),
        },
    )
    later = datetime.now(UTC) + timedelta(seconds=120)  # the next run comes after the safety lag
    again = run_pull(settings, engine=engine, now=lambda: later, **NO_SLEEP)
    assert again.outcome == "ok"
    mirrored = warehouse_registrations(engine)
    assert mirrored == sandbox_registrations(store)
    assert mirrored[drafts[0]["Id"]][0] == "Failed"
    assert mirrored[drafts[1]["Id"]][2] is True  # soft-deleted, kept
    assert created["Id"] in mirrored


def test_no_change_run_costs_almost_nothing(sandbox: Sandbox, engine: Engine) -> None:
    settings = sandbox.settings()
    assert run_pull(settings, engine=engine, **NO_SLEEP).outcome == "ok"
    sandbox.clear_requests()
    with engine.connect() as connection:
        synced = dict(connection.execute(select(registrations.c.id, registrations.c.synced_at)).all())
    again = run_pull(settings, engine=engine, **NO_SLEEP)
    assert again.outcome == "ok"
    # The lookback reads the newest rows again; unchanged, they are not written again.
    assert again.totals()["registrations.rows"] == 0
    with engine.connect() as connection:
        assert dict(connection.execute(select(registrations.c.id, registrations.c.synced_at)).all()) == synced
    endpoints = [r.endpoint for r in sandbox.requests]
    assert endpoints.count("salesforce.query") == 2  # Sessions and registrations: one empty page each
    assert "checkfront.booking.get" not in endpoints
    assert endpoints.count("checkfront.booking_session.get") == 0


def test_rows_sharing_one_modstamp_across_a_page_boundary(engine: Engine) -> None:
    store = SandboxStore()
    attendee = store.insert_sf(ATTENDEE, {"Name": "A"})
    stamp = "2026-01-01T00:00:00.000+0000"
    for i in range(2600):
        record = store.insert_sf(
            REGISTRATION,
            {
                "Name": f"ERS-{i}",
                "conference360__Status__c": "Draft",
                "conference360__Attendee_JSON__c": json.dumps({"attendeeList": [{"id": attendee["Id"]}]}),
            },
        )
        record["SystemModstamp"] = record["LastModifiedDate"] = record["CreatedDate"] = stamp
    with Sandbox(store) as box:
        settings = box.settings()
        calls = iter(range(10_000))
        # stop after the first page (2,000 of the 2,600 tied rows), as a killed run would
        stopped = run_pull(
            settings,
            engine=engine,
            streams=("registrations",),
            should_stop=lambda: next(calls) >= 0,
            **NO_SLEEP,
        )
        assert stopped.outcome == "partial"
        assert count(engine, registrations) == 2000
        resumed = run_pull(settings, engine=engine, streams=("registrations",), **NO_SLEEP)
        assert resumed.outcome == "ok"
    assert count(engine, registrations) == 2600


def test_token_expiry_and_transient_errors_mid_run(sandbox: Sandbox, engine: Engine) -> None:
    sandbox.faults.salesforce.token_expire_after = 1  # the second data call finds its token revoked
    sandbox.faults.add(
        endpoint="checkfront.booking_session.get", kind="status", status=503, retry_after=0, every=7
    )
    sandbox.faults.add(
        endpoint="checkfront.booking.get", kind="status", status=429, retry_after=0, nth=[1, 2, 5]
    )
    sandbox.faults.add(endpoint="checkfront.booking.index", kind="drop", nth=[1])
    report = run_pull(sandbox.settings(), engine=engine, **NO_SLEEP)
    assert report.outcome == "ok", report.message
    assert sandbox.faults.injected["token_expired"] == 1
    assert sandbox.faults.injected["status_503"] > 0
    assert report.api_calls["salesforce_auth_calls"] == 2
    assert warehouse_registrations(engine) == sandbox_registrations(sandbox.store)
    assert count(engine, bookings) == len(sandbox.store.checkfront.bookings)


def test_query_timeout_splits_windows_and_loses_nothing(sandbox: Sandbox, engine: Engine) -> None:
    sandbox.faults.salesforce.query_timeout_window_s = 90 * 86400
    report = run_pull(sandbox.settings(), engine=engine, streams=("registrations",), **NO_SLEEP)
    assert report.outcome == "ok"
    assert report.streams[0].counts["window_splits"] > 0
    assert warehouse_registrations(engine) == sandbox_registrations(sandbox.store)


def test_quota_stop_is_deferred_and_resumes(sandbox: Sandbox, engine: Engine) -> None:
    assert sandbox.salesforce is not None
    sandbox.salesforce.daily_limit = 1  # after the first call the org reports 1/1 used: stop before the next
    settings = sandbox.settings()
    deferred = run_pull(settings, engine=engine, **NO_SLEEP)
    assert deferred.outcome == "deferred"
    assert "share" in (deferred.message or "")
    assert last_runs(engine, 1)[0]["outcome"] == "deferred"
    sandbox.salesforce.daily_limit = 5_000_000
    resumed = run_pull(settings, engine=engine, **NO_SLEEP)
    assert resumed.outcome == "ok"
    assert warehouse_registrations(engine) == sandbox_registrations(sandbox.store)


def test_malformed_record_is_quarantined_and_the_run_goes_on(sandbox: Sandbox, engine: Engine) -> None:
    sandbox.faults.add(
        endpoint="salesforce.query", kind="wrong_type", target_field="conference360__Status__c", nth=[2]
    )
    report = run_pull(sandbox.settings(), engine=engine, **NO_SLEEP)
    assert report.outcome == "partial"
    assert report.quarantined == 1
    with engine.connect() as connection:
        row = connection.execute(select(quarantine)).mappings().one()
    assert "conference360__Status__c" in row["reason"]
    assert json.loads(row["payload"])["conference360__Status__c"] == 12345
    # everything else arrived
    assert len(warehouse_registrations(engine)) == len(sandbox.store.salesforce.tables[REGISTRATION]) - 1


def test_malformed_bodies_are_retried(sandbox: Sandbox, engine: Engine) -> None:
    sandbox.faults.add(endpoint="salesforce.query", kind="malformed", nth=[1])
    sandbox.faults.add(endpoint="checkfront.booking_session.get", kind="malformed", nth=[3])
    report = run_pull(sandbox.settings(), engine=engine, **NO_SLEEP)
    assert report.outcome == "ok"
    assert sandbox.faults.injected["malformed"] == 2
    assert warehouse_registrations(engine) == sandbox_registrations(sandbox.store)


def test_booking_sessions_and_lines_mirror_checkfront(sandbox: Sandbox, engine: Engine) -> None:
    assert run_pull(sandbox.settings(), engine=engine, **NO_SLEEP).outcome == "ok"
    cf = sandbox.store.checkfront
    with engine.connect() as connection:
        states = {
            row[0]: row[1]
            for row in connection.execute(select(booking_sessions.c.id, booking_sessions.c.state))
        }
        line_count = connection.execute(select(func.count()).select_from(booking_lines)).scalar_one()
    assert states, "booking sessions were read"
    now = sandbox.store.clock.now()
    for session_id, state in states.items():
        session = cf.booking_sessions.get(session_id)
        alive = (
            session is not None
            and session.get("ended") is None
            and now - session["modified"] <= cf.session_ttl_s
        )
        assert state == ("alive" if alive else "missing"), session_id
    assert line_count > 0


def test_a_record_changed_during_the_sync_is_picked_up_next_run(sandbox: Sandbox, engine: Engine) -> None:
    store = sandbox.store
    target = next(
        r
        for r in store.salesforce.tables[REGISTRATION].values()
        if r["conference360__Status__c"] == "Draft" and not r["IsDeleted"]
    )

    def change_mid_run(stream: str, rows: int, total: int | None) -> None:
        if stream == "registrations" and target["conference360__Status__c"] == "Draft":
            store.update_sf(REGISTRATION, target["Id"], {"conference360__Status__c": "To Process"})

    first = run_pull(sandbox.settings(), engine=engine, progress=change_mid_run, **NO_SLEEP)
    assert first.outcome == "ok"
    assert warehouse_registrations(engine)[target["Id"]][0] == "Draft"  # read before the change
    later = datetime.now(UTC) + timedelta(seconds=120)
    second = run_pull(sandbox.settings(), engine=engine, now=lambda: later, **NO_SLEEP)
    assert second.outcome == "ok"
    assert warehouse_registrations(engine)[target["Id"]][0] == "To Process"
    assert warehouse_registrations(engine) == sandbox_registrations(store)


def session_reads(sandbox: Sandbox) -> list[str]:
    """Booking session ids read since the request log was last cleared, in order."""
    return [
        r.query["session_id"][0]
        for r in sandbox.requests
        if r.endpoint == "checkfront.booking_session.get" and r.status == 200
    ]


def test_booking_session_reads_follow_changes_errors_and_refreshes(sandbox: Sandbox, engine: Engine) -> None:
    """A pass reads what changed since the last complete one, retries what failed, refreshes due ones."""
    settings = sandbox.settings()
    assert run_pull(settings, engine=engine, **NO_SLEEP).outcome == "ok"
    with engine.connect() as connection:
        alive = {
            row[0]: row[1]
            for row in connection.execute(
                select(registrations.c.booking_session_id, registrations.c.id)
                .join(booking_sessions, booking_sessions.c.id == registrations.c.booking_session_id)
                .where(booking_sessions.c.state == "alive")
            )
        }
    assert len(alive) >= 3, "the dataset has alive carts to follow"
    first, second, *_ = sorted(alive)
    store = sandbox.store
    clock = datetime.now(UTC)

    def pull_at(offset_s: float) -> str:
        sandbox.clear_requests()
        moment = clock + timedelta(seconds=offset_s)
        return run_pull(settings, engine=engine, now=lambda: moment, **NO_SLEEP).outcome

    # A registration that changed: its cart is read again, and nothing else is.
    store.update_sf(REGISTRATION, alive[first], {"Name": "changed"})
    assert pull_at(120) == "ok"
    assert session_reads(sandbox) == [first]

    # A read that fails: the run is partial and the session is read again by the next run.
    store.update_sf(REGISTRATION, alive[second], {"Name": "changed"})
    sandbox.faults.add(
        endpoint="checkfront.booking_session.get", kind="status", status=500, retry_after=0, every=1
    )
    assert pull_at(240) == "partial"
    assert session_reads(sandbox) == []
    sandbox.faults.clear()
    assert pull_at(360) == "ok"
    assert session_reads(sandbox) == [second]
    assert pull_at(480) == "ok"
    assert session_reads(sandbox) == []

    # Once the refresh interval has passed, every alive cart a registration names is read again.
    refresh = settings.sync.booking_session_refresh_s
    assert pull_at(480 + refresh + 1) == "ok"
    with engine.connect() as connection:
        still_alive = set(
            connection.execute(select(booking_sessions.c.id).where(booking_sessions.c.state == "alive"))
            .scalars()
            .all()
        )
    assert set(session_reads(sandbox)) == set(alive)
    assert still_alive <= set(alive)


def test_a_booking_code_held_by_another_booking_is_quarantined(sandbox: Sandbox, engine: Engine) -> None:
    """Two bookings with one code cannot both be right: the later waits in quarantine, the page loads."""
    store = sandbox.store.checkfront
    first, second = sorted(store.bookings)[:2]
    store.bookings[second]["code"] = store.bookings[first]["code"]
    report = run_pull(sandbox.settings(), engine=engine, **NO_SLEEP)
    assert report.outcome == "partial"
    code = store.bookings[first]["code"]
    with engine.connect() as connection:
        holders = (
            connection.execute(select(bookings.c.booking_id).where(bookings.c.code == code)).scalars().all()
        )
        (row,) = connection.execute(
            select(quarantine).where(quarantine.c.source == "checkfront.bookings")
        ).mappings()
    assert len(holders) == 1
    assert row["record_id"] == str({first, second} - set(holders)).strip("{}")
    assert "already belongs to booking" in row["reason"]
    assert json.loads(row["payload"])["booking_id"] == int(row["record_id"])
    assert count(engine, bookings) == len(store.bookings) - 1
