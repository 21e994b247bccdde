"""A small hand-built Checkfront account behind the emulator, called without a network, and the
documented API 3.0 shapes the emulator's tests check its answers against."""

from __future__ import annotations

import base64
import calendar
from datetime import date
from typing import Any
from urllib.parse import urlencode

import orjson

from regsync.sandbox.checkfront import CheckfrontApi
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
