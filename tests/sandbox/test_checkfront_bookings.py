"""The Checkfront emulator's bookings (the index, one booking, updates, creation) answer in the
documented API 3.0 shapes, so client tests can trust them."""

from __future__ import annotations

from datetime import date

from tests.sandbox.checkfront_account import (
    BOOKING_KEYS,
    CUSTOMER_KEYS,
    DAY,
    DAY_EPOCH,
    ENVELOPE_KEYS,
    ERROR_KEYS,
    ERROR_REQUEST_KEYS,
    INDEX_ENTRY_KEYS,
    LIST_REQUEST_KEYS,
    ORDER_ITEM_KEYS,
    ORDER_KEYS,
    Account,
    add_booking,
    check_envelope,
    is_money,
    zipline,
)

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
