"""The Checkfront API 3.0 emulator, so regsync's client and sync run offline against the documented shapes."""

# Shapes follow Checkfront's public API 3.0 docs (envelope, booking session, booking index, rated
# item). Where the docs are silent the choice is commented at the spot, marked "unconfirmed".
#
# Internal store shapes (see CheckfrontState) that this module reads tolerantly and writes as:
#   item:    {item_id, sku, name, unit, stock, category_id, category, params: {param: price},
#             packages: [item_id...]} plus optional price (param-less items), unlimited, len, pos,
#             summary.
#   session line: {item_id, slip, qty, date "YYYYMMDD", len, param: {p: n}, optin: None | bool}
#             (optin None for a main line; True/False = opted in/out for a package add-on line).
#   booking line: {line_id: int, item_id, sku, name, slip, qty, date "YYYYMMDD", len, param,
#             start_date, end_date, total, tax_total, status_id, package: bool}.

from __future__ import annotations

import base64
import binascii
import bisect
import calendar
import copy
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from regsync.sandbox.http import Route, SandboxRequest, SandboxResponse
from regsync.sandbox.store import SandboxStore

API = r"/api/3\.0"
ACCOUNT_ID = 1
UNLIMITED = 1_000_000_000  # what the docs' session example shows as `available` of an add-on
DEFAULT_LIMIT = 100
MAX_LIMIT = 250  # unconfirmed: the docs give the default (100) but no maximum
DAY_S = 86_400
STATUSES: dict[str, str] = {
    "PEND": "Pending",
    "HOLD": "Reserved",
    "PART": "Deposit",
    "PAID": "Paid",
    "WAIT": "Waiting",
    "STOP": "Cancelled",
    "VOID": "Void",
}
# Unconfirmed: which statuses give their seats back. Cancelled and Void are the obvious ones; a
# waiting (unpaid) booking still holds its seats, as a pending one does.
RELEASED_STATUSES = frozenset({"STOP", "VOID"})
_SESSION_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # PHP session ids, as in the docs' example
_SLIP = re.compile(r"(?P<item>\d+)\.(?P<date>\d{8})X(?P<len>\d+)(?P<rest>(?:-[A-Za-z0-9_]+(?:\.\d+)?)+)")
_PHP_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])+)")
_PHP_SUBKEY = re.compile(r"\[([^\[\]]*)\]")
_TIME_FILTERS = ("created_date", "last_modified", "start_date", "end_date")
_CENT = Decimal("0.01")
_ISSUED_CAP = 10_000
_FILTER_CACHE_CAP = 8


# ---------------------------------------------------------------------------------------------
# Small value helpers: money, dates, PHP-style parameters
# ---------------------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal:
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def _money(value: Any) -> str:
    """Checkfront's money: a string with two decimals, "130.00"."""
    return str(_dec(value).quantize(_CENT))


def _dollars(value: Any) -> str:
    return f"${_money(value)}"


def _number(value: Decimal) -> int | float:
    """A JSON number as PHP would print it: 130, or 130.5."""
    return int(value) if value == value.to_integral_value() else float(value)


def _int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    try:
        return int(str(value).strip()) if not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def _epoch(value: Any) -> int | None:
    """Unix seconds from an int, float or numeric string; None when absent."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def _parse_day(value: Any) -> date | None:
    """A calendar day from "YYYYMMDD", "YYYY-MM-DD", unix seconds or a date."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC).date()
        text = str(value).strip()
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if text.isdigit():
            return datetime.fromtimestamp(int(text), tz=UTC).date()
        return date.fromisoformat(text[:10])
    except (ValueError, OverflowError, OSError):
        return None


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def _midnight(day: date) -> int:
    # The sandbox account's time zone is UTC: a day's unix time is its UTC midnight. (The docs'
    # account is in Canada/Pacific, so its 2017-10-05 is 1507186800; the shape is the same.)
    return calendar.timegm(day.timetuple())


def _day_desc(day: date) -> str:
    """ "Thu Oct 5, 2017" as in the docs' examples."""
    return f"{day:%a %b} {day.day}, {day.year}"


def _span_desc(first: date, last: date) -> str:
    # Unconfirmed: the docs only show one-day carts; a span reads "Thu Oct 5 - Sat Oct 7, 2017".
    if first == last:
        return _day_desc(first)
    if first.year == last.year:
        return f"{first:%a %b} {first.day} - {_day_desc(last)}"
    return f"{_day_desc(first)} - {_day_desc(last)}"


def _seconds(value: Any) -> float:
    """Epoch seconds (float) of a stored time; 0 when absent or unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def _php_decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs to PHP's nested arrays: `slip[]=A&slip[]=B`, `alter[3]=5`, `form[name]=x`.

    PHP arrays become dicts with string keys ("0", "1" for `[]`); a plain key given twice keeps
    the last value, as PHP does.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = _PHP_KEY.fullmatch(key)
        if match is None:
            out[key] = value
            continue
        parts = [match.group(1), *_PHP_SUBKEY.findall(match.group(2))]
        node = out
        for depth, part in enumerate(parts):
            if part == "":
                indexes = [int(k) for k in node if k.isdigit()]
                part = str(max(indexes) + 1 if indexes else 0)
            if depth == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return out


def _pairs(multi: dict[str, list[str]]) -> Iterable[tuple[str, str]]:
    for key, values in multi.items():
        for value in values:
            yield key, value


def _as_list(value: Any) -> list[str]:
    """A parameter that may be one value, a PHP array (dict) or a JSON list, as a list of strings."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return [str(v) for v in value.values() if v not in (None, "")]
    if isinstance(value, list):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


def _as_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


class _BadRequest(Exception):
    """A request-level error: answered in the envelope with request.status "ERROR"."""

    def __init__(self, error_id: str, title: str, details: str, data: Any = "") -> None:
        super().__init__(details)
        self.error_id = error_id
        self.title = title
        self.details = details
        self.data = data


# ---------------------------------------------------------------------------------------------
# SLIPs and lines
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slip:
    item_id: int
    day: date
    length: int
    param: dict[str, int]  # {} for a param-less item (add-ons)
    qty: int


def _parse_slip(text: str) -> _Slip | None:
    """`{item_id}.{YYYYMMDD}X{len}-{param}.{qty}[-...]` or `{item_id}.{YYYYMMDD}X{len}-{qty}`."""
    match = _SLIP.fullmatch(text.strip())
    if match is None:
        return None
    day = _parse_day(match.group("date"))
    length = int(match.group("len"))
    if day is None or not 1 <= length <= min(366, (date.max - day).days + 1):  # unconfirmed: a year at most
        return None
    param: dict[str, int] = {}
    bare = 0
    for part in match.group("rest").split("-")[1:]:
        name, dot, count = part.partition(".")
        if dot:
            param[name] = param.get(name, 0) + int(count)
        elif name.isdigit():
            bare += int(name)
        else:
            return None
    if param and bare:
        return None
    qty = sum(param.values()) if param else bare
    return _Slip(int(match.group("item")), day, length, param, qty) if qty <= UNLIMITED else None


def _make_slip(item_id: int, day: date, length: int, param: dict[str, int], qty: int) -> str:
    suffix = "-".join(f"{name}.{count}" for name, count in param.items()) if param else str(qty)
    return f"{item_id}.{_ymd(day)}X{length}-{suffix}"


def _line_day(line: dict[str, Any]) -> date | None:
    for key in ("date", "start_date"):
        day = _parse_day(line.get(key))
        if day is not None:
            return day
    slip = _parse_slip(str(line.get("slip") or ""))
    return slip.day if slip else None


def _line_len(line: dict[str, Any]) -> int:
    length = _int(line.get("len"), 0)
    if length > 0:
        return length
    slip = _parse_slip(str(line.get("slip") or ""))
    if slip is not None:
        return slip.length
    start, end = _epoch(line.get("start_date")), _epoch(line.get("end_date"))
    if start is not None and end is not None and end >= start:
        return (end - start) // DAY_S + 1
    return 1


def _line_days(line: dict[str, Any]) -> list[date]:
    first = _line_day(line)
    if first is None:
        return []
    return [first + timedelta(days=offset) for offset in range(_line_len(line))]


def _line_day_keys(line: dict[str, Any]) -> list[str]:
    """The "YYYYMMDD" days a line takes; fast for the common one-day line."""
    raw = line.get("date")
    if line.get("len") == 1 and type(raw) is str and len(raw) == 8 and raw.isdigit():
        return [raw]
    return [_ymd(day) for day in _line_days(line)]


def _line_qty(line: dict[str, Any]) -> int:
    if line.get("qty") not in (None, ""):
        return _int(line.get("qty"))
    param = line.get("param")
    if isinstance(param, dict) and param:
        return sum(_int(n) for n in param.values())
    return 1


def _is_package(line_id: Any, line: dict[str, Any]) -> bool:
    return bool(line.get("package")) or "." in str(line_id)


def _opted_in(line: dict[str, Any], *, default: bool = False) -> bool:
    """A package add-on line's state: opted in or out; `default` when the line does not say."""
    opt = line.get("opt")
    if isinstance(opt, str) and opt:
        return opt.lower() == "in"
    value = line.get("optin")
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in ("in", "i", "optin", "1", "true")
    return bool(value)


def _counts(line_id: Any, line: dict[str, Any], *, booked: bool = False) -> bool:
    """Whether a line is part of the order (and holds seats): main lines and opted-in add-ons.

    A cart's add-on starts opted out (as in the docs' example); a booking's line was booked, so
    only an explicit opt-out leaves it out.
    """
    return not _is_package(line_id, line) or _opted_in(line, default=booked)


def _line_sort_key(line_id: str) -> tuple[int, ...]:
    return tuple(_int(part) for part in str(line_id).split("."))


def _iter_lines(lines: Any) -> Iterable[tuple[str, dict[str, Any]]]:
    """(line_id, line) of a session's dict of lines or a booking's list of lines."""
    if isinstance(lines, dict):
        for line_id, line in lines.items():
            if isinstance(line, dict):
                yield str(line_id), line
    elif isinstance(lines, list):
        for index, line in enumerate(lines):
            if isinstance(line, dict):
                yield str(line.get("line_id", index + 1)), line


def _demand(lines: Any) -> dict[tuple[int, str], int]:
    """Seats a set of lines takes, per (item_id, YYYYMMDD)."""
    need: dict[tuple[int, str], int] = {}
    booked = isinstance(lines, list)  # bookings keep a list of lines, carts a dict by line id
    for line_id, line in _iter_lines(lines):
        if not _counts(line_id, line, booked=booked):
            continue
        item_id = _int(line.get("item_id"))
        qty = _line_qty(line)
        for day in _line_day_keys(line):
            key = (item_id, day)
            need[key] = need.get(key, 0) + qty
    return need


_Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class _Call:
    """One authenticated call: the request, its merged parameters, when it started."""

    request: SandboxRequest
    params: dict[str, Any]
    started: float

    @property
    def method(self) -> str:
        return "post" if self.request.method == "POST" else "get"


# ---------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------


class CheckfrontApi:
    """Routes of the emulated Checkfront account, over the sandbox store's Checkfront state."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        api_key: str,
        api_secret: str,
        bearer_token: str,
        host_id: str = "your-company.checkfront.com",
        account_name: str = "Your Company",
        currency: str = "CAD",
    ) -> None:
        self.store = store
        self.api_key = api_key
        self.api_secret = api_secret
        self.bearer_token = bearer_token
        self.host_id = host_id
        self.account_name = account_name
        self.currency = currency
        # Booking session ids handed out but not yet persisted (nothing added): id -> issued at.
        self._issued: OrderedDict[str, float] = OrderedDict()
        # Inventory index per (item_id, YYYYMMDD): the seats each booking's lines take there, and
        # the carts with lines there. A booking's status and a cart's liveness are read at query
        # time, so cancellations, ends and expiry need no bookkeeping; cart amounts are read from
        # the cart (a few lines). Rebuilt when the store's counts change behind our back (the
        # generator or a test filling the store directly; see also invalidate()).
        self._booked_on: dict[tuple[int, str], dict[int, int]] = {}
        self._held_on: dict[tuple[int, str], set[str]] = {}
        self._inventory_seen: tuple[int, int] | None = None
        # Booking index: ids in ascending order, and filtered id lists per filter set.
        self._sorted_ids: list[int] = []
        self._sorted_seen: int = -1
        # filter key -> (booking count when computed, matching ids, predicate); changes made
        # through the API patch the lists in place (see _booking_changed).
        self._filtered: OrderedDict[tuple[Any, ...], tuple[int, list[int], _Predicate]] = OrderedDict()
        self._codes: dict[str, int] = {}
        self._codes_seen: int = -1

    # ------------------------------------------------------------------ routing
    def routes(self) -> list[Route]:
        w = self._wrap
        booking_ref = r"(?P<booking>(?!(?:session|index|create|form|notes)/?$)[A-Za-z0-9-]+)"
        return [
            Route("GET", API + r"/ping/?", w(self._ping), "checkfront.ping"),
            Route("GET", API + r"/item/?", w(self._item_list), "checkfront.item.list"),
            Route("GET", API + r"/item/(?P<item_id>\d+)/?", w(self._item_get), "checkfront.item.get"),
            Route(
                "GET",
                API + r"/booking/session/?",
                w(self._session_get),
                "checkfront.booking_session.get",
            ),
            Route(
                "POST",
                API + r"/booking/session/?",
                w(self._session_post),
                "checkfront.booking_session.post",
            ),
            Route(
                "POST",
                API + r"/booking/session/clear/?",
                w(self._session_clear),
                "checkfront.booking_session.clear",
            ),
            Route(
                "POST",
                API + r"/booking/session/end/?",
                w(self._session_end),
                "checkfront.booking_session.end",
            ),
            Route("GET", API + r"/booking/?", w(self._booking_index), "checkfront.booking.index"),
            Route("GET", API + r"/booking/index/?", w(self._booking_index), "checkfront.booking.index"),
            Route("POST", API + r"/booking/create/?", w(self._booking_create), "checkfront.booking.create"),
            Route(
                "GET",
                API + r"/booking/" + booking_ref + r"/?",
                w(self._booking_get),
                "checkfront.booking.get",
            ),
            Route(
                "POST",
                API + r"/booking/" + booking_ref + r"/update/?",
                w(self._booking_update),
                "checkfront.booking.update",
            ),
        ]

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """An unknown /api/3.0/... path: credentials first, then an ERROR envelope.

        Unconfirmed: the docs show no such answer. The envelope with request.status "ERROR" is the
        documented form of request-level errors; HTTP 404 (the router turns it into 405 when only
        the method is wrong) tells plain HTTP clients what happened.
        """
        started = time.perf_counter()
        try:
            params = self._params(request)
        except ValueError:
            params = {}
        refused = self._authenticate(request, params)
        if refused is not None:
            return refused
        call = _Call(request, params, started)
        segments = [s for s in request.path.split("/") if s]
        resource = segments[2] if len(segments) > 2 and segments[:2] == ["api", "3.0"] else ""
        rest = "/".join(segments[2:]) or request.path
        return self._error(
            call,
            resource,
            None,
            _BadRequest("not_found", "Not found", f"Unknown resource: {rest}"),
            status=404,
        )

    # ------------------------------------------------------------------ plumbing
    def _wrap(
        self, handler: Callable[[_Call], SandboxResponse]
    ) -> Callable[[SandboxRequest], SandboxResponse]:
        def serve(request: SandboxRequest) -> SandboxResponse:
            started = time.perf_counter()
            try:
                params = self._params(request)
            except ValueError:
                params = None
            refused = self._authenticate(request, params or {})
            if refused is not None:
                return refused
            call = _Call(request, params or {}, started)
            resource = request.path.split("/")[3] if request.path.count("/") >= 3 else ""
            if params is None:
                # Unconfirmed: a JSON body that does not parse; answered as a request-level error.
                return self._error(
                    call,
                    resource,
                    None,
                    _BadRequest("invalid_request", "Invalid request", "The request body is not valid JSON."),
                )
            with self.store.lock:
                return handler(call)

        return serve

    @staticmethod
    def _params(request: SandboxRequest) -> dict[str, Any]:
        """Query and body parameters merged as PHP's $_REQUEST (body keys win); ValueError on bad JSON."""
        params = _php_decode(_pairs(request.query))
        if request.method != "GET" and request.body:
            content_type = request.headers.get("content-type", "")
            if "json" in content_type:
                body = request.json()
                if not isinstance(body, dict):
                    raise ValueError("a JSON body must be an object")
                params.update({str(k): v for k, v in body.items()})
            else:
                params.update(_php_decode(_pairs(request.form())))
        return params

    def _authenticate(self, request: SandboxRequest, params: dict[str, Any]) -> SandboxResponse | None:
        """HTTP Basic key:secret, `Authorization: Bearer` (any case) or `access_token=`.

        Failures are "critical errors": no envelope, an OAuth-style body. Their HTTP status is
        unconfirmed by the docs; 401 is what an OAuth2 resource server answers. When both a header
        and an access_token parameter are sent, the header decides (unconfirmed).
        """
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            value = value.strip()
            if scheme.lower() == "basic" and value:
                try:
                    decoded = base64.b64decode(value, validate=True).decode("utf-8")
                except (binascii.Error, ValueError):
                    return self._critical("invalid_request", "Malformed auth header.")
                key, colon, secret = decoded.partition(":")
                if not colon:
                    return self._critical("invalid_request", "Malformed auth header.")
                if _same(key, self.api_key) & _same(secret, self.api_secret):
                    return None
                return self._critical("invalid_grant", "The access token provided is invalid.")
            if scheme.lower() == "bearer" and value and " " not in value:
                if _same(value, self.bearer_token):
                    return None
                return self._critical("invalid_grant", "The access token provided is invalid.")
            return self._critical("invalid_request", "Malformed auth header.")
        token = params.get("access_token")
        if isinstance(token, str) and token:
            if _same(token, self.bearer_token):
                return None
            return self._critical("invalid_grant", "The access token provided is invalid.")
        return self._critical("invalid_request", "The access token was not found.")

    @staticmethod
    def _critical(error: str, description: str) -> SandboxResponse:
        return SandboxResponse.json(
            401,
            {"error": error, "error_description": description},
            [("WWW-Authenticate", 'Bearer realm="Service"')],
        )

    def _envelope(
        self,
        call: _Call,
        resource: str,
        request_id: str | None,
        *,
        records: int = 0,
        limit: int = 0,
        page: int = 1,
        pages: int = 1,
        status: str = "OK",
        **extra: Any,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"status": status, "resource": resource}
        if request_id is not None:
            request["id"] = request_id
        request.update(
            records=records,
            limit=limit,
            page=page,
            pages=pages,
            time=float(round(time.perf_counter() - call.started, 4)),
            method=call.method,
        )
        request.update(extra)
        return {
            "version": "3.0",
            "account_id": ACCOUNT_ID,
            "host_id": self.host_id,
            "name": self.account_name,
            "locale": {"id": "en_US", "lang": "en", "currency": self.currency},
            "request": request,
        }

    def _ok(
        self,
        call: _Call,
        resource: str,
        request_id: str | None,
        body: dict[str, Any],
        *,
        headers: Iterable[tuple[str, str]] = (),
        **envelope: Any,
    ) -> SandboxResponse:
        payload = self._envelope(call, resource, request_id, **envelope)
        payload.update(body)
        return SandboxResponse.json(200, payload, headers)

    def _error(
        self, call: _Call, resource: str, request_id: str | None, error: _BadRequest, *, status: int = 200
    ) -> SandboxResponse:
        """The documented request-level error: the envelope, status "ERROR", request.error{...}.

        The HTTP status of these answers is unconfirmed (the SDK reads only the body); the sandbox
        answers 200, as a PHP API that reports errors in its envelope most plausibly does.
        """
        payload = self._envelope(
            call,
            resource,
            request_id,
            status="ERROR",
            timestamp=round(self.store.clock.now(), 4),
            error={"id": error.error_id, "title": error.title, "details": error.details, "data": error.data},
        )
        return SandboxResponse.json(status, payload)

    # ------------------------------------------------------------------ ping
    def _ping(self, call: _Call) -> SandboxResponse:
        forwarded = call.request.headers.get("x-forwarded-for", "")
        pong = {
            "remote_addr": forwarded.split(",")[0].strip() or "127.0.0.1",
            "time": int(self.store.clock.now()),
            "timezone": "UTC",  # the sandbox account's time zone (see _midnight)
            # Unconfirmed: the docs' example was made from the API console.
            "provider": "API",
        }
        return self._ok(call, "ping", None, {"pong": pong}, records=1)

    # ------------------------------------------------------------------ items
    def _item_list(self, call: _Call) -> SandboxResponse:
        items = self.store.checkfront.items
        wanted: set[int] | None = None
        if call.params.get("item_id"):
            wanted = {_int(part, -1) for part in str(call.params["item_id"]).split(",")}
        category = call.params.get("category_id")
        try:
            rating = self._rating_query(call.params)
        except _BadRequest as exc:
            return self._error(call, "item", None, exc)
        chosen = [
            item
            for item in sorted(items.values(), key=lambda i: (_int(i.get("pos")), _int(i.get("item_id"))))
            if (wanted is None or _int(item.get("item_id")) in wanted)
            and (not category or str(item.get("category_id")) == str(category))
        ]
        rendered = {}
        for item in chosen:
            body = self._item_body(item)
            if rating is not None:
                body.update(self._rated(item, *rating))
            rendered[str(_int(item.get("item_id")))] = body
        query = self._query_echo(*rating) if rating is not None else []
        # An empty listing is PHP's empty array: [].
        return self._ok(call, "item", None, {"query": query, "items": rendered or []}, records=len(rendered))

    def _item_get(self, call: _Call) -> SandboxResponse:
        item_id = call.request.params["item_id"]
        item = self.store.checkfront.items.get(int(item_id))
        if item is None:
            # Unconfirmed: the docs show no unknown-item answer; the request-level error form.
            return self._error(
                call, "item", item_id, _BadRequest("not_found", "Not found", f"Item {item_id} not found.")
            )
        try:
            rating = self._rating_query(call.params)
        except _BadRequest as exc:
            return self._error(call, "item", item_id, exc)
        body = self._item_body(item)
        extra: dict[str, Any] = {}
        if rating is not None:
            body.update(self._rated(item, *rating))
            extra["events"] = []  # rate events (seasons, closures): none in the sandbox
        query = self._query_echo(*rating) if rating is not None else []
        # records is 0 for a single item, as both item examples in the docs show.
        return self._ok(call, "item", item_id, {"query": query, "item": body, **extra}, records=0)

    @staticmethod
    def _rating_query(params: dict[str, Any]) -> tuple[date, int, dict[str, str]] | None:
        """(first day, length in days, param) when the call asks for a rated item, else None."""
        raw_start = params.get("start_date") or params.get("date")
        if not raw_start:
            return None
        start = _parse_day(raw_start)
        if start is None:
            raise _BadRequest("invalid_request", "Invalid date", f"Cannot read start_date {raw_start!r}.")
        end = _parse_day(params.get("end_date")) if params.get("end_date") else start
        if end is None or end < start or (end - start).days >= 366:  # unconfirmed: a year at most
            raise _BadRequest(
                "invalid_request", "Invalid date", "end_date must be 0 to 365 days after start_date."
            )
        param = {str(k): str(v) for k, v in _as_map(params.get("param")).items()}
        return start, (end - start).days + 1, param

    @staticmethod
    def _query_echo(start: date, length: int, param: dict[str, str]) -> dict[str, Any]:
        end = start + timedelta(days=length - 1)
        return {
            "start_date": _ymd(start),
            "end_date": _ymd(end),
            "param": param or [],
            "local_end_date": f"{end:%m/%d/%y}",
            "local_start_date": f"{start:%m/%d/%y}",
        }

    @staticmethod
    def _prices(item: dict[str, Any]) -> dict[str, Decimal]:
        params = item.get("params")
        return {str(k): _dec(v) for k, v in params.items()} if isinstance(params, dict) else {}

    def _item_body(self, item: dict[str, Any]) -> dict[str, Any]:
        """An unrated item, with the keys of the docs' unrated example."""
        prices = self._prices(item)
        rules = {"param": {name: {"MIN": "0", "MAX": "0"} for name in prices}, "fixed": {"start_time": ""}}
        return {
            "unit": item.get("unit") or "D",
            "item_id": _int(item.get("item_id")),
            "sku": item.get("sku") or "",
            "url": "",
            "lock": 1,
            "visibility": "*",
            "name": item.get("name") or "",
            "pos": _int(item.get("pos")),
            "summary": item.get("summary") or "",
            "details": "",
            # The unrated example has meta as a JSON string; the (older) rated one as an object.
            "meta": '{"display_mode":"dropdown","item_package_rate":"","delay":0}',
            "stock": _int(item.get("stock")),
            "unlimited": 1 if self._unlimited(item) else 0,
            "video": [],  # no media in the sandbox: PHP's empty array
            "image": [],
            "category_id": _int(item.get("category_id")),
            "rated": 1,
            "product_group_type": "",
            "product_group_children": "",
            "type": "I",
            "status": "A",
            "alias_id": 0,
            "len": max(1, _int(item.get("len"), 1)),
            "rules": json.dumps(rules, separators=(",", ":")),
            "category": item.get("category") or "",
        }

    def _rated(self, item: dict[str, Any], start: date, length: int, asked: dict[str, str]) -> dict[str, Any]:
        """The keys a rated query adds to an item: param, qty, rate{...}, days, ... (item-rated)."""
        item_id = _int(item.get("item_id"))
        prices = self._prices(item)
        days = [start + timedelta(days=offset) for offset in range(length)]
        if prices:
            names = list(prices)
            if any(name in asked for name in names):
                counts = {name: min(UNLIMITED, max(0, _int(asked.get(name)))) for name in names}
            else:  # no param given: one of the first (default) param, as the example's def/qty show
                counts = {name: 1 if i == 0 else 0 for i, name in enumerate(names)}
            qty = sum(counts.values())
        else:
            counts = {}
            qty = min(UNLIMITED, max(0, _int(asked.get("qty"), 1)))
        available = self._available(item, days)
        if available <= 0:
            status = "SOLD_OUT"
        elif qty > available or qty <= 0:
            status = "UNAVAILABLE"  # unconfirmed name for "not enough for this request"
        else:
            status = "AVAILABLE"
        per_day = self._price(item, counts, qty, 1)
        sub_total = per_day * length
        stock = _int(item.get("stock"))
        dates: dict[str, Any] = {}
        for day in days:
            day_available = self._available(item, [day])
            dates[_ymd(day)] = {
                "status": "A" if day_available > 0 else "S",  # "S" for sold out: unconfirmed
                "price": {name: _number(price) for name, price in prices.items()} or [],
                "dow": str((day.weekday() + 1) % 7),  # PHP date('w'): 0 = Sunday
                "stock": {
                    "T": UNLIMITED if self._unlimited(item) else stock,
                    "B": 0 if self._unlimited(item) else max(0, stock - day_available),
                    "A": day_available,
                    "MinA": day_available,
                },
                "rates": [],
                "discount": [],
                "sub_total": _number(per_day),
            }
        low = min(prices.values(), default=_dec(item.get("price")))
        high = max(prices.values(), default=_dec(item.get("price")))
        rate: dict[str, Any] = {"status": status, "available": available}
        if status == "AVAILABLE":
            # Unconfirmed: a request that cannot be booked gets no SLIP (nothing to add to a cart).
            rate["slip"] = _make_slip(item_id, start, length, counts, qty)
        rate.update(
            summary={
                "title": f"{available} Available" if available > 0 else "Sold Out",
                "details": self._rate_summary(item, counts, qty, length, quote="'"),
                "price": {
                    "total": _dollars(sub_total),
                    "title": _dollars(low) if low == high else f"{_dollars(low)} - {_dollars(high)}",
                    "unit": "per day",
                    "param": {name: _dollars(price) for name, price in prices.items()} or [],
                },
                "date": _span_desc(days[0], days[-1]),
            },
            sub_total=_money(sub_total),
            event=[],
            start_date=_ymd(days[0]),
            end_date=_ymd(days[-1]),
            dates=dates,
        )
        param_block = {
            name: {
                "price": 1,
                "lbl": _label(name),
                "lock": 1,
                "qty": counts.get(name, 0),
                "hide": 0,
                "customer_hide": 0,
                "req": 1 if i == 0 else 0,
                "range": 1,
                "def": 1 if i == 0 else 0,
                "MIN": 0,
                "MAX": 0,
            }
            for i, name in enumerate(prices)
        }
        packages = [
            {"package_id": _int(pid), "optin": "O", "select_package_params": 1}
            for pid in item.get("packages") or []
        ]
        return {
            "meta": {"display_mode": "dropdown", "item_package_rate": "", "delay": 0, "default_len": 1},
            "package": packages,
            "param": param_block or [],
            "qty": qty,
            "rate": rate,
            "days": length,
            "discount": {"amount": 0},
            "local_start_date": f"{days[0]:%m/%d/%y}",
            "local_end_date": f"{days[-1]:%m/%d/%y}",
        }

    # ------------------------------------------------------------------ prices and inventory
    def _price(self, item: dict[str, Any] | None, param: dict[str, int], qty: int, length: int) -> Decimal:
        if item is None:
            return Decimal(0)
        prices = self._prices(item)
        if prices:
            per_day = sum((prices.get(name, Decimal(0)) * count for name, count in param.items()), Decimal(0))
            if not param:  # a param-less SLIP for an item with params: the first param's price
                per_day = next(iter(prices.values())) * qty
        else:
            per_day = _dec(item.get("price")) * qty
        return per_day * length

    def _rate_summary(
        self, item: dict[str, Any] | None, param: dict[str, int], qty: int, length: int, *, quote: str
    ) -> str:
        """ "<strong title="Adults">Adults:</strong> 1 Day @ $130.00" (param-less: "$18.00").

        Unconfirmed for more than one person: "2 x 1 Day @ $130.00" (the unit price).
        """
        prices = self._prices(item) if item is not None else {}
        if not param:
            return _dollars(self._price(item, {}, qty, length))
        days = f"{length} Day" if length == 1 else f"{length} Days"
        parts = []
        for name, count in param.items():
            if count <= 0:
                continue
            label = _label(name)
            times = f"{count} x " if count > 1 else ""
            price = _dollars(prices.get(name, Decimal(0)))
            parts.append(f"<strong title={quote}{label}{quote}>{label}:</strong> {times}{days} @ {price}")
        return ", ".join(parts)

    @staticmethod
    def _unlimited(item: dict[str, Any] | None) -> bool:
        return item is None or bool(item.get("unlimited")) or item.get("stock") is None

    def _ensure_inventory(self) -> None:
        cf = self.store.checkfront
        seen = (len(cf.bookings), len(cf.booking_sessions))
        if self._inventory_seen == seen:
            return
        self._booked_on = {}
        self._held_on = {}
        for booking in cf.bookings.values():
            self._index_booking(booking)
        for session in cf.booking_sessions.values():
            self._index_session(session)
        self._inventory_seen = seen

    def _index_booking(self, booking: dict[str, Any]) -> None:
        booking_id = _int(booking.get("booking_id"))
        for key, seats in _demand(booking.get("lines")).items():
            self._booked_on.setdefault(key, {})[booking_id] = seats

    def _index_session(self, session: dict[str, Any]) -> None:
        session_id = str(session.get("id"))
        for _, line in _iter_lines(session.get("lines")):
            for day in _line_day_keys(line):
                # Opted-out add-ons too: opting in later must find them without a rebuild.
                self._held_on.setdefault((_int(line.get("item_id")), day), set()).add(session_id)

    def _seats_taken(self, key: tuple[int, str], *, exclude_session: str | None = None) -> int:
        """Seats of (item_id, YYYYMMDD) taken by live bookings and live booking sessions."""
        cf = self.store.checkfront
        taken = 0
        for booking_id, seats in self._booked_on.get(key, {}).items():
            booking = cf.bookings.get(booking_id)
            if booking is None or str(booking.get("status_id", "")).upper() in RELEASED_STATUSES:
                continue
            taken += seats
        now = self.store.clock.now()
        for session_id in self._held_on.get(key, ()):
            if session_id == exclude_session:
                continue
            session = self._live_session(session_id, now)
            if session is not None:
                taken += _demand(session.get("lines")).get(key, 0)
        return taken

    def _available(
        self, item: dict[str, Any] | None, days: list[date], *, exclude_session: str | None = None
    ) -> int:
        """Stock minus seats booked minus seats held by live carts, the tightest day of the span."""
        if self._unlimited(item) or not days:
            return UNLIMITED
        assert item is not None
        self._ensure_inventory()
        stock = _int(item.get("stock"))
        item_id = _int(item.get("item_id"))
        left = min(
            stock - self._seats_taken((item_id, _ymd(day)), exclude_session=exclude_session) for day in days
        )
        return max(0, left)

    def _check_capacity(self, old_lines: Any, new_lines: Any, session_id: str | None) -> None:
        """Refuse a change that needs more seats than are left; a change that needs fewer is fine."""
        before = _demand(old_lines)
        items = self.store.checkfront.items
        for key, qty in sorted(_demand(new_lines).items()):
            if qty <= before.get(key, 0):
                continue
            item = items.get(key[0])
            if self._unlimited(item):
                continue
            day = _parse_day(key[1])
            assert item is not None
            assert day is not None
            left = self._available(item, [day], exclude_session=session_id)
            if qty > left:
                # Unconfirmed: the docs show no sold-out answer to a cart change.
                raise _BadRequest(
                    "unavailable",
                    "Not available",
                    f"{item.get('name') or key[0]}: only {left} available on {_day_desc(day)}.",
                    {"item_id": key[0], "date": key[1], "available": left},
                )

    # ------------------------------------------------------------------ booking sessions
    def _live_session(self, session_id: str | None, now: float) -> dict[str, Any] | None:
        """The stored session if it is alive: not ended, not booked, idle no longer than the TTL."""
        if not session_id:
            return None
        session = self.store.checkfront.booking_sessions.get(session_id)
        if session is None or session.get("ended") is not None or session.get("booking_code"):
            return None
        modified = _seconds(session.get("modified")) or _seconds(session.get("created"))
        if now - modified > self.store.checkfront.session_ttl_s:
            return None
        return session

    def _issued_at(self, session_id: str | None, now: float) -> float | None:
        """When an id was handed out for an empty session that nothing was added to yet."""
        if not session_id or session_id not in self._issued:
            return None
        issued = self._issued[session_id]
        if now - issued > self.store.checkfront.session_ttl_s:
            del self._issued[session_id]
            return None
        return issued

    def _new_session_id(self, now: float) -> str:
        sessions = self.store.checkfront.booking_sessions
        while True:
            candidate = "".join(secrets.choice(_SESSION_ALPHABET) for _ in range(26))
            if candidate not in sessions and candidate not in self._issued:
                break
        self._issued[candidate] = now
        while len(self._issued) > _ISSUED_CAP:
            self._issued.popitem(last=False)
        return candidate

    @staticmethod
    def _asked_session_id(call: _Call) -> str | None:
        value = call.params.get("session_id")
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
        return call.request.cookies.get("session_id") or None

    def _resolve_session(self, call: _Call, now: float) -> tuple[str, dict[str, Any] | None, float]:
        """(id, stored session or None, last change) for the session a call names.

        The real API never fails on an unknown, ended or expired session id: it starts a new, empty
        session and answers with that one (new id, age 0). The caller must compare ids.
        A new empty session is not written to the store until something is added to it (a cart
        nobody filled should not appear in the sandbox's state); its id is remembered apart, so
        the cookie flow (read, then add with the id read) works as with the real API.
        """
        asked = self._asked_session_id(call)
        session = self._live_session(asked, now)
        if session is not None:
            assert asked is not None
            return asked, session, _seconds(session.get("modified")) or _seconds(session.get("created"))
        issued = self._issued_at(asked, now)
        if issued is not None and asked is not None:
            return asked, None, issued
        return self._new_session_id(now), None, now

    def _session_get(self, call: _Call) -> SandboxResponse:
        # A read does not change the session: `age` is the seconds since the cart last changed.
        now = self.store.clock.now()
        session_id, session, changed_at = self._resolve_session(call, now)
        lines = session.get("lines", {}) if session is not None else {}
        return self._session_answer(call, "session", session_id, lines, changed_at, now)

    def _session_post(self, call: _Call) -> SandboxResponse:
        now = self.store.clock.now()
        session_id, session, changed_at = self._resolve_session(call, now)
        old_lines: dict[str, Any] = session.get("lines", {}) if session is not None else {}
        lines = copy.deepcopy(old_lines)
        try:
            # Order within one call (unconfirmed): alter first, then the line replaced, then adds.
            for line_id, action in _as_map(call.params.get("alter")).items():
                self._alter(lines, line_id, action)
            slips = _as_list(call.params.get("slip"))
            replace = str(call.params.get("line_id") or "").strip()
            if replace and slips:
                self._replace_line(lines, replace, slips.pop(0))
            for slip in slips:
                self._add_line(lines, slip)
            self._ensure_inventory()
            self._check_capacity(old_lines, lines, session_id)
        except _BadRequest as exc:
            return self._error(call, "booking", "session", exc)
        if lines != old_lines:
            if session is None:
                session = {
                    "id": session_id,
                    "created": changed_at,
                    "modified": now,
                    "ended": None,
                    "booking_code": None,
                    "lines": lines,
                }
                self.store.checkfront.booking_sessions[session_id] = session
                self._issued.pop(session_id, None)
            else:
                session["lines"] = lines
                session["modified"] = now
            self._index_session(session)
            if self._inventory_seen is not None:
                cf = self.store.checkfront
                self._inventory_seen = (len(cf.bookings), len(cf.booking_sessions))
            changed_at = now
        return self._session_answer(call, "session", session_id, lines, changed_at, now)

    def _session_clear(self, call: _Call) -> SandboxResponse:
        """Remove every line and keep the id (docs-2014).

        The answer body is unconfirmed: the (now empty) session, as the session endpoint answers
        it, with request.id "clear". Clearing an unknown session answers a new empty one.
        """
        now = self.store.clock.now()
        session_id, session, changed_at = self._resolve_session(call, now)
        if session is not None and session.get("lines"):
            session["lines"] = {}
            session["modified"] = now
            changed_at = now
        return self._session_answer(call, "clear", session_id, {}, changed_at, now)

    def _session_end(self, call: _Call) -> SandboxResponse:
        """Destroy a session: it becomes ended and its seats go back to stock.

        The answer body is unconfirmed: the envelope with request.id "end" and
        `booking.session{id, ended: true}`. Ending an unknown or already ended session is still OK
        (ending is idempotent) but records nothing new: the first end time stays.
        """
        now = self.store.clock.now()
        session_id = self._asked_session_id(call)
        session = self._live_session(session_id, now)
        if session is not None:
            session["ended"] = now
        if session_id is not None:
            self._issued.pop(session_id, None)
        return self._ok(call, "booking", "end", {"booking": {"session": {"id": session_id, "ended": True}}})

    def _session_answer(
        self,
        call: _Call,
        request_id: str,
        session_id: str,
        lines: dict[str, Any],
        changed_at: float,
        now: float,
    ) -> SandboxResponse:
        body = self._render_session(session_id, lines, changed_at, now)
        cookie = ("Set-Cookie", f"session_id={session_id}; path=/; secure; HttpOnly")
        return self._ok(
            call,
            "booking",
            request_id,
            {"booking": {"session": body}},
            records=len(body["item"]),
            headers=[cookie],
        )

    def _render_session(
        self, session_id: str, lines: dict[str, Any], changed_at: float, now: float
    ) -> dict[str, Any]:
        """`booking.session` in the docs' shape."""
        items = self.store.checkfront.items
        rendered: dict[str, Any] = {}
        names: list[str] = []
        first: date | None = None
        last: date | None = None
        sub_total = Decimal(0)
        qty = 0
        for line_id in sorted(lines, key=_line_sort_key):
            line = lines[line_id]
            item = items.get(_int(line.get("item_id")))
            days = _line_days(line)
            package = _is_package(line_id, line)
            counted = _counts(line_id, line)
            param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
            line_qty = _line_qty(line)
            total = self._price(item, param, line_qty, _line_len(line))
            name = (item or {}).get("name") or line.get("name") or ""
            if counted:
                sub_total += total
                if name and name not in names:
                    names.append(name)
                if days:
                    first = days[0] if first is None else min(first, days[0])
                    last = days[-1] if last is None else max(last, days[-1])
            if not package:
                qty += line_qty
            entry: dict[str, Any] = {
                "sku": (item or {}).get("sku") or line.get("sku") or "",
                "item_id": _int(line.get("item_id")),
                "name": name,
                "unit": (item or {}).get("unit") or "D",
                "rate": {
                    "total": _money(total),
                    "item_total": _money(total if counted else 0),
                    "qty": line_qty,
                    "summary": self._rate_summary(item, param, line_qty, _line_len(line), quote='"'),
                },
                "date": {
                    "summary": _span_desc(days[0], days[-1]) if days else "",
                    "start_date": _midnight(days[0]) if days else 0,
                    "end_date": _midnight(days[-1]) if days else 0,
                },
                "slip": str(line.get("slip") or ""),
                # Seats left on the line's dates, this cart's own hold included (the docs' example
                # shows the same 9 in the cart as in the rated item).
                "available": self._available(item, days),
            }
            if package:
                entry["optin"] = "O"  # the add-on's mode: optional
                entry["opt"] = "in" if _opted_in(line) else "out"
            rendered[str(line_id)] = entry
        total_text = _money(sub_total)  # no taxes, discounts or payments in a sandbox cart
        return {
            "id": session_id,
            "age": max(0, int(now - changed_at)),
            "summary": ", ".join(names),
            # Unconfirmed for an empty cart: 0 dates and empty descriptions.
            "start_date": _midnight(first) if first else 0,
            "end_date": _midnight(last) if last else 0,
            "date_desc": _span_desc(first, last) if first and last else "",
            "time_desc": "",
            "account_id": ACCOUNT_ID,
            "partner_id": 0,
            "currency_id": self.currency,
            "sub_total": total_text,
            "tax_total": "0.00",
            "tax_inc_total": "0.00",
            "discount": "0.00",
            "total": total_text,
            "due": total_text,
            "paid_total": "0.00",
            "flat_discount": {"total": 0, "total_pretax": 0},
            "deposit": None,
            "tax": [],
            # Unconfirmed: the seats of the main lines (the example's 1 main line + 3 add-ons give 1).
            "qty": qty,
            "item": rendered or [],  # an empty cart is PHP's empty array
        }

    # -- cart changes (on a copy of the lines; committed only when the whole call is valid)
    def _line_from_slip(self, slip_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
        slip = _parse_slip(slip_text)
        item = self.store.checkfront.items.get(slip.item_id) if slip is not None else None
        # Unconfirmed: the error a bad SLIP gets (the docs only say SLIPs come from rated calls).
        bad = _BadRequest("invalid_slip", "Invalid SLIP", f"Cannot book SLIP {slip_text!r}.", slip_text)
        if slip is None or item is None:
            raise bad
        prices = self._prices(item)
        if prices:
            names = list(prices)
            if slip.param and not set(slip.param) <= set(names):
                raise bad
            param = {name: slip.param.get(name, 0) for name in names}
            if not slip.param:
                param[names[0]] = slip.qty
        else:
            if slip.param and set(slip.param) != {"qty"}:
                raise bad
            param = {}
        qty = sum(param.values()) if param else slip.qty
        if qty <= 0:
            raise bad
        line = {
            "item_id": slip.item_id,
            "slip": _make_slip(slip.item_id, slip.day, slip.length, param, qty),
            "qty": qty,
            "date": _ymd(slip.day),
            "len": slip.length,
            "param": param,
            "optin": None,
        }
        return line, item

    def _package_lines(
        self, item: dict[str, Any], main: dict[str, Any], opted: dict[int, bool]
    ) -> list[dict[str, Any]]:
        """The add-on lines of an item: one each, opted out until `alter[n.m]=optin`."""
        # Unconfirmed: an add-on line is always qty 1 (the docs' example only shows qty 1).
        day = _line_day(main)
        length = _line_len(main)
        out = []
        for package_id in item.get("packages") or []:
            package_id = _int(package_id)
            if package_id not in self.store.checkfront.items or day is None:
                continue
            out.append(
                {
                    "item_id": package_id,
                    "slip": _make_slip(package_id, day, length, {}, 1),
                    "qty": 1,
                    "date": _ymd(day),
                    "len": length,
                    "param": {},
                    "optin": opted.get(package_id, False),
                }
            )
        return out

    def _add_line(self, lines: dict[str, Any], slip_text: str) -> None:
        line, item = self._line_from_slip(slip_text)
        main_ids = [_int(line_id) for line_id in lines if "." not in line_id]
        line_id = str(max(main_ids, default=0) + 1)
        lines[line_id] = line
        for n, package in enumerate(self._package_lines(item, line, {}), start=1):
            lines[f"{line_id}.{n}"] = package

    def _replace_line(self, lines: dict[str, Any], line_id: str, slip_text: str) -> None:
        """`line_id=<n>&slip=<new>`: the line keeps its id; add-ons follow the new item."""
        if line_id not in lines or "." in line_id:
            # Unconfirmed: replacing a line that is not there adds the SLIP as a new line.
            self._add_line(lines, slip_text)
            return
        line, item = self._line_from_slip(slip_text)
        children = [key for key in lines if key.startswith(f"{line_id}.")]
        opted = {_int(lines[key].get("item_id")): _opted_in(lines[key]) for key in children}
        for key in children:
            del lines[key]
        lines[line_id] = line
        for n, package in enumerate(self._package_lines(item, line, opted), start=1):
            lines[f"{line_id}.{n}"] = package

    def _alter(self, lines: dict[str, Any], line_id: str, action: Any) -> None:
        """`alter[<line_id>]` = quantity | remove | optin | optout."""
        if line_id not in lines:
            # Unconfirmed: an unknown line id is skipped; the answer shows the cart unchanged.
            return
        verb = str(action).strip().lower()
        package = "." in line_id
        if verb == "remove" or verb == "0":
            self._remove_line(lines, line_id)
            return
        if verb in ("optin", "optout"):
            if not package:
                raise _BadRequest(
                    "invalid_request", "Invalid alter", f"Line {line_id} is not an add-on.", {line_id: verb}
                )
            lines[line_id]["optin"] = verb == "optin"
            return
        if not (verb.isascii() and verb.isdigit()) or int(verb) > UNLIMITED:
            raise _BadRequest(
                "invalid_request",
                "Invalid alter",
                f"Cannot apply {action!r} to line {line_id}.",
                {line_id: action},
            )
        self._set_qty(lines[line_id], int(verb))

    @staticmethod
    def _remove_line(lines: dict[str, Any], line_id: str) -> None:
        del lines[line_id]
        if "." not in line_id:
            for key in [key for key in lines if key.startswith(f"{line_id}.")]:
                del lines[key]

    def _set_qty(self, line: dict[str, Any], qty: int) -> None:
        """A new quantity: the change goes to the line's main param (the first one with seats)."""
        # Unconfirmed: how Checkfront spreads a quantity over several params.
        param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
        if param:
            primary = next((name for name, count in param.items() if count > 0), next(iter(param)))
            others = sum(count for name, count in param.items() if name != primary)
            if qty >= others:
                param[primary] = qty - others
            else:
                param = {name: 0 for name in param}
                param[primary] = qty
        day = _line_day(line)
        line["param"] = param
        line["qty"] = qty
        if day is not None:
            line["slip"] = _make_slip(_int(line.get("item_id")), day, _line_len(line), param, qty)

    # ------------------------------------------------------------------ bookings: lookups
    def _ids(self) -> list[int]:
        """Booking ids, ascending; sorted once and kept while nothing is added behind our back."""
        bookings = self.store.checkfront.bookings
        if self._sorted_seen != len(bookings):
            self._sorted_ids = sorted(bookings)
            self._sorted_seen = len(bookings)
        return self._sorted_ids

    def _find_booking(self, ref: str) -> dict[str, Any] | None:
        bookings = self.store.checkfront.bookings
        if ref.isdigit():
            return bookings.get(int(ref))
        # Codes match trimmed and case-insensitively, as regsync's rules read them (docs/rules.md).
        key = ref.strip().upper()
        if self._codes_seen != len(bookings):
            self._codes = {str(b.get("code", "")).strip().upper(): bid for bid, b in bookings.items()}
            self._codes_seen = len(bookings)
        booking_id = self._codes.get(key)
        booking = bookings.get(booking_id) if booking_id is not None else None
        if booking is not None and str(booking.get("code", "")).strip().upper() == key:
            return booking
        return None

    def invalidate(self) -> None:
        """Forget every cache; for code that edits the store's Checkfront state directly."""
        self._inventory_seen = None
        self._sorted_seen = -1
        self._codes_seen = -1
        self._filtered.clear()

    # ------------------------------------------------------------------ bookings: rendering
    @staticmethod
    def _customer_id(booking: dict[str, Any]) -> int:
        if booking.get("customer_id") not in (None, ""):
            return _int(booking.get("customer_id"))
        # The sandbox has no customer table: a stable id derived from the e-mail address.
        email = str(booking.get("customer_email") or "").strip().lower()
        return int(hashlib.sha256(email.encode()).hexdigest()[:7], 16) + 1

    @staticmethod
    def _token(booking: dict[str, Any]) -> str:
        if booking.get("token"):
            return str(booking["token"])
        seed = f"regsync-sandbox:{booking.get('booking_id')}:{booking.get('code')}"
        return hashlib.sha256(seed.encode()).hexdigest()

    def _summary(self, booking: dict[str, Any]) -> str:
        items = self.store.checkfront.items
        names: list[str] = []
        for line_id, line in _iter_lines(booking.get("lines")):
            if not _counts(line_id, line, booked=True):
                continue
            name = (items.get(_int(line.get("item_id"))) or {}).get("name") or line.get("name") or ""
            if name and name not in names:
                names.append(name)
        return ", ".join(names)

    @staticmethod
    def _date_desc(booking: dict[str, Any]) -> str:
        start = _epoch(booking.get("start_date"))
        if not start:
            return ""
        first = _parse_day(start)
        last = _parse_day(_epoch(booking.get("end_date")) or start)
        assert first is not None
        assert last is not None
        return _span_desc(first, max(first, last))

    def _index_entry(self, booking: dict[str, Any]) -> dict[str, Any]:
        status_id = str(booking.get("status_id") or "PEND").upper()
        return {
            "booking_id": _int(booking.get("booking_id")),
            "code": str(booking.get("code") or ""),
            "status_id": status_id,
            "status_name": STATUSES.get(status_id, status_id.title()),
            "created_date": _epoch(booking.get("created_date")) or 0,
            "total": _money(booking.get("total")),
            "tax_total": _money(booking.get("tax_total")),
            "paid_total": _money(booking.get("paid_total")),
            "customer_id": self._customer_id(booking),
            "customer_name": str(booking.get("customer_name") or ""),
            "customer_email": str(booking.get("customer_email") or ""),
            "summary": self._summary(booking),
            "date_desc": self._date_desc(booking),
            "tid": str(booking.get("tid") or ""),
            "token": self._token(booking),
        }

    def _detail(self, booking: dict[str, Any]) -> dict[str, Any]:
        """`booking` of GET /booking/{id}: the webhook's field set in JSON-API form (unconfirmed)."""
        entry = self._index_entry(booking)
        items = self.store.checkfront.items
        lines = []
        position = 0
        for line_id, line in _iter_lines(booking.get("lines")):
            if not _counts(line_id, line, booked=True):
                continue
            position += 1
            item = items.get(_int(line.get("item_id"))) or {}
            days = _line_days(line)
            param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
            total = line.get("total")
            if total in (None, ""):
                total = self._price(item or None, param, _line_qty(line), _line_len(line))
            start = _epoch(line.get("start_date"))
            end = _epoch(line.get("end_date"))
            lines.append(
                {
                    "line_id": _int(line.get("line_id"), position) if "line_id" in line else position,
                    "item_id": _int(line.get("item_id")),
                    "sku": line.get("sku") or item.get("sku") or "",
                    "slip": str(line.get("slip") or ""),
                    "status_id": str(line.get("status_id") or entry["status_id"]).upper(),
                    "start_date": start if start is not None else (_midnight(days[0]) if days else 0),
                    "end_date": end if end is not None else (_midnight(days[-1]) if days else 0),
                    "total": _money(total),
                    "tax_total": _money(line.get("tax_total")),
                    "qty": _line_qty(line),
                }
            )
        email = entry["customer_email"]
        digest = hashlib.sha256(email.lower().encode()).hexdigest().upper()
        fields = {"customer_name": entry["customer_name"], "customer_email": email}
        extra_fields = booking.get("fields")
        if isinstance(extra_fields, dict):
            fields.update({str(k): v for k, v in extra_fields.items() if str(k) not in fields})
        return {
            "booking_id": entry["booking_id"],
            "code": entry["code"],
            "status_id": entry["status_id"],
            "status_name": entry["status_name"],
            "created_date": entry["created_date"],
            "last_modified": _epoch(booking.get("last_modified")) or entry["created_date"],
            "start_date": _epoch(booking.get("start_date")) or 0,
            "end_date": _epoch(booking.get("end_date")) or 0,
            "tid": entry["tid"],
            "token": entry["token"],
            "summary": entry["summary"],
            "date_desc": entry["date_desc"],
            "customer": {
                "customer_id": entry["customer_id"],
                "code": f"{digest[:3]}-{digest[3:6]}-{digest[6:9]}",
                "name": entry["customer_name"],
                "email": email,
                # Not collected by the sandbox's booking form.
                "region": "",
                "address": "",
                "city": "",
                "country": "",
                "phone": "",
                "postal_zip": "",
            },
            "fields": fields,
            "order": {
                "currency_id": self.currency,
                "sub_total": _money(booking.get("sub_total", booking.get("total"))),
                "tax_total": entry["tax_total"],
                "paid_total": entry["paid_total"],
                "total": entry["total"],
                "taxes": [],
                "items": lines,
            },
        }

    # ------------------------------------------------------------------ bookings: endpoints
    def _booking_index(self, call: _Call) -> SandboxResponse:
        by_index = call.request.path.rstrip("/").endswith("/index")
        # GET /booking answers the same `booking/index` key (docs' snippet); its request block
        # carries no id and path ["booking"] (unconfirmed).
        request_id = "index" if by_index else None
        path = ["booking", "index"] if by_index else ["booking"]
        try:
            limit = (
                _int(call.params.get("limit"), DEFAULT_LIMIT) if call.params.get("limit") else DEFAULT_LIMIT
            )
            # Unconfirmed: a limit out of range is clamped rather than refused.
            limit = DEFAULT_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
            page = min(max(1, _int(call.params.get("page"), 1)), 2**63 - 1)  # PHP's (int) saturates there
            key, predicate = self._index_filter(call.params)
        except _BadRequest as exc:
            return self._error(call, "booking", request_id, exc)
        bookings = self.store.checkfront.bookings
        ids = self._matching(key, predicate)
        chunk = ids[(page - 1) * limit : page * limit]
        if any(bid not in bookings or not predicate(bookings[bid]) for bid in chunk):
            # The store changed behind our back: compute again once.
            self._filtered.pop(key, None)
            ids = self._matching(key, predicate)
            chunk = ids[(page - 1) * limit : page * limit]
        rows = {str(bid): self._index_entry(bookings[bid]) for bid in chunk}
        total = len(ids)
        # Unconfirmed: an empty result is page 1 of 1 (the docs show pages >= 1 everywhere).
        pages = max(1, math.ceil(total / limit))
        return self._ok(
            call,
            "booking",
            request_id,
            # PHP's json_encode of an empty array is [], not {}: an empty index is [].
            {"booking/index": rows or []},
            records=len(rows),
            limit=limit,
            page=page,
            pages=pages,
            total_records=total,
            path=path,
        )

    def _matching(self, key: tuple[Any, ...], predicate: _Predicate) -> list[int]:
        """Ids matching a filter set, ascending; one scan per filter set, then kept up to date."""
        ids = self._ids()
        if not key:
            return ids
        bookings = self.store.checkfront.bookings
        cached = self._filtered.get(key)
        if cached is not None and cached[0] == len(bookings):
            self._filtered.move_to_end(key)
            return cached[1]
        found = [bid for bid in ids if predicate(bookings[bid])]
        self._filtered[key] = (len(bookings), found, predicate)
        while len(self._filtered) > _FILTER_CACHE_CAP:
            self._filtered.popitem(last=False)
        return found

    def _booking_changed(self, booking_id: int, *, created: bool) -> None:
        """Patch the cached filtered id lists for one booking created or changed through the API."""
        bookings = self.store.checkfront.bookings
        booking = bookings[booking_id]
        expected = len(bookings) - 1 if created else len(bookings)
        for key, (seen, ids, predicate) in list(self._filtered.items()):
            if seen != expected:
                del self._filtered[key]  # stale anyway: computed before a change we did not see
                continue
            at = bisect.bisect_left(ids, booking_id)
            present = at < len(ids) and ids[at] == booking_id
            wanted = predicate(booking)
            if wanted and not present:
                ids.insert(at, booking_id)
            elif present and not wanted:
                del ids[at]
            self._filtered[key] = (len(bookings), ids, predicate)

    def _index_filter(self, params: dict[str, Any]) -> tuple[tuple[Any, ...], _Predicate]:
        """The documented filters as one predicate, and a hashable key for the cache."""
        checks: list[_Predicate] = []
        key: list[tuple[str, str]] = []

        def given(name: str) -> str | None:
            value = params.get(name)
            if value is None or isinstance(value, dict | list) or str(value).strip() == "":
                return None
            key.append((name, str(value).strip()))
            return str(value).strip()

        status = given("status_id")
        if status is not None:
            # Unconfirmed: a comma-separated list of statuses is accepted.
            wanted_status = {part.strip().upper() for part in status.split(",") if part.strip()}
            checks.append(lambda b: str(b.get("status_id", "")).upper() in wanted_status)
        email = given("customer_email")
        if email is not None:
            wanted_email = email.lower()
            checks.append(lambda b: str(b.get("customer_email") or "").strip().lower() == wanted_email)
        customer = given("customer_id")
        if customer is not None:
            wanted_customer = _int(customer, -1)
            checks.append(lambda b: self._customer_id(b) == wanted_customer)
        item = given("item_id")
        if item is not None:
            wanted_items = {_int(part, -1) for part in item.split(",")}
            checks.append(
                lambda b: any(
                    _int(line.get("item_id")) in wanted_items for _, line in _iter_lines(b.get("lines"))
                )
            )
        partner = given("partner_id")
        if partner is not None:
            every = _int(partner, -1) == 0  # the sandbox has no partners: every booking is partner 0
            checks.append(lambda b: every)
        for name in _TIME_FILTERS:
            raw = given(name)
            if raw is not None:
                checks.append(_time_check(name, raw))

        def predicate(booking: dict[str, Any]) -> bool:
            return all(check(booking) for check in checks)

        return tuple(key), predicate

    def _booking_get(self, call: _Call) -> SandboxResponse:
        ref = call.request.params["booking"]
        booking = self._find_booking(ref)
        if booking is None:
            # Unconfirmed: the error id and wording for an unknown booking.
            return self._error(
                call, "booking", ref, _BadRequest("not_found", "Booking not found", f"No booking {ref}.", "")
            )
        return self._ok(call, "booking", ref, {"booking": self._detail(booking)}, records=1)

    def _booking_update(self, call: _Call) -> SandboxResponse:
        """`status_id` (required, one of the account's statuses) and `set_paid`.

        The answer body is unconfirmed: the updated booking, as GET /booking/{id} shows it. The
        booking's last_modified moves only when something changed; seats follow the status (a
        booking moved to STOP or VOID gives its seats back; moved back, it takes them again
        without a stock check, as staff can overbook).
        """
        ref = call.request.params["booking"]
        booking = self._find_booking(ref)
        if booking is None:
            return self._error(
                call, "booking", ref, _BadRequest("not_found", "Booking not found", f"No booking {ref}.", "")
            )
        status = str(call.params.get("status_id") or "").strip().upper()
        if not status:
            return self._error(
                call,
                "booking",
                ref,
                _BadRequest(
                    "validation_error",
                    "Missing required fields",
                    "The following fields are required: Status",
                    {"status_id": "Status"},
                ),
            )
        if status not in STATUSES:
            return self._error(
                call,
                "booking",
                ref,
                _BadRequest(
                    "validation_error", "Invalid status", f"Unknown status: {status}", {"status_id": status}
                ),
            )
        changed = False
        if str(booking.get("status_id", "")).upper() != status:
            booking["status_id"] = status
            for _, line in _iter_lines(booking.get("lines")):
                if "status_id" in line:
                    line["status_id"] = status
            changed = True
        if _truthy(call.params.get("set_paid", "")) and _dec(booking.get("paid_total")) != _dec(
            booking.get("total")
        ):
            booking["paid_total"] = _money(booking.get("total"))
            changed = True
        if changed:
            booking["last_modified"] = int(self.store.clock.now())
            self._booking_changed(_int(booking.get("booking_id")), created=False)
        return self._ok(call, "booking", ref, {"booking": self._detail(booking)}, records=1)

    def _booking_create(self, call: _Call) -> SandboxResponse:
        """A booking from the cart (or from `slip[]` given directly) and the customer form.

        Status PEND unless `status_id` is given. The cart's session ends (the docs: end is
        "automatically called when a booking is successfully created"). The answer carries
        request.data.url (documented) and `booking{booking_id, code, status_id, status_name,
        created_date, total, tax_total, paid_total, token}` (the body beyond the URL is
        unconfirmed).
        """
        now = self.store.clock.now()
        params = call.params
        session_id = self._asked_session_id(call)
        session = self._live_session(session_id, now)
        try:
            if session is not None and session.get("lines"):
                source = session["lines"]
            else:
                source = {}
                for slip in _as_list(params.get("slip")):
                    self._add_line(source, slip)
                self._ensure_inventory()
                self._check_capacity({}, source, None)
            if not source:
                # Unconfirmed: the error for nothing to book (unknown, expired or empty cart).
                raise _BadRequest(
                    "invalid_request", "Nothing to book", "The booking session has no items.", ""
                )
            form = {str(k): str(v).strip() for k, v in _as_map(params.get("form")).items()}
            missing = {
                name: label
                for name, label in (("customer_name", "Name"), ("customer_email", "Email"))
                if not form.get(name)
            }
            if missing:
                raise _BadRequest(
                    "validation_error",
                    "Missing required fields",
                    "The following fields are required: " + ", ".join(missing.values()),
                    missing,
                )
            status = str(params.get("status_id") or "PEND").strip().upper()
            if status not in STATUSES:
                raise _BadRequest(
                    "validation_error", "Invalid status", f"Unknown status: {status}", {"status_id": status}
                )
        except _BadRequest as exc:
            return self._error(call, "booking", "create", exc)

        self._ensure_inventory()
        cf = self.store.checkfront
        ids = self._ids()
        booking_id = (ids[-1] if ids else 0) + 1
        code = self._new_code(booking_id, now)
        lines = self._booking_lines(source, status)
        days = [day for line in lines for day in _line_days(line)]
        sub_total = sum((_dec(line["total"]) for line in lines), Decimal(0))
        created = int(now)
        booking: dict[str, Any] = {
            "booking_id": booking_id,
            "code": code,
            "status_id": status,
            "created_date": created,
            "last_modified": created,
            "start_date": _midnight(min(days)) if days else 0,
            "end_date": _midnight(max(days)) if days else 0,
            "customer_name": form["customer_name"],
            "customer_email": form["customer_email"],
            "session_id": session_id if session is not None else None,
            "lines": lines,
            "sub_total": _money(sub_total),
            "tax_total": "0.00",
            "total": _money(sub_total),
            "paid_total": "0.00",
            "fields": {k: v for k, v in form.items() if k not in ("customer_name", "customer_email")},
        }
        booking["token"] = self._token(booking)
        cf.bookings[booking_id] = booking
        if session is not None:
            session["ended"] = now
            session["booking_code"] = code
        self._index_booking(booking)
        if self._inventory_seen is not None:
            self._inventory_seen = (len(cf.bookings), len(cf.booking_sessions))
        if self._sorted_seen == len(cf.bookings) - 1 and (not ids or booking_id > ids[-1]):
            self._sorted_ids.append(booking_id)
            self._sorted_seen = len(cf.bookings)
        if self._codes_seen == len(cf.bookings) - 1:
            self._codes[code] = booking_id
            self._codes_seen = len(cf.bookings)
        self._booking_changed(booking_id, created=True)
        entry = self._index_entry(booking)
        answer = {
            key: entry[key]
            for key in (
                "booking_id",
                "code",
                "status_id",
                "status_name",
                "created_date",
                "total",
                "tax_total",
                "paid_total",
                "token",
            )
        }
        # Unconfirmed: the invoice URL's form (the real one is on the account's own host).
        url = f"https://{self.host_id}/reserve/booking/{code}?CFX={entry['token']}"
        return self._ok(call, "booking", "create", {"booking": answer}, records=1, data={"url": url})

    def _booking_lines(self, source: dict[str, Any], status: str) -> list[dict[str, Any]]:
        """A cart's lines as booking lines: main lines and opted-in add-ons, numbered 1..n."""
        items = self.store.checkfront.items
        out: list[dict[str, Any]] = []
        for line_id in sorted(source, key=_line_sort_key):
            line = source[line_id]
            if not _counts(line_id, line):
                continue
            item = items.get(_int(line.get("item_id")))
            days = _line_days(line)
            param = {str(k): _int(v) for k, v in _as_map(line.get("param")).items()}
            qty = _line_qty(line)
            out.append(
                {
                    "line_id": len(out) + 1,
                    "item_id": _int(line.get("item_id")),
                    "sku": (item or {}).get("sku") or "",
                    "name": (item or {}).get("name") or "",
                    "slip": str(line.get("slip") or ""),
                    "qty": qty,
                    "date": _ymd(days[0]) if days else "",
                    "len": _line_len(line),
                    "param": param,
                    "start_date": _midnight(days[0]) if days else 0,
                    "end_date": _midnight(days[-1]) if days else 0,
                    "total": _money(self._price(item, param, qty, _line_len(line))),
                    "tax_total": "0.00",
                    "status_id": status,
                    "package": _is_package(line_id, line),
                }
            )
        return out

    def _new_code(self, booking_id: int, now: float) -> str:
        """A booking code as Checkfront shows them: four letters and the day, "CFPP-290317"."""
        day = datetime.fromtimestamp(now, tz=UTC).strftime("%d%m%y")
        rng = random.Random(f"regsync-sandbox-code:{booking_id}")
        while True:
            code = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + f"-{day}"
            if self._find_booking(code) is None:
                return code


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _label(param: str) -> str:
    return param.replace("_", " ").title()


def _time_check(name: str, raw: str) -> _Predicate:
    """`>X` after, `<X` before, a bare X within that day; X is unix seconds or a date string.

    A date string stands for its UTC midnight (`>2024-01-01` = after 2024-01-01 00:00); a bare value
    (date or unix time) matches the whole day it falls in. Comparisons with a prefix are strict.
    These readings are unconfirmed beyond the docs' "prefix with < or > for before/after".
    """
    op = raw[0] if raw[0] in "<>" else "="
    text = raw[1:].strip() if op != "=" else raw
    if text.startswith("="):  # tolerate >= and <= as the strict forms' inclusive cousins
        op += "="
        text = text[1:].strip()
    moment: int | None = None
    if (
        text.isascii()
        and text.isdigit()
        and not (len(text) == 8 and _parse_day(text) is not None and text[:2] in ("19", "20"))
    ):
        moment = int(text)
    else:
        try:
            parsed = datetime.fromisoformat(text) if "T" in text or " " in text else None
        except ValueError:
            parsed = None
        if parsed is not None:
            moment = int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())
        else:
            day = _parse_day(text)
            if day is not None:
                moment = _midnight(day)
    if moment is None:
        # Unconfirmed: an unreadable filter is refused rather than ignored.
        raise _BadRequest(
            "invalid_request", "Invalid parameter", f"{name}: not a date or unix time: {raw!r}", {name: raw}
        )
    day_start = moment - moment % DAY_S

    def check(booking: dict[str, Any]) -> bool:
        value = _epoch(booking.get(name))
        if value is None:
            return False
        if op == ">":
            return value > moment
        if op == ">=":
            return value >= moment
        if op == "<":
            return value < moment
        if op == "<=":
            return value <= moment
        return day_start <= value < day_start + DAY_S

    return check
