"""The item resource: the item listing and one item, unrated or rated for dates and params."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from regsync.sandbox.checkfront.envelope import _Call
from regsync.sandbox.checkfront.inventory import Inventory, _label
from regsync.sandbox.checkfront.lines import _make_slip
from regsync.sandbox.checkfront.values import (
    UNLIMITED,
    _as_map,
    _BadRequest,
    _dec,
    _dollars,
    _int,
    _money,
    _number,
    _parse_day,
    _span_desc,
    _ymd,
)
from regsync.sandbox.http import SandboxResponse


class ItemRoutes(Inventory):
    """GET /item and GET /item/{id}, rated when the call gives a start date."""

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
