"""The Checkfront API 3.0 emulator: every resource's routes over the sandbox store's Checkfront state."""

from __future__ import annotations

from regsync.sandbox.checkfront.bookings import BookingRoutes
from regsync.sandbox.checkfront.envelope import API, _Call
from regsync.sandbox.checkfront.items import ItemRoutes
from regsync.sandbox.http import Route, SandboxResponse


class CheckfrontApi(ItemRoutes, BookingRoutes):
    """Routes of the emulated Checkfront account, over the sandbox store's Checkfront state.

    Each resource's handlers live in their own module (ItemRoutes, SessionRoutes, BookingIndex,
    BookingRoutes, over Inventory and CheckfrontCore); this class joins them into one route table.
    """

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

    # ------------------------------------------------------------------ ping
    def _ping(self, call: _Call) -> SandboxResponse:
        forwarded = call.request.headers.get("x-forwarded-for", "")
        pong = {
            "remote_addr": forwarded.split(",")[0].strip() or "127.0.0.1",
            "time": int(self.store.clock.now()),
            "timezone": "UTC",  # the sandbox account's time zone (see values._midnight)
            # Unconfirmed: the docs' example was made from the API console.
            "provider": "API",
        }
        return self._ok(call, "ping", None, {"pong": pong}, records=1)

    def invalidate(self) -> None:
        """Forget every cache; for code that edits the store's Checkfront state directly."""
        self._inventory_seen = None
        self._sorted_seen = -1
        self._codes_seen = -1
        self._filtered.clear()
