"""The Checkfront emulator answers in the documented API 3.0 shapes, so client tests can trust it."""

from __future__ import annotations

import base64
import calendar
from datetime import date
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from regsync.sandbox.checkfront import CheckfrontApi
from regsync.sandbox.checkfront.values import _php_decode
from regsync.sandbox.http import RequestHeaders, Router, SandboxRequest, SandboxResponse
from regsync.sandbox.store import SandboxStore

KEY, SECRET, TOKEN = "test-key", "test-secret", "test-token"
BASIC = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
DAY = "20301005"  # a Saturday, far enough ahead
DAY_EPOCH = calendar.timegm(date(2030, 10, 5).timetuple())

# What the vendor's docs show, written down here in our own words.
ENVELOPE_KEYS = {"version", "account_id", "host_id", "name", "locale", "request"}
LOCALE_KEYS = {"id", "lang", "currency"}
REQUEST_KEYS = {"status", "resource", "records", "limit", "page", "pages", "time", "method"}
LIST_REQUEST_KEYS = REQUEST_KEYS | {"id", "total_records", "path"}
ERROR_REQUEST_KEYS = REQUEST_KEYS | {"timestamp", "error"}
ERROR_KEYS = {"id", "title", "details", "data"}
PONG_KEYS = {"remote_addr", "time", "timezone", "provider"}
SESSION_KEYS = {
    "id", "age", "summary", "start_date", "end_date", "date_desc", "time_desc", "account_id",
    "partner_id", "currency_id", "sub_total", "tax_total", "tax_inc_total", "discount", "total",
    "due", "paid_total", "flat_discount", "deposit", "tax", "qty", "item",
}  # fmt: skip
SESSION_MONEY = ("sub_total", "tax_total", "tax_inc_total", "discount", "total", "due", "paid_total")
LINE_KEYS = {"sku", "item_id", "name", "unit", "rate", "date", "slip", "available"}
PACKAGE_LINE_KEYS = LINE_KEYS | {"optin", "opt"}
LINE_RATE_KEYS = {"total", "item_total", "qty", "summary"}
LINE_DATE_KEYS = {"summary", "start_date", "end_date"}
INDEX_ENTRY_KEYS = {
    "booking_id", "code", "status_id", "status_name", "created_date", "total", "tax_total",
    "paid_total", "customer_id", "customer_name", "customer_email", "summary", "date_desc", "tid",
    "token",
}  # fmt: skip
ITEM_KEYS = {
    "unit", "item_id", "sku", "url", "lock", "visibility", "name", "pos", "summary", "details",
    "meta", "stock", "unlimited", "video", "image", "category_id", "rated", "product_group_type",
    "product_group_children", "type", "status", "alias_id", "len", "rules", "category",
}  # fmt: skip
RATED_ITEM_EXTRA = {
    "package",
    "param",
    "qty",
    "rate",
    "days",
    "discount",
    "local_start_date",
    "local_end_date",
}
RATE_KEYS = {
    "status",
    "available",
    "slip",
    "summary",
    "sub_total",
    "event",
    "start_date",
    "end_date",
    "dates",
}
RATE_SUMMARY_KEYS = {"title", "details", "price", "date"}
RATE_DAY_KEYS = {"status", "price", "dow", "stock", "rates", "discount", "sub_total"}
QUERY_KEYS = {"start_date", "end_date", "param", "local_end_date", "local_start_date"}
BOOKING_KEYS = {
    "booking_id", "code", "status_id", "status_name", "created_date", "last_modified",
    "start_date", "end_date", "tid", "token", "summary", "date_desc", "customer", "fields", "order",
}  # fmt: skip
CUSTOMER_KEYS = {
    "customer_id",
    "code",
    "name",
    "email",
    "region",
    "address",
    "city",
    "country",
    "phone",
    "postal_zip",
}
ORDER_KEYS = {"currency_id", "sub_total", "tax_total", "paid_total", "total", "taxes", "items"}
ORDER_ITEM_KEYS = {
    "line_id", "item_id", "sku", "slip", "status_id", "start_date", "end_date", "total", "tax_total", "qty",
}  # fmt: skip


def is_money(value: Any) -> bool:
    """Money is a string with exactly two decimals."""
    if not isinstance(value, str):
        return False
    whole, dot, cents = value.partition(".")
    return dot == "." and whole.lstrip("-").isdigit() and len(cents) == 2 and cents.isdigit()


# ---------------------------------------------------------------------------------------------
# A small hand-built account and a way to call it without a network
# ---------------------------------------------------------------------------------------------


def make_store() -> SandboxStore:
    store = SandboxStore()
    store.checkfront.items.update(
        {
            18: {
                "item_id": 18,
                "sku": "ziplinetour",
                "name": "Zipline Tour",
                "unit": "D",
                "stock": 15,
                "category_id": 6,
                "category": "Activities",
                "params": {"adults": 130, "children": 110},
                "packages": [21, 20],
            },
            21: {
                "item_id": 21,
                "sku": "photopack",
                "name": "Photo Pack",
                "unit": "D",
                "stock": None,
                "unlimited": 1,
                "category_id": 7,
                "category": "Add-ons",
                "params": {},
                "price": 18,
                "packages": [],
            },
            20: {
                "item_id": 20,
                "sku": "cap",
                "name": "Souvenir Cap",
                "unit": "D",
                "stock": None,
                "unlimited": 1,
                "category_id": 7,
                "category": "Add-ons",
                "params": {},
                "price": "15.00",
                "packages": [],
            },
            30: {
                "item_id": 30,
                "sku": "workshop",
                "name": "Workshop",
                "unit": "D",
                "stock": 3,
                "category_id": 8,
                "category": "Sessions",
                "params": {"guests": 50},
                "packages": [],
            },
        }
    )
    return store


class Account:
    """The emulator behind a router, called with hand-made SandboxRequests."""

    def __init__(self, store: SandboxStore | None = None) -> None:
        self.store = store or make_store()
        self.api = CheckfrontApi(self.store, api_key=KEY, api_secret=SECRET, bearer_token=TOKEN)
        self.router = Router()
        self.router.add(self.api.routes())
        self.router.not_found = self.api.not_found
        self.last_endpoint = ""

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        form: list[tuple[str, str]] | dict[str, str] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        auth: str | None = BASIC,
    ) -> tuple[int, dict[str, Any], SandboxResponse]:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = auth
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = orjson.dumps(json_body)
            sent["Content-Type"] = "application/json"
        request = SandboxRequest(
            method=method,
            path="/api/3.0" + path,
            query={k: v if isinstance(v, list) else [str(v)] for k, v in (query or {}).items()},
            headers=RequestHeaders.of(sent.items()),
            body=body,
        )
        route, params = self.router.resolve(request)
        if route is None:
            response = self.router.not_found(request)
            self.last_endpoint = "unknown"
        else:
            request.params = dict(params)
            response = route.handler(request)
            self.last_endpoint = route.name
        return response.status, orjson.loads(response.body), response

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        status, body, _ = self.call(method, path, **kwargs)
        assert status == 200, body
        assert body["request"]["status"] == "OK", body["request"]
        return body

    # -- conveniences
    def add(self, *slips: str, session_id: str | None = None) -> dict[str, Any]:
        form = [("slip[]", slip) for slip in slips]
        if session_id:
            form.append(("session_id", session_id))
        return self.ok("POST", "/booking/session", form=form)["booking"]["session"]

    def session(self, session_id: str) -> dict[str, Any]:
        return self.ok("GET", "/booking/session", query={"session_id": session_id})["booking"]["session"]

    def alter(self, session_id: str, **changes: str) -> dict[str, Any]:
        form = [("session_id", session_id)] + [
            (f"alter[{k.replace('_', '.')}]", v) for k, v in changes.items()
        ]
        return self.ok("POST", "/booking/session", form=form)["booking"]["session"]

    def rated_available(self, item_id: int = 18, day: str = DAY) -> int:
        body = self.ok("GET", f"/item/{item_id}", query={"start_date": day})
        return body["item"]["rate"]["available"]


def zipline(adults: int = 1, children: int = 0, day: str = DAY) -> str:
    return f"18.{day}X1-adults.{adults}-children.{children}"


def check_envelope(body: dict[str, Any], *, resource: str, method: str = "get") -> dict[str, Any]:
    assert set(body) >= ENVELOPE_KEYS
    assert body["version"] == "3.0"
    assert isinstance(body["account_id"], int)
    assert body["host_id"] == "your-company.checkfront.com"
    assert body["name"] == "Your Company"
    assert set(body["locale"]) == LOCALE_KEYS
    assert body["locale"]["currency"] == "CAD"
    request = body["request"]
    assert set(request) >= REQUEST_KEYS
    assert request["resource"] == resource
    assert request["method"] == method
    assert isinstance(request["time"], float)
    for name in ("records", "limit", "page", "pages"):
        assert type(request[name]) is int, name
    return request


def add_booking(
    store: SandboxStore,
    booking_id: int,
    *,
    status: str = "PAID",
    created: int = 1_900_000_000,
    modified: int | None = None,
    email: str = "guest@example.com",
    qty: int = 1,
    item_id: int = 30,
) -> dict[str, Any]:
    letters = "".join(chr(65 + (booking_id // 26**i) % 26) for i in range(4))
    booking = {
        "booking_id": booking_id,
        "code": f"{letters}-051030",
        "status_id": status,
        "created_date": created,
        "last_modified": modified if modified is not None else created,
        "start_date": DAY_EPOCH,
        "end_date": DAY_EPOCH,
        "customer_name": "Guest Person",
        "customer_email": email,
        "session_id": None,
        "lines": [
            {
                "line_id": 1,
                "item_id": item_id,
                "slip": f"{item_id}.{DAY}X1-guests.{qty}",
                "qty": qty,
                "date": DAY,
                "len": 1,
                "param": {"guests": qty},
                "start_date": DAY_EPOCH,
                "end_date": DAY_EPOCH,
                "total": f"{50 * qty}.00",
                "tax_total": "0.00",
                "status_id": status,
            }
        ],
        "sub_total": f"{50 * qty}.00",
        "tax_total": "0.00",
        "total": f"{50 * qty}.00",
        "paid_total": f"{50 * qty}.00" if status == "PAID" else "0.00",
    }
    store.checkfront.bookings[booking_id] = booking
    return booking


@pytest.fixture
def account() -> Account:
    return Account()


# ---------------------------------------------------------------------------------------------
# Envelope, auth, parameters
# ---------------------------------------------------------------------------------------------


def test_ping_answers_the_envelope_and_pong(account: Account) -> None:
    body = account.ok("GET", "/ping")
    assert set(body) == ENVELOPE_KEYS | {"pong"}
    request = check_envelope(body, resource="ping")
    assert set(request) == REQUEST_KEYS
    assert (request["records"], request["limit"], request["page"], request["pages"]) == (1, 0, 1, 1)
    assert set(body["pong"]) == PONG_KEYS
    assert isinstance(body["pong"]["time"], int)
    assert account.last_endpoint == "checkfront.ping"


@pytest.mark.parametrize(
    ("auth", "query", "error", "description"),
    [
        (None, None, "invalid_request", "The access token was not found."),
        ("Basic " + base64.b64encode(b"test-key:wrong").decode(), None, "invalid_grant", "The access token provided is invalid."),
        ("Bearer nope", None, "invalid_grant", "The access token provided is invalid."),
        (None, {"access_token": "nope"}, "invalid_grant", "The access token provided is invalid."),
        ("Basic !!!not-base64!!!", None, "invalid_request", "Malformed auth header."),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None, "invalid_request", "Malformed auth header."),
        ("Bearer", None, "invalid_request", "Malformed auth header."),
        ("Token abc", None, "invalid_request", "Malformed auth header."),
    ],
)  # fmt: skip
def test_auth_failures_are_critical_errors_without_envelope(
    account: Account, auth: str | None, query: dict[str, str] | None, error: str, description: str
) -> None:
    for path in ("/ping", "/booking/session", "/booking/index", "/no/such/thing"):
        status, body, _ = account.call("GET", path, auth=auth, query=query)
        assert status == 401
        assert body == {"error": error, "error_description": description}


@pytest.mark.parametrize(
    ("auth", "query"),
    [
        (BASIC, None),
        (f"Bearer {TOKEN}", None),
        (f"BEARER {TOKEN}", None),
        (f"bearer {TOKEN}", None),
        (None, {"access_token": TOKEN}),
    ],
)
def test_every_documented_way_to_authenticate(
    account: Account, auth: str | None, query: dict[str, str] | None
) -> None:
    status, body, _ = account.call("GET", "/ping", auth=auth, query=query)
    assert status == 200
    assert body["request"]["status"] == "OK"


def test_access_token_in_a_form_body_is_accepted(account: Account) -> None:
    status, _, _ = account.call("POST", "/booking/session", auth=None, form={"access_token": TOKEN})
    assert status == 200


def test_php_arrays_in_forms_decode_like_php() -> None:
    pairs = [
        ("slip[]", "A"),
        ("slip[]", "B"),
        ("alter[3]", "5"),
        ("alter[2.1]", "optin"),
        ("form[customer_name]", "Jo"),
        ("x", "1"),
        ("x", "2"),
    ]
    assert _php_decode(pairs) == {
        "slip": {"0": "A", "1": "B"},
        "alter": {"3": "5", "2.1": "optin"},
        "form": {"customer_name": "Jo"},
        "x": "2",
    }  # fmt: skip


def test_unknown_path_is_an_error_envelope(account: Account) -> None:
    status, body, _ = account.call("GET", "/nothing/here")
    assert status == 404
    request = check_envelope(body, resource="nothing")
    assert request["status"] == "ERROR"
    assert set(request["error"]) == ERROR_KEYS


def test_route_names_are_the_ones_faults_and_the_log_use(account: Account) -> None:
    names = {route.name for route in account.api.routes()}
    assert {
        "checkfront.ping",
        "checkfront.item.list",
        "checkfront.item.get",
        "checkfront.booking_session.get",
        "checkfront.booking_session.post",
        "checkfront.booking_session.clear",
        "checkfront.booking_session.end",
        "checkfront.booking.index",
        "checkfront.booking.get",
        "checkfront.booking.update",
        "checkfront.booking.create",
    } == names
    account.call("POST", "/booking/session/end", form={"session_id": "x"})
    assert account.last_endpoint == "checkfront.booking_session.end"
    account.call("GET", "/booking/ABCD-010130")
    assert account.last_endpoint == "checkfront.booking.get"
    account.call("GET", "/booking/index")
    assert account.last_endpoint == "checkfront.booking.index"


# ---------------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------------


def test_unrated_item_has_the_documented_keys(account: Account) -> None:
    body = account.ok("GET", "/item/18")
    request = check_envelope(body, resource="item")
    assert request["id"] == "18"
    assert request["records"] == 0
    assert body["query"] == []
    assert set(body["item"]) == ITEM_KEYS
    assert body["item"]["item_id"] == 18
    assert isinstance(body["item"]["stock"], int)
    assert isinstance(body["item"]["meta"], str)
    assert isinstance(body["item"]["rules"], str)


def test_item_listing_is_keyed_by_item_id_string(account: Account) -> None:
    body = account.ok("GET", "/item")
    assert set(body["items"]) == {"18", "20", "21", "30"}
    assert all(set(item) == ITEM_KEYS for item in body["items"].values())
    only = account.ok("GET", "/item", query={"item_id": "30,18"})
    assert set(only["items"]) == {"18", "30"}
    assert account.ok("GET", "/item", query={"category_id": "99"})["items"] == []


@pytest.mark.parametrize("day", [DAY, "2030-10-05"])
def test_rated_item_has_rate_slip_and_query(account: Account, day: str) -> None:
    body = account.ok(
        "GET", "/item/18", query={"start_date": day, "param[adults]": "2", "param[children]": "1"}
    )
    item = body["item"]
    assert set(item) == ITEM_KEYS | RATED_ITEM_EXTRA
    assert set(body["query"]) == QUERY_KEYS
    assert body["query"]["start_date"] == DAY
    assert body["query"]["param"] == {"adults": "2", "children": "1"}
    assert body["query"]["local_start_date"] == "10/05/30"
    rate = item["rate"]
    assert set(rate) == RATE_KEYS
    assert rate["status"] == "AVAILABLE"
    assert rate["available"] == 15
    assert rate["slip"] == "18.20301005X1-adults.2-children.1"
    assert rate["sub_total"] == "370.00"
    assert (rate["start_date"], rate["end_date"]) == (DAY, DAY)
    assert set(rate["summary"]) == RATE_SUMMARY_KEYS
    assert rate["summary"]["title"] == "15 Available"
    assert rate["summary"]["price"]["title"] == "$110.00 - $130.00"
    assert rate["summary"]["date"] == "Sat Oct 5, 2030"
    assert set(rate["dates"]) == {DAY}
    day_rate = rate["dates"][DAY]
    assert set(day_rate) == RATE_DAY_KEYS
    assert day_rate["stock"] == {"T": 15, "B": 0, "A": 15, "MinA": 15}
    assert day_rate["dow"] == "6"
    assert day_rate["price"] == {"adults": 130, "children": 110}
    assert item["qty"] == 3
    assert item["param"]["adults"]["qty"] == 2
    assert item["package"] == [
        {"package_id": 21, "optin": "O", "select_package_params": 1},
        {"package_id": 20, "optin": "O", "select_package_params": 1},
    ]


def test_rated_item_default_param_and_addon_slip(account: Account) -> None:
    assert account.ok("GET", "/item/18", query={"start_date": DAY})["item"]["rate"]["slip"] == zipline(1, 0)
    addon = account.ok("GET", "/item/21", query={"start_date": DAY})["item"]["rate"]
    assert addon["slip"] == f"21.{DAY}X1-1"
    assert addon["available"] == 1_000_000_000


def test_availability_counts_bookings_and_live_carts(account: Account) -> None:
    add_booking(account.store, 1, qty=1)
    add_booking(account.store, 2, qty=1, status="STOP")  # cancelled: gives its seat back
    account.add(f"30.{DAY}X1-guests.1")
    rate = account.ok("GET", "/item/30", query={"start_date": DAY, "param[guests]": "1"})["item"]["rate"]
    assert rate["available"] == 1
    assert rate["status"] == "AVAILABLE"
    assert rate["dates"][DAY]["stock"] == {"T": 3, "B": 2, "A": 1, "MinA": 1}
    too_many = account.ok("GET", "/item/30", query={"start_date": DAY, "param[guests]": "2"})["item"]["rate"]
    assert too_many["status"] != "AVAILABLE"
    assert "slip" not in too_many
    account.add(f"30.{DAY}X1-guests.1")
    sold = account.ok("GET", "/item/30", query={"start_date": DAY})["item"]["rate"]
    assert (sold["status"], sold["available"]) == ("SOLD_OUT", 0)


# ---------------------------------------------------------------------------------------------
# Booking sessions
# ---------------------------------------------------------------------------------------------


def test_session_answer_has_the_documented_shape(account: Account) -> None:
    status, body, response = account.call("POST", "/booking/session", form=[("slip[]", zipline())])
    assert status == 200
    request = check_envelope(body, resource="booking", method="post")
    assert request["id"] == "session"
    assert set(body) == ENVELOPE_KEYS | {"booking"}
    session = body["booking"]["session"]
    assert set(session) == SESSION_KEYS
    assert len(session["id"]) == 26
    assert session["age"] == 0
    assert session["summary"] == "Zipline Tour"
    assert session["start_date"] == session["end_date"] == DAY_EPOCH
    assert session["date_desc"] == "Sat Oct 5, 2030"
    assert session["currency_id"] == "CAD"
    assert all(is_money(session[name]) for name in SESSION_MONEY)
    assert (session["sub_total"], session["total"], session["due"]) == ("130.00", "130.00", "130.00")
    assert session["flat_discount"] == {"total": 0, "total_pretax": 0}
    assert session["deposit"] is None
    assert session["tax"] == []
    assert session["qty"] == 1
    assert set(session["item"]) == {"1", "1.1", "1.2"}
    assert request["records"] == 3
    main = session["item"]["1"]
    assert set(main) == LINE_KEYS
    assert set(main["rate"]) == LINE_RATE_KEYS
    assert set(main["date"]) == LINE_DATE_KEYS
    assert main["item_id"] == 18
    assert main["slip"] == zipline()
    assert main["rate"] == {
        "total": "130.00",
        "item_total": "130.00",
        "qty": 1,
        "summary": '<strong title="Adults">Adults:</strong> 1 Day @ $130.00',
    }
    assert main["date"] == {"summary": "Sat Oct 5, 2030", "start_date": DAY_EPOCH, "end_date": DAY_EPOCH}
    assert main["available"] == 14  # this cart's own seat is held
    photo = session["item"]["1.1"]
    assert set(photo) == PACKAGE_LINE_KEYS
    assert (photo["optin"], photo["opt"]) == ("O", "out")
    assert photo["rate"] == {"total": "18.00", "item_total": "0.00", "qty": 1, "summary": "$18.00"}
    assert photo["slip"] == f"21.{DAY}X1-1"
    assert photo["available"] == 1_000_000_000
    assert ("Set-Cookie", f"session_id={session['id']}; path=/; secure; HttpOnly") in response.headers
    stored = account.store.checkfront.booking_sessions[session["id"]]
    assert stored["ended"] is None
    assert set(stored["lines"]) == {"1", "1.1", "1.2"}


def test_add_several_lines_and_alter_them(account: Account) -> None:
    session = account.add(zipline(), f"30.{DAY}X1-guests.1")
    sid = session["id"]
    assert set(session["item"]) == {"1", "1.1", "1.2", "2"}
    assert session["summary"] == "Zipline Tour, Workshop"
    session = account.alter(sid, **{"1": "3"})
    line = session["item"]["1"]
    assert line["rate"]["qty"] == 3
    assert line["slip"] == zipline(3, 0)
    assert line["rate"]["total"] == "390.00"
    assert session["total"] == "440.00"
    assert session["qty"] == 4
    session = account.alter(sid, **{"1_1": "optin"})
    assert session["item"]["1.1"]["opt"] == "in"
    assert session["item"]["1.1"]["rate"]["item_total"] == "18.00"
    assert session["total"] == "458.00"
    assert session["summary"] == "Zipline Tour, Photo Pack, Workshop"
    session = account.alter(sid, **{"1_1": "optout", "1_2": "remove"})
    assert session["item"]["1.1"]["opt"] == "out"
    assert set(session["item"]) == {"1", "1.1", "2"}
    assert session["total"] == "440.00"
    session = account.alter(sid, **{"1": "remove"})
    assert set(session["item"]) == {"2"}
    session = account.add(zipline(), session_id=sid)
    assert set(session["item"]) == {"2", "3", "3.1", "3.2"}  # line ids are never reused downwards
    assert session["id"] == sid


def test_json_body_alters_like_a_form(account: Account) -> None:
    sid = account.add(zipline(), f"30.{DAY}X1-guests.1")["id"]
    body = account.ok(
        "POST",
        "/booking/session",
        json_body={"session_id": sid, "alter": {"2": "2", "1.1": "optin", "1": "remove"}},
    )
    session = body["booking"]["session"]
    assert session["id"] == sid
    assert set(session["item"]) == {"2"}
    assert session["item"]["2"]["rate"]["qty"] == 2
    assert session["item"]["2"]["slip"] == f"30.{DAY}X1-guests.2"


def test_replace_a_line_keeps_its_id(account: Account) -> None:
    sid = account.add(zipline())["id"]
    account.alter(sid, **{"1_2": "optin"})
    body = account.ok(
        "POST", "/booking/session", form={"session_id": sid, "line_id": "1", "slip": zipline(2, 1)}
    )
    session = body["booking"]["session"]
    assert session["item"]["1"]["slip"] == zipline(2, 1)
    assert session["item"]["1.2"]["opt"] == "in"  # same add-on, same choice
    assert session["total"] == str(2 * 130 + 110 + 15) + ".00"


def test_bad_slip_and_bad_alter_are_error_envelopes_and_change_nothing(account: Account) -> None:
    sid = account.add(zipline())["id"]
    before = account.store.checkfront.booking_sessions[sid]["modified"]
    for form in (
        {"session_id": sid, "slip": "not-a-slip"},
        {"session_id": sid, "slip": f"999.{DAY}X1-1"},
        {"session_id": sid, "alter[1]": "lots"},
        {"session_id": sid, "alter[1]": "optin"},
    ):
        status, body, _ = account.call("POST", "/booking/session", form=form)
        assert status == 200
        request = check_envelope(body, resource="booking", method="post")
        assert set(request) == ERROR_REQUEST_KEYS | {"id"}
        assert request["status"] == "ERROR"
        assert set(request["error"]) == ERROR_KEYS
    assert account.store.checkfront.booking_sessions[sid]["modified"] == before
    assert account.session(sid)["item"]["1"]["rate"]["qty"] == 1


def test_a_cart_cannot_take_more_seats_than_are_left(account: Account) -> None:
    add_booking(account.store, 1, qty=2)
    sid = account.add(f"30.{DAY}X1-guests.1")["id"]
    status, body, _ = account.call("POST", "/booking/session", form={"session_id": sid, "alter[1]": "2"})
    assert status == 200
    assert body["request"]["error"]["id"] == "unavailable"
    assert account.session(sid)["item"]["1"]["rate"]["qty"] == 1
    # Fewer seats are always fine.
    assert account.alter(sid, **{"1": "remove"})["item"] == []


def test_age_counts_from_the_last_change_not_the_last_read(account: Account) -> None:
    sid = account.add(zipline())["id"]
    account.store.clock.advance(100)
    assert account.session(sid)["age"] == 100
    account.store.clock.advance(50)
    assert account.session(sid)["age"] == 150
    assert account.alter(sid, **{"1": "2"})["age"] == 0
    account.store.clock.advance(7)
    assert account.session(sid)["age"] == 7
    # A call that changes nothing is not a change.
    body = account.ok("POST", "/booking/session", form={"session_id": sid})
    assert body["booking"]["session"]["age"] == 7


def test_unknown_session_gets_a_new_empty_one_that_is_not_stored(account: Account) -> None:
    status, body, response = account.call("GET", "/booking/session", query={"session_id": "nosuchsession"})
    assert status == 200
    session = body["booking"]["session"]
    assert session["id"] != "nosuchsession"
    assert session["age"] == 0
    assert session["item"] == []
    assert (session["start_date"], session["end_date"], session["summary"]) == (0, 0, "")
    assert session["total"] == "0.00"
    assert body["request"]["records"] == 0
    assert account.store.checkfront.booking_sessions == {}
    # The id handed out works through the cookie, and is stored once something is added.
    cookie = {"Cookie": f"session_id={session['id']}"}
    again = account.ok("GET", "/booking/session", headers=cookie)["booking"]["session"]
    assert again["id"] == session["id"]
    added = account.ok("POST", "/booking/session", form={"slip": zipline()}, headers=cookie)
    assert added["booking"]["session"]["id"] == session["id"]
    assert set(account.store.checkfront.booking_sessions) == {session["id"]}
    assert ("Set-Cookie", f"session_id={session['id']}; path=/; secure; HttpOnly") in response.headers


def test_expired_session_is_replaced_and_releases_its_seats(account: Account) -> None:
    sid = account.add(zipline(adults=5))["id"]
    assert account.rated_available() == 10
    account.store.clock.advance(account.store.checkfront.session_ttl_s + 1)
    replaced = account.session(sid)
    assert replaced["id"] != sid
    assert replaced["item"] == []
    assert account.rated_available() == 15
    # Adding to an expired id starts a new cart rather than reviving the old one.
    fresh = account.add(zipline(), session_id=sid)
    assert fresh["id"] not in (sid, replaced["id"])


def test_end_releases_inventory_and_is_idempotent(account: Account) -> None:
    sid = account.add(zipline(adults=4))["id"]
    assert account.rated_available() == 11
    body = account.ok("POST", "/booking/session/end", form={"session_id": sid})
    request = check_envelope(body, resource="booking", method="post")
    assert request["id"] == "end"
    assert body["booking"]["session"] == {"id": sid, "ended": True}
    stored = account.store.checkfront.booking_sessions[sid]
    ended_at = stored["ended"]
    assert ended_at is not None
    assert account.rated_available() == 15
    assert account.session(sid)["id"] != sid
    account.store.clock.advance(60)
    assert account.ok("POST", "/booking/session/end", form={"session_id": sid})["request"]["status"] == "OK"
    assert stored["ended"] == ended_at
    unknown = account.ok("POST", "/booking/session/end", form={"session_id": "neverseen"})
    assert unknown["booking"]["session"]["id"] == "neverseen"
    assert set(account.store.checkfront.booking_sessions) == {sid}


def test_clear_keeps_the_id_and_empties_the_cart(account: Account) -> None:
    sid = account.add(zipline(adults=3))["id"]
    account.store.clock.advance(30)
    body = account.ok("POST", "/booking/session/clear", form={"session_id": sid})
    assert body["request"]["id"] == "clear"
    session = body["booking"]["session"]
    assert (session["id"], session["item"], session["age"]) == (sid, [], 0)
    assert account.rated_available() == 15
    assert account.session(sid)["id"] == sid


# ---------------------------------------------------------------------------------------------
# Booking index
# ---------------------------------------------------------------------------------------------


def test_index_pages_in_booking_id_order(account: Account) -> None:
    for booking_id in range(250, 0, -1):  # inserted backwards on purpose
        add_booking(account.store, booking_id, created=1_900_000_000 + booking_id)
    body = account.ok("GET", "/booking/index")
    assert set(body) == ENVELOPE_KEYS | {"booking/index"}
    request = check_envelope(body, resource="booking")
    assert set(request) == LIST_REQUEST_KEYS
    assert request["id"] == "index"
    assert request["path"] == ["booking", "index"]
    assert (
        request["records"],
        request["total_records"],
        request["limit"],
        request["page"],
        request["pages"],
    ) == (100, 250, 100, 1, 3)
    index = body["booking/index"]
    assert list(index) == [str(n) for n in range(1, 101)]
    entry = index["7"]
    assert set(entry) == INDEX_ENTRY_KEYS
    assert entry["booking_id"] == 7
    for name in ("booking_id", "created_date", "customer_id"):
        assert type(entry[name]) is int, name
    for name in ("total", "tax_total", "paid_total"):
        assert is_money(entry[name]), name
    assert (entry["status_id"], entry["status_name"]) == ("PAID", "Paid")
    assert entry["summary"] == "Workshop"
    assert entry["date_desc"] == "Sat Oct 5, 2030"
    assert len(entry["token"]) == 64
    last = account.ok("GET", "/booking/index", query={"page": "3"})
    assert last["request"]["records"] == 50
    assert next(iter(last["booking/index"])) == "201"
    beyond = account.ok("GET", "/booking/index", query={"page": "4"})
    assert beyond["booking/index"] == []
    small = account.ok("GET", "/booking/index", query={"limit": "40", "page": "2"})
    assert list(small["booking/index"]) == [str(n) for n in range(41, 81)]
    assert small["request"]["pages"] == 7
    assert account.ok("GET", "/booking/index", query={"limit": "100000"})["request"]["limit"] == 250
    plain = account.ok("GET", "/booking")
    assert plain["request"]["path"] == ["booking"]
    assert plain["booking/index"] == body["booking/index"]


def test_empty_index_is_a_php_empty_array(account: Account) -> None:
    body = account.ok("GET", "/booking/index")
    assert body["booking/index"] == []
    assert (body["request"]["records"], body["request"]["total_records"]) == (0, 0)
    add_booking(account.store, 1, status="PEND")
    assert account.ok("GET", "/booking/index", query={"status_id": "PAID"})["booking/index"] == []


def test_index_filters(account: Account) -> None:
    for booking_id in range(1, 11):
        add_booking(
            account.store,
            booking_id,
            status="PAID" if booking_id % 2 else "PEND",
            created=1_900_000_000 + booking_id * 86_400,
            modified=1_900_000_000 + booking_id * 1000,
            email="vip@example.com" if booking_id == 4 else "guest@example.com",
        )

    def ids(**query: str) -> list[int]:
        body = account.ok("GET", "/booking/index", query=query)
        index = body["booking/index"]
        assert body["request"]["total_records"] == len(index)
        return [entry["booking_id"] for entry in (index.values() if index else [])]

    assert ids(status_id="PEND") == [2, 4, 6, 8, 10]
    assert ids(status_id="paid") == [1, 3, 5, 7, 9]
    assert ids(last_modified=">1900007000") == [8, 9, 10]
    assert ids(last_modified="<1900002001") == [1, 2]
    assert ids(last_modified=">1900007000", status_id="PEND") == [8, 10]
    assert ids(customer_email="VIP@example.com") == [4]
    # A date string stands for its midnight (UTC); a bare date is that whole day.
    created_day = date.fromtimestamp(1_900_000_000 + 3 * 86_400)
    assert ids(created_date=">" + created_day.isoformat()) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert ids(created_date=created_day.strftime("%Y%m%d")) == [3]
    assert ids(start_date=DAY) == list(range(1, 11))
    assert ids(item_id="18") == []
    status, body, _ = account.call("GET", "/booking/index", query={"last_modified": ">yesterday-ish"})
    assert status == 200
    assert body["request"]["status"] == "ERROR"


def test_index_sees_updates_and_direct_inserts(account: Account) -> None:
    for booking_id in range(1, 6):
        add_booking(account.store, booking_id, status="PEND", created=1_600_000_000)
    since = {"last_modified": ">1600000000"}
    assert account.ok("GET", "/booking/index", query=since)["booking/index"] == []
    account.ok("POST", "/booking/3/update", form={"status_id": "PAID"})
    changed = account.ok("GET", "/booking/index", query=since)["booking/index"]
    assert list(changed) == ["3"]
    assert changed["3"]["status_id"] == "PAID"
    add_booking(account.store, 6, status="PAID", created=1_700_000_000)
    paid = account.ok("GET", "/booking/index", query={"status_id": "PAID"})["booking/index"]
    assert list(paid) == ["3", "6"]


def test_index_pages_reuse_one_filtered_list(account: Account) -> None:
    for booking_id in range(1, 301):
        add_booking(account.store, booking_id, status="PAID" if booking_id % 3 else "PEND")
    account.ok("GET", "/booking/index", query={"status_id": "PAID", "limit": "50"})
    cached = next(iter(account.api._filtered.values()))[1]
    account.ok("GET", "/booking/index", query={"status_id": "PAID", "limit": "50", "page": "2"})
    assert next(iter(account.api._filtered.values()))[1] is cached
    assert len(cached) == 200


# ---------------------------------------------------------------------------------------------
# Bookings: read, update, create
# ---------------------------------------------------------------------------------------------


def test_booking_by_code_and_by_id(account: Account) -> None:
    booking = add_booking(account.store, 42, qty=2)
    for ref in (booking["code"], booking["code"].lower(), "42"):
        body = account.ok("GET", f"/booking/{ref}")
        request = check_envelope(body, resource="booking")
        assert request["id"] == ref
        detail = body["booking"]
        assert set(detail) == BOOKING_KEYS
        assert (detail["booking_id"], detail["code"]) == (42, booking["code"])
        assert set(detail["customer"]) == CUSTOMER_KEYS
        assert set(detail["order"]) == ORDER_KEYS
        assert detail["order"]["total"] == "100.00"
        (line,) = detail["order"]["items"]
        assert set(line) == ORDER_ITEM_KEYS
        assert (line["item_id"], line["qty"], line["total"], line["start_date"]) == (
            30,
            2,
            "100.00",
            DAY_EPOCH,
        )
        for name in ("booking_id", "created_date", "last_modified", "start_date", "end_date"):
            assert type(detail[name]) is int, name


def test_unknown_booking_is_an_error_envelope(account: Account) -> None:
    status, body, _ = account.call("GET", "/booking/NOPE-010101")
    assert status == 200
    request = check_envelope(body, resource="booking")
    assert request["status"] == "ERROR"
    assert set(request) == ERROR_REQUEST_KEYS | {"id"}
    assert isinstance(request["timestamp"], float)
    assert set(request["error"]) == ERROR_KEYS
    assert "booking" not in body


def test_update_status_and_set_paid(account: Account) -> None:
    booking = add_booking(account.store, 5, status="PEND", created=1_600_000_000)
    body = account.ok(
        "POST", f"/booking/{booking['code']}/update", form={"status_id": "PAID", "set_paid": "1"}
    )
    check_envelope(body, resource="booking", method="post")
    detail = body["booking"]
    assert (detail["status_id"], detail["status_name"], detail["order"]["paid_total"]) == (
        "PAID",
        "Paid",
        "50.00",
    )
    assert detail["last_modified"] == int(account.store.clock.now())
    assert detail["created_date"] == 1_600_000_000
    # Nothing to change: last_modified stays.
    account.store.clock.advance(100)
    again = account.ok("POST", "/booking/5/update", form={"status_id": "PAID", "set_paid": "1"})
    assert again["booking"]["last_modified"] == detail["last_modified"]
    assert account.store.checkfront.bookings[5]["status_id"] == "PAID"
    assert detail["order"]["items"][0]["status_id"] == "PAID"
    for form, title in (({"status_id": "BOGUS"}, "Invalid status"), ({}, "Missing required fields")):
        status, error_body, _ = account.call("POST", "/booking/5/update", form=form)
        assert status == 200
        assert error_body["request"]["status"] == "ERROR"
        assert error_body["request"]["error"]["title"] == title
    assert account.store.checkfront.bookings[5]["status_id"] == "PAID"


def test_cancelling_a_booking_gives_its_seats_back(account: Account) -> None:
    add_booking(account.store, 1, qty=3)
    assert account.rated_available(30) == 0
    account.ok("POST", "/booking/1/update", form={"status_id": "STOP"})
    assert account.rated_available(30) == 3


def test_create_booking_from_the_cart(account: Account) -> None:
    add_booking(account.store, 9)
    session = account.add(zipline(adults=2), f"30.{DAY}X1-guests.1")
    sid = session["id"]
    account.alter(sid, **{"1_1": "optin"})
    body = account.ok(
        "POST",
        "/booking/create",
        form={
            "session_id": sid,
            "form[customer_name]": "Ada Lovelace",
            "form[customer_email]": "ada@example.com",
        },
    )
    request = check_envelope(body, resource="booking", method="post")
    assert request["id"] == "create"
    assert set(request["data"]) == {"url"}
    assert request["data"]["url"].startswith("https://your-company.checkfront.com/")
    created = body["booking"]
    assert {"booking_id", "code", "status_id", "status_name", "token"} <= set(created)
    assert created["booking_id"] == 10
    assert (created["status_id"], created["status_name"]) == ("PEND", "Pending")
    assert created["total"] == "328.00"  # 2 adults, the opted-in photo pack, one workshop seat
    code = created["code"]
    assert len(code) == 11
    assert code[4] == "-"
    # The cart is gone; its seats moved to the booking.
    stored = account.store.checkfront.booking_sessions[sid]
    assert stored["ended"] is not None
    assert stored["booking_code"] == code
    assert account.session(sid)["id"] != sid
    assert account.rated_available() == 13
    detail = account.ok("GET", f"/booking/{code}")["booking"]
    assert [line["item_id"] for line in detail["order"]["items"]] == [18, 21, 30]
    assert detail["customer"]["email"] == "ada@example.com"
    index = account.ok("GET", "/booking/index")["booking/index"]
    assert list(index) == ["9", "10"]
    assert index["10"]["customer_name"] == "Ada Lovelace"
    assert (
        account.ok("GET", "/booking/index", query={"customer_email": "ada@example.com"})["request"][
            "total_records"
        ]
        == 1
    )


def test_create_booking_straight_from_slips_with_a_status(account: Account) -> None:
    body = account.ok(
        "POST",
        "/booking/create",
        json_body={
            "slip": [zipline()],
            "status_id": "HOLD",
            "form": {"customer_name": "Bo", "customer_email": "bo@example.com"},
        },
    )
    assert body["booking"]["status_id"] == "HOLD"
    assert account.rated_available() == 14


def test_create_without_required_fields_is_the_documented_validation_error(account: Account) -> None:
    sid = account.add(zipline())["id"]
    status, body, _ = account.call(
        "POST", "/booking/create", form={"session_id": sid, "form[customer_email]": "x@example.com"}
    )
    assert status == 200
    request = check_envelope(body, resource="booking", method="post")
    assert set(request) == ERROR_REQUEST_KEYS | {"id"}
    assert (request["status"], request["id"], request["records"]) == ("ERROR", "create", 0)
    assert request["error"] == {
        "id": "validation_error",
        "title": "Missing required fields",
        "details": "The following fields are required: Name",
        "data": {"customer_name": "Name"},
    }
    assert account.store.checkfront.bookings == {}
    assert account.session(sid)["id"] == sid  # the cart is untouched


def test_create_with_nothing_to_book_is_an_error(account: Account) -> None:
    status, body, _ = account.call(
        "POST",
        "/booking/create",
        form={"session_id": "gone", "form[customer_name]": "A", "form[customer_email]": "a@example.com"},
    )
    assert status == 200
    assert body["request"]["status"] == "ERROR"
    assert account.store.checkfront.bookings == {}
