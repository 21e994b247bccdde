"""The Checkfront emulator over real HTTPS, to a plain httpx client and to regsync's own client.

Every expected key set and JSON type below is written here, in our own words, from Checkfront's
public API 3.0 documentation (envelope, booking session, booking index, rated item, ping, the
auth FAQ). Where the docs show nothing (session clear/end bodies, GET /booking/{code}) the test
pins the sandbox's documented choice instead and says so. See docs/sandbox.md.
"""

from __future__ import annotations

import calendar
import json
import re
import ssl
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from regsync.clients import lenient_json
from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.usage import ApiUsage
from regsync.errors import AuthenticationError
from regsync.sandbox import DEMO, Sandbox
from regsync.sandbox.store import SandboxStore

pytestmark = pytest.mark.sandbox

DAY = "20301005"  # the day carts are filled for: no booking takes seats on it
DAY_EPOCH = calendar.timegm(date(2030, 10, 5).timetuple())
BOOKED_DAY = "20300901"
N_BOOKINGS = 23
PAGE = 5  # 23 bookings at 5 a page: 5 pages, the last one short
ZIPLINE_STOCK = 40  # roomy: carts other tests leave alive must not sell it out

# -- what the docs show, in our own words ---------------------------------------------------------
ENVELOPE = {"version", "account_id", "host_id", "name", "locale"}  # plus "request" and the body
LOCALE = {"id": str, "lang": str, "currency": str}
REQUEST = {
    "status": str,
    "resource": str,
    "records": int,
    "limit": int,
    "page": int,
    "pages": int,
    "time": float,
    "method": str,
}
REQUEST_WITH_ID = {**REQUEST, "id": str}
INDEX_REQUEST = {**REQUEST_WITH_ID, "total_records": int, "path": list}
PONG = {"remote_addr": str, "time": int, "timezone": str, "provider": str}
SESSION = {
    "id": str,
    "age": int,
    "summary": str,
    "start_date": int,
    "end_date": int,
    "date_desc": str,
    "time_desc": str,
    "account_id": int,
    "partner_id": int,
    "currency_id": str,
    "sub_total": "money",
    "tax_total": "money",
    "tax_inc_total": "money",
    "discount": "money",
    "total": "money",
    "due": "money",
    "paid_total": "money",
    "flat_discount": dict,
    "deposit": type(None),
    "tax": list,
    "qty": int,
    "item": (dict, list),  # an object keyed by line id; PHP's [] when the cart is empty
}
FLAT_DISCOUNT = {"total": int, "total_pretax": int}
LINE = {
    "sku": str,
    "item_id": int,
    "name": str,
    "unit": str,
    "rate": dict,
    "date": dict,
    "slip": str,
    "available": int,
}
PACKAGE_LINE = {**LINE, "optin": str, "opt": str}
LINE_RATE = {"total": "money", "item_total": "money", "qty": int, "summary": str}
LINE_DATE = {"summary": str, "start_date": int, "end_date": int}
INDEX_ENTRY = {
    "booking_id": int,
    "code": str,
    "status_id": str,
    "status_name": str,
    "created_date": int,
    "total": "money",
    "tax_total": "money",
    "paid_total": "money",
    "customer_id": int,
    "customer_name": str,
    "customer_email": str,
    "summary": str,
    "date_desc": str,
    "tid": str,
    "token": str,
}
QUERY = {
    "start_date": str,
    "end_date": str,
    "param": (dict, list),
    "local_end_date": str,
    "local_start_date": str,
}
# The rated item: the unrated item's keys plus what a rated query adds. Two deliberate deviations
# from the docs' (2017) rated example: product_group_type/_children come from the newer unrated
# example, and `gprice` (price-group rules) is not emulated.
RATED_ITEM_KEYS = {
    "unit", "item_id", "sku", "url", "lock", "visibility", "name", "pos", "summary", "details",
    "meta", "stock", "unlimited", "video", "image", "category_id", "rated", "product_group_type",
    "product_group_children", "type", "status", "alias_id", "len", "rules", "category",
    "package", "param", "qty", "rate", "days", "discount", "local_start_date", "local_end_date",
}  # fmt: skip
RATE = {
    "status": str,
    "available": int,
    "slip": str,
    "summary": dict,
    "sub_total": "money",
    "event": list,
    "start_date": str,
    "end_date": str,
    "dates": dict,
}
RATE_SUMMARY = {"title": str, "details": str, "price": dict, "date": str}
RATE_PRICE = {"total": str, "title": str, "unit": str, "param": (dict, list)}
RATE_DAY = {
    "status": str,
    "price": (dict, list),
    "dow": str,
    "stock": dict,
    "rates": list,
    "discount": list,
    "sub_total": (int, float),
}
DAY_STOCK = {"T": int, "B": int, "A": int, "MinA": int}
PARAM_RULE = {
    "price": int,
    "lbl": str,
    "lock": int,
    "qty": int,
    "hide": int,
    "customer_hide": int,
    "req": int,
    "range": int,
    "def": int,
    "MIN": int,
    "MAX": int,
}
PACKAGE_REF = {"package_id": int, "optin": str, "select_package_params": int}
CRITICAL = {"error": str, "error_description": str}
# GET /booking/{code}: undocumented beyond the key `booking`; the sandbox answers the booking
# webhook's field set (docs) in JSON form. Pinned here so clients can rely on the sandbox.
BOOKING = {
    "booking_id": int,
    "code": str,
    "status_id": str,
    "status_name": str,
    "created_date": int,
    "last_modified": int,
    "start_date": int,
    "end_date": int,
    "tid": str,
    "token": str,
    "summary": str,
    "date_desc": str,
    "customer": dict,
    "fields": dict,
    "order": dict,
}
CUSTOMER = {
    "customer_id": int,
    "code": str,
    "name": str,
    "email": str,
    "region": str,
    "address": str,
    "city": str,
    "country": str,
    "phone": str,
    "postal_zip": str,
}
ORDER = {
    "currency_id": str,
    "sub_total": "money",
    "tax_total": "money",
    "paid_total": "money",
    "total": "money",
    "taxes": list,
    "items": list,
}
ORDER_LINE = {
    "line_id": int,
    "item_id": int,
    "sku": str,
    "slip": str,
    "status_id": str,
    "start_date": int,
    "end_date": int,
    "total": "money",
    "tax_total": "money",
    "qty": int,
}
MONEY = re.compile(r"^-?\d+\.\d\d$")
SESSION_ID = re.compile(r"^[0-9a-v]{26}$")  # PHP session ids, as in the docs' example
SLIP = re.compile(r"^\d+\.\d{8}X\d+(-[A-Za-z0-9_]+(\.\d+)?)+$")


def conforms(value: Any, shape: dict[str, Any], where: str = "") -> None:
    """`value` has exactly the keys of `shape`, each of the JSON type written there."""
    assert isinstance(value, dict), f"{where}: expected an object, got {type(value).__name__}"
    assert set(value) == set(shape), f"{where}: keys {sorted(set(value) ^ set(shape))} differ"
    for key, kind in shape.items():
        got = value[key]
        if kind == "money":
            assert isinstance(got, str), f"{where}.{key}: money is a string, got {got!r}"
            assert MONEY.match(got), f"{where}.{key}: money has two decimals, got {got!r}"
        elif kind is int:
            assert type(got) is int, f"{where}.{key}: expected an integer, got {got!r}"
        else:
            assert isinstance(got, kind), f"{where}.{key}: expected {kind}, got {got!r}"


def envelope(
    body: Any, *, resource: str, body_keys: set[str], request: dict[str, Any], method: str = "get"
) -> dict[str, Any]:
    """Check the documented envelope around `body_keys`; return the request block."""
    assert isinstance(body, dict)
    assert set(body) == ENVELOPE | {"request"} | body_keys
    assert body["version"] == "3.0"
    assert type(body["account_id"]) is int
    assert isinstance(body["host_id"], str)
    assert body["host_id"].endswith(".checkfront.com")
    assert isinstance(body["name"], str)
    conforms(body["locale"], LOCALE, "locale")
    conforms(body["request"], request, "request")
    assert body["request"]["status"] == "OK"
    assert body["request"]["resource"] == resource
    assert body["request"]["method"] == method
    return body["request"]


# ---------------------------------------------------------------------------------------------
# The account: two sellable items (one with add-ons), two add-ons, 23 bookings
# ---------------------------------------------------------------------------------------------


def code_of(booking_id: int) -> str:
    """A booking code in Checkfront's form, four letters and a day: 101 -> "BCBC-010930"."""
    return "".join("BCDFGHJKLM"[int(d)] for d in f"{booking_id:04d}") + "-010930"


def build_store() -> SandboxStore:
    store = SandboxStore()
    cf = store.checkfront
    cf.items.update(
        {
            18: {
                "item_id": 18,
                "sku": "zipline",
                "name": "Zipline Tour",
                "unit": "D",
                "stock": ZIPLINE_STOCK,
                "category_id": 6,
                "category": "Activities",
                "params": {"adults": "130.00", "children": "110.00"},
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
                "price": "18.00",
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
                "stock": 4,
                "category_id": 8,
                "category": "Sessions",
                "params": {"guests": "50.00"},
                "packages": [],
            },
        }
    )
    booked = calendar.timegm(date(2030, 9, 1).timetuple())
    for n in range(N_BOOKINGS):
        booking_id = 101 + n
        code = code_of(booking_id)
        status = ("PAID", "PEND", "HOLD", "STOP")[n % 4]
        cf.bookings[booking_id] = {
            "booking_id": booking_id,
            "code": code,
            "status_id": status,
            "created_date": 1_900_000_000 + n * 3600,
            "last_modified": 1_900_000_000 + n * 3600 + 60,
            "start_date": booked,
            "end_date": booked,
            "customer_name": f"Customer {n}",
            "customer_email": f"customer{n}@example.com",
            "lines": [
                {
                    "line_id": 1,
                    "item_id": 30,
                    "sku": "workshop",
                    "name": "Workshop",
                    "slip": f"30.{BOOKED_DAY}X1-guests.1",
                    "qty": 1,
                    "date": BOOKED_DAY,
                    "len": 1,
                    "param": {"guests": 1},
                    "start_date": booked,
                    "end_date": booked,
                    "total": "50.00",
                    "tax_total": "0.00",
                    "status_id": status,
                    "package": False,
                }
            ],
            "sub_total": "50.00",
            "tax_total": "0.00",
            "total": "50.00",
            "paid_total": "50.00" if status == "PAID" else "0.00",
        }
    return store


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(build_store()) as box:
        yield box


def tls(sandbox: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sandbox.ca_path))


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain HTTPS client with the token pair (HTTP Basic), a fresh cookie jar per test."""
    with httpx.Client(
        base_url=f"{sandbox.base_url}/api/3.0",
        verify=tls(sandbox),
        auth=(DEMO.cf_api_key, DEMO.cf_api_secret),
        headers={"Accept": "application/json"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[CheckfrontClient]:
    settings = sandbox.settings(checkfront={"page_limit": PAGE})
    made = CheckfrontClient(settings.checkfront, settings.retry, ApiUsage())
    yield made
    made.close()


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["request"]["status"] == "OK", body["request"]
    return body


def zipline(adults: int = 1, children: int = 0, day: str = DAY) -> str:
    return f"18.{day}X1-adults.{adults}-children.{children}"


def rated_available(http: httpx.Client, item_id: int = 18, day: str = DAY) -> int:
    return ok(http.get(f"/item/{item_id}", params={"start_date": day}))["item"]["rate"]["available"]


def session_of(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body["booking"]) == {"session"}
    return body["booking"]["session"]


def check_session(session: dict[str, Any]) -> None:
    conforms(session, SESSION, "session")
    conforms(session["flat_discount"], FLAT_DISCOUNT, "session.flat_discount")
    assert SESSION_ID.match(session["id"]), session["id"]
    assert session["currency_id"] == "CAD"
    lines = session["item"]
    if isinstance(lines, list):
        assert lines == []  # PHP's empty array: an empty cart
        return
    for line_id, line in lines.items():
        assert re.fullmatch(r"\d+(\.\d+)?", line_id), line_id
        conforms(line, PACKAGE_LINE if "." in line_id else LINE, f"item[{line_id}]")
        conforms(line["rate"], LINE_RATE, f"item[{line_id}].rate")
        conforms(line["date"], LINE_DATE, f"item[{line_id}].date")
        assert SLIP.match(line["slip"]), line["slip"]
        if "." in line_id:
            assert line["optin"] == "O"
            assert line["opt"] in ("in", "out")


# ---------------------------------------------------------------------------------------------
# Ping and the envelope
# ---------------------------------------------------------------------------------------------


def test_ping_answers_the_envelope_and_pong(http: httpx.Client) -> None:
    body = ok(http.get("/ping"))
    request = envelope(body, resource="ping", body_keys={"pong"}, request=REQUEST)
    assert (request["records"], request["limit"], request["page"], request["pages"]) == (1, 0, 1, 1)
    conforms(body["pong"], PONG, "pong")
    assert body["locale"] == {"id": "en_US", "lang": "en", "currency": "CAD"}


@pytest.mark.parametrize(
    ("method", "path", "params", "resource", "request_id", "body_keys"),
    [
        ("GET", "/ping", {}, "ping", None, {"pong"}),
        ("GET", "/booking/session", {}, "booking", "session", {"booking"}),
        ("POST", "/booking/session", {"slip": zipline()}, "booking", "session", {"booking"}),
        ("POST", "/booking/session/clear", {}, "booking", "clear", {"booking"}),
        ("POST", "/booking/session/end", {"session_id": "0" * 26}, "booking", "end", {"booking"}),
        ("GET", "/booking/index", {"limit": 2}, "booking", "index", {"booking/index"}),
        ("GET", f"/booking/{code_of(101)}", {}, "booking", code_of(101), {"booking"}),
        ("GET", "/item/18", {}, "item", "18", {"query", "item"}),
        ("GET", "/item/18", {"start_date": DAY}, "item", "18", {"query", "item", "events"}),
    ],
)
def test_every_answer_carries_the_envelope(
    http: httpx.Client,
    method: str,
    path: str,
    params: dict[str, Any],
    resource: str,
    request_id: str | None,
    body_keys: set[str],
) -> None:
    response = http.get(path, params=params) if method == "GET" else http.post(path, data=params)
    shape = INDEX_REQUEST if request_id == "index" else REQUEST_WITH_ID if request_id else REQUEST
    request = envelope(
        ok(response), resource=resource, body_keys=body_keys, request=shape, method=method.lower()
    )
    assert request.get("id") == request_id


# ---------------------------------------------------------------------------------------------
# Booking sessions
# ---------------------------------------------------------------------------------------------


def test_a_read_without_session_id_starts_an_empty_session_and_sets_the_cookie(http: httpx.Client) -> None:
    response = http.get("/booking/session")
    session = session_of(ok(response))
    check_session(session)
    assert session["item"] == []
    assert session["qty"] == 0
    assert session["total"] == "0.00"
    assert session["age"] == 0
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"session_id={session['id']};")
    assert "secure" in cookie.lower()
    assert "httponly" in cookie.lower()


def test_php_array_form_body_adds_lines_with_add_ons(http: httpx.Client) -> None:
    # The docs' form: `slip[]=A&slip[]=B`, sent as a raw x-www-form-urlencoded body.
    form = f"slip%5B%5D={zipline(adults=1)}&slip%5B%5D=30.{DAY}X1-guests.2"
    response = http.post(
        "/booking/session",
        content=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    body = ok(response)
    envelope(body, resource="booking", body_keys={"booking"}, request=REQUEST_WITH_ID, method="post")
    assert body["request"]["id"] == "session"
    session = session_of(body)
    check_session(session)
    # Line 1 and its add-ons 1.1, 1.2 (opted out, as in the docs' example), then line 2.
    assert list(session["item"]) == ["1", "1.1", "1.2", "2"]
    main, photo, cap, workshop = (session["item"][k] for k in ("1", "1.1", "1.2", "2"))
    assert (main["item_id"], main["slip"], main["rate"]["qty"]) == (18, zipline(adults=1), 1)
    assert main["rate"]["total"] == main["rate"]["item_total"] == "130.00"
    assert (photo["item_id"], photo["opt"], photo["rate"]["item_total"]) == (21, "out", "0.00")
    assert photo["available"] == 1_000_000_000  # an unlimited add-on, as the docs show it
    assert (cap["item_id"], cap["opt"]) == (20, "out")
    assert (workshop["item_id"], workshop["rate"]["qty"], workshop["rate"]["total"]) == (30, 2, "100.00")
    assert main["date"] == {"summary": "Sat Oct 5, 2030", "start_date": DAY_EPOCH, "end_date": DAY_EPOCH}
    assert session["qty"] == 3  # seats of the main lines
    assert session["total"] == session["sub_total"] == session["due"] == "230.00"
    assert session["start_date"] == session["end_date"] == DAY_EPOCH
    assert body["request"]["records"] == 4

    # `alter[1]=2` (quantity) and `alter[1.1]=optin`, again as a PHP-array form body.
    altered = session_of(
        ok(
            http.post(
                "/booking/session",
                data={"session_id": session["id"], "alter[1]": "2", "alter[1.1]": "optin"},
            )
        )
    )
    check_session(altered)
    assert altered["id"] == session["id"]
    assert altered["item"]["1"]["rate"]["qty"] == 2
    assert altered["item"]["1"]["rate"]["total"] == "260.00"
    assert altered["item"]["1.1"]["opt"] == "in"
    assert altered["item"]["1.1"]["rate"]["item_total"] == "18.00"
    assert altered["total"] == "378.00"  # 260 + 18 + 100

    # `alter[2]=remove` drops the line; the JSON body form of the docs' how-to page works too.
    removed = session_of(
        ok(http.post("/booking/session", json={"session_id": session["id"], "alter": {"2": "remove"}}))
    )
    assert list(removed["item"]) == ["1", "1.1", "1.2"]
    assert removed["total"] == "278.00"


def test_the_cookie_names_the_session_like_the_parameter(http: httpx.Client, sandbox: Sandbox) -> None:
    created = session_of(ok(http.post("/booking/session", data={"slip": zipline()})))
    # httpx keeps the Set-Cookie: the next call without session_id reads the same cart.
    assert http.cookies.get("session_id") == created["id"]
    again = session_of(ok(http.get("/booking/session")))
    assert again["id"] == created["id"]
    assert again["item"] == created["item"]
    # A bare client sending only the Cookie header (no parameter) sees it too.
    with httpx.Client(
        base_url=f"{sandbox.base_url}/api/3.0",
        verify=tls(sandbox),
        auth=(DEMO.cf_api_key, DEMO.cf_api_secret),
    ) as bare:
        by_cookie = session_of(
            ok(bare.get("/booking/session", headers={"Cookie": f"session_id={created['id']}"}))
        )
    assert by_cookie["id"] == created["id"]
    assert list(by_cookie["item"]) == list(created["item"])


@pytest.mark.parametrize(
    "unknown", ["0123456789abcdefghijklmnop", "no-such-session", "x" * 200, "  ", "'; DROP TABLE x;--"]
)
def test_an_unknown_session_id_answers_a_different_new_session(
    http: httpx.Client, client: CheckfrontClient, unknown: str
) -> None:
    body = ok(http.get("/booking/session", params={"session_id": unknown}))
    session = session_of(body)
    check_session(session)
    assert session["id"] != unknown.strip()
    assert session["item"] == []
    read = client.get_booking_session(unknown)
    assert read.found is False
    assert read.session["id"] != unknown
    assert read.session["id"] != session["id"]  # every unknown id gets its own new session


def test_an_expired_session_answers_a_different_new_session(
    sandbox: Sandbox, client: CheckfrontClient
) -> None:
    with httpx.Client(
        base_url=sandbox.base_url,
        verify=tls(sandbox),
        auth=(DEMO.cf_api_key, DEMO.cf_api_secret),
    ) as http:
        session = session_of(ok(http.post("/api/3.0/booking/session", data={"slip": zipline()})))
        read = client.get_booking_session(session["id"])
        assert read.found is True
        assert read.session["item"]["1"]["slip"] == zipline()
        ttl = sandbox.store.checkfront.session_ttl_s
        advanced = http.post("/__sandbox/clock", json={"advance_s": ttl + 60})
        assert advanced.status_code == 200
        expired = client.get_booking_session(session["id"])
    assert expired.found is False
    assert expired.session["id"] != session["id"]
    assert expired.session["item"] == []


def test_clear_keeps_the_id_and_empties_the_cart(http: httpx.Client) -> None:
    before = rated_available(http)
    session = session_of(ok(http.post("/booking/session", data={"slip": zipline(adults=3)})))
    assert rated_available(http) == before - 3
    body = ok(http.post("/booking/session/clear", data={"session_id": session["id"]}))
    envelope(body, resource="booking", body_keys={"booking"}, request=REQUEST_WITH_ID, method="post")
    assert body["request"]["id"] == "clear"
    cleared = session_of(body)
    check_session(cleared)
    assert cleared["id"] == session["id"]
    assert cleared["item"] == []
    assert cleared["total"] == "0.00"
    assert rated_available(http) == before
    # Still the same, live session: something added now lands in it.
    refilled = session_of(
        ok(http.post("/booking/session", data={"session_id": session["id"], "slip": zipline()}))
    )
    assert refilled["id"] == session["id"]
    assert list(refilled["item"]) == ["1", "1.1", "1.2"]


def test_end_destroys_the_session_and_releases_its_seats(
    http: httpx.Client, client: CheckfrontClient
) -> None:
    before = rated_available(http)
    session = session_of(ok(http.post("/booking/session", data={"slip": zipline(adults=2, children=1)})))
    held = rated_available(http)
    assert held == before - 3
    assert session["item"]["1"]["available"] == held  # the cart shows what a rated query shows
    body = ok(http.post("/booking/session/end", data={"session_id": session["id"]}))
    envelope(body, resource="booking", body_keys={"booking"}, request=REQUEST_WITH_ID, method="post")
    assert body["request"]["id"] == "end"
    assert body["booking"] == {"session": {"id": session["id"], "ended": True}}
    assert rated_available(http) == before
    gone = client.get_booking_session(session["id"])
    assert gone.found is False
    assert gone.session["id"] != session["id"]


def test_end_through_regsyncs_client_releases_seats(http: httpx.Client, client: CheckfrontClient) -> None:
    before = rated_available(http)
    session = session_of(ok(http.post("/booking/session", data={"slip": zipline(adults=4)})))
    assert rated_available(http) == before - 4
    assert client.get_booking_session(session["id"]).found is True
    answer = client.end_booking_session(session["id"])
    assert answer["request"]["status"] == "OK"
    assert answer["booking"]["session"]["ended"] is True
    assert rated_available(http) == before
    assert client.get_booking_session(session["id"]).found is False
    # Ending again is still OK (idempotent) and gives nothing back twice.
    assert client.end_booking_session(session["id"])["request"]["status"] == "OK"
    assert rated_available(http) == before


# ---------------------------------------------------------------------------------------------
# Booking index, booking by code
# ---------------------------------------------------------------------------------------------


def test_booking_index_pages_with_request_counters(http: httpx.Client) -> None:
    pages = -(-N_BOOKINGS // PAGE)
    seen: list[int] = []
    for page in range(1, pages + 1):
        body = ok(http.get("/booking/index", params={"limit": PAGE, "page": page}))
        request = envelope(body, resource="booking", body_keys={"booking/index"}, request=INDEX_REQUEST)
        assert request["id"] == "index"
        assert request["path"] == ["booking", "index"]
        assert (request["page"], request["pages"], request["limit"]) == (page, pages, PAGE)
        assert request["total_records"] == N_BOOKINGS
        rows = body["booking/index"]
        # An object keyed by booking id (not an array), each key the row's own id.
        assert isinstance(rows, dict)
        assert request["records"] == len(rows) == min(PAGE, N_BOOKINGS - (page - 1) * PAGE)
        for key, row in rows.items():
            conforms(row, INDEX_ENTRY, f"booking/index[{key}]")
            assert key == str(row["booking_id"])
            assert row["status_name"] in ("Paid", "Pending", "Reserved", "Cancelled")
        seen += [int(key) for key in rows]
    assert seen == list(range(101, 101 + N_BOOKINGS))
    past = ok(http.get("/booking/index", params={"limit": PAGE, "page": pages + 1}))
    assert past["booking/index"] == []  # PHP's empty array
    assert past["request"]["records"] == 0
    assert past["request"]["total_records"] == N_BOOKINGS


def test_get_booking_answers_the_same_index(http: httpx.Client) -> None:
    body = ok(http.get("/booking", params={"limit": 3}))
    request = body["request"]
    conforms(request, {**REQUEST, "total_records": int, "path": list}, "request")
    assert request["path"] == ["booking"]
    assert list(body["booking/index"]) == ["101", "102", "103"]


def test_booking_index_filters(http: httpx.Client) -> None:
    paid = ok(http.get("/booking/index", params={"status_id": "PAID"}))
    assert paid["request"]["total_records"] == len(range(0, N_BOOKINGS, 4))
    assert {row["status_id"] for row in paid["booking/index"].values()} == {"PAID"}
    newer = ok(http.get("/booking/index", params={"created_date": f">{1_900_000_000 + 20 * 3600}"}))
    assert list(newer["booking/index"]) == ["122", "123"]


def test_regsyncs_client_walks_every_page(client: CheckfrontClient) -> None:
    pages = list(client.iter_booking_index())
    assert [p.page for p in pages] == [1, 2, 3, 4, 5]
    assert {p.pages for p in pages} == {5}
    assert {p.total_records for p in pages} == {N_BOOKINGS}
    ids = [row["booking_id"] for p in pages for row in p.bookings]
    assert ids == list(range(101, 101 + N_BOOKINGS))
    for row in pages[0].bookings:
        conforms(row, INDEX_ENTRY, "row")


def test_booking_by_code(http: httpx.Client, client: CheckfrontClient) -> None:
    code = code_of(101)
    body = ok(http.get(f"/booking/{code}"))
    request = envelope(body, resource="booking", body_keys={"booking"}, request=REQUEST_WITH_ID)
    assert request["id"] == code
    booking = body["booking"]
    conforms(booking, BOOKING, "booking")
    conforms(booking["customer"], CUSTOMER, "booking.customer")
    conforms(booking["order"], ORDER, "booking.order")
    for line in booking["order"]["items"]:
        conforms(line, ORDER_LINE, "booking.order.items[]")
    assert (booking["booking_id"], booking["code"], booking["status_id"]) == (101, code, "PAID")
    assert booking["customer"]["email"] == "customer0@example.com"
    assert booking["fields"]["customer_name"] == "Customer 0"
    assert booking["order"]["items"][0]["slip"] == f"30.{BOOKED_DAY}X1-guests.1"
    # By id, by code in lower case, and through regsync's client; unknown codes are None there.
    assert ok(http.get("/booking/101"))["booking"]["code"] == code
    assert client.get_booking(code.lower())["booking_id"] == 101
    assert client.get_booking("ZZZZ-999999") is None


# ---------------------------------------------------------------------------------------------
# Rated item and its SLIP
# ---------------------------------------------------------------------------------------------


def test_rated_item_gives_a_slip_the_cart_accepts(http: httpx.Client) -> None:
    body = ok(http.get("/item/18", params={"start_date": DAY, "param[adults]": "2", "param[children]": "1"}))
    request = envelope(body, resource="item", body_keys={"query", "item", "events"}, request=REQUEST_WITH_ID)
    assert (request["id"], request["records"]) == ("18", 0)
    conforms(body["query"], QUERY, "query")
    assert body["query"]["start_date"] == body["query"]["end_date"] == DAY
    assert body["query"]["local_start_date"] == "10/05/30"
    item = body["item"]
    assert set(item) == RATED_ITEM_KEYS
    assert (item["item_id"], item["qty"], item["days"], item["rated"]) == (18, 3, 1, 1)
    assert isinstance(item["meta"], dict)  # an object in the rated answer, as the docs show
    assert isinstance(item["rules"], str)
    assert json.loads(item["rules"])["param"].keys() == {"adults", "children"}
    for name, rule in item["param"].items():
        conforms(rule, PARAM_RULE, f"item.param.{name}")
    assert item["param"]["adults"]["qty"] == 2
    assert [p["package_id"] for p in item["package"]] == [21, 20]
    for ref in item["package"]:
        conforms(ref, PACKAGE_REF, "item.package[]")
    rate = item["rate"]
    conforms(rate, RATE, "item.rate")
    assert rate["status"] == "AVAILABLE"
    assert rate["slip"] == "18.20301005X1-adults.2-children.1"
    assert rate["sub_total"] == "370.00"
    conforms(rate["summary"], RATE_SUMMARY, "item.rate.summary")
    conforms(rate["summary"]["price"], RATE_PRICE, "item.rate.summary.price")
    assert rate["summary"]["price"]["title"] == "$110.00 - $130.00"
    assert rate["summary"]["date"] == "Sat Oct 5, 2030"
    assert rate["summary"]["title"] == f"{rate['available']} Available"
    assert list(rate["dates"]) == [DAY]
    conforms(rate["dates"][DAY], RATE_DAY, f"item.rate.dates.{DAY}")
    conforms(rate["dates"][DAY]["stock"], DAY_STOCK, "stock")
    stock = rate["dates"][DAY]["stock"]
    assert stock["T"] == ZIPLINE_STOCK
    assert stock["A"] == rate["available"] == ZIPLINE_STOCK - stock["B"]
    assert rate["dates"][DAY]["dow"] == "6"  # PHP's date('w') of a Saturday

    session = session_of(ok(http.post("/booking/session", data={"slip": rate["slip"]})))
    assert session["item"]["1"]["slip"] == rate["slip"]
    assert session["item"]["1"]["rate"]["total"] == rate["sub_total"]
    assert session["item"]["1"]["available"] == rate["available"] - 3
    assert rated_available(http) == rate["available"] - 3
    ok(http.post("/booking/session/end", data={"session_id": session["id"]}))


def test_unrated_item_has_an_empty_query(http: httpx.Client) -> None:
    body = ok(http.get("/item/18"))
    assert body["query"] == []
    assert isinstance(body["item"]["meta"], str)  # a JSON string in the unrated answer
    assert "rate" not in body["item"]


# ---------------------------------------------------------------------------------------------
# Authentication: critical errors have no envelope
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ping", "/booking/session", "/booking/index", "/item/18", "/booking/101"])
@pytest.mark.parametrize(
    ("headers", "params", "error", "description"),
    [
        ({}, {}, "invalid_request", "The access token was not found."),
        (
            {"Authorization": "Basic ZGVtbzpub3Bl"},
            {},
            "invalid_grant",
            "The access token provided is invalid.",
        ),
        (
            {"Authorization": "BEARER wrong-token"},
            {},
            "invalid_grant",
            "The access token provided is invalid.",
        ),
        ({}, {"access_token": "wrong-token"}, "invalid_grant", "The access token provided is invalid."),
        ({"Authorization": "Basic %%%"}, {}, "invalid_request", "Malformed auth header."),
        ({"Authorization": "Digest abc"}, {}, "invalid_request", "Malformed auth header."),
    ],
)
def test_auth_failures_are_critical_errors_without_envelope(
    sandbox: Sandbox,
    path: str,
    headers: dict[str, str],
    params: dict[str, str],
    error: str,
    description: str,
) -> None:
    with httpx.Client(base_url=f"{sandbox.base_url}/api/3.0", verify=tls(sandbox)) as bare:
        response = bare.get(path, headers=headers, params=params)
    assert response.status_code == 401
    body = response.json()
    conforms(body, CRITICAL, "critical error")
    assert body == {"error": error, "error_description": description}


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Authorization": f"BEARER {DEMO.cf_token}"}, {}),  # upper case, as the docs and SDK send it
        ({"Authorization": f"Bearer {DEMO.cf_token}"}, {}),
        ({}, {"access_token": DEMO.cf_token}),
    ],
)
def test_bearer_token_forms_are_accepted(
    sandbox: Sandbox, headers: dict[str, str], params: dict[str, str]
) -> None:
    with httpx.Client(base_url=f"{sandbox.base_url}/api/3.0", verify=tls(sandbox)) as bare:
        body = ok(bare.get("/ping", headers=headers, params=params))
    assert set(body["pong"]) == set(PONG)


def test_regsyncs_client_reports_refused_credentials(sandbox: Sandbox) -> None:
    from pydantic import SecretStr

    settings = sandbox.settings()
    wrong = settings.checkfront.model_copy(update={"api_secret": SecretStr("not-the-secret")})
    client = CheckfrontClient(wrong, settings.retry, ApiUsage())
    try:
        with pytest.raises(AuthenticationError) as caught:
            client.get_booking_session("anything")
    finally:
        client.close()
    assert caught.value.status == 401
    assert caught.value.code == "invalid_grant"


# ---------------------------------------------------------------------------------------------
# The docs' own example is not valid JSON; regsync must read such a body anyway
# ---------------------------------------------------------------------------------------------

# Our own small body with the defect of the docs' booking-session example: double quotes inside
# an HTML attribute, unescaped, in the middle of a string value.
DEFECTIVE_SESSION = """{
    "version": "3.0", "account_id": 1, "host_id": "acme.checkfront.com", "name": "Acme",
    "locale": {"id": "en_US", "lang": "en", "currency": "CAD"},
    "request": {"status": "OK", "resource": "booking", "id": "session", "records": 1,
                "limit": 0, "page": 1, "pages": 1, "time": 0.01, "method": "get"},
    "booking": {"session": {"id": "k2j4h5g6f7d8s9a0q1w2e3r4t5", "total": "80.00", "item": {
        "1": {"item_id": 7, "rate": {"total": "80.00", "qty": 2,
              "summary": "<span title="Kids">Kids:</span> 2 Days @ $40.00"}}}}}
}"""


def test_the_docs_unescaped_quotes_still_parse_leniently() -> None:
    with pytest.raises(json.JSONDecodeError, match="delimiter"):
        json.loads(DEFECTIVE_SESSION)
    body = lenient_json.loads(DEFECTIVE_SESSION)
    line = body["booking"]["session"]["item"]["1"]
    assert line["rate"]["summary"] == '<span title="Kids">Kids:</span> 2 Days @ $40.00'
    assert line["rate"]["qty"] == 2
    assert body["request"]["status"] == "OK"


def test_regsyncs_client_reads_the_defective_body(sandbox: Sandbox) -> None:
    settings = sandbox.settings()

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/3.0/booking/session"
        return httpx.Response(
            200, content=DEFECTIVE_SESSION.encode(), headers={"Content-Type": "application/json"}
        )

    client = CheckfrontClient(
        settings.checkfront, settings.retry, ApiUsage(), transport=httpx.MockTransport(answer)
    )
    try:
        read = client.get_booking_session("k2j4h5g6f7d8s9a0q1w2e3r4t5")
    finally:
        client.close()
    assert read.found is True
    assert read.session["item"]["1"]["rate"]["summary"].startswith('<span title="Kids">')
