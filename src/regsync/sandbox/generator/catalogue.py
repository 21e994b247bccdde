"""The catalogue a generated dataset sells from, and the state every generated record draws on.

Events, their Salesforce Sessions and the Checkfront items (and package add-ons) that sell them;
the seeded rng, the id counters and the clock the registrations (build.py) share with them.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from typing import Any

from regsync.sandbox.dataset import format_ms
from regsync.sandbox.generator.config import DAY, ITEM_ID, GeneratorConfig
from regsync.sandbox.store import EVENT, SCHEMAS, SESSION, SandboxStore, id_checksum

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class IdMinter:
    """`store.make_sf_id(prefix, n)` for n < 62**5, without its per-call loops (millions of ids)."""

    def __init__(self, key_prefix: str) -> None:
        head = f"{key_prefix}0U"
        self.head = head + "00000"
        self.checksum_head = id_checksum(head + "0000000000")[:2]
        self.low = [(a + b, (a.isupper() << 3) | (b.isupper() << 4)) for a in _BASE62 for b in _BASE62]
        self.high: dict[int, tuple[str, int]] = {}

    def __call__(self, number: int) -> str:
        high, low = divmod(number, 3844)
        entry = self.high.get(high)
        if entry is None:
            digits = ""
            rest = high
            for _ in range(3):
                rest, rem = divmod(rest, 62)
                digits = _BASE62[rem] + digits
            if rest:
                raise ValueError("id counter out of range")
            bits = sum(1 << pos for pos, char in enumerate(digits) if char.isupper())
            entry = (digits, bits)
            self.high[high] = entry
        low_chars, low_bits = self.low[low]
        return f"{self.head}{entry[0]}{low_chars}{self.checksum_head}{_CHECKSUM[entry[1] | low_bits]}"


_EVENT_ADJ = ("Spring", "Summer", "Autumn", "Winter", "Annual", "Regional", "National", "Global")
_EVENT_TOPIC = (
    "Leadership", "Data", "Wellness", "Design", "Finance", "Sustainability", "Nursing", "Robotics",
    "Marketing", "Security", "Education", "Culinary", "Hiking", "Photography", "Cloud", "Music",
)  # fmt: skip
_EVENT_KIND = ("Summit", "Conference", "Forum", "Retreat", "Expo", "Symposium", "Workshop Series")
_SESSION_KIND = ("Keynote", "Workshop", "Masterclass", "Panel", "Lab", "Tour", "Clinic", "Seminar")
_ADDONS = (("Lunch", 2500), ("Parking", 1500), ("Printed Materials", 1000), ("Dinner", 6500))
_PRICES = (4500, 6000, 7500, 9000, 11000, 13000, 15000, 19500, 25000)


class Session:
    """A Salesforce Session and the Checkfront item that sells it (or a package add-on item)."""

    __slots__ = ("date", "item_id", "lines", "price", "sf_id", "sku", "slip_date")

    def __init__(self, sf_id: str, item_id: int, price: int, date: int, slip_date: str, sku: str) -> None:
        self.sf_id = sf_id
        self.item_id = item_id
        self.price = price
        self.date = date
        self.slip_date = slip_date
        self.sku = sku
        self.lines: dict[int, tuple[str, int, str]] = {}  # qty -> (SLIP, total cents, total text)

    def line(self, qty: int) -> tuple[str, int, str]:
        """SLIP and total of `qty` seats (strings shared by every line of that size)."""
        entry = self.lines.get(qty)
        if entry is None:
            total = qty * self.price
            entry = (
                f"{self.item_id}.{self.slip_date}X1-adults.{qty}",
                total,
                f"{total // 100}.{total % 100:02d}",
            )
            self.lines[qty] = entry
        return entry


class Event:
    __slots__ = ("addons", "end_day", "id", "sessions")

    def __init__(self, event_id: str, end_day: int) -> None:
        self.id = event_id
        self.end_day = end_day
        self.sessions: list[Session] = []
        self.addons: list[Session] = []


class CatalogueBuilder:
    """One generation run's catalogue and shared state: the rng, the id counters, the store being filled."""

    def __init__(self, config: GeneratorConfig, store: SandboxStore, shift_s: int) -> None:
        self.config = config
        self.th = config.thresholds
        self.rng = random.Random(config.seed)
        self.rnd = self.rng.random
        self.anchor_ms = round(config.anchor_epoch * 1000)
        self.base_ms = self.anchor_ms + shift_s * 1000
        self.anchor_day = math.floor(config.anchor_epoch / 86400)  # calendar dates do not shift
        self.tables = store.salesforce.tables
        self.cf = store.checkfront
        self.minters = {name: IdMinter(schema.key_prefix) for name, schema in SCHEMAS.items()}
        self.numbers = dict.fromkeys(SCHEMAS, 0)
        self.events: list[Event] = []
        self.open_events: dict[bool, tuple[list[Event], list[int]]] = {}
        self.multi_session_events: list[Event] = []
        self.next_item_id = 1
        self.demand: Counter[int] = Counter()  # seats held per item (bookings and live carts)
        self.max_stamp = -(10**15)
        self.money_cache: dict[int, str] = {}

    # ------------------------------------------------------------------ small helpers
    def new_id(self, sobject: str) -> str:
        number = self.numbers[sobject] + 1
        self.numbers[sobject] = number
        return self.minters[sobject](number)

    def ts(self, offset_ms: int) -> str:
        return format_ms(self.base_ms + offset_ms)

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high] (low when the range is empty)."""
        return low + int(self.rnd() * (high - low + 1)) if high > low else low

    def money(self, cents: int) -> str:
        text = self.money_cache.get(cents)
        if text is None:
            text = f"{cents // 100}.{cents % 100:02d}"
            if len(self.money_cache) < 200_000:
                self.money_cache[cents] = text
        return text

    def sf_record(self, sobject: str, record: dict[str, Any], stamp: int) -> dict[str, Any]:
        self.tables[sobject][record["Id"]] = record
        if stamp > self.max_stamp:
            self.max_stamp = stamp
        return record

    # ------------------------------------------------------------------ events, sessions, items
    def make_events(self) -> None:
        rng = self.rng
        count = max(4, -(-self.config.registrations // 250))
        for index in range(count):
            start_day = self.anchor_day + rng.randint(-240, 200)
            length = rng.choice((1, 1, 1, 2, 2, 3))
            end_day = start_day + length - 1
            event = Event(self.new_id(EVENT), end_day)
            year = iso_day(start_day)[:4]
            name = f"{rng.choice(_EVENT_ADJ)} {rng.choice(_EVENT_TOPIC)} {rng.choice(_EVENT_KIND)} {year}"
            created = -rng.randint(400 * DAY, 600 * DAY)
            modified = created + rng.randint(0, 30 * DAY)
            self.sf_record(
                EVENT,
                {
                    "Id": event.id,
                    "Name": name,
                    "IsDeleted": False,
                    "CreatedDate": self.ts(created),
                    "LastModifiedDate": self.ts(modified),
                    "SystemModstamp": self.ts(modified),
                    "conference360__Status__c": "Completed" if end_day < self.anchor_day else "Active",
                    "conference360__Event_Start_Date__c": iso_day(start_day),
                    "conference360__Event_End_Date__c": iso_day(end_day),
                },
                modified,
            )
            slug = f"EV{index + 1:05d}"
            n_sessions = 3 if index == 0 else rng.choice((1, 2, 2, 3, 3, 4, 5))
            for number in range(n_sessions):
                day = start_day + number % length
                kind = rng.choice(_SESSION_KIND)
                title = f"{kind} {number + 1}: {rng.choice(_EVENT_TOPIC)}"
                price = rng.choice(_PRICES)
                stock = rng.choice((20, 30, 50, 80, 120, 200, 500))
                session = self._item(event, day, f"{slug}-S{number + 1}", title, name, price, stock)
                sf_created = created + rng.randint(0, 2 * DAY)
                self.sf_record(
                    SESSION,
                    {
                        "Id": session.sf_id,
                        "Name": title,
                        "IsDeleted": False,
                        "CreatedDate": self.ts(sf_created),
                        "LastModifiedDate": self.ts(sf_created),
                        "SystemModstamp": self.ts(sf_created),
                        "conference360__Event__c": event.id,
                        "conference360__Capacity__c": float(stock),
                        ITEM_ID: str(session.item_id),
                    },
                    sf_created,
                )
                event.sessions.append(session)
            if rng.random() < 0.3:
                for name_addon, price in rng.sample(_ADDONS, 1 if rng.random() < 0.8 else 2):
                    addon = self._item(
                        event,
                        start_day,
                        f"{slug}-{name_addon[:4].upper()}",
                        name_addon,
                        name,
                        price,
                        999,
                        addon=True,
                    )
                    event.addons.append(addon)
                for session in event.sessions:
                    self.cf.items[session.item_id]["packages"] = [a.item_id for a in event.addons]
            self.events.append(event)
            if n_sessions > 1:
                self.multi_session_events.append(event)

    def _item(
        self,
        event: Event,
        day: int,
        sku: str,
        title: str,
        category: str,
        price: int,
        stock: int,
        *,
        addon: bool = False,
    ) -> Session:
        item_id = self.next_item_id
        self.next_item_id += 1
        self.cf.items[item_id] = {
            "item_id": item_id,
            "sku": sku.lower(),
            "name": title,
            "unit": "D",
            "stock": stock,
            "category_id": len(self.events) + 1,
            "category": category,
            "params": {"adults": self.money(price)},
            "packages": [],
        }
        if addon:
            self.cf.items[item_id]["unlimited"] = True
        sf_id = "" if addon else self.new_id(SESSION)
        return Session(sf_id, item_id, price, day * 86400, _ymd(day), sku.lower())

    def open_event_pools(self) -> None:
        """Index the events by end day, all of them and those with more than one session."""
        for multi_session in (False, True):
            pool = self.multi_session_events if multi_session else self.events
            pool = sorted(pool, key=lambda event: (event.end_day, event.id))
            self.open_events[multi_session] = (pool, [event.end_day for event in pool])

    def pick_event(self, created: int, *, multi_session: bool) -> Event:
        """An event that has not ended on the day of registration (any event if none is left)."""
        events, ends = self.open_events[multi_session]
        first = bisect.bisect_left(ends, (self.anchor_ms + created) // DAY)
        if first == len(events):
            first = 0
        return events[first + int(self.rnd() * (len(events) - first))]

    def fit_stock(self) -> None:
        """Stock enough for the seats the data holds, so the emulator's capacity checks pass."""
        sessions = self.tables[SESSION]
        for event in self.events:
            for session in event.sessions:
                item = self.cf.items[session.item_id]
                held = self.demand[session.item_id]
                if held + 10 > item["stock"]:
                    item["stock"] = held + max(10, held // 4)
                    sessions[session.sf_id]["conference360__Capacity__c"] = float(item["stock"])


def iso_day(day: int) -> str:
    return format_ms(day * DAY)[:10]


def _ymd(day: int) -> str:
    return iso_day(day).replace("-", "")
