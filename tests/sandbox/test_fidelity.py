"""The sandbox as the vendors document it (issue #14), checked with clients regsync did not write:
`requests` (a generator body is sent chunked), `http.client` on one keep-alive connection, raw TLS
sockets for broken framing, and simple-salesforce. One section per item of the issue; the sources
of each expected behaviour are in docs/sandbox.md.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from regsync.clients.salesforce import make_http_session
from regsync.sandbox import DEMO, Sandbox
from regsync.sandbox.faults import FaultPlanError
from regsync.sandbox.http import LoggedRequest
from regsync.sandbox.store import (
    ATTENDEE,
    EVENT,
    REGISTRATION,
    SESSION,
    SESSION_ATTENDEE,
    SandboxStore,
    id_checksum,
)
from tests.support.crash import _is_state_page

pytestmark = pytest.mark.sandbox

N_REGISTRATIONS = 2500
LONG_TEXTS = ("conference360__Attendee_JSON__c", "conference360__Error_Message__c")
NOT_FOUND = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
# Fixed "today" for the date literals: 2024-03-15 12:00 UTC (a leap year: February has 29 days).
TODAY = date(2024, 3, 15)


def build_store() -> SandboxStore:
    store = SandboxStore()
    noon = datetime(2024, 3, 15, 12, tzinfo=UTC).timestamp()
    store.clock.advance(noon - store.clock.now())
    day = date(2024, 2, 1)
    while day <= date(2024, 4, 30):  # one Event a day, Feb 1 to Apr 30
        store.insert_sf(EVENT, {"Name": f"E{day}", "conference360__Event_Start_Date__c": day.isoformat()})
        day += timedelta(days=1)
    event = store.insert_sf(EVENT, {"Name": "undated"})
    session = store.insert_sf(SESSION, {"Name": "S", "conference360__Event__c": event["Id"]})
    attendee = store.insert_sf(ATTENDEE, {"Name": "A", "conference360__Event__c": event["Id"]})
    store.insert_sf(SESSION_ATTENDEE, {"Name": "SA", "conference360__Session__c": session["Id"]})
    for i in range(N_REGISTRATIONS):
        store.insert_sf(
            REGISTRATION,
            {
                "Name": f"ERS-{i:07d}",
                "conference360__Status__c": "Draft",
                "conference360__Attendee_JSON__c": json.dumps({"attendeeList": [{"id": attendee["Id"]}]}),
                "conference360__Error_Message__c": None,
            },
        )
    store.delete_sf(REGISTRATION, next(iter(store.salesforce.tables[REGISTRATION])))
    return store


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(build_store()) as sandbox:
        yield sandbox


def session_for(box: Sandbox) -> requests.Session:
    """A plain requests session trusting the sandbox's CA (trust_env off: REQUESTS_CA_BUNDLE would win)."""
    session = requests.Session()
    session.verify = str(box.ca_path)
    session.trust_env = False
    return session


@pytest.fixture(scope="module")
def web(box: Sandbox) -> Iterator[requests.Session]:
    with session_for(box) as session:
        yield session


@pytest.fixture
def token(box: Sandbox, web: requests.Session) -> dict[str, Any]:
    answer = web.post(f"{box.base_url}/services/oauth2/token", data=DEMO.password_grant())
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def sf(box: Sandbox, token: dict[str, Any]) -> Salesforce:
    return Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        session=make_http_session(box.ca_path, 30),
        version="60.0",
    )


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['access_token']}"}


def tls_context(box: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(box.ca_path))


def raw_exchange(box: Sandbox, data: bytes) -> bytes:
    """Send raw bytes over TLS, read until the server closes the connection."""
    port = int(box.base_url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as plain,
        tls_context(box).wrap_socket(plain, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- 1. HTTP: chunked bodies, unreadable bodies, dropped handshakes ------------------------------


def form_chunks(form: dict[str, str]) -> Iterator[bytes]:
    """A form body as a generator: requests sends it with Transfer-Encoding: chunked."""
    for index, (key, value) in enumerate(form.items()):
        yield (("&" if index else "") + requests.compat.urlencode({key: value})).encode()


def test_chunked_oauth_token_request_is_read(box: Sandbox, web: requests.Session) -> None:
    answer = web.post(
        f"{box.base_url}/services/oauth2/token",
        data=form_chunks(DEMO.password_grant()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in answer.request.headers
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"].startswith("00D")


def test_chunked_checkfront_post_keeps_its_parameters() -> None:
    with Sandbox.generated(registrations=20, seed=5) as generated, session_for(generated) as web:
        booking_id, booking = next(iter(generated.store.checkfront.bookings.items()))
        new_status = "VOID" if booking["status_id"] != "VOID" else "PAID"
        answer = web.post(
            f"{generated.base_url}/api/3.0/booking/{booking_id}/update",
            data=form_chunks({"status_id": new_status}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Bearer {DEMO.cf_token}",
            },
        )
        assert answer.request.headers.get("Transfer-Encoding") == "chunked"
        assert answer.json()["request"]["status"] == "OK", answer.text
        assert generated.store.checkfront.bookings[booking_id]["status_id"] == new_status


def test_chunked_request_then_another_on_one_keep_alive_connection(box: Sandbox) -> None:
    port = int(box.base_url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(box), timeout=10)
    form = requests.compat.urlencode(DEMO.password_grant()).encode()
    connection.request(
        "POST",
        "/services/oauth2/token",
        body=iter([form[:10], form[10:]]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        encode_chunked=True,
    )
    first = connection.getresponse()
    token = json.loads(first.read())["access_token"]
    assert first.status == 200
    sock = connection.sock
    connection.request("GET", "/services/data/v60.0/limits", headers={"Authorization": f"Bearer {token}"})
    second = connection.getresponse()
    assert second.status == 200
    assert "DailyApiRequests" in json.loads(second.read())
    assert connection.sock is sock  # the same connection, still in step
    connection.close()


@pytest.mark.parametrize(
    ("framing", "path"),
    [
        (b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n", "/services/oauth2/token"),
        (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "/services/oauth2/token"),
        (b"Transfer-Encoding: gzip\r\n\r\n\x1f\x8b", "/services/oauth2/token"),
        (b"Content-Length: twelve\r\n\r\ngrant_type=x", "/services/oauth2/token"),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "/services/oauth2/token"),
        (b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n", "/api/3.0/booking/session"),
    ],
)
def test_unreadable_body_gets_400_and_a_closed_connection(box: Sandbox, framing: bytes, path: str) -> None:
    request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + framing
    # A second request pipelined behind it must not be read as part of the broken one.
    reply = raw_exchange(box, request + b"GET /services/data/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert b"Connection: close" in head
    assert reply.count(b"HTTP/1.1 ") == 1  # nothing answered after it: the connection was closed
    payload = json.loads(body)
    if path.startswith("/api/"):
        assert payload["error"] == "invalid_request"
    else:
        assert payload[0]["errorCode"] == "BAD_REQUEST"


def test_dropped_tls_handshake_is_one_log_line(
    box: Sandbox, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    port = int(box.base_url.rsplit(":", 1)[1])
    untrusting = ssl.create_default_context()  # the system CAs, not the sandbox's

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="regsync.sandbox"):
        with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            untrusting.wrap_socket(plain, server_hostname="127.0.0.1")
        deadline = time.monotonic() + 10  # the server thread logs once it has read the client's alert
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.05)
        # The server answers the next client normally.
        assert requests.get(f"{box.base_url}/services/data/", verify=str(box.ca_path), timeout=10).ok
    lines = logged()
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    assert lines[0].startswith("sandbox: TLS handshake with 127.0.0.1:")
    assert "Traceback" not in capfd.readouterr().err


# -- 2. API versions ---------------------------------------------------------------------------


def test_versions_31_to_65_are_listed_and_each_works(
    box: Sandbox, web: requests.Session, token: dict[str, Any]
) -> None:
    listed = web.get(f"{box.base_url}/services/data/").json()
    versions = [entry["version"] for entry in listed]
    assert versions == [f"{major}.0" for major in range(31, 66)]
    assert all(entry["url"] == f"/services/data/v{entry['version']}" for entry in listed)
    for version in versions:
        answer = web.get(f"{box.base_url}/services/data/v{version}/limits", headers=bearer(token))
        assert answer.status_code == 200, version
    assert web.get(f"{box.base_url}/services/data/v30.0/limits", headers=bearer(token)).json() == NOT_FOUND


@pytest.mark.parametrize("version", ["50.0", "51.0", "31.0", "65.0"])
def test_simple_salesforce_at_old_and_new_versions(box: Sandbox, token: dict[str, Any], version: str) -> None:
    sf = Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        session=make_http_session(box.ca_path, 30),
        version=version,
    )
    assert sf.query(f"SELECT COUNT() FROM {EVENT}")["totalSize"] == 91
    assert "DailyApiRequests" in sf.limits()


# -- 3. OAuth and identity -----------------------------------------------------------------------


def test_client_credentials_in_a_basic_header(box: Sandbox, web: requests.Session) -> None:
    form = {k: v for k, v in DEMO.password_grant().items() if k not in ("client_id", "client_secret")}
    answer = web.post(
        f"{box.base_url}/services/oauth2/token",
        data=form,
        auth=(DEMO.sf_consumer_key, DEMO.sf_consumer_secret),
    )
    assert answer.status_code == 200, answer.text
    wrong = web.post(f"{box.base_url}/services/oauth2/token", data=form, auth=(DEMO.sf_consumer_key, "nope"))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_client"
    credentials = web.post(
        f"{box.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={
            "Authorization": "Basic "
            + base64.b64encode(f"{DEMO.sf_consumer_key}:{DEMO.sf_consumer_secret}".encode()).decode()
        },
    )
    assert credentials.status_code == 200
    assert credentials.json()["scope"] == "api"


def test_tokens_are_shaped_like_salesforces(token: dict[str, Any]) -> None:
    access = token["access_token"]
    assert re.fullmatch(r"00D[0-9A-Za-z]{12}![0-9A-Za-z.]+", access), access
    assert "-" not in access


def test_identity_url_and_userinfo_are_served_locally(
    box: Sandbox, web: requests.Session, token: dict[str, Any]
) -> None:
    identity_url = token["id"]
    assert identity_url.startswith(f"{box.base_url}/id/")
    org18, user18 = identity_url.rsplit("/", 2)[1:]
    assert org18.startswith("00D")
    assert len(org18) == 18
    assert id_checksum(org18[:15]) == org18[15:]
    assert user18.startswith("005")
    assert len(user18) == 18
    assert id_checksum(user18[:15]) == user18[15:]
    identity = web.get(identity_url, headers=bearer(token))
    assert identity.status_code == 200
    body = identity.json()
    assert body["id"] == identity_url
    assert (body["user_id"], body["organization_id"], body["username"]) == (user18, org18, DEMO.sf_username)
    assert body["urls"]["rest"] == f"{box.base_url}/services/data/v{{version}}/"
    userinfo = web.get(f"{box.base_url}/services/oauth2/userinfo", headers=bearer(token))
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == identity_url
    assert userinfo.json()["preferred_username"] == DEMO.sf_username
    missing = web.get(identity_url)
    assert (missing.status_code, missing.text) == (403, "Missing_OAuth_Token")
    bad = web.get(f"{box.base_url}/services/oauth2/userinfo", headers={"Authorization": "Bearer nope"})
    assert (bad.status_code, bad.text) == (403, "Bad_OAuth_Token")


# -- 4. Query batches ---------------------------------------------------------------------------


def first_page(
    web: requests.Session, box: Sandbox, token: dict[str, Any], soql: str, **headers: str
) -> dict[str, Any]:
    answer = web.get(
        f"{box.base_url}/services/data/v60.0/query", params={"q": soql}, headers=bearer(token) | headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("fields", "options", "expected"),
    [
        ("Id", None, 2000),
        ("Id", "batchSize=500", 500),
        ("Id", "batchSize=100", 200),  # below the minimum: the minimum
        ("Id", "batchSize=5000", 2000),  # above the maximum: the maximum
        ("Id, conference360__Attendee_JSON__c", None, 2000),  # one long text area: no cap
        ("Id, " + ", ".join(LONG_TEXTS), None, 200),  # two: at most 200
        ("Id, " + ", ".join(LONG_TEXTS), "batchSize=2000", 200),
        ("Id, " + ", ".join(LONG_TEXTS), "batchSize=300", 200),
    ],
)
def test_batch_size_rules(
    box: Sandbox,
    web: requests.Session,
    token: dict[str, Any],
    fields: str,
    options: str | None,
    expected: int,
) -> None:
    headers = {"Sforce-Query-Options": options} if options else {}
    page = first_page(web, box, token, f"SELECT {fields} FROM {REGISTRATION}", **headers)
    assert len(page["records"]) == expected
    assert page["totalSize"] == N_REGISTRATIONS - 1
    assert page["done"] is False


def test_simple_salesforce_reads_every_row_under_the_long_text_cap(sf: Salesforce) -> None:
    rows = sf.query_all(f"SELECT Id, {', '.join(LONG_TEXTS)} FROM {REGISTRATION}")["records"]
    assert len(rows) == N_REGISTRATIONS - 1
    assert len({row["Id"] for row in rows}) == len(rows)


def test_long_text_areas_cannot_be_filtered_or_sorted(sf: Salesforce) -> None:
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    for soql in (
        f"SELECT Id FROM {REGISTRATION} WHERE conference360__Error_Message__c = null",
        f"SELECT Id FROM {REGISTRATION} ORDER BY conference360__Attendee_JSON__c",
    ):
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query(soql)
        assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_smaller_batches_option_still_delivers_every_row_once() -> None:
    store = SandboxStore()
    for i in range(900):
        store.insert_sf(REGISTRATION, {"Name": f"ERS-{i}"})
    with Sandbox(store, smaller_batches=True) as smaller, session_for(smaller) as web:
        token = web.post(f"{smaller.base_url}/services/oauth2/token", data=DEMO.password_grant()).json()
        sizes = []
        page = first_page(
            web, smaller, token, f"SELECT Id FROM {REGISTRATION}", **{"Sforce-Query-Options": "batchSize=200"}
        )
        ids = [r["Id"] for r in page["records"]]
        sizes.append(len(page["records"]))
        while not page["done"]:
            page = web.get(smaller.base_url + page["nextRecordsUrl"], headers=bearer(token)).json()
            ids += [r["Id"] for r in page["records"]]
            sizes.append(len(page["records"]))
        assert sorted(ids) == sorted(store.salesforce.tables[REGISTRATION])
        assert all(1 <= size <= 200 for size in sizes)
        assert any(size < 200 for size in sizes[:-1])  # a page short of the batch before the end
        sf = Salesforce(
            instance_url=token["instance_url"],
            session_id=token["access_token"],
            session=make_http_session(smaller.ca_path, 30),
        )
        assert len(sf.query_all(f"SELECT Id FROM {REGISTRATION}")["records"]) == 900


# -- 5. queryAll continues under /query/ --------------------------------------------------------


def test_query_all_next_records_url_uses_query_and_both_continue_it(
    box: Sandbox, web: requests.Session, token: dict[str, Any]
) -> None:
    answer = web.get(
        f"{box.base_url}/services/data/v60.0/queryAll",
        params={"q": f"SELECT Id, IsDeleted FROM {REGISTRATION}"},
        headers=bearer(token) | {"Sforce-Query-Options": "batchSize=1000"},
    ).json()
    next_url = answer["nextRecordsUrl"]
    assert re.fullmatch(r"/services/data/v60\.0/query/01g\w+-1000", next_url), next_url
    via_query = web.get(box.base_url + next_url, headers=bearer(token)).json()
    via_query_all = web.get(
        box.base_url + next_url.replace("/query/", "/queryAll/"), headers=bearer(token)
    ).json()
    assert via_query == via_query_all  # (a middle page: the cursor stays open after it)
    rows = answer["records"] + via_query["records"]
    while not via_query["done"]:
        via_query = web.get(box.base_url + via_query["nextRecordsUrl"], headers=bearer(token)).json()
        rows += via_query["records"]
    assert len(rows) == N_REGISTRATIONS  # the deleted row too
    assert sum(r["IsDeleted"] for r in rows) == 1


def test_simple_salesforce_query_all_include_deleted(sf: Salesforce) -> None:
    rows = sf.query_all(f"SELECT Id FROM {REGISTRATION}", include_deleted=True)["records"]
    assert len(rows) == N_REGISTRATIONS


def test_crash_harness_tells_query_all_pages_by_the_logged_cursor(
    box: Sandbox, web: requests.Session, token: dict[str, Any]
) -> None:
    box.clear_requests()
    for kind in ("queryAll", "query"):
        page = web.get(
            f"{box.base_url}/services/data/v60.0/{kind}",
            params={"q": f"SELECT Id FROM {REGISTRATION}"},
            headers=bearer(token),
        ).json()
        web.get(box.base_url + page["nextRecordsUrl"], headers=bearer(token))
    log = [r for r in box.requests if r.endpoint.startswith("salesforce.query")]
    assert [(r.endpoint, "/queryAll" in r.path) for r in log] == [
        ("salesforce.query", True),
        ("salesforce.query_more", False),  # a queryAll page, under /query/
        ("salesforce.query", False),
        ("salesforce.query_more", False),
    ]
    assert [_is_state_page(r) for r in log] == [True, True, False, False]
    stray = LoggedRequest(
        0, 0.0, "GET", "/services/data/v60.0/query/01g-2000", {}, b"", 200, "salesforce.query_more"
    )
    assert _is_state_page(stray) is False


# -- 6. SOQL date literals -------------------------------------------------------------------------


def event_days(sf: Salesforce, where: str) -> list[str]:
    rows = sf.query_all(f"SELECT conference360__Event_Start_Date__c FROM {EVENT} WHERE {where}")["records"]
    return sorted(str(r["conference360__Event_Start_Date__c"]) for r in rows)


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("= TODAY", ["2024-03-15"]),
        ("= YESTERDAY", ["2024-03-14"]),
        ("= TOMORROW", ["2024-03-16"]),
        ("= LAST_N_DAYS:2", ["2024-03-13", "2024-03-14", "2024-03-15"]),  # includes today
        ("= NEXT_N_DAYS:2", ["2024-03-16", "2024-03-17"]),  # starts tomorrow
        ("= N_DAYS_AGO:3", ["2024-03-12"]),
        ("= THIS_MONTH", days("2024-03-01", "2024-03-31")),
        ("= LAST_MONTH", days("2024-02-01", "2024-02-29")),
        ("> TODAY", days("2024-03-16", "2024-04-30")),
        (">= TODAY", days("2024-03-15", "2024-04-30")),
        ("< TODAY", days("2024-02-01", "2024-03-14")),
        ("<= TODAY", days("2024-02-01", "2024-03-15")),
        ("> LAST_MONTH", days("2024-03-01", "2024-04-30")),
        ("< THIS_MONTH", days("2024-02-01", "2024-02-29")),
        ("!= THIS_MONTH", ["None", *days("2024-02-01", "2024-02-29"), *days("2024-04-01", "2024-04-30")]),
    ],
)
def test_date_literals_on_a_date_field(sf: Salesforce, where: str, expected: list[str]) -> None:
    assert event_days(sf, f"conference360__Event_Start_Date__c {where}") == sorted(expected)


def test_date_literals_on_a_datetime_field(sf: Salesforce) -> None:
    # Every record was created "today" (the store's clock): a datetime compares against UTC days.
    total = sf.query(f"SELECT COUNT() FROM {EVENT}")["totalSize"]
    assert sf.query(f"SELECT COUNT() FROM {EVENT} WHERE CreatedDate = TODAY")["totalSize"] == total
    assert sf.query(f"SELECT COUNT() FROM {EVENT} WHERE CreatedDate = LAST_N_DAYS:1")["totalSize"] == total
    assert sf.query(f"SELECT COUNT() FROM {EVENT} WHERE CreatedDate < TODAY")["totalSize"] == 0
    assert sf.query(f"SELECT COUNT() FROM {EVENT} WHERE CreatedDate = YESTERDAY")["totalSize"] == 0
    assert sf.query(f"SELECT COUNT() FROM {EVENT} WHERE CreatedDate = NEXT_N_DAYS:5")["totalSize"] == 0


def test_date_literal_on_a_text_field_is_a_type_error(sf: Salesforce) -> None:
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(f"SELECT Id FROM {EVENT} WHERE Name = TODAY")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


# -- 7. 15-character ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id15", "id18"),
    [  # pairs published by third-party converters (docs/sandbox.md)
        ("70130000001tcyI", "70130000001tcyIAAQ"),
        ("00558000001N0Ke", "00558000001N0KeAAK"),
        ("003G000001SUbc4", "003G000001SUbc4IAD"),
    ],
)
def test_id_checksum_matches_published_pairs(id15: str, id18: str) -> None:
    assert id15 + id_checksum(id15) == id18


def test_fifteen_character_ids_wherever_salesforce_takes_them(sf: Salesforce, box: Sandbox) -> None:
    event18 = sf.query(f"SELECT Id FROM {EVENT} WHERE Name = 'undated'")["records"][0]["Id"]
    event15 = event18[:15]
    assert sf.conference360__Event__c.get(event15)["Id"] == event18
    assert sf.conference360__Event__c.update(event15, {"Name": "renamed"}) == 204
    assert sf.conference360__Event__c.get(event18)["Name"] == "renamed"
    assert sf.query(f"SELECT Id FROM {EVENT} WHERE Id = '{event15}'")["records"][0]["Id"] == event18
    tables = box.store.salesforce.tables
    attendee18 = next(iter(tables[ATTENDEE]))
    session18 = next(iter(tables[SESSION]))
    saved = sf.apexecute(
        "conference360/sessionRegistration",
        method="POST",
        data={"attendeeList": [{"id": attendee18[:15], "sessionIds": [session18[:15]]}]},
    )
    registration18 = saved["id"]
    assert len(registration18) == 18
    assert saved["attendeeList"] == [{"id": attendee18, "sessionIds": [session18]}]
    submitted = sf.apexecute(
        "conference360/sessionRegistration",
        method="POST",
        data={
            "id": registration18[:15],
            "attendeeList": [{"id": attendee18, "sessionIds": [session18]}],
            "submit": True,
        },
    )
    assert submitted["id"] == registration18  # the same record, answered in its 18-character form
    assert tables[REGISTRATION][registration18]["conference360__Status__c"] == "Completed"
    links = [r for r in tables[SESSION_ATTENDEE].values() if r["conference360__Attendee__c"] == attendee18]
    assert [r["conference360__Session__c"] for r in links] == [session18]
    assert sf.conference360__Event__c.delete(event15) == 204
    assert tables[EVENT][event18]["IsDeleted"] is True


# -- 8. describe and limits ----------------------------------------------------------------------

FIELD_ATTRIBUTES = {
    "name", "label", "type", "soapType", "custom", "nillable", "createable", "updateable", "filterable",
    "sortable", "length", "precision", "scale", "extraTypeInfo", "referenceTo", "relationshipName",
    "picklistValues", "calculated", "externalId", "unique", "idLookup", "nameField", "defaultedOnCreate",
}  # fmt: skip


def test_describe_carries_the_attributes_clients_read(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.conference360__Event_Registration_Submission__c.describe()["fields"]}
    for entry in fields.values():
        assert set(entry) >= FIELD_ATTRIBUTES, entry["name"]
    assert fields["Id"]["soapType"] == "tns:ID"
    assert (fields["Id"]["createable"], fields["Id"]["updateable"]) == (False, False)
    assert (fields["SystemModstamp"]["updateable"], fields["SystemModstamp"]["soapType"]) == (
        False,
        "xsd:dateTime",
    )
    assert (fields["Name"]["createable"], fields["Name"]["updateable"], fields["Name"]["length"]) == (
        True,
        True,
        255,
    )
    amount = fields["conference360__Amount__c"]
    assert (amount["type"], amount["soapType"], amount["precision"], amount["scale"]) == (
        "currency",
        "xsd:double",
        18,
        2,
    )
    event = fields["conference360__Event__c"]
    assert (event["referenceTo"], event["relationshipName"], event["soapType"]) == (
        [EVENT],
        "conference360__Event__r",
        "tns:ID",
    )
    for name in LONG_TEXTS:
        long_text = fields[name]
        assert (long_text["type"], long_text["length"], long_text["extraTypeInfo"]) == (
            "textarea",
            131072,
            "plaintextarea",
        )
        assert (long_text["filterable"], long_text["sortable"]) == (False, False)
    assert fields["Checkfront_Booking_Code__c"]["filterable"] is True
    links = {f["name"]: f for f in sf.conference360__Session_Attendee__c.describe()["fields"]}
    assert links["conference360__Session__c"]["referenceTo"] == [SESSION]
    assert links["conference360__Attendee__c"]["referenceTo"] == [ATTENDEE]


def test_limits_carry_the_usual_keys(sf: Salesforce) -> None:
    limits = sf.limits()
    for key in (
        "DailyApiRequests",
        "DailyAsyncApexExecutions",
        "DailyBulkApiBatches",
        "DailyBulkV2QueryJobs",
        "DailyStreamingApiEvents",
        "DataStorageMB",
        "FileStorageMB",
        "HourlyODataCallout",
        "SingleEmail",
        "MassEmail",
    ):
        assert set(limits[key]) == {"Max", "Remaining"}, key
    assert all(0 <= v["Remaining"] <= v["Max"] for v in limits.values())
    before = limits["DailyApiRequests"]["Remaining"]
    assert sf.limits()["DailyApiRequests"]["Remaining"] == before - 1


# -- 9. Fault plans count from when they are added ----------------------------------------------


def test_plan_thresholds_count_from_when_the_plan_is_added(
    box: Sandbox, web: requests.Session, token: dict[str, Any]
) -> None:
    url = f"{box.base_url}/services/data/v60.0/limits"
    for _ in range(5):  # usage before the plan must not count
        assert web.get(url, headers=bearer(token)).status_code == 200
    assert web.post(f"{box.base_url}/__sandbox/faults", json={"salesforce": {"request_limit_after": 2}}).ok
    statuses = [web.get(url, headers=bearer(token)).status_code for _ in range(3)]
    assert statuses == [200, 200, 403]
    box.faults.clear()
    own = web.post(f"{box.base_url}/services/oauth2/token", data=DEMO.password_grant()).json()
    for _ in range(3):
        web.get(url, headers=bearer(own))
    box.faults.load({"salesforce": {"token_expire_after": 1}})
    statuses = [web.get(url, headers=bearer(own)).status_code for _ in range(2)]
    assert statuses == [200, 401]
    box.faults.clear()


def test_locator_faults_count_from_when_added(
    box: Sandbox, web: requests.Session, token: dict[str, Any]
) -> None:
    def next_page() -> int:
        page = first_page(web, box, token, f"SELECT Id FROM {REGISTRATION}")
        return web.get(box.base_url + page["nextRecordsUrl"], headers=bearer(token)).status_code

    assert next_page() == 200
    box.faults.load({"salesforce": {"invalid_locator_nth": [2]}})
    assert [next_page(), next_page(), next_page()] == [200, 400, 200]
    summary = web.get(f"{box.base_url}/__sandbox/faults").json()
    assert summary.get("invalid_locator") == 1
    assert not [key for key in summary if key.startswith("_")]  # no internal counters shown
    box.faults.clear()


@pytest.mark.parametrize("counter", ["seen", "fired"])
def test_rule_counters_are_not_plan_fields(counter: str) -> None:
    sandbox = Sandbox(SandboxStore())
    with pytest.raises(FaultPlanError, match="bad fault rule"):
        sandbox.faults.load({"rules": [{"endpoint": "*", "kind": "drop", "nth": [1], counter: 5}]})
    with pytest.raises(FaultPlanError, match="bad fault rule"):
        sandbox.faults.load({"salesforce": {"calls": 10}})


def test_a_rule_added_late_counts_its_own_calls(
    box: Sandbox, web: requests.Session, token: dict[str, Any]
) -> None:
    url = f"{box.base_url}/services/data/v60.0/limits"
    for _ in range(3):
        web.get(url, headers=bearer(token))
    box.faults.add(endpoint="salesforce.limits", kind="status", status=503, nth=[2])
    assert [web.get(url, headers=bearer(token)).status_code for _ in range(3)] == [200, 503, 200]
    box.faults.clear()


# -- 10. Unknown resources -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/services/data/v60.0/composite",
        "/services/data/v60.0/composite/sobjects",
        "/services/data/v60.0/search",
        "/services/data/v60.0/parameterizedSearch",
        "/services/data/v60.0/tooling/query",
        "/services/data/v60.0/jobs/query",
        "/services/data/v60.0/sobjects/Account/describe",
        "/services/data/v60.0/sobjects/Account",
        "/services/data/v60.0/recent",
        "/services/data/v60.0/analytics/reports",
        "/services/async/60.0/job",
    ],
)
def test_unimplemented_resources_answer_salesforces_not_found(
    box: Sandbox, web: requests.Session, token: dict[str, Any], path: str
) -> None:
    answer = web.get(box.base_url + path, headers=bearer(token))
    assert answer.status_code == 404
    assert answer.json() == NOT_FOUND
