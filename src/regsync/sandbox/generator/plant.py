"""Planting: which defects go into a dataset, when, and what docs/rules.md must find in each.

Every planted case is a story told with the builder's registrations (build.py) and remembered as a
PlantedCase, so a test can compare what the truth found with what was meant to be there.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter

from regsync.sandbox.generator.build import ERRORS, DatasetBuilder
from regsync.sandbox.generator.config import (
    AMOUNT_MISMATCH,
    ATTENDEE_COUNT_MISMATCH,
    ATTENDEE_SESSIONS_MISMATCH,
    BOOKING_CODE_MISSING,
    BOOKING_SESSION_MISSING,
    BOOKING_WITHOUT_REGISTRATION,
    COMPLETED_BOOKING_UNPAID,
    DAY,
    DRAFT_BOOKING_PAID,
    DUPLICATE_REGISTRATION,
    HOUR,
    MIN,
    NEWEST_STAMP,
    STALE_DRAFT,
    PlantRates,
)
from regsync.sandbox.generator.truth import PlantedCase, PlantedMismatch

# Registrations one planted case uses (the others make bookings or carts only).
_REGISTRATIONS_PER_CASE = {
    **dict.fromkeys(PlantRates.kinds(), 1),
    "duplicate": 2,
    "booking_without_registration": 0,
    "unreferenced_session": 0,
}


class Planter:
    """The plan of one generation run and the cases planted along it."""

    def __init__(self, builder: DatasetBuilder) -> None:
        self.builder = builder
        self.rng = builder.rng
        self.cases: list[PlantedCase] = []
        self.planted: Counter[str] = Counter()

    def plan(self) -> list[tuple[int, int, str, str]]:
        """(created offset, sequence, kind, variant) of every case, oldest first.

        The planted kinds at their rates, clean stories (DatasetBuilder.CLEAN) in the rest.
        """
        rng = self.rng
        builder = self.builder
        total = builder.config.registrations
        rates = builder.config.rates
        counts = {kind: max(0, round(getattr(rates, kind) * total)) for kind in PlantRates.kinds()}
        while sum(counts[k] * _REGISTRATIONS_PER_CASE[k] for k in counts) > total:
            heaviest = max(
                (k for k in counts if counts[k] and _REGISTRATIONS_PER_CASE[k]),
                key=lambda k: (counts[k] * _REGISTRATIONS_PER_CASE[k], k),
            )
            counts[heaviest] -= 1
        used = sum(counts[k] * _REGISTRATIONS_PER_CASE[k] for k in counts)
        kinds: list[str] = []
        for kind, count in counts.items():
            kinds.extend([kind] * count)
        cumulative = list(itertools.accumulate(weight for _, weight in builder.CLEAN))
        names = [name for name, _ in builder.CLEAN]
        for _ in range(total - used):
            kinds.append(names[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])])
        slots = []
        for sequence, kind in enumerate(kinds):
            age, variant = (builder.clean_age(kind), "") if kind in names else self.age_of(kind)
            slots.append((-age, sequence, kind, variant))
        slots.sort()
        return slots

    def age_of(self, kind: str) -> tuple[int, str]:
        """How long ago a planted case of this kind was created (ms), and which variant of the story."""
        builder = self.builder
        rng = self.rng
        b = builder.between
        ttl, cart_ttl = builder.stale_ttl_ms, builder.ttl_ms
        overdue, stale_draft = builder.overdue_ms, builder.stale_draft_ms
        settled = builder.settled_ms
        if kind in ("seats_mismatch", "sessions_mismatch", "completed_unpaid", "amount_mismatch"):
            return settled + int(365 * DAY * rng.random() ** 2), ""
        if kind == "duplicate":
            return max(2 * HOUR, settled) + int(365 * DAY * rng.random() ** 2), ""
        if kind == "pending":
            return b(settled, overdue - 30 * MIN), ""
        if kind == "overdue":
            return b(overdue + 30 * MIN, overdue + 20 * DAY), ""
        if kind == "session_missing":
            return b(settled, stale_draft - HOUR), "To Process" if rng.random() < 0.15 else "Draft"
        if kind == "stale_draft":
            live_high = min(cart_ttl - DAY, stale_draft + 21 * DAY)
            if live_high > stale_draft + 2 * HOUR and rng.random() < 0.6:
                return b(stale_draft + HOUR, live_high), "live"
            low = max(cart_ttl, stale_draft) + DAY
            return b(low, low + 90 * DAY), "gone"
        if kind in ("stale_session", "unreferenced_session"):
            variant = "" if kind == "unreferenced_session" else "failed" if rng.random() < 0.6 else "deleted"
            return b(ttl + HOUR, max(ttl + HOUR, min(cart_ttl - DAY, 20 * DAY))), variant
        if kind == "protected_session":
            return b(ttl + 2 * HOUR, stale_draft - HOUR), ""
        if kind == "booking_without_registration":
            return b(max(HOUR, settled), 180 * DAY), ""
        raise AssertionError(kind)

    def plant(self, created: int, kind: str, variant: str) -> None:
        """Tell the story of one planted case and remember what the rules must find in it."""
        builder = self.builder
        rng = self.rng
        reg = builder.registration
        pending: tuple[str, ...] = ()
        stale: tuple[str, ...] = ()
        found: list[tuple[str, str | None]] = []  # (code, registration id)
        reg_ids: tuple[str, ...] = ()
        if kind in ("pending", "overdue"):
            status = "PAID" if rng.random() < 0.85 else "PART"
            reg_id, cart_id, code = reg(created, status="Draft", booking_status=status)
            pending, reg_ids = (reg_id,), (reg_id,)
            if kind == "overdue":
                found.append((DRAFT_BOOKING_PAID, reg_id))
        elif kind == "session_missing":
            reg_id, cart_id, code = reg(created, status=variant, cart="gone")
            reg_ids = (reg_id,)
            # A To Process registration without a code whose cart is gone has probably booked.
            found.append((BOOKING_SESSION_MISSING if variant == "Draft" else BOOKING_CODE_MISSING, reg_id))
        elif kind in ("seats_mismatch", "sessions_mismatch", "amount_mismatch", "completed_unpaid"):
            status = rng.choice(("PEND", "HOLD")) if kind == "completed_unpaid" else "PAID"
            delta = rng.choice((-1, 1)) * rng.randint(100, 5000) if kind == "amount_mismatch" else 0
            reg_id, cart_id, code = reg(
                created,
                status="Completed",
                booking_status=status,
                seats_delta=kind == "seats_mismatch",
                move_line=kind == "sessions_mismatch",
                amount_delta=delta,
            )
            reg_ids = (reg_id,)
            found.append(
                (
                    {
                        "seats_mismatch": ATTENDEE_COUNT_MISMATCH,
                        "sessions_mismatch": ATTENDEE_SESSIONS_MISMATCH,
                        "amount_mismatch": AMOUNT_MISMATCH,
                        "completed_unpaid": COMPLETED_BOOKING_UNPAID,
                    }[kind],
                    reg_id,
                )
            )
        elif kind == "duplicate":
            first_id, cart_id, code = reg(created, status="Completed", booking_status="PAID")
            second_id, _, _ = reg(
                min(created + rng.randint(1 * MIN, 30 * MIN), NEWEST_STAMP - rng.randint(0, MIN)),
                event=builder.last_event,
                status="Failed",
                cart="gone",  # the first registration's cart, already stored (or purged)
                cart_id=cart_id,
                error="Duplicate submission: this booking session is already registered.",
            )
            reg_ids = (first_id, second_id)
            self.cases.append(
                PlantedCase(
                    kind,
                    reg_ids,
                    cart_id,
                    code,
                    mismatches=(
                        PlantedMismatch(DUPLICATE_REGISTRATION, first_id, cart_id, code),
                        PlantedMismatch(DUPLICATE_REGISTRATION, second_id, cart_id, None),
                    ),
                )
            )
            self.planted[kind] += 1
            return
        elif kind == "stale_draft":
            if variant == "live":
                idle = -created - rng.randint(0, 10 * MIN)
                reg_id, cart_id, code = reg(created, status="Draft", cart="live", idle=idle)
                stale = (cart_id,)
            else:
                reg_id, cart_id, code = reg(created, status="Draft", cart="gone")
                found.append((BOOKING_SESSION_MISSING, reg_id))
            reg_ids = (reg_id,)
            found.append((STALE_DRAFT, reg_id))
        elif kind == "stale_session":
            idle = -created - rng.randint(0, 10 * MIN)
            if variant == "failed":
                reg_id, cart_id, code = reg(
                    created, status="Failed", cart="live", idle=idle, error=rng.choice(ERRORS)
                )
            else:
                reg_id, cart_id, code = reg(created, status="Draft", deleted=True, cart="live", idle=idle)
            reg_ids, stale = (reg_id,), (cart_id,)
        elif kind == "protected_session":
            idle = builder.between(builder.stale_ttl_ms + HOUR, -created - 10 * MIN)
            reg_id, cart_id, code = reg(created, status="Draft", cart="live", idle=idle)
            reg_ids = (reg_id,)
        elif kind == "booking_without_registration":
            roll = rng.random()
            status = "PAID" if roll < 0.6 else "PEND" if roll < 0.85 else "HOLD"
            _, cart_id, code = reg(
                created, status="Completed", booking_status=status, with_registration=False
            )
            self.cases.append(
                PlantedCase(
                    kind, (), cart_id, code,
                    mismatches=(PlantedMismatch(BOOKING_WITHOUT_REGISTRATION, None, None, code),),
                )
            )  # fmt: skip
            self.planted[kind] += 1
            return
        elif kind == "unreferenced_session":
            idle = -created - rng.randint(0, 10 * MIN)
            _, cart_id, code = reg(created, status="Draft", cart="live", idle=idle, with_registration=False)
        else:
            raise AssertionError(kind)
        mismatches = tuple(PlantedMismatch(c, r, cart_id, code) for c, r in found)
        self.cases.append(PlantedCase(kind, reg_ids, cart_id, code, pending, stale, mismatches))
        self.planted[kind] += 1
