"""The Checkfront emulator's envelope, credentials, items and booking sessions (carts) answer in the
documented API 3.0 shapes, so client tests can trust them."""

from __future__ import annotations

import base64

import pytest

from regsync.sandbox.checkfront.values import _php_decode
from tests.sandbox.checkfront_account import (
    BASIC,
    DAY,
    DAY_EPOCH,
    ENVELOPE_KEYS,
    ERROR_KEYS,
    ERROR_REQUEST_KEYS,
    ITEM_KEYS,
    LINE_DATE_KEYS,
    LINE_KEYS,
    LINE_RATE_KEYS,
    PACKAGE_LINE_KEYS,
    PONG_KEYS,
    QUERY_KEYS,
    RATE_DAY_KEYS,
    RATE_KEYS,
    RATE_SUMMARY_KEYS,
    RATED_ITEM_EXTRA,
    REQUEST_KEYS,
    SESSION_KEYS,
    SESSION_MONEY,
    TOKEN,
    Account,
    add_booking,
    check_envelope,
    is_money,
    zipline,
)

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
