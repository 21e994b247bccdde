"""Hostile and malformed input, on every surface, ends accepted, quarantined or rejected — nothing else.

The strategies and the judge (`outcome_of`) live in tests.support.hostile and are shared with the
counting run (`run_hostile`, bench/reliability.py); here hypothesis shrinks a failure to its
smallest input. "Accepted" includes "nothing lost": the rows equal what was sent and fit the
warehouse's columns on SQLite and PostgreSQL. REGSYNC_HOSTILE_EXAMPLES raises the examples per
surface (default 40).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from regsync.errors import RecordRejected
from regsync.jobs.pull import run_pull
from regsync.sandbox import Sandbox
from regsync.warehouse.engine import open_warehouse
from regsync.warehouse.tables import runs
from tests.support.hostile import (
    OUTCOMES,
    SURFACES,
    HostileReport,
    check_end_to_end,
    outcome_of,
    run_hostile,
    summary,
)
from tests.support.hostile.checkfront import good_booking_detail, good_booking_session, good_index_entry
from tests.support.hostile.clients import HttpAnswer
from tests.support.hostile.salesforce import good_registration, good_sf_session

EXAMPLES = int(os.environ.get("REGSYNC_HOSTILE_EXAMPLES", "40"))
HOSTILE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
ATTENDEE_JSON = "conference360__Attendee_JSON__c"


@pytest.mark.parametrize("name", sorted(SURFACES))
@HOSTILE
@given(data=st.data())
def test_every_input_is_accepted_quarantined_or_rejected(name: str, data: st.DataObject) -> None:
    """A HostileFailure (an AssertionError) names the crash, the loss or the changed query."""
    surface = SURFACES[name]
    assert outcome_of(surface, data.draw(surface.strategy, label=name)) in OUTCOMES


@HOSTILE
@given(depth=st.integers(min_value=100, max_value=5000))
def test_deeply_nested_attendee_json_is_quarantined_as_json(depth: int) -> None:
    record = good_registration() | {ATTENDEE_JSON: "[" * depth + "]" * depth}
    assert outcome_of("salesforce.attendee_json", record) == "quarantined"
    with pytest.raises(RecordRejected, match="JSON"):
        SURFACES["salesforce.attendee_json"].probe(record)


def _session(**changes: Any) -> dict[str, Any]:
    return good_booking_session() | changes


def _detail(*items: dict[str, Any]) -> dict[str, Any]:
    return good_booking_detail() | {"order": {"items": list(items)}}


def _line(**changes: Any) -> dict[str, Any]:
    return {"item_id": 8, "sku": "s", "qty": 1, "total": "1.00"} | changes


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _envelope(payload: dict[str, Any], **request: Any) -> bytes:
    block = {"status": "OK", "resource": "booking", "page": 1, "pages": 1} | request
    return json.dumps({"version": "3.0", "request": block, **payload}).encode()


def _page(**body: Any) -> bytes:
    return json.dumps({"totalSize": 0, "done": True, "records": []} | body).encode()


_GOOD_INDEX = _envelope({"booking/index": {"1": good_index_entry()}})
_TOKEN = {"access_token": "00Dx!token", "instance_url": "https://org.example.invalid"}
_PLUS_ONE = timezone(timedelta(hours=1))

# Inputs that crashed, lost data, stopped paging or leaked into a URL before issue #7, and how each
# ends now. Each line names what happened before.
REGRESSIONS: list[tuple[str, Any, str]] = [
    # PostgreSQL refused the page (NUL in text); UTF-8 encoding crashed the load (lone surrogate)
    ("salesforce.registration", good_registration() | {"Name": "a\x00b"}, "quarantined"),
    ("salesforce.registration", good_registration() | {"Name": "x\ud800"}, "quarantined"),
    # OverflowError: before year 1 once in UTC
    (
        "salesforce.registration",
        good_registration() | {"CreatedDate": "0001-01-01T00:00:00+01:00"},
        "quarantined",
    ),
    # OverflowError from int(inf); 1.5 silently became item "1"
    ("salesforce.session", good_sf_session() | {"Checkfront_Item_Id__c": float("inf")}, "quarantined"),
    ("salesforce.session", good_sf_session() | {"Checkfront_Item_Id__c": 1.5}, "quarantined"),
    # ValueError: more than 4300 digits; "²".isdigit() but int("²") fails; int("--5") fails
    ("checkfront.booking_session", _session(age="9" * 5000), "quarantined"),
    ("checkfront.booking_session", _session(qty="²"), "quarantined"),
    ("checkfront.booking_index", good_index_entry() | {"booking_id": "--5"}, "quarantined"),
    # OverflowError: read_at - age before year 1; integers past their Integer / BigInteger column
    ("checkfront.booking_session", _session(age=10**12), "quarantined"),
    ("checkfront.booking_session", _session(qty=2**40), "quarantined"),
    ("checkfront.booking_index", good_index_entry() | {"booking_id": 2**64}, "quarantined"),
    # upper() of "ﬃ" is three characters: past the 16 of status_id
    ("checkfront.booking_index", good_index_entry() | {"status_id": "ﬃ" * 6}, "quarantined"),
    # two lines with one primary key; a line id longer than its column; a null id became "None"
    ("checkfront.booking_detail", _detail(_line(line_id=1), _line(line_id="1")), "quarantined"),
    ("checkfront.booking_detail", _detail(_line(line_id="x" * 17)), "quarantined"),
    ("checkfront.booking_detail", _detail(_line(line_id=None)), "accepted"),
    # RecursionError filing the quarantined payload (repr of ~1000 levels)
    ("checkfront.booking_session", _session(item={"1": _deep(1000)}), "quarantined"),
    # "." and ".." became other paths; a newline made httpx raise InvalidURL
    ("client.checkfront", HttpAnswer("booking", "..", 200, (), _GOOD_INDEX), "rejected"),
    ("client.checkfront", HttpAnswer("booking", "A\nB", 200, (), _GOOD_INDEX), "rejected"),
    # ValueError from int("x") on the envelope's page; sleep(nan) from Retry-After: nan
    (
        "client.checkfront",
        HttpAnswer("index", "", 200, (), _envelope({"booking/index": []}, page="x")),
        "rejected",
    ),
    ("client.checkfront", HttpAnswer("index", "", 429, (("Retry-After", "nan"),), b"{}"), "rejected"),
    # ValueError on totalSize; "done": "false" and a missing nextRecordsUrl stopped paging silently
    ("client.salesforce", HttpAnswer("query", "", 200, (), _page(totalSize="x")), "rejected"),
    (
        "client.salesforce",
        HttpAnswer("query", "", 200, (), _page(done="false", nextRecordsUrl="/q/2")),
        "rejected",
    ),
    ("client.salesforce", HttpAnswer("query", "", 200, (), _page(done=False)), "rejected"),
    # simple-salesforce's int() on a 5000-digit Sforce-Limit-Info; RecursionError in the JSON parser
    (
        "client.salesforce",
        HttpAnswer("query", "", 200, (("Sforce-Limit-Info", "api-usage=" + "9" * 5000 + "/1"),), _page()),
        "rejected",
    ),
    ("client.salesforce", HttpAnswer("query", "", 200, (), b"[" * 3000 + b"]" * 3000), "rejected"),
    # TypeError on a null token answer; a number accepted as the token; a token for http://
    ("client.salesforce_login", HttpAnswer("login", "", 200, (), b"null"), "rejected"),
    (
        "client.salesforce_login",
        HttpAnswer("login", "", 200, (), json.dumps(_TOKEN | {"access_token": 5}).encode()),
        "rejected",
    ),
    (
        "client.salesforce_login",
        HttpAnswer(
            "login", "", 200, (), json.dumps(_TOKEN | {"instance_url": "http://org.example"}).encode()
        ),
        "rejected",
    ),
    ("client.salesforce_login", HttpAnswer("login", "", 200, (), json.dumps(_TOKEN).encode()), "accepted"),
    # "999-01-01T00:00:00Z": strftime's %Y is not four digits; OverflowError converting to UTC
    (
        "soql.window",
        (datetime(999, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC), ["Id"], None),
        "accepted",
    ),
    (
        "soql.window",
        (datetime(1, 1, 1, tzinfo=_PLUS_ONE), datetime(2000, 1, 1, tzinfo=UTC), ["Id"], None),
        "rejected",
    ),
]


@pytest.mark.parametrize(("surface", "value", "expected"), REGRESSIONS)
def test_inputs_that_broke_regsync_before(surface: str, value: Any, expected: str) -> None:
    assert outcome_of(surface, value) == expected


def test_run_hostile_counts_every_input_of_every_surface() -> None:
    """The counting harness bench/reliability.py calls: every surface tried, every input classified."""
    examples = max(5, EXAMPLES // 4)
    report = run_hostile(examples=examples, seed=3, end_to_end=False)
    assert report.failures == 0, summary(report)
    data = report.as_dict()
    assert set(data["by_surface"]) == set(SURFACES)
    for name, counts in data["by_surface"].items():
        assert 0 < counts["tried"] <= examples, name
        assert counts["tried"] == sum(counts[k] for k in (*OUTCOMES, "failures")), name
    assert data["inputs_tried"] == sum(c["tried"] for c in data["by_surface"].values())
    assert data["inputs_tried"] == data["accepted"] + data["quarantined"] + data["rejected"]
    assert min(data["accepted"], data["quarantined"], data["rejected"]) > 0


@pytest.mark.sandbox
def test_hostile_records_pulled_from_the_sandbox_are_quarantined_and_nothing_is_dropped(
    warehouse_url: str,
) -> None:
    """run_pull ends partial; exactly the hostile records are quarantined with raw payload and reason;
    the strange-but-valid ones and every good record arrive as sent (SQLite and PostgreSQL)."""
    report = HostileReport(examples=0, seed=5)
    check_end_to_end(report, seed=5, warehouse_url=warehouse_url)
    assert report.failures == 0, summary(report)
    counts = report.by_surface["end_to_end"]
    assert counts["quarantined"] > 0
    assert counts["accepted"] > 0


@pytest.mark.sandbox
def test_a_pull_stopped_by_an_unexpected_error_is_ledgered_failed_not_ok(tmp_path: Path) -> None:
    """Input the loaders cannot survive (two bookings sharing a code hit bookings' UNIQUE(code)) raises
    out of run_pull; the run ledger must then say failed, not ok. Any unexpected error stands in here."""

    def crash() -> bool:
        raise RuntimeError("unexpected")

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = open_warehouse(url)
    try:
        with (
            Sandbox.generated(10, seed=4, state_dir=tmp_path / "sandbox") as sandbox,
            pytest.raises(RuntimeError, match="unexpected"),
        ):
            run_pull(sandbox.settings(url), engine=engine, should_stop=crash, sleep=lambda _s: None)
        with engine.connect() as connection:
            (run,) = connection.execute(select(runs.c.outcome, runs.c.message)).all()
    finally:
        engine.dispose()
    assert run.outcome == "failed"
    assert "RuntimeError" in run.message
