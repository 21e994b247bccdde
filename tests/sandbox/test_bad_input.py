"""Bad input gets the real API's error, never a 500 with a traceback.

Malformed SOQL, unknown objects and fields, broken JSON bodies, wrong or missing credentials,
unknown paths, wrong methods, absurd query strings and parameters, sent over TLS to every route
of both emulators. Each answer must be a client error in the shape the vendor documents:

- Salesforce REST: a JSON array of {message, errorCode[, fields]} (OAuth: {error, error_description}).
- Blackthorn Apex REST: {"error": "..."}; a body that is not JSON fails in the platform first, with
  Salesforce's JSON_PARSER_ERROR array.
- Checkfront: a "critical" OAuth-style {error, error_description} for credentials, else the usual
  envelope with request.status "ERROR" and request.error {id, title, details, data}. The docs give
  no HTTP status for the latter; the sandbox answers it with 200 (404/405 for unknown paths and
  methods), as documented in docs/sandbox.md, so for Checkfront the body decides, not the status.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regsync.sandbox import DEMO, Sandbox
from regsync.sandbox.store import ATTENDEE, EVENT, REGISTRATION, SESSION

pytestmark = pytest.mark.sandbox

V = "/services/data/v60.0"
APEX = "/services/apexrest/conference360/sessionRegistration"
EVENT_URL = f"{V}/sobjects/{EVENT}"
CF = "/api/3.0"
CF_AUTH = (DEMO.cf_api_key, DEMO.cf_api_secret)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
LEAKS = (b"Traceback", b"UNKNOWN_EXCEPTION", b'File "')
CF_ENVELOPE = {"version", "account_id", "host_id", "name", "locale", "request"}
CF_ERROR = {"id", "title", "details", "data"}
# Text that httpx can put in a URL: any code point except lone surrogates.
URL_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)


# ---------------------------------------------------------------------------------------------
# Fixtures and shape checks
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(registrations=60, seed=11) as box:
        yield box


class _NoCookies(DefaultCookiePolicy):
    """Keep no Set-Cookie: a session cookie from one call must not name the cart of the next."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


@pytest.fixture(scope="module")
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url,
        verify=ssl.create_default_context(cafile=str(sandbox.ca_path)),
        timeout=10,  # an answer that takes longer is a hang, and a failure
        cookies=CookieJar(policy=_NoCookies()),
    ) as client:
        yield client


@pytest.fixture(scope="module")
def sf_auth(http: httpx.Client) -> dict[str, str]:
    response = http.post(
        "/services/oauth2/token",
        data=DEMO.password_grant(),
    )
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def first_id(sandbox: Sandbox, sobject: str) -> str:
    return next(iter(sandbox.store.salesforce.tables[sobject]))


def no_leak(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    for marker in LEAKS:
        assert marker not in response.content, response.text[:300]


def sf_error(response: httpx.Response, status: int, code: str | tuple[str, ...] | None = None) -> list[Any]:
    """Salesforce's REST error: a JSON array of {message, errorCode[, fields]}."""
    no_leak(response)
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body, list), body
    assert body
    for error in body:
        assert {"message", "errorCode"} <= set(error) <= {"message", "errorCode", "fields"}, error
        assert isinstance(error["message"], str)
        assert isinstance(error["errorCode"], str)
        assert error["message"]
    if code is not None:
        codes = (code,) if isinstance(code, str) else code
        assert body[0]["errorCode"] in codes, body
    return body


def oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An OAuth2 error: {error, error_description} and nothing else."""
    no_leak(response)
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert all(isinstance(value, str) for value in body.values())
    assert body["error"] == error
    return body


def blackthorn_error(response: httpx.Response, contains: str) -> str:
    """Blackthorn's documented Apex REST error: HTTP 400, {"error": "..."}."""
    no_leak(response)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    assert contains in body["error"]
    return body["error"]


def cf_error(response: httpx.Response, error_id: str | None = None, *, status: int = 200) -> dict[str, Any]:
    """Checkfront's request-level error: the envelope with request.status "ERROR"."""
    no_leak(response)
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == CF_ENVELOPE
    request = body["request"]
    assert request["status"] == "ERROR"
    assert set(request["error"]) == CF_ERROR
    assert all(isinstance(request["error"][key], str) for key in ("id", "title", "details"))
    assert isinstance(request["timestamp"], float)
    if error_id is not None:
        assert request["error"]["id"] == error_id, request["error"]
    return request["error"]


def cf_critical(response: httpx.Response, error: str) -> None:
    """Checkfront's critical error: no envelope, an OAuth-style body."""
    no_leak(response)
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert "request" not in body


def cf_ok(response: httpx.Response) -> dict[str, Any]:
    no_leak(response)
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert body["request"]["status"] == "OK", body["request"]
    return body


# ---------------------------------------------------------------------------------------------
# Salesforce: SOQL
# ---------------------------------------------------------------------------------------------

BAD_SOQL = [
    ("SELECT FROM", "MALFORMED_QUERY"),
    ("SELECT Id FROM", "MALFORMED_QUERY"),
    ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
    (f"SELECT Nope__c FROM {EVENT}", "INVALID_FIELD"),
    (f"SELECT Id FROM {EVENT} WHERE Nope = 'x'", "INVALID_FIELD"),
    (f"SELECT Id FROM {EVENT} WHERE Name = 5", "INVALID_FIELD"),
    (f"SELECT Id FROM {EVENT} WHERE CreatedDate > 2024-13-45T00:00:00Z", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} WHERE CreatedDate > LAST_N_DAYS:99999999999999", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} LIMIT -1", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} LIMIT 1e5", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} OFFSET 99999999999999999999999", "NUMBER_OUTSIDE_VALID_RANGE"),
    (f"SELECT Id FROM {EVENT} WHERE Name IN ()", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} WHERE Name = 'unterminated", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} WHERE Name = :bind", "MALFORMED_QUERY"),
    (f'SELECT Id FROM {EVENT} WHERE Name = "double"', "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} WHERE Name = '\\uZZZZ'", "MALFORMED_QUERY"),
    ("\x00", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT}\x00", "MALFORMED_QUERY"),
    ("\ufeffSELECT Id FROM x", "MALFORMED_QUERY"),
    ("SÉLECT Ïd FRÖM 事件", "MALFORMED_QUERY"),
    ("DROP TABLE conference360__Event__c", "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} WHERE " + "(" * 3000 + "Name = 'x'" + ")" * 3000, "MALFORMED_QUERY"),
    (f"SELECT Id FROM {EVENT} WHERE " + "NOT " * 3000 + "Name = 'x'", "MALFORMED_QUERY"),
    ("SELECT " + "Id, " * 8_000 + f"FROM {EVENT}", "MALFORMED_QUERY"),  # huge (~48 KB encoded), malformed
]


@pytest.mark.parametrize("kind", ["query", "queryAll"])
@pytest.mark.parametrize(("soql", "code"), BAD_SOQL, ids=[f"soql{i}" for i in range(len(BAD_SOQL))])
def test_malformed_soql_answers_a_query_error(
    http: httpx.Client, sf_auth: dict[str, str], kind: str, soql: str, code: str
) -> None:
    sf_error(http.get(f"{V}/{kind}", params={"q": soql}, headers=sf_auth), 400, code)


@pytest.mark.parametrize(
    "query", ["", "?q=", "?q=%00", "?q=%ZZ%", "?q=%ff%fe", "?Q=SELECT+Id+FROM+x", "?q[]=x"]
)
def test_missing_or_undecodable_q_is_malformed(
    http: httpx.Client, sf_auth: dict[str, str], query: str
) -> None:
    sf_error(http.get(f"{V}/query{query}", headers=sf_auth), 400, "MALFORMED_QUERY")


def test_a_huge_valid_query_is_answered(http: httpx.Client, sf_auth: dict[str, str]) -> None:
    soql = f"SELECT Id FROM {EVENT} WHERE Name = '{'x' * 60_000}'"
    response = http.get(f"{V}/query", params={"q": soql}, headers=sf_auth)
    no_leak(response)
    assert response.status_code == 200
    assert response.json() == {"totalSize": 0, "done": True, "records": []}


def test_a_request_line_over_64_kib_is_refused_with_414(sandbox: Sandbox, sf_auth: dict[str, str]) -> None:
    # Too long for httpx to build, so over a raw TLS socket.
    soql = f"SELECT Id FROM {EVENT} WHERE Name = '{'y' * 70_000}'"
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(sandbox.ca_path))
    request = (
        f"GET {V}/query?q={quote(soql)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {sf_auth['Authorization']}\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 414 ")
    assert not any(marker in answer for marker in LEAKS)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"{V}/query/01g5g9999999999-0", 400, "INVALID_QUERY_LOCATOR"),
        (f"{V}/query/01g5g9999999999-99999999999999999999", 400, "INVALID_QUERY_LOCATOR"),
        (f"{V}/queryAll/01gNOPE-2000", 400, "INVALID_QUERY_LOCATOR"),
        (f"{V}/query/01g5g0000000001-abc", 404, "NOT_FOUND"),
        (f"{V}/query/not-a-locator", 404, "NOT_FOUND"),
    ],
)
def test_bad_query_locators(
    http: httpx.Client, sf_auth: dict[str, str], path: str, status: int, code: str
) -> None:
    sf_error(http.get(path, headers=sf_auth), status, code)


def test_an_unreadable_batch_size_option_is_ignored(http: httpx.Client, sf_auth: dict[str, str]) -> None:
    for option in ("batchSize=²", "batchSize=abc", "batchSize=-5", "batchSize=99999999999999999999", "junk"):
        headers = {**sf_auth, "Sforce-Query-Options": option.encode("latin-1")}
        response = http.get(f"{V}/query", params={"q": f"SELECT Id FROM {EVENT}"}, headers=headers)
        no_leak(response)
        assert response.status_code == 200
        assert response.json()["done"] is True


# ---------------------------------------------------------------------------------------------
# Salesforce: sObjects
# ---------------------------------------------------------------------------------------------


def test_unknown_objects_and_fields_on_sobject_routes(
    http: httpx.Client, sandbox: Sandbox, sf_auth: dict[str, str]
) -> None:
    event_id = first_id(sandbox, EVENT)
    sf_error(http.get(f"{V}/sobjects/Nope__c/describe", headers=sf_auth), 404, "NOT_FOUND")
    sf_error(http.get(f"{V}/sobjects/Nope__c/{event_id}", headers=sf_auth), 404, "NOT_FOUND")
    sf_error(http.get(f"{EVENT_URL}/a0E000000000000AAA", headers=sf_auth), 404, "NOT_FOUND")
    sf_error(
        http.get(f"{EVENT_URL}/{event_id}", params={"fields": "Id,Nope"}, headers=sf_auth),
        400,
        "INVALID_FIELD",
    )
    sf_error(
        http.get(f"{EVENT_URL}/{event_id}", params={"fields": "\x00"}, headers=sf_auth), 400, "INVALID_FIELD"
    )
    sf_error(http.get(f"{EVENT_URL}/%00", headers=sf_auth), 404, "NOT_FOUND")
    sf_error(http.delete(f"{V}/sobjects/Nope__c/{event_id}", headers=sf_auth), 404, "NOT_FOUND")
    # Deleting a record that was never there is a 404 (the sandbox answers ENTITY_IS_DELETED).
    sf_error(http.delete(f"{EVENT_URL}/a0E000000000000AAA", headers=sf_auth), 404)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{bad", "JSON_PARSER_ERROR"),
        (b"", "JSON_PARSER_ERROR"),
        (b"[]", "JSON_PARSER_ERROR"),
        (b'"a string"', "JSON_PARSER_ERROR"),
        (b"\xff\xfe", "JSON_PARSER_ERROR"),
        (b'{"Name": "x",}', "JSON_PARSER_ERROR"),
        (b'{"Nope__c": 1}', "INVALID_FIELD"),
        (b'{"Name": "ok", "\\u0000": 1}', "INVALID_FIELD"),
        (b'{"Id": "a0E000000000000AAA"}', "INVALID_FIELD_FOR_INSERT_UPDATE"),
        (b'{"SystemModstamp": "2020-01-01T00:00:00.000+0000"}', "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ],
)
def test_patch_with_a_bad_body(
    http: httpx.Client, sandbox: Sandbox, sf_auth: dict[str, str], body: bytes, code: str
) -> None:
    url = f"{EVENT_URL}/{first_id(sandbox, EVENT)}"
    errors = sf_error(http.patch(url, content=body, headers={**sf_auth, **JSON}), 400, code)
    if code == "INVALID_FIELD_FOR_INSERT_UPDATE":
        assert isinstance(errors[0]["fields"], list)


def test_patch_of_unknown_object_or_record(http: httpx.Client, sf_auth: dict[str, str]) -> None:
    headers = {**sf_auth, **JSON}
    sf_error(
        http.patch(f"{V}/sobjects/Nope__c/a0E000000000000AAA", content=b"{}", headers=headers),
        404,
        "NOT_FOUND",
    )
    sf_error(http.patch(f"{EVENT_URL}/a0E000000000000AAA", content=b'{"Name": "x"}', headers=headers), 404)


# ---------------------------------------------------------------------------------------------
# Salesforce: Blackthorn's sessionRegistration (Apex REST)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"{bad", b"", b"\xff\xfe", b"[]", b"[1, 2]", b"null", b"42", b'"text"', b"NaN", b'{"id": "x",}']
)
def test_apex_body_that_is_not_a_json_object_fails_in_the_platform(
    http: httpx.Client, sf_auth: dict[str, str], body: bytes
) -> None:
    sf_error(http.post(APEX, content=body, headers={**sf_auth, **JSON}), 400, "JSON_PARSER_ERROR")


def test_apex_validation_errors_are_blackthorns_error_object(
    http: httpx.Client, sandbox: Sandbox, sf_auth: dict[str, str]
) -> None:
    attendee = first_id(sandbox, ATTENDEE)
    session = first_id(sandbox, SESSION)

    def post(payload: dict[str, Any]) -> httpx.Response:
        return http.post(APEX, json=payload, headers=sf_auth)

    blackthorn_error(post({}), "attendeeList is required")
    blackthorn_error(post({"attendeeList": []}), "attendeeList is required")
    blackthorn_error(post({"attendeeList": "x"}), "attendeeList is required")
    blackthorn_error(post({"attendeeList": [1]}), "attendeeList[0] must be an object")
    blackthorn_error(post({"attendeeList": [{"id": ["x"]}]}), "Attendee not found")
    blackthorn_error(post({"attendeeList": [{"id": "a0A000000000000AAA"}]}), "Attendee not found")
    blackthorn_error(post({"id": 5, "attendeeList": [{"id": attendee}]}), "Invalid id")
    blackthorn_error(post({"id": "not-an-id", "attendeeList": [{"id": attendee}]}), "Invalid id")
    blackthorn_error(
        post({"submit": "yes", "attendeeList": [{"id": attendee}]}), "submit must be true or false"
    )
    blackthorn_error(
        post({"attendeeList": [{"id": attendee, "sessionIds": ["a0S000000000000AAA"]}]}), "Session not found"
    )
    blackthorn_error(
        post({"attendeeList": [{"id": attendee, "sessionIds": [[session]]}]}), "Session not found"
    )
    blackthorn_error(
        post({"submit": True, "attendeeList": [{"id": attendee, "sessionIds": [session]}]}), "id is required"
    )
    blackthorn_error(
        post({"submit": True, "id": "", "attendeeList": [{"id": attendee}]}), "sessionIds are required"
    )


def test_apex_refuses_a_completed_registration(
    http: httpx.Client, sandbox: Sandbox, sf_auth: dict[str, str]
) -> None:
    attendee = first_id(sandbox, ATTENDEE)
    session = first_id(sandbox, SESSION)
    completed = next(
        record["Id"]
        for record in sandbox.store.salesforce.tables[REGISTRATION].values()
        if record["conference360__Status__c"] == "Completed" and not record["IsDeleted"]
    )
    payload = {"id": completed, "submit": True, "attendeeList": [{"id": attendee, "sessionIds": [session]}]}
    blackthorn_error(http.post(APEX, json=payload, headers=sf_auth), "already complete")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", APEX, 405),
        ("PATCH", APEX, 405),
        ("POST", "/services/apexrest/conference360/nope", 404),
        ("POST", "/services/apexrest/sessionRegistration", 404),  # namespace missing
        ("GET", "/services/apexrest/", 404),
    ],
)
def test_unknown_apex_urls_and_methods(
    http: httpx.Client, sf_auth: dict[str, str], method: str, path: str, status: int
) -> None:
    errors = sf_error(http.request(method, path, content=b"{}", headers={**sf_auth, **JSON}), status)
    if status == 404:
        assert errors[0] == {
            "errorCode": "NOT_FOUND",
            "message": f"Could not find a match for URL {path.removeprefix('/services/apexrest')}",
        }


# ---------------------------------------------------------------------------------------------
# Salesforce: credentials, unknown paths, wrong methods
# ---------------------------------------------------------------------------------------------

SF_ROUTES = [
    ("GET", f"{V}"),
    ("GET", f"{V}/limits"),
    ("GET", f"{V}/sobjects"),
    ("GET", f"{V}/sobjects/{EVENT}/describe"),
    ("GET", f"{EVENT_URL}/a0E000000000000AAA"),
    ("PATCH", f"{EVENT_URL}/a0E000000000000AAA"),
    ("DELETE", f"{EVENT_URL}/a0E000000000000AAA"),
    ("GET", f"{V}/query?q=SELECT+Id+FROM+{EVENT}"),
    ("GET", f"{V}/queryAll?q=SELECT+Id+FROM+{EVENT}"),
    ("GET", f"{V}/query/01g5g0000000001-2000"),
    ("POST", APEX),
]
BAD_SF_AUTH = [
    {},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Bearer"},
    {"Authorization": "OAuth"},
    {"Authorization": f"Basic {DEMO.sf_session_id}"},
    {"Authorization": "Bearer " + "x" * 5000},
    {"Authorization": "Bearer ünïcödé".encode()},
]


@pytest.mark.parametrize(("method", "path"), SF_ROUTES)
@pytest.mark.parametrize("headers", BAD_SF_AUTH, ids=[f"auth{i}" for i in range(len(BAD_SF_AUTH))])
def test_every_salesforce_route_refuses_bad_credentials(
    http: httpx.Client, method: str, path: str, headers: dict[str, Any]
) -> None:
    response = http.request(method, path, headers={**headers, **JSON}, content=b"{}")
    errors = sf_error(response, 401, "INVALID_SESSION_ID")
    assert errors[0]["message"] == "Session expired or invalid"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "client_id": "nope"}, "invalid_client_id"),
        (
            {"grant_type": "password", "client_id": DEMO.sf_consumer_key, "client_secret": "nope"},
            "invalid_client",
        ),
        (
            {
                "grant_type": "password",
                "client_id": DEMO.sf_consumer_key,
                "client_secret": DEMO.sf_consumer_secret,
                "username": DEMO.sf_username,
                "password": DEMO.sf_password,  # security token missing
            },
            "invalid_grant",
        ),
        ({"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}, "invalid_client"),
        (
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "a.b.c"},
            "invalid_grant",
        ),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, "invalid_grant"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({}, "unsupported_grant_type"),
    ],
)
def test_token_endpoint_answers_oauth_errors(http: httpx.Client, form: dict[str, str], error: str) -> None:
    oauth_error(http.post("/services/oauth2/token", data=form), 400, error)


def test_token_endpoint_with_an_undecodable_body(http: httpx.Client) -> None:
    oauth_error(
        http.post("/services/oauth2/token", content=b"\xff\xfe\x00", headers=FORM),
        400,
        "unsupported_grant_type",
    )


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/services",
        "/services/data/v60.0/nope",
        "/services/data/v99.0/query?q=SELECT+Id+FROM+x",
        "/services/data/vABC/limits",
        "/services/data/v60.0/sobjects/%00/describe",
        "/services/data/v60.0/sobjects/" + "x" * 5000,
        "/services/data/v60.0/../../etc/passwd",
        "/ünïcödé",
        "/%ff%fe",
    ],
)
def test_unknown_salesforce_paths_are_not_found(
    http: httpx.Client, sf_auth: dict[str, str], path: str
) -> None:
    sf_error(http.get(path, headers=sf_auth), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{V}/query?q=SELECT+Id+FROM+x"),
        ("DELETE", f"{V}/limits"),
        ("PUT", f"{EVENT_URL}/a0E000000000000AAA"),
        ("POST", f"{EVENT_URL}/a0E000000000000AAA"),
        ("GET", "/services/oauth2/token"),
        ("PUT", "/services/data"),
    ],
)
def test_wrong_methods_are_405_in_salesforces_shape(
    http: httpx.Client, sf_auth: dict[str, str], method: str, path: str
) -> None:
    (error,) = sf_error(http.request(method, path, headers=sf_auth), 405, "METHOD_NOT_ALLOWED")
    assert error["message"].startswith(f"HTTP Method '{method}' not allowed. Allowed are ")


# ---------------------------------------------------------------------------------------------
# Checkfront: credentials, unknown paths, wrong methods
# ---------------------------------------------------------------------------------------------

CF_ROUTES = [
    ("GET", "/ping"),
    ("GET", "/item"),
    ("GET", "/item/1"),
    ("GET", "/booking/session"),
    ("POST", "/booking/session"),
    ("POST", "/booking/session/clear"),
    ("POST", "/booking/session/end"),
    ("GET", "/booking"),
    ("GET", "/booking/index"),
    ("POST", "/booking/create"),
    ("GET", "/booking/1"),
    ("POST", "/booking/1/update"),
    ("GET", "/nope"),
]
BAD_CF_AUTH = [
    ({}, "invalid_request"),
    ({"Authorization": "Basic ZGVtby1hcGkta2V5Om5vcGU="}, "invalid_grant"),  # right key, wrong secret
    ({"Authorization": "Bearer nope"}, "invalid_grant"),
    ({"Authorization": "Bearer"}, "invalid_request"),
    ({"Authorization": "Basic !!!"}, "invalid_request"),
    ({"Authorization": "Basic bm8tY29sb24="}, "invalid_request"),  # "no-colon"
    ({"Authorization": "Basic //79"}, "invalid_request"),  # not UTF-8
    ({"Authorization": "Bearer two words"}, "invalid_request"),
    ({"Authorization": "Token x"}, "invalid_request"),
    ({"Authorization": "Bearer ünïcödé".encode()}, "invalid_grant"),
]


@pytest.mark.parametrize(("method", "path"), CF_ROUTES)
@pytest.mark.parametrize(("headers", "error"), BAD_CF_AUTH, ids=[f"auth{i}" for i in range(len(BAD_CF_AUTH))])
def test_every_checkfront_route_refuses_bad_credentials(
    http: httpx.Client, method: str, path: str, headers: dict[str, Any], error: str
) -> None:
    cf_critical(http.request(method, CF + path, headers=headers), error)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("access_token=nope", "invalid_grant"),
        ("access_token=%00", "invalid_grant"),
        ("access_token=%C3%BC", "invalid_grant"),
        ("access_token=", "invalid_request"),  # empty: "The access token was not found."
        ("access_token[]=x", "invalid_request"),  # a PHP array is no token either
    ],
)
def test_a_bad_access_token_parameter_is_refused(http: httpx.Client, query: str, error: str) -> None:
    cf_critical(http.get(f"{CF}/ping?{query}"), error)


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/booking/session/nope",
        "/booking/%00",
        "/item/abc",
        "/booking/index/extra",
        "/",
        "/" + "x" * 5000,
    ],
)
def test_unknown_checkfront_paths_are_not_found_in_the_envelope(http: httpx.Client, path: str) -> None:
    cf_error(http.get(CF + path, auth=CF_AUTH), "not_found", status=404)


def test_other_api_versions_answer_checkfronts_not_found(http: httpx.Client) -> None:
    cf_error(http.get("/api/2.0/ping", auth=CF_AUTH), "not_found", status=404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/booking/session"),
        ("PUT", "/booking/session"),
        ("GET", "/booking/session/end"),
        ("GET", "/booking/session/clear"),
        ("POST", "/ping"),
        ("POST", "/booking/index"),
        ("GET", "/booking/create"),
        ("GET", "/booking/1/update"),
        ("PATCH", "/item/1"),
    ],
)
def test_wrong_methods_are_405_in_checkfronts_envelope(http: httpx.Client, method: str, path: str) -> None:
    cf_error(http.request(method, CF + path, auth=CF_AUTH), "not_found", status=405)


# ---------------------------------------------------------------------------------------------
# Checkfront: bad parameters and bodies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"page": "-5"},
        {"page": "0"},
        {"page": "abc"},
        {"page": "1e400"},
        {"page": "\x00"},
        {"page": "²"},
        {"page": "99999999999999999999999999999"},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "NaN"},
        {"limit": "٣"},
        {"limit": "1000000"},
        {"limit": "99999999999999999999999999999", "page": "99999999999999999999999999999"},
        {"page[]": "2", "limit[x]": "3"},
        {"status_id[]": "PAID"},
        {"customer_id": "99999999999999999999999"},
        {"item_id": "a,b,٣"},
        {"customer_email": "\x00' OR 1=1 --"},
    ],
)
def test_booking_index_tolerates_odd_paging_and_filters(http: httpx.Client, params: dict[str, str]) -> None:
    # The docs give page/limit defaults (1/100) but no errors; the sandbox reads what it can,
    # falls back to the defaults and clamps limit to 1..250 (docs/sandbox.md). No 5xx, ever.
    request = cf_ok(http.get(f"{CF}/booking/index", params=params, auth=CF_AUTH))["request"]
    assert 1 <= request["limit"] <= 250
    assert 1 <= request["page"] < 2**63
    assert request["pages"] >= 1


@pytest.mark.parametrize(
    "params",
    [
        {"created_date": "garbage"},
        {"created_date": ">"},
        {"last_modified": ">=²"},
        {"last_modified": "²"},
        {"start_date": "2024-13-01"},
        {"end_date": "<tomorrow"},
        {"created_date": "\x00"},
    ],
)
def test_unreadable_time_filters_are_request_errors(http: httpx.Client, params: dict[str, str]) -> None:
    cf_error(http.get(f"{CF}/booking/index", params=params, auth=CF_AUTH), "invalid_request")


@pytest.mark.parametrize(
    "session_id",
    ["\x00", "%00", "x" * 5000, "ünïcödé 😀", "../../etc/passwd", "' OR '1'='1", " ", "0" * 26, "-1", "[]"],
)
def test_bad_session_ids_get_a_new_empty_session(http: httpx.Client, session_id: str) -> None:
    # The documented behaviour for an unknown or expired id: a new, empty session, never an error.
    for response in (
        http.get(f"{CF}/booking/session", params={"session_id": session_id}, auth=CF_AUTH),
        http.post(f"{CF}/booking/session", data={"session_id": session_id}, auth=CF_AUTH),
        http.post(f"{CF}/booking/session/clear", data={"session_id": session_id}, auth=CF_AUTH),
    ):
        session = cf_ok(response)["booking"]["session"]
        assert session["id"] != session_id
        assert session["item"] == []
    ended = cf_ok(http.post(f"{CF}/booking/session/end", data={"session_id": session_id}, auth=CF_AUTH))
    assert ended["booking"]["session"]["ended"] is True


def test_session_id_given_as_a_php_array_or_json_value(http: httpx.Client) -> None:
    cf_ok(http.get(f"{CF}/booking/session?session_id[]=a&session_id[x]=b", auth=CF_AUTH))
    for value in ({"a": 1}, ["a"], 5, None, True):
        cf_ok(http.post(f"{CF}/booking/session", json={"session_id": value}, auth=CF_AUTH))
        cf_ok(http.post(f"{CF}/booking/session/end", json={"session_id": value}, auth=CF_AUTH))


@pytest.mark.parametrize(
    "slip",
    [
        "garbage",
        "1.99999999X1-adults.1",  # no such day
        "1.20301005X0-adults.1",  # zero days
        "1.20301005X99999999999-adults.1",  # runs past year 9999
        "1.99991231X5-adults.1",  # so does this one
        "1.20301005X1-adults.0",  # nobody
        "1.20301005X1-nope.1",  # no such param
        "1.20301005X1-adults.1-2",  # param and bare quantity mixed
        "4.20301005X1-99999999999999999999",  # an unlimited add-on, absurd quantity
        "99999999999999999999999.20301005X1-1",  # no such item
        "1.20301005X1-adults.1" + "-x" * 2000,
        "\u0663.\u0662\u0660\u0663\u0660\u0661\u0660\u0660\u0665X\u0661-adults.\u0661\x00",  # Arabic-Indic digits
    ],
)
def test_bad_slips_are_request_errors(http: httpx.Client, slip: str) -> None:
    error = cf_error(http.post(f"{CF}/booking/session", data={"slip": slip}, auth=CF_AUTH))
    assert error["id"] in ("invalid_slip", "unavailable")


def test_absurd_quantities_on_a_line_do_not_poison_the_cart(http: httpx.Client, sandbox: Sandbox) -> None:
    items = sandbox.store.checkfront.items
    item = next(
        i for i in items.values() if i.get("params") and any(p in items for p in i.get("packages") or [])
    )
    slip = f"{item['item_id']}.20301005X1-{next(iter(item['params']))}.1"
    session = cf_ok(http.post(f"{CF}/booking/session", data={"slip": slip}, auth=CF_AUTH))
    session_id = session["booking"]["session"]["id"]
    assert "1.1" in session["booking"]["session"]["item"]  # the add-on line (unlimited stock)
    for line, value in (
        ("1.1", "99999999999999999999"),
        ("1", "99999999999999999999"),
        ("1", "²"),
        ("1", "-3"),
    ):
        error = cf_error(
            http.post(
                f"{CF}/booking/session",
                data={"session_id": session_id, f"alter[{line}]": value},
                auth=CF_AUTH,
            )
        )
        assert error["id"] in ("invalid_request", "unavailable")
    # The cart is as it was (no half-applied change was kept), and still readable.
    after = cf_ok(http.get(f"{CF}/booking/session", params={"session_id": session_id}, auth=CF_AUTH))
    assert after["booking"]["session"]["item"]["1"]["rate"]["qty"] == 1
    assert after["booking"]["session"]["item"]["1.1"]["rate"]["qty"] == 1
    cf_ok(http.post(f"{CF}/booking/session/end", data={"session_id": session_id}, auth=CF_AUTH))


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{bad", JSON),
        (b"[1, 2]", JSON),
        (b'"text"', JSON),
        (b"\xff\xfe", JSON),
        (b"\xff\xfe", FORM),
        (b'{"slip": 5}', JSON),
        (b'{"slip": [null, 1.5, true]}', JSON),
        (b'{"slip": {"a": {"b": 1}}, "alter": "x"}', JSON),
        (b'{"alter": {"1": {"x": 1}}, "line_id": [1]}', JSON),
        (b"slip[[]=x&alter[=1&alter]]=2", FORM),
    ],
)
def test_bad_session_bodies_are_request_errors_or_ignored(
    http: httpx.Client, body: bytes, headers: dict[str, str]
) -> None:
    response = http.post(f"{CF}/booking/session", content=body, headers=headers, auth=CF_AUTH)
    no_leak(response)
    assert response.status_code == 200
    request = response.json()["request"]
    if request["status"] == "ERROR":
        cf_error(response)
    else:  # nothing usable in the body: the answer is the (new, empty) session
        assert response.json()["booking"]["session"]["item"] == []


@pytest.mark.parametrize(
    ("path", "params", "error_id"),
    [
        ("/item/99999", {}, "not_found"),
        ("/item/99999999999999999999999", {}, "not_found"),
        ("/item/1", {"start_date": "garbage"}, "invalid_request"),
        ("/item/1", {"start_date": "10000000000000000"}, "invalid_request"),
        ("/item/1", {"date": "-1"}, "invalid_request"),
        ("/item/1", {"start_date": "20301005", "end_date": "20301001"}, "invalid_request"),
        ("/item/1", {"start_date": "20300101", "end_date": "99991231"}, "invalid_request"),  # a hang, before
        ("/item", {"start_date": "20300101", "end_date": "99991231"}, "invalid_request"),
        ("/booking/ZZZZ-999999", {}, "not_found"),
        ("/booking/99999999999999999999999999", {}, "not_found"),
    ],
)
def test_bad_item_and_booking_lookups_are_request_errors(
    http: httpx.Client, path: str, params: dict[str, str], error_id: str
) -> None:
    started = time.monotonic()
    cf_error(http.get(CF + path, params=params, auth=CF_AUTH), error_id)
    assert time.monotonic() - started < 5


def test_absurd_rated_quantities_are_unavailable_not_errors(http: httpx.Client) -> None:
    asked = {"start_date": "20301005", "param[adults]": "999999999999999999999999"}
    body = cf_ok(http.get(f"{CF}/item/1", params=asked, auth=CF_AUTH))
    assert body["item"]["rate"]["status"] == "UNAVAILABLE"
    assert "slip" not in body["item"]["rate"]  # nothing a cart could take
    listing = cf_ok(http.get(f"{CF}/item", params={**asked, "qty": "99999999999999999999999"}, auth=CF_AUTH))
    assert listing["request"]["records"] == len(listing["items"])


@pytest.mark.parametrize(
    ("path", "form", "error_id"),
    [
        ("/booking/1/update", {}, "validation_error"),
        ("/booking/1/update", {"status_id": "\x00"}, "validation_error"),
        ("/booking/1/update", {"status_id": "NOPE"}, "validation_error"),
        ("/booking/ZZZZ-999999/update", {"status_id": "PAID"}, "not_found"),
        ("/booking/create", {}, "invalid_request"),
        ("/booking/create", {"form": "x"}, "invalid_request"),
        ("/booking/create", {"slip[]": "garbage", "form[customer_name]": "x"}, "invalid_slip"),
        ("/booking/create", {"slip[]": "1.20301005X1-adults.1"}, "validation_error"),
        (
            "/booking/create",
            {
                "slip[]": "1.20301005X1-adults.1",
                "form[customer_name]": "A",
                "form[customer_email]": "a@x",
                "status_id": "?",
            },
            "validation_error",
        ),
    ],
)
def test_bad_booking_writes_are_request_errors(
    http: httpx.Client, path: str, form: dict[str, str], error_id: str
) -> None:
    cf_error(http.post(CF + path, data=form, auth=CF_AUTH), error_id)


def test_the_sandbox_still_answers_after_all_that(http: httpx.Client, sf_auth: dict[str, str]) -> None:
    assert cf_ok(http.get(f"{CF}/ping", auth=CF_AUTH))["pong"]["provider"]
    response = http.get(f"{V}/query", params={"q": f"SELECT COUNT() FROM {EVENT}"}, headers=sf_auth)
    assert response.status_code == 200
    assert response.json()["totalSize"] > 0


# ---------------------------------------------------------------------------------------------
# Random input: never a 5xx
# ---------------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(soql=URL_TEXT)
def test_random_soql_never_gets_a_5xx(http: httpx.Client, sf_auth: dict[str, str], soql: str) -> None:
    response = http.get(f"{V}/query", params={"q": soql}, headers=sf_auth)
    no_leak(response)
    if response.status_code != 200:
        sf_error(response, response.status_code)


@FUZZ
@given(
    soql=st.builds(
        " ".join,
        st.lists(
            st.sampled_from(
                [
                    "SELECT",
                    "Id",
                    "Name",
                    ",",
                    "FROM",
                    EVENT,
                    "WHERE",
                    "=",
                    "'x'",
                    "(",
                    ")",
                    "AND",
                    "OR",
                    "NOT",
                    "IN",
                    "LIKE",
                    "LIMIT",
                    "5",
                    "OFFSET",
                    "ORDER",
                    "BY",
                    "DESC",
                    "NULLS",
                    "LAST",
                    "null",
                    "TODAY",
                    "LAST_N_DAYS:3",
                    "2024-01-01T00:00:00Z",
                    "COUNT()",
                    "IsDeleted",
                    "true",
                    "<",
                    ">=",
                    "!=",
                ]
            ),
            max_size=25,
        ),
    )
)
def test_random_soql_from_soql_words_never_gets_a_5xx(
    http: httpx.Client, sf_auth: dict[str, str], soql: str
) -> None:
    response = http.get(f"{V}/query", params={"q": soql}, headers=sf_auth)
    no_leak(response)
    if response.status_code != 200:
        sf_error(response, 400)


@FUZZ
@given(session_id=URL_TEXT, slip=URL_TEXT, line=URL_TEXT, action=URL_TEXT)
def test_random_session_calls_never_get_a_5xx(
    http: httpx.Client, session_id: str, slip: str, line: str, action: str
) -> None:
    read = http.get(f"{CF}/booking/session", params={"session_id": session_id}, auth=CF_AUTH)
    no_leak(read)
    assert read.json()["request"]["status"] == "OK"
    changed = http.post(
        f"{CF}/booking/session",
        data={"session_id": session_id, "slip[]": [slip], f"alter[{line}]": action},
        auth=CF_AUTH,
    )
    no_leak(changed)
    assert changed.json()["request"]["status"] in ("OK", "ERROR")
    ended = http.post(f"{CF}/booking/session/end", data={"session_id": session_id}, auth=CF_AUTH)
    no_leak(ended)


@FUZZ
@given(
    page=URL_TEXT,
    limit=URL_TEXT,
    name=st.sampled_from(
        [
            "status_id",
            "customer_email",
            "customer_id",
            "item_id",
            "partner_id",
            "created_date",
            "last_modified",
            "start_date",
            "end_date",
            "nonsense",
        ]
    ),
    value=URL_TEXT,
)
def test_random_booking_index_calls_never_get_a_5xx(
    http: httpx.Client, page: str, limit: str, name: str, value: str
) -> None:
    response = http.get(
        f"{CF}/booking/index", params={"page": page, "limit": limit, name: value}, auth=CF_AUTH
    )
    no_leak(response)
    body = response.json()
    assert set(body) in (CF_ENVELOPE | {"booking/index"}, CF_ENVELOPE)
    assert body["request"]["status"] in ("OK", "ERROR")
