"""Building the clean dataset: registrations with their attendees, bookings and booking sessions.

One registration is one story (status, booking, cart) told consistently on both sides; the clean
stories are the population that planting (plant.py) puts its defects among.
"""

from __future__ import annotations

from typing import Any

import orjson

from regsync.sandbox.generator.catalogue import CatalogueBuilder, Event, iso_day
from regsync.sandbox.generator.config import (
    AMOUNT,
    BOOKING_CODE,
    DAY,
    HOUR,
    MIN,
    NEWEST_STAMP,
    PAYLOAD,
    SEC,
    STATUS,
    GeneratorConfig,
)
from regsync.sandbox.store import ATTENDEE, REGISTRATION, SESSION_ATTENDEE, SandboxStore

_FIRST = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Sofia", "Mason", "Amelia",
    "Logan", "Harper", "Elijah", "Chloe", "James", "Zoe", "Benjamin", "Layla", "Jacob", "Nora",
    "Aiden", "Lily", "Samuel", "Grace", "Henry", "Aria", "Owen", "Ella", "Leo", "Maya", "Jack",
    "Hannah", "Daniel", "Priya", "Mateo", "Yuki", "Omar", "Fatima", "Chen", "Ingrid", "Kofi",
)  # fmt: skip
_LAST = (
    "Smith", "Tremblay", "Martin", "Roy", "Gagnon", "Lee", "Wilson", "Johnson", "MacDonald",
    "Taylor", "Campbell", "Anderson", "Brown", "Leblanc", "Wong", "Singh", "Nguyen", "Patel",
    "Kim", "Garcia", "Rossi", "Schmidt", "Novak", "Okafor", "Haddad", "Silva", "Kowalski",
    "Murphy", "O'Brien", "Fraser", "Bouchard", "Morin", "Clarke", "Young", "Hughes", "Ito",
)  # fmt: skip
_FIRST_MAIL = tuple(name.lower().replace("'", "") for name in _FIRST)
_LAST_MAIL = tuple(name.lower().replace("'", "") for name in _LAST)
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "corp.example.ca")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ERRORS = (
    "Payment declined by the card issuer.",
    "Session capacity reached.",
    "Checkout timed out.",
)
_LINE_IDS = ("1", "2", "3", "4", "5")
_B32 = "0123456789abcdefghijklmnopqrstuv"
_B32_BYTES = bytes(ord(_B32[value % 32]) for value in range(256))


class DatasetBuilder(CatalogueBuilder):
    """One generation run: the catalogue, then one story per registration, clean or planted."""

    CLEAN = (
        ("completed", 0.84),
        ("young_draft", 0.04),
        ("inflight_draft", 0.03),
        ("to_process", 0.03),
        ("failed", 0.03),
        ("deleted", 0.03),
    )

    def __init__(self, config: GeneratorConfig, store: SandboxStore, shift_s: int) -> None:
        super().__init__(config, store, shift_s)
        self.last_event: Event | None = None
        self.next_booking_id = 1
        self.codes: set[str] = set()
        self.code_days: dict[int, str] = {}
        self.reg_stamps: list[int] = []
        self.mint_reg = self.minters[REGISTRATION]
        self.mint_att = self.minters[ATTENDEE]
        self.mint_sa = self.minters[SESSION_ATTENDEE]
        self.ttl_ms = config.session_ttl_s * 1000
        self.in_flight_ms = int(self.th.in_flight_s * 1000)
        self.stale_ttl_ms = int(self.th.stale_session_ttl_s * 1000)
        self.overdue_ms = int(self.th.overdue_s * 1000)
        self.stale_draft_ms = int(self.th.stale_draft_s * 1000)

    @property
    def settled_ms(self) -> int:
        """Old enough to be evaluated, its booking too."""
        return max(40 * MIN, self.in_flight_ms + 20 * MIN)

    # ------------------------------------------------------------------ bookings and carts
    def cart_id(self) -> str:
        """26 characters of [0-9a-v] (130 random bits), like Checkfront's session ids."""
        carts = self.cf.booking_sessions
        while True:
            raw = self.rng.getrandbits(208).to_bytes(26, "little")
            candidate = raw.translate(_B32_BYTES).decode("ascii")  # each byte mod 32: uniform
            if candidate not in carts:
                return candidate

    def booking_code(self, booked_at: int) -> str:
        """Four letters and the booking's day, "CFPP-290317" (ddmmyy), as Checkfront shows them.

        The day is the generation-time day (calendar data, like SLIPs: a shift does not move it).
        """
        day = (self.anchor_ms + booked_at) // DAY
        suffix = self.code_days.get(day)
        if suffix is None:
            iso = iso_day(day)
            suffix = f"-{iso[8:10]}{iso[5:7]}{iso[2:4]}"
            self.code_days[day] = suffix
        rnd = self.rnd
        while True:
            n = int(rnd() * 456_976)  # 26**4
            code = (
                _LETTERS[n // 17576]
                + _LETTERS[n // 676 % 26]
                + _LETTERS[n // 26 % 26]
                + _LETTERS[n % 26]
                + suffix
            )
            if code not in self.codes:
                self.codes.add(code)
                return code

    # ------------------------------------------------------------------ one registration
    def registration(
        self,
        created: int,
        *,
        status: str,
        deleted: bool = False,
        booking_status: str | None = None,
        cart: str = "booked",
        idle: int | None = None,
        seats_delta: bool = False,
        move_line: bool = False,
        amount_delta: int = 0,
        cart_id: str | None = None,
        error: str | None = None,
        event: Event | None = None,
        with_registration: bool = True,
    ) -> tuple[str, str, str | None]:
        """Build one registration (or, without it, a bare booking or cart) from its story.

        cart: booked (ended by the booking), live (idle `idle` ms), ended (cleared, no booking),
        gone (never stored: purged or unknown). Returns (registration id, cart id, booking code).
        Hot path (a million calls): rng.random() arithmetic instead of randint/choice.
        """
        rnd = self.rnd
        between = self.between
        if event is None:
            event = self.pick_event(created, multi_session=move_line)
        self.last_event = event
        sessions = event.sessions
        n_sessions = len(sessions)
        roll = rnd()
        k = min(n_sessions - 1 if move_line else n_sessions, 1 if roll < 0.7 else 2 if roll < 0.95 else 3)
        chosen = [sessions[int(rnd() * n_sessions)]] if k == 1 else self.rng.sample(sessions, k)
        roll = rnd()
        n_att = 1 if roll < 0.55 else 2 if roll < 0.85 else 3
        subset = n_att > 1 and k > 1 and rnd() < 0.05  # the last attendee takes the first only
        per_attendee = [*[chosen] * (n_att - 1), chosen[:1]] if subset else [chosen] * n_att
        chosen_ids = [session.sf_id for session in chosen]

        # Main lines: one per chosen session, qty = attendees taking it. Every main line carries
        # one line per package add-on of its item ("1.1", "1.2"...), opted out unless chosen, as
        # the emulator's cart does; a booking keeps the main lines and the opted-in add-ons.
        mains: list[list[Any]] = []  # [session, qty]
        for index, session in enumerate(chosen):
            mains.append([session, n_att - 1 if subset and index > 0 else n_att])
        if move_line:
            target = mains[int(rnd() * len(mains))]
            spare = [s for s in sessions if s not in chosen]
            target[0] = spare[int(rnd() * len(spare))]
        if seats_delta:
            target = mains[int(rnd() * len(mains))]
            target[1] += 1 if target[1] == 1 or rnd() < 0.5 else -1
        addons = event.addons

        cart_created = created - between(1 * MIN, 15 * MIN)
        booking_at = created + between(1 * MIN, 10 * MIN) if booking_status else None
        # The cart: ended by its booking, cleared, live, or gone (purged once idle past the TTL).
        modified: int | None
        ended: int | None
        if cart == "booked":
            assert booking_at is not None
            modified, ended = booking_at - between(5 * SEC, 60 * SEC), booking_at
        elif cart == "ended":
            ended = created + between(1 * MIN, 60 * MIN)
            if ended > NEWEST_STAMP:
                ended = between(created, NEWEST_STAMP)
            modified = ended - between(5 * SEC, 60 * SEC)
        elif cart == "live":
            assert idle is not None
            modified, ended = max(-idle, cart_created), None
        else:
            modified = ended = None
        keep_cart = modified is not None and (modified if ended is None else ended) >= -self.ttl_ms
        holds = booking_status not in (None, "VOID", "STOP") or (keep_cart and cart == "live")
        grand_total = 0
        cart_lines: dict[str, Any] = {}
        booking_lines: list[dict[str, Any]] = []
        money = self.money
        demand = self.demand
        for index, (session, qty) in enumerate(mains):
            line_id = _LINE_IDS[index]
            slip, total, total_text = session.lines.get(qty) or session.line(qty)
            grand_total += total
            if holds:
                demand[session.item_id] += qty
            if keep_cart:
                cart_lines[line_id] = {
                    "item_id": session.item_id,
                    "slip": slip,
                    "qty": qty,
                    "date": session.slip_date,
                    "len": 1,
                    "param": {"adults": qty},
                    "optin": None,
                }
            if booking_at is not None:
                booking_lines.append(
                    {
                        "line_id": len(booking_lines) + 1,
                        "item_id": session.item_id,
                        "sku": session.sku,
                        "slip": slip,
                        "qty": qty,
                        "date": session.slip_date,
                        "len": 1,
                        "total": total_text,
                        "tax_total": "0.00",
                        "package": False,
                    }
                )
            for number, addon in enumerate(addons, start=1):
                opted_in = rnd() < 0.3
                addon_slip = f"{addon.item_id}.{session.slip_date}X1-1"
                if opted_in:
                    grand_total += addon.price
                if keep_cart:
                    cart_lines[f"{line_id}.{number}"] = {
                        "item_id": addon.item_id,
                        "slip": addon_slip,
                        "qty": 1,
                        "date": session.slip_date,
                        "len": 1,
                        "param": {},
                        "optin": opted_in,
                    }
                if opted_in and booking_at is not None:
                    booking_lines.append(
                        {
                            "line_id": len(booking_lines) + 1,
                            "item_id": addon.item_id,
                            "sku": addon.sku,
                            "slip": addon_slip,
                            "qty": 1,
                            "date": session.slip_date,
                            "len": 1,
                            "total": money(addon.price),
                            "tax_total": "0.00",
                            "package": True,
                        }
                    )

        first_index = int(rnd() * len(_FIRST))
        last_index = int(rnd() * len(_LAST))
        first, last = _FIRST[first_index], _LAST[last_index]
        number = self.numbers[REGISTRATION] + 1
        domain = _DOMAINS[number % len(_DOMAINS)]
        email = f"{_FIRST_MAIL[first_index]}.{_LAST_MAIL[last_index]}{number}@{domain}"

        cart_id = cart_id or self.cart_id()
        code = None
        if booking_at is not None:
            code = self.booking_code(booking_at)
            booking_id = self.next_booking_id
            self.next_booking_id += 1
            if booking_status == "PAID":
                paid = grand_total
            elif booking_status == "PART":
                paid = grand_total * between(3, 7) // 10
            else:
                paid = 0
            day_first = day_last = mains[0][0].date
            for session, _ in mains:
                day_first = min(day_first, session.date)
                day_last = max(day_last, session.date)
            booking_modified = min(booking_at + between(0, 90 * SEC), NEWEST_STAMP)
            self.cf.bookings[booking_id] = {
                "booking_id": booking_id,
                "code": code,
                "status_id": booking_status,
                "created_date": (self.base_ms + booking_at) // 1000,
                "last_modified": (self.base_ms + booking_modified) // 1000,
                "start_date": day_first,
                "end_date": day_last,
                "customer_name": f"{first} {last}",
                "customer_email": email,
                "session_id": cart_id,
                "lines": booking_lines,
                "sub_total": money(grand_total),
                "tax_total": "0.00",
                "total": money(grand_total),
                "paid_total": money(paid),
            }
        if keep_cart and modified is not None:  # keep_cart implies a modified time
            base = self.base_ms
            self.cf.booking_sessions[cart_id] = {
                "id": cart_id,
                "created": (base + cart_created) // 1000,
                "modified": (base + modified) // 1000,
                "ended": None if ended is None else (base + ended) // 1000,
                "booking_code": code if cart == "booked" else None,
                "lines": cart_lines,
            }
        if not with_registration:
            return "", cart_id, code

        # Salesforce side: registration, attendees, session attendees.
        numbers = self.numbers
        numbers[REGISTRATION] = number
        reg_id = self.mint_reg(number)
        registered = status in ("Completed", "To Process")
        if status == "Completed":
            assert booking_at is not None
            changed = booking_at + between(5 * SEC, 120 * SEC)
        elif booking_at is not None:
            changed = booking_at + between(2 * SEC, 60 * SEC)
        elif status == "Failed":
            changed = created + between(1 * MIN, 10 * MIN)
        else:
            changed = created + between(0, 60 * SEC)
        if changed > NEWEST_STAMP:  # a random moment in range, not a pile-up at the limit
            changed = between(created, NEWEST_STAMP)
        stamp = changed
        if deleted:
            stamp = changed + between(1 * HOUR, 20 * DAY)
            if stamp > NEWEST_STAMP:
                stamp = between(changed, NEWEST_STAMP)
        created_s = self.ts(created)
        changed_s = self.ts(changed) if changed != created else created_s
        stamp_s = self.ts(stamp) if stamp != changed else changed_s
        att_changed_s = changed_s if registered else created_s
        attendee_status = "Registered" if registered else "Lead"
        attendee_list = []
        att_table = self.tables[ATTENDEE]
        sa_table = self.tables[SESSION_ATTENDEE]
        mint_att = self.mint_att
        mint_sa = self.mint_sa
        with_sa = status == "Completed" and not deleted
        event_id = event.id
        for position, taken in enumerate(per_attendee):
            numbers[ATTENDEE] += 1
            att_id = mint_att(numbers[ATTENDEE])
            if position == 0:
                att_first, att_last, att_email = first, last, email
            else:
                first_index = int(rnd() * len(_FIRST))
                last_index = int(rnd() * len(_LAST))
                att_first, att_last = _FIRST[first_index], _LAST[last_index]
                att_email = f"{_FIRST_MAIL[first_index]}.{_LAST_MAIL[last_index]}{number}x{position}@{domain}"
            att_table[att_id] = {
                "Id": att_id,
                "Name": f"{att_first} {att_last}",
                "IsDeleted": False,
                "CreatedDate": created_s,
                "LastModifiedDate": att_changed_s,
                "SystemModstamp": att_changed_s,
                "conference360__Event__c": event_id,
                "conference360__Registration_Status__c": attendee_status,
                "conference360__First_Name2__c": att_first,
                "conference360__Last_Name2__c": att_last,
                "conference360__Email2__c": att_email,
            }
            taken_ids = chosen_ids if taken is chosen else chosen_ids[:1]
            attendee_list.append({"id": att_id, "sessionIds": taken_ids})
            if with_sa:
                for session in taken:
                    sa_number = numbers[SESSION_ATTENDEE] + 1
                    numbers[SESSION_ATTENDEE] = sa_number
                    sa_id = mint_sa(sa_number)
                    sa_table[sa_id] = {
                        "Id": sa_id,
                        "Name": f"SA-{sa_number:07d}",
                        "IsDeleted": False,
                        "CreatedDate": changed_s,
                        "LastModifiedDate": changed_s,
                        "SystemModstamp": changed_s,
                        "conference360__Session__c": session.sf_id,
                        "conference360__Attendee__c": att_id,
                        "conference360__Registration_Status__c": "Registered",
                    }
        if amount_delta and grand_total + amount_delta < 0:
            amount_delta = -amount_delta
        payload = {"id": reg_id, "sessionId": cart_id, "attendeeList": attendee_list}
        self.tables[REGISTRATION][reg_id] = {
            "Id": reg_id,
            "Name": f"ERS-{number:07d}",
            "IsDeleted": deleted,
            "CreatedDate": created_s,
            "LastModifiedDate": stamp_s,
            "SystemModstamp": stamp_s,
            STATUS: status,
            "conference360__Event__c": event_id,
            PAYLOAD: orjson.dumps(payload).decode(),
            "conference360__Error_Message__c": error,
            "conference360__Process__c": False,
            AMOUNT: (grand_total + amount_delta) / 100,
            BOOKING_CODE: code,
        }
        if stamp > self.max_stamp:
            self.max_stamp = stamp
        self.reg_stamps.append(stamp)
        return reg_id, cart_id, code

    # ------------------------------------------------------------------ the clean stories
    def clean_age(self, kind: str) -> int:
        """How long ago a clean story of this kind was created (ms)."""
        rng = self.rng
        b = self.between
        in_flight, ttl = self.in_flight_ms, self.stale_ttl_ms
        settled = self.settled_ms
        if kind == "completed":
            return settled + int(365 * DAY * rng.random() ** 2)
        if kind == "inflight_draft":
            return b(5 * MIN, max(5 * MIN, min(10 * MIN, in_flight - 5 * MIN)))
        if kind == "young_draft":
            return b(in_flight + 10 * MIN, min(5 * HOUR, ttl - HOUR))
        if kind == "to_process":
            return b(settled, settled + 3 * DAY)
        if kind == "failed":
            return b(HOUR, 180 * DAY)
        if kind == "deleted":
            return b(DAY, 365 * DAY)
        raise AssertionError(kind)

    def build_clean(self, created: int, kind: str) -> None:
        """Tell one clean story: nothing in it for docs/rules.md to report."""
        rng = self.rng
        reg = self.registration
        if kind == "completed":
            reg(created, status="Completed", booking_status="PAID" if rng.random() < 0.9 else "PART")
        elif kind == "inflight_draft":
            reg(created, status="Draft", cart="live", idle=self.between(30 * SEC, -created - 2 * MIN))
        elif kind == "young_draft":
            reg(created, status="Draft", cart="live", idle=self.between(30 * SEC, -created - 5 * MIN))
        elif kind == "to_process":
            reg(created, status="To Process", booking_status="PAID")
        elif kind == "failed":
            reg(created, status="Failed", cart="ended", error=rng.choice(ERRORS))
        elif kind == "deleted":
            reg(created, status="Completed", deleted=True, booking_status="VOID")
        else:
            raise AssertionError(kind)

    # ------------------------------------------------------------------ ties
    def tie_stamps(self) -> None:
        """Give runs of 3-50 registrations one shared SystemModstamp, as bulk updates do."""
        records = list(self.tables[REGISTRATION].values())
        stamps = self.reg_stamps
        if len(records) < 3:
            return
        order = sorted(range(len(records)), key=stamps.__getitem__)
        rng = self.rng
        position = 0
        runs = 0
        while position < len(order):
            if rng.random() < 0.005 or (runs == 0 and position >= len(order) - 3):
                run = order[position : position + rng.randint(3, 50)]
                if len(run) < 3:
                    run = order[-3:]
                shared = self.ts(max(stamps[i] for i in run))
                for i in run:
                    records[i]["SystemModstamp"] = shared
                position += len(run)
                runs += 1
            else:
                position += 1
