"""The Salesforce emulator answers in the real API's shapes, over TLS, to real clients.

Expected key sets and types are written here in our own words from the Salesforce REST docs and
Blackthorn's sessionRegistration contract (see docs/sandbox.md for the sources).
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from regsync.clients.salesforce import make_http_session
from regsync.sandbox import DEMO, Sandbox
from regsync.sandbox.store import ATTENDEE, EVENT, REGISTRATION, SESSION, SESSION_ATTENDEE, SandboxStore

pytestmark = pytest.mark.sandbox

SF_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
TOKEN_KEYS = {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
QUERY_KEYS = {"totalSize", "done", "records"}
N_REGISTRATIONS = 4500


def build_store() -> SandboxStore:
    store = SandboxStore()
    event = store.insert_sf(EVENT, {"Name": "Summit", "conference360__Status__c": "Active"})
    sessions = [
        store.insert_sf(
            SESSION,
            {"Name": f"Track {i}", "conference360__Event__c": event["Id"], "Checkfront_Item_Id__c": str(i)},
        )
        for i in range(3)
    ]
    for i in range(N_REGISTRATIONS):
        attendee = store.insert_sf(ATTENDEE, {"Name": f"A{i}", "conference360__Event__c": event["Id"]})
        payload = {
            "sessionId": f"cart{i:05d}",
            "attendeeList": [{"id": attendee["Id"], "sessionIds": [sessions[i % 3]["Id"]]}],
        }
        store.insert_sf(
            REGISTRATION,
            {
                "Name": f"ERS-{i:07d}",
                "conference360__Status__c": "Completed" if i % 2 else "Draft",
                "conference360__Event__c": event["Id"],
                "conference360__Attendee_JSON__c": json.dumps(payload),
                "conference360__Amount__c": 10.0 + i,
            },
        )
    deleted = next(iter(store.salesforce.tables[REGISTRATION]))
    store.delete_sf(REGISTRATION, deleted)
    return store


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(build_store()) as box:
        yield box


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url, verify=ssl.create_default_context(cafile=str(sandbox.ca_path)), timeout=30
    ) as client:
        yield client


def password_token(http: httpx.Client) -> dict[str, Any]:
    response = http.post(
        "/services/oauth2/token",
        data=DEMO.password_grant(),
    )
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def sf(sandbox: Sandbox, http: httpx.Client) -> Salesforce:
    token = password_token(http)
    session = make_http_session(sandbox.ca_path, 30)
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="60.0"
    )


def auth(http: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {password_token(http)['access_token']}"}


# -- OAuth -------------------------------------------------------------------------------------


def test_password_grant_answers_the_token_shape(http: httpx.Client, sandbox: Sandbox) -> None:
    body = password_token(http)
    assert set(body) == TOKEN_KEYS
    assert all(isinstance(body[k], str) for k in TOKEN_KEYS)
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == sandbox.base_url
    assert body["issued_at"].isdigit()
    assert body["id"].startswith(f"{sandbox.base_url}/id/00D")  # served locally, never login.salesforce.com


def test_client_credentials_grant_adds_scope(http: httpx.Client) -> None:
    response = http.post(
        "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEMO.sf_consumer_key,
            "client_secret": DEMO.sf_consumer_secret,
        },
    )
    assert response.status_code == 200
    assert set(response.json()) == TOKEN_KEYS | {"scope"}


def test_jwt_bearer_grant(http: httpx.Client, sandbox: Sandbox) -> None:
    assert sandbox.jwt_key_path is not None
    claims = {
        "iss": DEMO.sf_consumer_key,
        "sub": DEMO.sf_username,
        "aud": sandbox.base_url,
        "exp": int(time.time()) + 60,
    }
    good = jwt.encode(claims, sandbox.jwt_key_path.read_text(), algorithm="RS256")
    response = http.post(
        "/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": good},
    )
    assert response.status_code == 200
    assert "access_token" in response.json()
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256")
    refused = http.post(
        "/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged},
    )
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"password": "wrong"}, "invalid_grant"),
        ({"client_id": "nope"}, "invalid_client_id"),
        ({"client_secret": "nope"}, "invalid_client"),
        ({"grant_type": "magic"}, "unsupported_grant_type"),
    ],
)
def test_bad_logins_answer_oauth_errors(http: httpx.Client, change: dict[str, str], error: str) -> None:
    form = DEMO.password_grant() | change
    response = http.post("/services/oauth2/token", data=form)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "error_description"}
    assert response.json()["error"] == error


# -- REST data API -----------------------------------------------------------------------------


def test_wrong_token_is_invalid_session(http: httpx.Client) -> None:
    response = http.get("/services/data/v60.0/limits", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_every_answer_carries_the_limit_header(http: httpx.Client) -> None:
    headers = auth(http)
    first = http.get("/services/data/v60.0/limits", headers=headers).headers["Sforce-Limit-Info"]
    second = http.get("/services/data/v60.0/limits", headers=headers).headers["Sforce-Limit-Info"]
    used = [int(re.match(r"api-usage=(\d+)/(\d+)", h).group(1)) for h in (first, second)]  # type: ignore[union-attr]
    assert used[1] == used[0] + 1


def test_limits_and_describe_shapes(http: httpx.Client) -> None:
    headers = auth(http)
    limits = http.get("/services/data/v60.0/limits", headers=headers).json()
    assert set(limits["DailyApiRequests"]) == {"Max", "Remaining"}
    describe = http.get(f"/services/data/v60.0/sobjects/{REGISTRATION}/describe", headers=headers).json()
    assert describe["name"] == REGISTRATION
    assert describe["keyPrefix"] == "a16"
    status = next(f for f in describe["fields"] if f["name"] == "conference360__Status__c")
    assert [p["value"] for p in status["picklistValues"]] == ["Draft", "To Process", "Completed", "Failed"]


def test_simple_salesforce_pages_through_every_row(sf: Salesforce) -> None:
    soql = (
        f"SELECT Id, SystemModstamp, conference360__Status__c FROM {REGISTRATION} ORDER BY SystemModstamp, Id"
    )
    first = sf.query(soql)
    assert set(first) == QUERY_KEYS | {"nextRecordsUrl"}
    assert first["done"] is False
    assert len(first["records"]) == 2000
    assert re.fullmatch(r"/services/data/v60\.0/query/01g\w+-2000", first["nextRecordsUrl"])
    rows = list(sf.query_all_iter(soql))
    assert len(rows) == N_REGISTRATIONS - 1  # one is deleted
    assert len({r["Id"] for r in rows}) == len(rows)
    record = rows[0]
    assert list(record) == ["attributes", "Id", "SystemModstamp", "conference360__Status__c"]
    assert record["attributes"] == {
        "type": REGISTRATION,
        "url": f"/services/data/v60.0/sobjects/{REGISTRATION}/{record['Id']}",
    }
    assert SF_DATETIME.match(record["SystemModstamp"])
    stamps = [r["SystemModstamp"] for r in rows]
    assert stamps == sorted(stamps)


def test_query_all_returns_deleted_rows(sf: Salesforce) -> None:
    soql = f"SELECT Id, IsDeleted FROM {REGISTRATION} WHERE IsDeleted = true"
    assert sf.query(soql)["totalSize"] == 0
    deleted = list(sf.query_all_iter(soql, include_deleted=True))
    assert len(deleted) == 1
    assert deleted[0]["IsDeleted"] is True


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELEC Id FROM Account", "MALFORMED_QUERY"),
        (f"SELECT Id FROM {REGISTRATION} WHERE", "MALFORMED_QUERY"),
        (f"SELECT Nope__c FROM {REGISTRATION}", "INVALID_FIELD"),
        ("SELECT Id FROM Nothing__c", "INVALID_TYPE"),
    ],
)
def test_bad_soql_gets_the_real_error(sf: Salesforce, soql: str, code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    assert caught.value.status == 400
    assert caught.value.content[0]["errorCode"] == code
    assert set(caught.value.content[0]) >= {"message", "errorCode"}


def test_soql_filters_do_not_silently_return_everything(sf: Salesforce) -> None:
    base = f"SELECT COUNT() FROM {REGISTRATION}"
    total = sf.query(base)["totalSize"]
    drafts = sf.query(f"{base} WHERE conference360__Status__c = 'Draft'")["totalSize"]
    not_drafts = sf.query(f"{base} WHERE conference360__Status__c NOT IN ('Draft')")["totalSize"]
    like = sf.query(f"{base} WHERE Name LIKE 'ERS-000000%'")["totalSize"]
    assert drafts + not_drafts == total
    assert 0 < drafts < total
    assert like == 10 - 1  # ERS-0000000..9 minus the deleted first one


def test_unknown_locator_is_invalid_query_locator(http: httpx.Client) -> None:
    response = http.get("/services/data/v60.0/query/01g5g0000099999-2000", headers=auth(http))
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


# -- Apex REST: sessionRegistration --------------------------------------------------------------


def ids(sandbox: Sandbox, sobject: str) -> list[str]:
    return list(sandbox.store.salesforce.tables[sobject])


def test_session_registration_save_then_submit_then_refuse(sf: Salesforce, sandbox: Sandbox) -> None:
    attendee = ids(sandbox, ATTENDEE)[0]
    sessions = ids(sandbox, SESSION)[:2]
    payload = {
        "id": "",
        "sessionId": "edc0403c-cb61-46d3-af03-56605fc065de",
        "attendeeList": [{"id": attendee, "sessionIds": sessions}],
        "submit": False,
    }
    saved = sf.apexecute("conference360/sessionRegistration", method="POST", data=payload)
    new_id = saved["id"]
    assert re.fullmatch(r"a16\w{15}", new_id)
    assert saved["attendeeList"] == payload["attendeeList"]
    record = sandbox.store.salesforce.tables[REGISTRATION][new_id]
    assert record["conference360__Status__c"] == "Draft"
    before = record["SystemModstamp"]

    submitted = sf.apexecute(
        "conference360/sessionRegistration", method="POST", data=payload | {"id": new_id, "submit": True}
    )
    assert submitted["id"] == new_id
    assert record["conference360__Status__c"] == "Completed"
    assert record["SystemModstamp"] > before
    created = [
        r
        for r in sandbox.store.salesforce.tables[SESSION_ATTENDEE].values()
        if r["conference360__Attendee__c"] == attendee
    ]
    assert sorted(r["conference360__Session__c"] for r in created) == sorted(sessions)

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.apexecute(
            "conference360/sessionRegistration", method="POST", data=payload | {"id": new_id, "submit": True}
        )
    assert caught.value.status == 400
    assert set(caught.value.content) == {"error"}
    assert "already complete" in caught.value.content["error"]


def test_session_registration_validation_and_bad_bodies(http: httpx.Client, sandbox: Sandbox) -> None:
    headers = auth(http) | {"Content-Type": "application/json"}
    url = "/services/apexrest/conference360/sessionRegistration"
    unknown = http.post(
        url,
        headers=headers,
        content=json.dumps({"attendeeList": [{"id": "a0A5g0000000000AAA", "sessionIds": []}]}),
    )
    assert unknown.status_code == 400
    assert set(unknown.json()) == {"error"}
    broken = http.post(url, headers=headers, content=b'{"id": "", "attendeeList": [,]}')
    assert broken.status_code == 400
    assert broken.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    missing = http.post("/services/apexrest/conference360/nothingHere", headers=headers, content=b"{}")
    assert missing.status_code == 404
    assert missing.json() == [
        {"message": "Could not find a match for URL /conference360/nothingHere", "errorCode": "NOT_FOUND"}
    ]


# -- faults ----------------------------------------------------------------------------------------


def test_injected_503_with_retry_after_then_recovery(http: httpx.Client, sandbox: Sandbox) -> None:
    headers = auth(http)
    rule = sandbox.faults.add(endpoint="salesforce.limits", kind="status", status=503, retry_after=2, nth=[1])
    try:
        failed = http.get("/services/data/v60.0/limits", headers=headers)
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "2"
        assert failed.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
        assert http.get("/services/data/v60.0/limits", headers=headers).status_code == 200
    finally:
        sandbox.faults.rules.remove(rule)


def test_token_expiry_and_request_limit(http: httpx.Client, sandbox: Sandbox) -> None:
    headers = auth(http)
    assert sandbox.salesforce is not None
    sandbox.faults.salesforce.token_expire_after = sandbox.salesforce.api_usage
    expired = http.get("/services/data/v60.0/limits", headers=headers)
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    headers = auth(http)  # a new token works again
    assert http.get("/services/data/v60.0/limits", headers=headers).status_code == 200
    sandbox.faults.salesforce.request_limit_after = sandbox.salesforce.api_usage
    try:
        limited = http.get("/services/data/v60.0/limits", headers=headers)
        assert limited.status_code == 403
        assert limited.json() == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
    finally:
        sandbox.faults.salesforce.request_limit_after = None


def test_query_timeout_hits_wide_windows_but_not_queries_by_id(http: httpx.Client, sandbox: Sandbox) -> None:
    headers = auth(http)
    some_id = next(iter(sandbox.store.salesforce.tables[REGISTRATION]))
    wide = f"SELECT Id FROM {REGISTRATION} WHERE SystemModstamp >= 2000-01-01T00:00:00Z"
    narrow = f"{wide} AND SystemModstamp < 2000-01-01T00:00:10Z"
    by_ids = f"SELECT Id FROM {REGISTRATION} WHERE Id IN ('{some_id}')"
    sandbox.faults.salesforce.query_timeout_window_s = 60
    try:
        answers = {
            soql: http.get("/services/data/v60.0/queryAll", params={"q": soql}, headers=headers)
            for soql in (wide, narrow, by_ids)
        }
    finally:
        sandbox.faults.salesforce.query_timeout_window_s = None
    assert answers[wide].status_code == 400
    assert answers[wide].json()[0]["errorCode"] == "QUERY_TIMEOUT"
    assert answers[narrow].status_code == 200
    assert answers[by_ids].status_code == 200
    assert [row["Id"] for row in answers[by_ids].json()["records"]] == [some_id]
