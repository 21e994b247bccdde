"""Whole HTTP answers through the Checkfront client, the Salesforce client and its login, on canned transports.

Hostile statuses, headers, envelopes and bodies around hostile records; a request must still ask
for exactly what its argument names.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import requests
from hypothesis import strategies as st
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from regsync.clients import lenient_json
from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.salesforce import SalesforceClient, TokenProvider
from regsync.clients.usage import ApiUsage
from regsync.config import Settings, load_settings
from regsync.errors import RecordRejected
from regsync.normalize.checkfront import (
    missing_booking_session,
    normalize_booking_index_entry,
    normalize_booking_lines,
    normalize_booking_session,
)
from regsync.sandbox.store import REGISTRATION
from tests.support.hostile.bodies import broken_bodies
from tests.support.hostile.checkfront import (
    booking_details,
    booking_sessions,
    index_entries,
    index_losses,
    lines_losses,
    session_losses,
)
from tests.support.hostile.outcomes import NOW, HostileFailure, Outcome, require_intact, require_reason, show
from tests.support.hostile.salesforce import probe_registration, registrations
from tests.support.hostile.values import SURROGATES, json_values, mutated, scalars


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer a client is handed, and which call asked for it with what argument."""

    call: str
    argument: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


_HEADER_VALUES = st.one_of(
    st.sampled_from(["", "0", "3", "-5", "1e309", "nan", "NaN", "inf", "abc", "9" * 400, "1.5"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)
_LIMIT_INFO = st.one_of(
    st.sampled_from(
        [
            "api-usage=18/5000",
            "api-usage=5000/5000",
            "api-usage=1/0",
            "api-usage=" + "9" * 5000 + "/1",
            "api-usage=x/y; per-app-api-usage=1/2(appName=a)",
            "per-app-api-usage=17/250(appName=",
            ";;;",
        ]
    ),
    _HEADER_VALUES,
)
_STATUSES = st.sampled_from([200, 200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 409, 429, 500, 502, 503])


def _dumps(value: Any) -> bytes:
    """JSON of any hostile value (surrogates escaped, NaN allowed): what a careless server sends."""
    try:
        return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()
    except (RecursionError, ValueError, TypeError):
        return b"[" * 2000 + b"]" * 2000


def _envelope(resource: str, request_id: str, payload: dict[str, Any], **request: Any) -> dict[str, Any]:
    block = {
        "status": "OK",
        "resource": resource,
        "id": request_id,
        "records": 1,
        "limit": 0,
        "page": 1,
        "pages": 1,
    }
    return {
        "version": "3.0",
        "account_id": 1,
        "host_id": "x.checkfront.com",
        "request": block | request,
        **payload,
    }


# Booking codes and session ids come from normalized records: any text but unpaired surrogates.
_argument_text = st.text(st.characters(exclude_categories=SURROGATES), min_size=1, max_size=30)


@st.composite
def checkfront_answers(draw: st.DrawFn) -> HttpAnswer:
    """Answers to the Checkfront client's calls: good envelopes around hostile records, hostile
    envelopes, critical errors, broken bodies, hostile statuses and headers, hostile arguments."""
    call = draw(st.sampled_from(["session", "index", "booking", "end"]))
    argument = draw(
        st.one_of(st.sampled_from(["e36eickj20m4be5le96e3bcu4o", "PIMS-270125", ".", ".."]), _argument_text)
    )
    if call == "session":
        record: Any = draw(booking_sessions)
        good = _envelope("booking", "session", {"booking": {"session": record}})
    elif call == "index":
        entries = draw(st.lists(index_entries, max_size=3))
        good = _envelope(
            "booking", "index", {"booking/index": {str(i + 1): e for i, e in enumerate(entries)} or []}
        )
    elif call == "booking":
        good = _envelope("booking", argument, {"booking": draw(booking_details)})
    else:
        good = _envelope("booking", "session", {"booking": {"session": {"id": argument}}})
    kind = draw(st.sampled_from(["good", "good", "good", "envelope", "critical", "error", "broken"]))
    if kind == "envelope":
        body = _dumps(draw(mutated(good, st.one_of(scalars, json_values))))
    elif kind == "critical":
        body = _dumps({"error": draw(scalars), "error_description": draw(scalars)})
    elif kind == "error":
        error = draw(
            st.one_of(
                json_values, st.fixed_dictionaries({"id": scalars, "title": scalars, "details": scalars})
            )
        )
        body = _dumps(
            _envelope(
                "booking", "x", {}, status=draw(st.sampled_from(["ERROR", "error", None, 1])), error=error
            )
        )
    elif kind == "broken":
        body = draw(broken_bodies).body
    else:
        body = _dumps(good)
    headers = draw(
        st.lists(st.tuples(st.sampled_from(["Retry-After", "Content-Type"]), _HEADER_VALUES), max_size=2)
    )
    status = draw(_STATUSES) if kind != "good" or draw(st.booleans()) else 200
    return HttpAnswer(call, argument, status, tuple(headers), body)


@st.composite
def salesforce_answers(draw: st.DrawFn) -> HttpAnswer:
    """Answers to the Salesforce client's calls: query pages of hostile records, hostile page
    envelopes, Salesforce and Blackthorn error bodies, broken bodies, hostile limit headers."""
    call = draw(st.sampled_from(["query", "query_more", "apex", "limits", "retrieve"]))
    kind = draw(st.sampled_from(["good", "good", "good", "shape", "error", "broken"]))
    if call in ("query", "query_more"):
        records = draw(st.lists(registrations, max_size=3))
        good: Any = {"totalSize": len(records), "done": True, "records": records}
    elif call == "retrieve":
        good = draw(registrations)
    else:
        good = draw(json_values)
    if kind == "shape":
        body = _dumps(
            draw(mutated({"totalSize": 1, "done": False, "nextRecordsUrl": "/q/1-2", "records": []}))
        )
    elif kind == "error":
        error = draw(
            st.one_of(
                st.lists(st.fixed_dictionaries({"errorCode": scalars, "message": scalars}), max_size=2),
                st.fixed_dictionaries({"error": scalars}),
                json_values,
            )
        )
        body = _dumps(error)
    elif kind == "broken":
        body = draw(broken_bodies).body
    else:
        body = _dumps(good)
    headers = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("Sforce-Limit-Info"), _LIMIT_INFO),
                st.tuples(st.just("Retry-After"), _HEADER_VALUES),
            ),
            max_size=2,
        )
    )
    status = draw(_STATUSES) if kind != "good" or draw(st.booleans()) else 200
    return HttpAnswer(call, "", status, tuple(headers), body)


@st.composite
def token_answers(draw: st.DrawFn) -> HttpAnswer:
    """Answers to the OAuth token request."""
    good = {"access_token": "00Dx!token", "instance_url": "https://org.example.invalid", "signature": "s"}
    body = draw(
        st.one_of(
            mutated(good).map(_dumps),
            st.fixed_dictionaries({"error": scalars, "error_description": scalars}).map(_dumps),
            json_values.map(_dumps),
            broken_bodies.map(lambda b: b.body),
        )
    )
    headers = draw(st.lists(st.tuples(st.just("Retry-After"), _HEADER_VALUES), max_size=1))
    return HttpAnswer("login", "", draw(_STATUSES), tuple(headers), body)


def _strict_sleep(seconds: float) -> None:
    """What time.sleep accepts, without sleeping: a NaN or negative wait must not reach it."""
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
        raise HostileFailure(f"the retry policy asked to sleep {seconds!r} seconds (time.sleep refuses it)")


_RETRY = {"REGSYNC_RETRY__ATTEMPTS": "2", "REGSYNC_RETRY__INITIAL_S": "0", "REGSYNC_RETRY__MAX_S": "0"}


def _settings(**env: str) -> Settings:
    base = {
        "REGSYNC_WAREHOUSE__URL": "sqlite://",
        "REGSYNC_CHECKFRONT__BASE_URL": "https://cf.hostile.invalid",
        "REGSYNC_CHECKFRONT__AUTH": "token",
        "REGSYNC_CHECKFRONT__API_KEY": "hostile-key",
        "REGSYNC_CHECKFRONT__API_SECRET": "hostile-secret",
        "REGSYNC_SALESFORCE__AUTH": "session",
        "REGSYNC_SALESFORCE__INSTANCE_URL": "https://sf.hostile.invalid",
        "REGSYNC_SALESFORCE__SESSION_ID": "hostile-session",
        **_RETRY,
    }
    return load_settings(environ=base | env)


class _CheckfrontBench:
    """A Checkfront client whose transport answers whatever the current example says."""

    def __init__(self) -> None:
        self.answer: HttpAnswer | None = None
        self.requests: list[httpx.Request] = []
        settings = _settings()
        self.client = CheckfrontClient(
            settings.checkfront,
            settings.retry,
            ApiUsage(),
            transport=httpx.MockTransport(self._serve),
            sleep=_strict_sleep,
        )

    def _serve(self, request: httpx.Request) -> httpx.Response:
        assert self.answer is not None
        self.requests.append(request)
        return httpx.Response(self.answer.status, headers=list(self.answer.headers), content=self.answer.body)


class _CannedAdapter(BaseAdapter):
    """A requests adapter that answers whatever the current example says."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: HttpAnswer | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert self.answer is not None
        response = requests.Response()
        response.status_code = self.answer.status
        response._content = self.answer.body
        response.headers = CaseInsensitiveDict(dict(self.answer.headers))
        response.url = request.url or ""
        response.request = request
        response.reason = "hostile"
        return response

    def close(self) -> None:
        return None


class _SalesforceBench:
    def __init__(self) -> None:
        self.adapter = _CannedAdapter()
        http = requests.Session()
        http.mount("https://", self.adapter)
        settings = _settings()
        self.client = SalesforceClient(
            settings.salesforce, settings.retry, ApiUsage(), http=http, sleep=_strict_sleep
        )
        login = _settings(
            REGSYNC_SALESFORCE__AUTH="password",
            REGSYNC_SALESFORCE__LOGIN_URL="https://login.hostile.invalid",
            REGSYNC_SALESFORCE__USERNAME="hostile@example.invalid",
            REGSYNC_SALESFORCE__PASSWORD="hostile-password",
            REGSYNC_SALESFORCE__CONSUMER_KEY="hostile-consumer",
            REGSYNC_SALESFORCE__CONSUMER_SECRET="hostile-consumer-secret",
        )
        self.login_settings = login.salesforce
        self.http = http


_BENCH_LOCK = threading.Lock()
_BENCHES: dict[str, Any] = {}


def _bench(name: str, make: Callable[[], Any]) -> Any:
    with _BENCH_LOCK:
        if name not in _BENCHES:
            _BENCHES[name] = make()
        return _BENCHES[name]


def _same_json(first: Any, second: Any) -> bool:
    """Equal as JSON (NaN equal to NaN: both sides parsed the same body)."""
    try:
        return json.dumps(first, sort_keys=True, default=repr) == json.dumps(
            second, sort_keys=True, default=repr
        )
    except (RecursionError, ValueError, TypeError):
        return len(first) == len(second)


def _booking_path_ok(raw_path: bytes, argument: str) -> bool:
    """The request named exactly one booking: one path segment that decodes to `argument`."""
    prefix = b"/api/3.0/booking/"
    if not raw_path.startswith(prefix) or b"?" in raw_path:
        return False
    segment = raw_path[len(prefix) :].decode("ascii", "replace")
    return "/" not in segment and segment not in (".", "..") and unquote(segment) == argument


def probe_checkfront_answer(answer: HttpAnswer) -> Outcome:
    bench: _CheckfrontBench = _bench("checkfront", _CheckfrontBench)
    bench.answer, bench.requests = answer, []
    bench.client.usage = ApiUsage()
    try:
        if answer.call == "session":
            read = bench.client.get_booking_session(answer.argument)
            shaped = normalize_booking_session(read.session, NOW) if read.found else None
            if shaped is not None:
                require_intact(session_losses(read.session, shaped), "booking session answer")
            elif missing_booking_session(answer.argument, NOW).booking_session["id"] != answer.argument:
                raise HostileFailure("a missing booking session lost its id")
        elif answer.call == "index":
            page = bench.client.booking_index_page(1)
            index = lenient_json.loads(answer.body)["booking/index"]
            sent = list(index.values()) if isinstance(index, dict) else []
            if not _same_json(page.bookings, sent):
                raise HostileFailure(f"booking index: {len(sent)} entries sent, {len(page.bookings)} kept")
            rejected = 0
            for entry in page.bookings:
                try:
                    require_intact(
                        index_losses(entry, normalize_booking_index_entry(entry, NOW)), "index entry"
                    )
                except RecordRejected as exc:
                    require_reason("checkfront.index", str(exc), entry)
                    rejected += 1
            if rejected:
                return "quarantined"
        elif answer.call == "booking":
            booking = bench.client.get_booking(answer.argument)
            if booking is not None:
                booking_id, lines = normalize_booking_lines(booking)
                require_intact(lines_losses(booking, booking_id, lines), "booking answer")
        else:
            bench.client.end_booking_session(answer.argument)
    finally:
        _check_checkfront_requests(bench.requests, answer)
    return "accepted"


def _check_checkfront_requests(sent: list[httpx.Request], answer: HttpAnswer) -> None:
    """Whatever the argument held, each request asked for exactly that one thing."""
    for request in sent:
        if answer.call == "booking":
            if not _booking_path_ok(request.url.raw_path, answer.argument):
                raise HostileFailure(
                    f"booking code {show(answer.argument)} changed the request: {request.url.raw_path!r}"
                )
        elif answer.call == "session":
            asked = parse_qs(request.url.query.decode(), keep_blank_values=True).get("session_id")
            if request.url.path != "/api/3.0/booking/session" or asked != [answer.argument]:
                raise HostileFailure(f"session id {show(answer.argument)} changed the request: {request.url}")


def probe_salesforce_answer(answer: HttpAnswer) -> Outcome:
    bench: _SalesforceBench = _bench("salesforce", _SalesforceBench)
    bench.adapter.answer = answer
    bench.client.usage = ApiUsage()
    client = bench.client
    if answer.call in ("query", "query_more"):
        page = (
            client.query_first("SELECT Id FROM X")
            if answer.call == "query"
            else client.query_next("/services/data/v59.0/query/01g-2000")
        )
        body = json.loads(answer.body)
        if body.get("done") is not True and not page.next_records_url:
            raise HostileFailure(f"query page with done={show(body.get('done'))} accepted as the last one")
        sent = body["records"]
        if not _same_json(page.records, sent):
            raise HostileFailure(f"query page: {len(sent)} records sent, {len(page.records)} kept")
        if not isinstance(page.total_size, int) or (
            page.next_records_url is not None and not isinstance(page.next_records_url, str)
        ):
            raise HostileFailure(
                f"query page accepted with totalSize {show(page.total_size)}, next {show(page.next_records_url)}"
            )
        rejected = 0
        for record in page.records:
            try:
                probe_registration(record)
            except RecordRejected as exc:
                require_reason("salesforce.query", str(exc), record)
                rejected += 1
        return "quarantined" if rejected else "accepted"
    if answer.call == "apex":
        result = client.apex_post("sessionRegistration", {"sessionId": "x"})
        if isinstance(result, str):
            raise HostileFailure("apex answer accepted as a string")
    elif answer.call == "limits":
        client.limits()
    else:
        client.retrieve(REGISTRATION, "a160U0000000001AAA", ["Id"])
    return "accepted"


def probe_salesforce_login(answer: HttpAnswer) -> Outcome:
    bench: _SalesforceBench = _bench("salesforce", _SalesforceBench)
    bench.adapter.answer = answer
    token = TokenProvider(bench.login_settings, bench.http, ApiUsage()).current()
    if not (isinstance(token.access_token, str) and token.access_token):
        raise HostileFailure(f"login accepted the access token {show(token.access_token)}")
    if not (isinstance(token.instance_url, str) and token.instance_url.startswith("https://")):
        raise HostileFailure(f"login accepted the instance URL {show(token.instance_url)}")
    return "accepted"
