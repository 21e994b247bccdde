"""Issue #16 item 4: the bulk registration query keeps Salesforce's 2,000-record batches.

Salesforce returns at most 200 records a batch when a query selects two or more long text area
fields. The registration query selects only the Attendee JSON; the error message (the second long
text area, meaningful only for Failed registrations) is read for the Failed ones in a query of
their own, and still reaches the warehouse exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from regsync.clients.factory import make_clients
from regsync.clients.usage import ApiUsage
from regsync.jobs.pull import run_pull
from regsync.sandbox import Sandbox
from regsync.sandbox.store import REGISTRATION
from regsync.streams.salesforce import ErrorMessages
from regsync.warehouse.tables import registrations

pytestmark = pytest.mark.sandbox
NO_SLEEP = {"sleep": lambda _s: None}
LONG_TEXT = ("conference360__Attendee_JSON__c", "conference360__Error_Message__c")


def registration_queries(box: Sandbox) -> list[str]:
    return [
        q
        for r in box.requests
        if r.endpoint == "salesforce.query"
        for q in r.query.get("q", [])
        if "Event_Registration_Submission__c" in q
    ]


def test_registration_queries_select_one_long_text_area_and_failed_messages_arrive(engine: Engine) -> None:
    with Sandbox.generated(2500, seed=4) as box:
        failed = {
            r["Id"]: r["conference360__Error_Message__c"]
            for r in box.store.salesforce.tables[REGISTRATION].values()
            if r["conference360__Status__c"] == "Failed"
        }
        assert any(failed.values()), "the dataset has failed registrations with messages"
        report = run_pull(box.settings(), engine=engine, streams=("registrations",), **NO_SLEEP)
        assert report.outcome == "ok", report.message
        queries = registration_queries(box)
        for query in queries:
            assert sum(field in query for field in LONG_TEXT) <= 1, query
        bulk = [q for q in queries if "Failed" not in q and "Id IN" not in q]
        messages = [q for q in queries if "= 'Failed'" in q]
        assert len(bulk) == 1
        assert len(messages) == 1
        with engine.connect() as connection:
            stored = dict(
                connection.execute(
                    select(registrations.c.id, registrations.c.error_message).where(
                        registrations.c.status == "Failed"
                    )
                ).all()
            )
        assert stored == failed


def test_a_message_is_taken_only_at_the_stamp_the_bulk_query_read() -> None:
    """Outside the window it is asked for by Id; at another SystemModstamp it is not taken."""
    with Sandbox.generated(300, seed=4) as box:
        settings = box.settings()
        table = box.store.salesforce.tables[REGISTRATION]
        failed = sorted(r["Id"] for r in table.values() if r["conference360__Status__c"] == "Failed")
        first, second = (dict(table[i]) for i in failed[:2])
        second["SystemModstamp"] = "2001-01-01T00:00:00.000+0000"  # what an older read would hold
        for record in (first, second):
            record.pop("conference360__Error_Message__c")
        salesforce, checkfront = make_clients(settings, ApiUsage(), lambda _s: None)
        checkfront.close()
        early = datetime(2000, 1, 1, tzinfo=UTC)
        ErrorMessages(salesforce, settings, early, early + timedelta(days=1)).fill([first, second])
        assert first["conference360__Error_Message__c"] == table[failed[0]]["conference360__Error_Message__c"]
        assert "conference360__Error_Message__c" not in second
