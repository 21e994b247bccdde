"""The Checkfront API 3.0 emulator, so regsync's client and sync run offline against the documented shapes."""

# Shapes follow Checkfront's public API 3.0 docs (envelope, booking session, booking index, rated
# item). Where the docs are silent the choice is commented at the spot, marked "unconfirmed".
#
# One module per resource, layered as classes over one another (CheckfrontApi is all of them):
#   values.py        money, dates, PHP-style parameters, statuses, the request-level error
#   lines.py         SLIPs and cart or booking lines: days, seats, add-on opt-in
#   envelope.py      CheckfrontCore: credentials, parameters, the response envelope, errors
#   inventory.py     Inventory: prices, and the seats bookings and live carts take
#   items.py         ItemRoutes: /item, /item/{id}, rated or not
#   sessions.py      SessionRoutes: /booking/session (get, add, alter), clear, end
#   booking_index.py BookingIndex: /booking and /booking/index, lookups by id or code
#   bookings.py      BookingRoutes: /booking/{id}, /booking/{id}/update, /booking/create
#   api.py           CheckfrontApi: the route table, ping, invalidate()
#
# Internal store shapes (see CheckfrontState) that this package reads tolerantly and writes as:
#   item:    {item_id, sku, name, unit, stock, category_id, category, params: {param: price},
#             packages: [item_id...]} plus optional price (param-less items), unlimited, len, pos,
#             summary.
#   session line: {item_id, slip, qty, date "YYYYMMDD", len, param: {p: n}, optin: None | bool}
#             (optin None for a main line; True/False = opted in/out for a package add-on line).
#   booking line: {line_id: int, item_id, sku, name, slip, qty, date "YYYYMMDD", len, param,
#             start_date, end_date, total, tax_total, status_id, package: bool}.

from regsync.sandbox.checkfront.api import CheckfrontApi

__all__ = ["CheckfrontApi"]
