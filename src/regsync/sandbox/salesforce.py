"""The Salesforce REST emulator: OAuth, SOQL query/queryAll with cursors, describe, limits, Apex REST.

Shapes follow the Salesforce REST API docs and Blackthorn's published sessionRegistration contract;
where neither says what happens, the choice is commented at the spot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import random
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import jwt

from regsync.sandbox import soql
from regsync.sandbox.faults import FaultInjector, selective_by_id, window_seconds
from regsync.sandbox.http import Route, SandboxRequest, SandboxResponse
from regsync.sandbox.store import (
    ATTENDEE,
    REGISTRATION,
    SCHEMAS,
    SESSION,
    SESSION_ATTENDEE,
    SandboxStore,
    field_length,
    id_checksum,
    is_long_text_area,
    is_sf_id,
)

# Every version real orgs serve today (Spring '14 through Winter '26); clients default to old ones
# (jsforce 50.0, the Salesforce CLI 51.0 for its user lookup).
API_VERSIONS = tuple(f"{major}.0" for major in range(31, 66))
MAX_BATCH = 2000  # query batches: default and maximum ("REST API Developer Guide", Query Options Header)
MIN_BATCH = 200
LONG_TEXT_BATCH = 200  # at most this many when two or more long text area fields are selected
ORG_ID = "00D5g00000SANDB"  # 15-char ids, shown in their 18-char form (as Salesforce shows them)
USER_ID = "0055g00000DEMOU"
ORG_ID18 = ORG_ID + id_checksum(ORG_ID)
USER_ID18 = USER_ID + id_checksum(USER_ID)
_TOKEN_CHARS = string.ascii_letters + string.digits + "."
_V = r"/services/data/v(?P<version>\d+\.\d)"


@dataclass(frozen=True)
class SalesforceCredentials:
    """What the emulated org accepts (fixed, documented demo values)."""

    username: str
    password: str
    security_token: str
    consumer_key: str
    consumer_secret: str
    session_id: str
    jwt_public_key_pem: bytes | None = None


def _errors(status: int, code: str, message: str, fields: list[str] | None = None) -> SandboxResponse:
    """Salesforce's REST error body: a JSON array of {message, errorCode[, fields]}."""
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        body["fields"] = fields
    return SandboxResponse.json(status, [body])


def _canonical_id(value: Any) -> Any:
    canonical = soql.canonical_id(value) if isinstance(value, str) and value else None
    return canonical or value


def _canonical_ids(payload: dict[str, Any]) -> None:
    """Apex deserialises ids into its Id type, which takes 15 or 18 characters and holds 18: the
    payload's record, attendee and session ids become their 18-character form (others stay as given
    and fail validation)."""
    payload["id"] = _canonical_id(payload.get("id"))
    if payload["id"] is None:
        del payload["id"]
    attendees = payload.get("attendeeList")
    if not isinstance(attendees, list):
        return
    for attendee in attendees:
        if not isinstance(attendee, dict):
            continue
        if "id" in attendee:
            attendee["id"] = _canonical_id(attendee["id"])
        if isinstance(attendee.get("sessionIds"), list):
            attendee["sessionIds"] = [_canonical_id(v) for v in attendee["sessionIds"]]


def _basic_client(header: str) -> tuple[str, str] | None:
    """(client id, client secret) from `Authorization: Basic ...` (each form-urlencoded, RFC 6749 2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def _oauth_error(error: str, description: str, status: int = 400) -> SandboxResponse:
    return SandboxResponse.json(status, {"error": error, "error_description": description})


@dataclass
class _Cursor:
    ids: list[str]
    sobject: str
    query: soql.Query
    all_rows: bool
    batch: int
    last_used: float = field(default_factory=time.monotonic)


# The keys of a production org's /limits answer (Enterprise Edition values); only DailyApiRequests
# moves in the sandbox.
_FIXED_LIMITS = {
    "ActiveScratchOrgs": 0,
    "AnalyticsExternalDataSizeMB": 40960,
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentEinsteinDataInsightsStoryCreation": 5,
    "ConcurrentEinsteinDiscoveryStoryCreation": 2,
    "ConcurrentSyncReportRuns": 20,
    "DailyAnalyticsDataflowJobExecutions": 60,
    "DailyAnalyticsUploadedFilesSizeMB": 51200,
    "DailyAsyncApexExecutions": 250000,
    "DailyAsyncApexTests": 500,
    "DailyBulkApiBatches": 15000,
    "DailyBulkV2QueryFileStorageMB": 976562,
    "DailyBulkV2QueryJobs": 10000,
    "DailyDeliveredPlatformEvents": 50000,
    "DailyDurableGenericStreamingApiEvents": 10000,
    "DailyDurableStreamingApiEvents": 10000,
    "DailyEinsteinDataInsightsStoryCreation": 1000,
    "DailyEinsteinDiscoveryPredictAPICalls": 50000,
    "DailyEinsteinDiscoveryPredictionsByCDC": 500000,
    "DailyEinsteinDiscoveryStoryCreation": 100,
    "DailyFunctionsApiCallLimit": 235000,
    "DailyGenericStreamingApiEvents": 10000,
    "DailyScratchOrgs": 0,
    "DailyStandardVolumePlatformEvents": 10000,
    "DailyStreamingApiEvents": 10000,
    "DailyWorkflowEmails": 1000,
    "DataStorageMB": 5120,
    "DurableStreamingApiConcurrentClients": 20,
    "FileStorageMB": 10240,
    "HourlyAsyncReportRuns": 1200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5000,
    "HourlyDashboardStatuses": 999999999,
    "HourlyLongTermIdMapping": 100000,
    "HourlyManagedContentPublicRequests": 50000,
    "HourlyODataCallout": 10000,
    "HourlyPublishedPlatformEvents": 50000,
    "HourlyPublishedStandardVolumePlatformEvents": 100000,
    "HourlyShortTermIdMapping": 100000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 50,
    "MassEmail": 10,
    "MonthlyPlatformEventsUsageEntitlement": 0,
    "Package2VersionCreates": 0,
    "Package2VersionCreatesWithoutValidation": 0,
    "PermissionSets": 1500,
    "PrivateConnectOutboundCalloutHourlyLimitMB": 0,
    "SingleEmail": 5000,
    "StreamingApiConcurrentClients": 20,
}

_READ_ONLY = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")
_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "picklist": "xsd:string",
    "email": "xsd:string",
    "textarea": "xsd:string",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "int": "xsd:int",
}
_NUMBER_SHAPE = {"currency": (18, 2), "double": (18, 0)}  # (precision, scale)


def _describe_field(schema: Any, name: str, kind: str) -> dict[str, Any]:
    """One describe `fields` entry with the attributes clients read (simple-salesforce, jsforce,
    the CLI, regsync): Salesforce's DescribeFieldResult names and types."""
    writable = name not in _READ_ONLY
    long_text = is_long_text_area(schema, name)
    precision, scale = _NUMBER_SHAPE.get(kind, (0, 0))
    reference = schema.references.get(name)
    length = field_length(schema, name) if kind not in ("id", "reference") else 18
    return {
        "name": name,
        "label": name.removeprefix("conference360__").removesuffix("__c").replace("_", " "),
        "type": kind,
        "soapType": _SOAP_TYPES[kind],
        "custom": name.endswith("__c"),
        "nillable": writable and name != "Name" and kind != "boolean",
        "createable": writable,
        "updateable": writable,
        "defaultedOnCreate": not writable or kind == "boolean",
        "filterable": not long_text,
        "sortable": not long_text,
        "groupable": not long_text and kind not in ("double", "currency", "datetime"),
        "calculated": False,
        "autoNumber": False,
        "externalId": False,
        "unique": False,
        "idLookup": name in ("Id", "Name"),
        "nameField": name == "Name",
        "caseSensitive": False,
        "length": length if kind not in ("datetime", "date", "boolean", "double", "currency", "int") else 0,
        "byteLength": length * 3
        if kind in ("string", "picklist", "email", "textarea", "id", "reference")
        else 0,
        "digits": 0,
        "precision": precision,
        "scale": scale,
        "htmlFormatted": False,
        "extraTypeInfo": "plaintextarea" if kind == "textarea" else None,
        "restrictedPicklist": False,
        "dependentPicklist": False,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": value, "validFor": None, "value": value}
            for value in schema.picklists.get(name, ())
        ],
        "referenceTo": [reference] if reference else [],
        "relationshipName": name.removesuffix("__c") + "__r" if reference else None,
        "relationshipOrder": None,
        "cascadeDelete": False,
        "restrictedDelete": False,
        "writeRequiresMasterRead": False,
        "inlineHelpText": None,
        "defaultValue": False if kind == "boolean" else None,
    }


class SalesforceApi:
    """Routes and state of the emulated org."""

    def __init__(
        self,
        store: SandboxStore,
        credentials: SalesforceCredentials,
        *,
        base_url: Callable[[], str],
        faults: FaultInjector,
        daily_limit: int = 5_000_000,
        smaller_batches: bool = False,
    ) -> None:
        self.store = store
        # Off: every page is the full batch. On: each page holds 1..batch records (seeded), as
        # Salesforce may do "to maximize performance"; clients must follow nextRecordsUrl, not count.
        self.smaller_batches = smaller_batches
        self._batch_rng = random.Random(0)
        self.credentials = credentials
        self.base_url = base_url
        self.faults = faults
        self.daily_limit = daily_limit
        self.api_usage = 0
        self.tokens: set[str] = {credentials.session_id}
        self._cursors: dict[str, _Cursor] = {}
        self._cursor_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._session_attendee_pairs: set[tuple[str, str]] | None = None
        # SOQL sees long text areas as their own type: not filterable, not sortable (as in Salesforce).
        self._schemas = {
            name.lower(): (
                name,
                {
                    f: ("longtextarea" if is_long_text_area(schema, f) else t)
                    for f, t in schema.fields.items()
                },
            )
            for name, schema in SCHEMAS.items()
        }

    # ------------------------------------------------------------------ routing
    def routes(self) -> list[Route]:
        return [
            Route("POST", r"/services/oauth2/token", self.token, "salesforce.oauth.token"),
            Route("GET", r"/services/oauth2/userinfo/?", self.userinfo, "salesforce.oauth.userinfo"),
            Route("POST", r"/services/oauth2/userinfo/?", self.userinfo, "salesforce.oauth.userinfo"),
            Route("GET", r"/id/(?P<org>\w+)/(?P<user>\w+)/?", self.identity, "salesforce.identity"),
            Route("GET", r"/services/data/?", self.versions, "salesforce.versions"),
            Route("GET", _V + r"/?", self.resources, "salesforce.resources"),
            Route("GET", _V + r"/limits/?", self.limits, "salesforce.limits"),
            Route("GET", _V + r"/sobjects/?", self.sobjects, "salesforce.sobjects"),
            Route(
                "GET",
                _V + r"/sobjects/(?P<sobject>\w+)/describe/?",
                self.describe,
                "salesforce.describe",
            ),
            Route(
                "GET",
                _V + r"/sobjects/(?P<sobject>\w+)/(?P<id>\w+)/?",
                self.retrieve,
                "salesforce.retrieve",
            ),
            Route(
                "PATCH",
                _V + r"/sobjects/(?P<sobject>\w+)/(?P<id>\w+)/?",
                self.update,
                "salesforce.update",
            ),
            Route(
                "DELETE",
                _V + r"/sobjects/(?P<sobject>\w+)/(?P<id>\w+)/?",
                self.delete,
                "salesforce.delete",
            ),
            Route("GET", _V + r"/(?P<kind>query|queryAll)/?", self.query, "salesforce.query"),
            Route(
                "GET",
                _V + r"/(?P<kind>query|queryAll)/(?P<locator>01g\w+)-(?P<offset>\d+)/?",
                self.query_more,
                "salesforce.query_more",
            ),
            Route(
                "POST",
                r"/services/apexrest/conference360/sessionRegistration/?",
                self.session_registration,
                "salesforce.apex.session_registration",
            ),
        ]

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.startswith("/services/apexrest/"):
            mapping = request.path[len("/services/apexrest") :]
            return _errors(404, "NOT_FOUND", f"Could not find a match for URL {mapping}")
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")

    # ------------------------------------------------------------------ auth and limits
    def _authorize(self, request: SandboxRequest) -> SandboxResponse | None:
        """Check the bearer token and count the call against the daily limit."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or token not in self.tokens:
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        platform = self.faults.salesforce
        with self._lock:
            self.api_usage += 1
            usage = self.api_usage
            # The plan's thresholds count the calls made since the plan was added, not since start.
            platform.calls += 1
            since_plan = platform.calls
        if platform.token_expire_after is not None and since_plan > platform.token_expire_after:
            # Revoke every token once: the client must re-authenticate and go on.
            platform.token_expire_after = None
            self.tokens = {self.credentials.session_id} if token != self.credentials.session_id else set()
            self.faults.injected["token_expired"] += 1
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        planned = platform.request_limit_after is not None and since_plan > platform.request_limit_after
        if usage > self.daily_limit or planned:
            self.faults.injected["request_limit_exceeded"] += 1 if planned else 0
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return None

    def limit_header(self) -> tuple[str, str]:
        return ("Sforce-Limit-Info", f"api-usage={self.api_usage}/{self.daily_limit}")

    def _guarded(self, request: SandboxRequest, answer: Callable[[], SandboxResponse]) -> SandboxResponse:
        refused = self._authorize(request)
        response = refused if refused is not None else answer()
        response.headers.append(self.limit_header())
        return response

    # ------------------------------------------------------------------ OAuth
    def token(self, request: SandboxRequest) -> SandboxResponse:
        form = {key: values[0] for key, values in parse_qs(request.body.decode("utf-8", "replace")).items()}
        basic = _basic_client(request.headers.get("authorization", ""))
        if basic is not None:
            # RFC 6749 2.3.1: the client may authenticate with HTTP Basic instead of the form;
            # Salesforce accepts both (its OAuth docs show client_id/client_secret either way).
            form["client_id"], form["client_secret"] = basic
        grant = form.get("grant_type", "")
        creds = self.credentials
        scope: str | None = None
        if grant == "password":
            if form.get("client_id") != creds.consumer_key:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != creds.consumer_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
            if form.get("username") != creds.username or form.get("password") != (
                creds.password + creds.security_token
            ):
                return _oauth_error("invalid_grant", "authentication failure")
        elif grant == "client_credentials":
            if (
                form.get("client_id") != creds.consumer_key
                or form.get("client_secret") != creds.consumer_secret
            ):
                return _oauth_error("invalid_client", "invalid client credentials")
            scope = "api"
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            refused = self._check_jwt(form.get("assertion", ""))
            if refused is not None:
                return refused
            scope = "api"
        elif not grant:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        else:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        # Salesforce's shape: the 15-char org id, "!", then letters, digits and dots (never "-").
        access_token = f"{ORG_ID}!AQ" + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(94))
        self.tokens.add(access_token)
        issued_at = str(int(self.store.clock.now() * 1000))
        # Served by the sandbox itself: a client that follows it must stay on 127.0.0.1.
        identity = f"{self.base_url()}/id/{ORG_ID18}/{USER_ID18}"
        signature = base64.b64encode(
            hmac.new(creds.consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        body: dict[str, Any] = {
            "access_token": access_token,
            "instance_url": self.base_url(),
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
        }
        if scope:
            body["scope"] = scope
        return SandboxResponse.json(200, body)

    # ------------------------------------------------------------------ identity
    def _identity_refusal(self, request: SandboxRequest) -> SandboxResponse | None:
        """Identity URL errors (Salesforce "Identity URLs"): 403 Missing_OAuth_Token / Bad_OAuth_Token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            token = request.arg("oauth_token") or ""
        if token in self.tokens:
            return None
        text = b"Bad_OAuth_Token" if token else b"Missing_OAuth_Token"
        return SandboxResponse(403, text, content_type="text/plain;charset=UTF-8")

    def _urls(self) -> dict[str, str]:
        base = self.base_url()
        data = f"{base}/services/data/v{{version}}"
        return {
            "enterprise": f"{base}/services/Soap/c/{{version}}/{ORG_ID}",
            "metadata": f"{base}/services/Soap/m/{{version}}/{ORG_ID}",
            "partner": f"{base}/services/Soap/u/{{version}}/{ORG_ID}",
            "rest": f"{data}/",
            "sobjects": f"{data}/sobjects/",
            "search": f"{data}/search/",
            "query": f"{data}/query/",
            "recent": f"{data}/recent/",
            "tooling_soap": f"{base}/services/Soap/T/{{version}}/{ORG_ID}",
            "tooling_rest": f"{data}/tooling/",
            "profile": f"{base}/{USER_ID18}",
            "feeds": f"{data}/chatter/feeds",
            "groups": f"{data}/chatter/groups",
            "users": f"{data}/chatter/users",
            "feed_items": f"{data}/chatter/feed-items",
            "feed_elements": f"{data}/chatter/feed-elements",
            "custom_domain": base,
        }

    def _user(self) -> dict[str, Any]:
        creds = self.credentials
        return {
            "user_id": USER_ID18,
            "organization_id": ORG_ID18,
            "email": creds.username,
            "email_verified": True,
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "is_app_installed": True,
        }

    def identity(self, request: SandboxRequest) -> SandboxResponse:
        """The identity URL of the token answer (`GET /id/{org}/{user}`), Salesforce's Identity URL
        response shape; 403 without a valid token or for another org, 404 Bad_Id for another user."""
        refused = self._identity_refusal(request)
        if refused is not None:
            return refused
        if request.params["org"] not in (ORG_ID, ORG_ID18):
            return SandboxResponse(403, b"Wrong_Org", content_type="text/plain;charset=UTF-8")
        if request.params["user"] not in (USER_ID, USER_ID18):
            return SandboxResponse(404, b"Bad_Id", content_type="text/plain;charset=UTF-8")
        name = self.credentials.username
        body = {
            "id": f"{self.base_url()}/id/{ORG_ID18}/{USER_ID18}",
            "asserted_user": True,
            "username": name,
            "nick_name": name.split("@")[0],
            "display_name": "Demo User",
            "first_name": "Demo",
            "last_name": "User",
            "timezone": "GMT",
            "photos": {
                "picture": f"{self.base_url()}/profilephoto/005/F",
                "thumbnail": f"{self.base_url()}/profilephoto/005/T",
            },
            "addr_street": None,
            "addr_city": None,
            "addr_state": None,
            "addr_country": None,
            "addr_zip": None,
            "mobile_phone": None,
            "mobile_phone_verified": False,
            "status": {"created_date": None, "body": None},
            "urls": self._urls(),
            "last_modified_date": "2024-01-01T00:00:00.000+0000",
            **self._user(),
        }
        return SandboxResponse.json(200, body)

    def userinfo(self, request: SandboxRequest) -> SandboxResponse:
        """OpenID Connect UserInfo (`/services/oauth2/userinfo`); 403 without a valid token."""
        refused = self._identity_refusal(request)
        if refused is not None:
            return refused
        name = self.credentials.username
        body = {
            "sub": f"{self.base_url()}/id/{ORG_ID18}/{USER_ID18}",
            "preferred_username": name,
            "nickname": name.split("@")[0],
            "name": "Demo User",
            "given_name": "Demo",
            "family_name": "User",
            "zoneinfo": "GMT",
            "photos": {
                "picture": f"{self.base_url()}/profilephoto/005/F",
                "thumbnail": f"{self.base_url()}/profilephoto/005/T",
            },
            "profile": f"{self.base_url()}/{USER_ID18}",
            "picture": f"{self.base_url()}/profilephoto/005/F",
            "address": {},
            "urls": self._urls(),
            "updated_at": "2024-01-01T00:00:00Z",
            **self._user(),
        }
        return SandboxResponse.json(200, body)

    def _check_jwt(self, assertion: str) -> SandboxResponse | None:
        key = self.credentials.jwt_public_key_pem
        if not assertion or key is None:
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=[
                    "https://login.salesforce.com",
                    "https://test.salesforce.com",
                    self.base_url(),
                ],
                options={"require": ["iss", "sub", "aud", "exp"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired authorization code")
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.credentials.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.credentials.username:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return None

    # ------------------------------------------------------------------ metadata
    def versions(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse.json(
            200,
            [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS],
        )

    def _version_ok(self, request: SandboxRequest) -> SandboxResponse | None:
        if request.params.get("version") not in API_VERSIONS:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return None

    def resources(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            base = f"/services/data/v{request.params['version']}"
            names = ("limits", "query", "queryAll", "sobjects")
            return SandboxResponse.json(200, {name: f"{base}/{name}" for name in names})

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    def limits(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            remaining = max(0, self.daily_limit - self.api_usage)
            body = {name: {"Max": high, "Remaining": high} for name, high in _FIXED_LIMITS.items()}
            body["DailyApiRequests"] = {"Max": self.daily_limit, "Remaining": remaining}
            return SandboxResponse.json(200, dict(sorted(body.items())))

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    def _schema(self, name: str) -> tuple[str, Any] | None:
        found = self._schemas.get(name.lower())
        return (found[0], SCHEMAS[found[0]]) if found else None

    def sobjects(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            version = request.params["version"]
            return SandboxResponse.json(
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [
                        {
                            "name": schema.name,
                            "label": schema.label,
                            "keyPrefix": schema.key_prefix,
                            "custom": schema.name.endswith("__c"),
                            "queryable": True,
                            "urls": {
                                "sobject": f"/services/data/v{version}/sobjects/{schema.name}",
                                "describe": f"/services/data/v{version}/sobjects/{schema.name}/describe",
                            },
                        }
                        for schema in SCHEMAS.values()
                    ],
                },
            )

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    def describe(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            found = self._schema(request.params["sobject"])
            if found is None:
                return _errors(404, "NOT_FOUND", "The requested resource does not exist")
            _, schema = found
            fields = [_describe_field(schema, name, kind) for name, kind in schema.fields.items()]
            return SandboxResponse.json(
                200,
                {
                    "name": schema.name,
                    "label": schema.label,
                    "keyPrefix": schema.key_prefix,
                    "custom": schema.name.endswith("__c"),
                    "queryable": True,
                    "createable": True,
                    "updateable": True,
                    "fields": fields,
                },
            )

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    # ------------------------------------------------------------------ records
    def _record_url(self, version: str, sobject: str, record_id: str) -> str:
        return f"/services/data/v{version}/sobjects/{sobject}/{record_id}"

    def _live_record(
        self, request: SandboxRequest, gone_code: str
    ) -> tuple[str, Any, dict[str, Any]] | SandboxResponse:
        """(object name, schema, record) named by the path, or the 404 Salesforce answers."""
        found = self._schema(request.params["sobject"])
        if found is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        name, schema = found
        # 15-character ids are accepted as well as 18 (any case of the 18's suffix); answers use 18.
        record_id = soql.canonical_id(request.params["id"]) or request.params["id"]
        record = self.store.salesforce.tables[name].get(record_id)
        if record is None or record["IsDeleted"]:
            message = (
                "entity is deleted"
                if gone_code == "ENTITY_IS_DELETED"
                else "The requested resource does not exist"
            )
            return _errors(404, gone_code, message)
        return name, schema, record

    def retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            found = self._live_record(request, "NOT_FOUND")
            if isinstance(found, SandboxResponse):
                return found
            name, schema, record = found
            wanted = request.arg("fields")
            names = list(schema.fields) if not wanted else [f.strip() for f in wanted.split(",") if f.strip()]
            canonical = {f.lower(): f for f in schema.fields}
            bad = [f for f in names if f.lower() not in canonical]
            if bad:
                return _errors(400, "INVALID_FIELD", f"No such column '{bad[0]}' on entity '{name}'.")
            body: dict[str, Any] = {
                "attributes": {
                    "type": name,
                    "url": self._record_url(request.params["version"], name, record["Id"]),
                }
            }
            with self.store.lock:
                for f in names:
                    body[canonical[f.lower()]] = record[canonical[f.lower()]]
            return SandboxResponse.json(200, body)

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    def update(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            found = self._live_record(request, "ENTITY_IS_DELETED")
            if isinstance(found, SandboxResponse):
                return found
            name, schema, record = found
            try:
                values = request.json()
            except ValueError as exc:
                return _errors(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}")
            if not isinstance(values, dict):
                return _errors(400, "JSON_PARSER_ERROR", "Expected a JSON object")
            canonical = {f.lower(): f for f in schema.fields}
            readonly = {"id", "isdeleted", "createddate", "lastmodifieddate", "systemmodstamp"}
            for key in values:
                if key.lower() not in canonical:
                    return _errors(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {name}")
                if key.lower() in readonly:
                    return _errors(
                        400,
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {key}.",
                        [key],
                    )
            self.store.update_sf(name, record["Id"], {canonical[k.lower()]: v for k, v in values.items()})
            return SandboxResponse(204, b"")

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    def delete(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            found = self._live_record(request, "ENTITY_IS_DELETED")
            if isinstance(found, SandboxResponse):
                return found
            name, _, record = found
            self.store.delete_sf(name, record["Id"])
            return SandboxResponse(204, b"")

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    # ------------------------------------------------------------------ SOQL
    def query(self, request: SandboxRequest) -> SandboxResponse:
        return self._guarded(request, lambda: self._version_ok(request) or self._run_query(request))

    def _batch_size(self, request: SandboxRequest, query: soql.Query) -> int:
        """Records a page: `Sforce-Query-Options: batchSize=N` (200-2,000, default 2,000), and at
        most 200 when two or more long text area fields are selected."""
        batch = MAX_BATCH
        options = request.headers.get("sforce-query-options", "")
        for part in options.split(","):
            key, _, value = part.strip().partition("=")
            if key.lower() == "batchsize" and value.isascii() and value.isdigit():
                batch = min(MAX_BATCH, max(MIN_BATCH, int(value)))
        schema = SCHEMAS[query.sobject]
        if sum(1 for name in query.fields if is_long_text_area(schema, name)) >= 2:
            batch = min(batch, LONG_TEXT_BATCH)
        return batch

    def _run_query(self, request: SandboxRequest) -> SandboxResponse:
        text = request.arg("q")
        if not text:
            return _errors(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            today = datetime.fromtimestamp(self.store.clock.now(), UTC).date()
            bound = soql.bind(soql.parse(text), self._schemas, today)
        except soql.SoqlError as exc:
            return _errors(400, exc.error_code, exc.message)
        except RecursionError:  # sandbox's choice: a query nested too deeply for the parser
            return _errors(400, "MALFORMED_QUERY", "The query is nested too deeply.")
        bound_window = self.faults.salesforce.query_timeout_window_s
        if bound_window is not None and not selective_by_id(text) and window_seconds(text) > bound_window:
            self.faults.injected["query_timeout"] += 1
            return _errors(
                400,
                "QUERY_TIMEOUT",
                "Your query request was running for too long.",
            )
        all_rows = request.params["kind"] == "queryAll"
        with self.store.lock:
            rows = (r for r in self.store.records(bound.sobject) if all_rows or not r["IsDeleted"])
            matched = soql.execute(bound, rows)
        if bound.is_count:
            return SandboxResponse.json(200, {"totalSize": len(matched), "done": True, "records": []})
        cursor = _Cursor(
            ids=[r["Id"] for r in matched],
            sobject=bound.sobject,
            query=bound,
            all_rows=all_rows,
            batch=self._batch_size(request, bound),
        )
        locator = f"01g5g{next(self._cursor_ids):010d}"
        return self._page(request, locator, cursor, 0)

    def query_more(self, request: SandboxRequest) -> SandboxResponse:
        def answer() -> SandboxResponse:
            locator = request.params["locator"]
            platform = self.faults.salesforce
            cursor = self._cursors.get(locator)
            if platform.invalid_locator_nth:
                with self._lock:
                    platform.locator_calls += 1
                    nth = platform.locator_calls
                if nth in platform.invalid_locator_nth:
                    self.faults.injected["invalid_locator"] += 1
                    cursor = None
                    self._cursors.pop(locator, None)
            if cursor is None:
                return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self._page(request, locator, cursor, int(request.params["offset"]))

        return self._guarded(request, lambda: self._version_ok(request) or answer())

    def _page(self, request: SandboxRequest, locator: str, cursor: _Cursor, offset: int) -> SandboxResponse:
        version = request.params["version"]
        size = cursor.batch
        if self.smaller_batches:  # "the returned batch size can be lower than ... set in the request"
            with self._lock:
                size = self._batch_rng.randint(1, cursor.batch)
        chunk = cursor.ids[offset : offset + size]
        table = self.store.salesforce.tables[cursor.sobject]
        url_prefix = f"/services/data/v{version}/sobjects/{cursor.sobject}/"
        records = []
        with self.store.lock:
            for record_id in chunk:
                record = table.get(record_id)
                if record is None:
                    continue
                out = {"attributes": {"type": cursor.sobject, "url": url_prefix + record_id}}
                out.update(soql.project(cursor.query, record))
                records.append(out)
        end = offset + len(chunk)
        done = end >= len(cursor.ids)
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": done}
        if done:
            self._cursors.pop(locator, None)
        else:
            cursor.last_used = time.monotonic()
            self._cursors[locator] = cursor
            # Salesforce's queryAll answers continue under /query/ too (REST API guide, QueryAll).
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
        body["records"] = records
        response = SandboxResponse.json(200, body)
        response.tags = {"locator": locator, "all_rows": cursor.all_rows}
        return response

    # ------------------------------------------------------------------ Apex REST
    def session_registration(self, request: SandboxRequest) -> SandboxResponse:
        return self._guarded(request, lambda: self._session_registration(request))

    def _session_registration(self, request: SandboxRequest) -> SandboxResponse:
        """Blackthorn's sessionRegistration: save (submit false) or final-submit (submit true).

        Validation failures answer HTTP 400 with Blackthorn's documented `{"error": "..."}` body
        (the convention of all its sibling APIs; the exact text for this endpoint is not published).
        A body that is not JSON fails in the platform before Apex runs: 400 JSON_PARSER_ERROR array.
        """
        try:
            payload = json.loads(request.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            return _errors(400, "JSON_PARSER_ERROR", f"Unexpected character in request body: {exc}")
        if not isinstance(payload, dict):
            return _errors(400, "JSON_PARSER_ERROR", "Expected a JSON object for the request body")
        _canonical_ids(payload)
        problem = self._validate_registration(payload)
        if problem:
            return SandboxResponse.json(400, {"error": problem})
        submit = payload.get("submit") is True
        record_id = payload.get("id") or ""
        tables = self.store.salesforce.tables
        with self.store.lock:
            existing = tables[REGISTRATION].get(record_id) if record_id else None
            if existing is not None and existing["IsDeleted"]:
                existing = None
            if existing is not None and existing["conference360__Status__c"] == "Completed":
                return SandboxResponse.json(
                    400,
                    {
                        "error": f"Event Registration Submission {record_id} is already complete "
                        "and cannot be saved or submitted again."
                    },
                )
            if submit and not record_id:
                return SandboxResponse.json(400, {"error": "id is required to submit a registration."})
            stored = {k: v for k, v in payload.items() if k != "submit"}
            values: dict[str, Any] = {"conference360__Process__c": False}
            if existing is None:
                # "If the id is populated, the existing record is updated if found, otherwise created":
                # Salesforce cannot insert with a chosen Id, so a new one is generated either way.
                record = self.store.insert_sf(
                    REGISTRATION, {"conference360__Status__c": "Draft", "Name": "ERS"}
                )
                record["Name"] = f"ERS-{len(tables[REGISTRATION]):07d}"
            else:
                record = existing
            stored["id"] = record["Id"]
            values["conference360__Attendee_JSON__c"] = json.dumps(stored, separators=(",", ":"))
            if submit:
                self._create_session_attendees(payload["attendeeList"])
                values["conference360__Status__c"] = "Completed"
                values["conference360__Error_Message__c"] = None
            self.store.update_sf(REGISTRATION, record["Id"], values)
        answer = dict(payload)
        answer["id"] = record["Id"]
        return SandboxResponse.json(200, answer)

    def _validate_registration(self, payload: dict[str, Any]) -> str | None:
        attendees = payload.get("attendeeList")
        submit = payload.get("submit")
        if submit is not None and not isinstance(submit, bool):
            return "submit must be true or false."
        record_id = payload.get("id")
        if record_id not in (None, "") and (not isinstance(record_id, str) or not is_sf_id(record_id)):
            return f"Invalid id: {record_id}"
        if not isinstance(attendees, list) or not attendees:
            return "attendeeList is required."
        tables = self.store.salesforce.tables
        for index, attendee in enumerate(attendees):
            if not isinstance(attendee, dict):
                return f"attendeeList[{index}] must be an object."
            attendee_id = attendee.get("id")
            if not isinstance(attendee_id, str) or attendee_id not in tables[ATTENDEE]:
                return f"Attendee not found: {attendee_id}"
            session_ids = attendee.get("sessionIds")
            if session_ids is None and not submit:
                continue
            if not isinstance(session_ids, list) or (submit and not session_ids):
                return f"sessionIds are required for attendee {attendee_id}."
            for session_id in session_ids:
                if not isinstance(session_id, str) or session_id not in tables[SESSION]:
                    return f"Session not found: {session_id}"
        return None

    def _create_session_attendees(self, attendees: list[dict[str, Any]]) -> None:
        table = self.store.salesforce.tables[SESSION_ATTENDEE]
        if self._session_attendee_pairs is None:  # built once, then kept up to date here
            self._session_attendee_pairs = {
                (r["conference360__Attendee__c"], r["conference360__Session__c"])
                for r in table.values()
                if not r["IsDeleted"]
            }
        for attendee in attendees:
            for session_id in attendee.get("sessionIds") or []:
                pair = (attendee["id"], session_id)
                if pair in self._session_attendee_pairs:
                    continue
                self._session_attendee_pairs.add(pair)
                self.store.insert_sf(
                    SESSION_ATTENDEE,
                    {
                        "Name": "SA",
                        "conference360__Attendee__c": attendee["id"],
                        "conference360__Session__c": session_id,
                        "conference360__Registration_Status__c": "Registered",
                    },
                )
