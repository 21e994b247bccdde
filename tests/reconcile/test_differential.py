"""Differential test: the generator's truth, the SQL rules and the planner agree on data nobody planted.

hypothesis draws a small generated store and a handful of edge mutations from issue 13 (partly read
registrations, quarantined ones, exact money, quantity-0 lines, codes in another case, in-flight
records, shared codes, gone carts, idle carts ...); the store is served by the sandbox and pulled into
a warehouse on each backend, and three readings must be equal:

- `compute_truth` over the raw store (docs/rules.md's words; it shares no code with the other two),
- the mismatches of the SQL rules (and their pending registrations),
- the write-back planner's candidates (submits and ends).

`REGSYNC_DIFFERENTIAL_EXAMPLES` sets the examples per backend (default 160: 320 in `make test`).
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from regsync.actions.apply import policy_of
from regsync.actions.candidates import PlanContext, make_plan
from regsync.actions.journal import END, SUBMIT
from regsync.jobs.pull import run_pull
from regsync.reconcile.rules import evaluate, pending_registrations
from regsync.sandbox import Sandbox
from regsync.sandbox.dataset import format_ms
from regsync.sandbox.generator import (
    AMOUNT,
    BOOKING_CODE,
    PAYLOAD,
    STATUS,
    GeneratorConfig,
    compute_truth,
    populate,
)
from regsync.sandbox.generator.config import ITEM_ID
from regsync.sandbox.store import REGISTRATION, SESSION, SandboxStore
from regsync.warehouse.tables import metadata

pytestmark = pytest.mark.sandbox

EXAMPLES = int(os.environ.get("REGSYNC_DIFFERENTIAL_EXAMPLES", "160"))
REGISTRATIONS = int(os.environ.get("REGSYNC_DIFFERENTIAL_REGISTRATIONS", "12"))
SEEDS = int(os.environ.get("REGSYNC_DIFFERENTIAL_SEEDS", "40"))  # generated stores drawn from
HOUR = 3600
DAY = 24 * HOUR

Mutation = Callable[[SandboxStore, random.Random, float], None]


# -- picking things in a store ----------------------------------------------------------------------


def _regs(store: SandboxStore) -> list[dict[str, Any]]:
    return sorted(store.salesforce.tables[REGISTRATION].values(), key=lambda r: r["Id"])


def _pick(rng: random.Random, items: list[Any]) -> Any:
    return rng.choice(items) if items else None


def _payload(reg: dict[str, Any]) -> dict[str, Any] | None:
    try:
        payload = json.loads(reg.get(PAYLOAD) or "")
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _attendee(rng: random.Random, store: SandboxStore) -> tuple[dict[str, Any], dict[str, Any], Any] | None:
    """A registration, its parsed payload and one of its attendees (or None)."""
    choices = []
    for reg in _regs(store):
        payload = _payload(reg)
        listed = payload.get("attendeeList") if payload else None
        if isinstance(listed, list) and listed:
            choices.append((reg, payload))
    if not choices:
        return None
    reg, payload = rng.choice(choices)
    return reg, payload, rng.choice(payload["attendeeList"])


def _booking_of(store: SandboxStore, reg: dict[str, Any]) -> dict[str, Any] | None:
    code = reg.get(BOOKING_CODE)
    if not isinstance(code, str):
        return None
    key = code.strip().upper()
    for booking in store.checkfront.bookings.values():
        if str(booking.get("code") or "").strip().upper() == key:
            return booking
    return None


def _with_booking(store: SandboxStore) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pairs = [(reg, _booking_of(store, reg)) for reg in _regs(store)]
    return [(reg, booking) for reg, booking in pairs if booking is not None]


def _iso(epoch: float) -> str:
    return format_ms(int(epoch * 1000))


# -- the mutations ----------------------------------------------------------------------------------


def amount_huge(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:  # up to 16 integer digits are readable, 1e16 and more are not
        reg[AMOUNT] = rng.choice([5e12, 123456789012345.5, 9.5e15, 2e16, 1e17, "lots", True])


def amount_null(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:
        reg[AMOUNT] = None


def amount_sub_cent(store: SandboxStore, rng: random.Random, now: float) -> None:
    pair = _pick(rng, _with_booking(store))
    if pair:
        reg, booking = pair
        total = Decimal(str(booking.get("total") or "0"))
        if rng.random() < 0.5:  # odd cents: X.015 rounds half-even up to X.02, X.025 down to X.02
            total += Decimal("0.01")
            booking["total"] = str(total)
        delta = Decimal(rng.choice(["0.005", "-0.005", "0.015", "-0.015", "0.0149", "0.01", "-0.011"]))
        reg[AMOUNT] = float(total + delta)


def blank_session_id(store: SandboxStore, rng: random.Random, now: float) -> None:
    found = _attendee(rng, store)
    if found:
        reg, payload, attendee = found
        if isinstance(attendee, dict):
            attendee.setdefault("sessionIds", []).append(rng.choice(["", None, "  ", "not-an-id"]))
            reg[PAYLOAD] = json.dumps(payload)


def attendee_without_id(store: SandboxStore, rng: random.Random, now: float) -> None:
    found = _attendee(rng, store)
    if found:
        reg, payload, attendee = found
        if isinstance(attendee, dict):
            attendee.pop("id", None)
            reg[PAYLOAD] = json.dumps(payload)


def same_session_twice(store: SandboxStore, rng: random.Random, now: float) -> None:
    found = _attendee(rng, store)
    if found:
        reg, payload, attendee = found
        ids = attendee.get("sessionIds") if isinstance(attendee, dict) else None
        if ids:
            ids.append(ids[0])
            reg[PAYLOAD] = json.dumps(payload)


def payload_truncated(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, [r for r in _regs(store) if isinstance(r.get(PAYLOAD), str) and len(r[PAYLOAD]) > 2])
    if reg:
        reg[PAYLOAD] = reg[PAYLOAD][: rng.randint(1, len(reg[PAYLOAD]) - 1)]


def payload_not_object(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:
        payload = _payload(reg)
        reg[PAYLOAD] = rng.choice(["[1, 2]", "42", '"text"', "null", json.dumps([payload])])


def session_id_not_text(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    payload = _payload(reg) if reg else None
    if reg and payload is not None:
        payload["sessionId"] = rng.choice([123, ["x"], {"id": "y"}, "x" * 65])
        reg[PAYLOAD] = json.dumps(payload)


def _mapped_items(store: SandboxStore) -> list[str]:
    """The Checkfront items that Salesforce Sessions name (the ones the rules compare)."""
    items = {
        str(session.get(ITEM_ID))
        for session in store.salesforce.tables[SESSION].values()
        if session.get(ITEM_ID) not in (None, "") and not session.get("IsDeleted")
    }
    return sorted(items)


def _line_qty(line: dict[str, Any]) -> int:
    try:
        return int(line.get("qty") or 0)
    except (TypeError, ValueError):
        return 0


def line_qty_zero(store: SandboxStore, rng: random.Random, now: float) -> None:
    """A line of 0 (or fewer) seats: it books nothing (docs/rules.md), either way round.

    Half the time a booked line of a compared item drops to 0 (its session is no longer booked:
    ATTENDEE_SESSIONS_MISMATCH and a seat short); otherwise a free 0-seat line is added for a
    compared item the booking does not book (it must not count as booking that session).
    """
    pair = _pick(rng, _with_booking(store))
    if not pair:
        return
    _, booking = pair
    lines = [line for line in booking.get("lines") or [] if isinstance(line, dict)]
    if not lines:
        return
    mapped = _mapped_items(store)
    qty = rng.choice([0, -1])
    if rng.random() < 0.5:
        compared = [line for line in lines if str(line.get("item_id")) in mapped and _line_qty(line) > 0]
        line = _pick(rng, compared or lines)
        line["qty"] = qty  # an existing line dropped to 0
    else:
        booked = {str(line.get("item_id")) for line in lines if _line_qty(line) > 0}
        template = _pick(rng, lines)
        item = _pick(rng, [i for i in mapped if i not in booked]) or template.get("item_id")
        line_id = max(int(x.get("line_id", 0) or 0) for x in lines) + 1
        booking["lines"].append(
            {
                **template,
                "item_id": int(item) if str(item).isdigit() else item,
                "qty": qty,
                "line_id": line_id,
            }
        )


def code_case_and_blanks(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, [r for r in _regs(store) if isinstance(r.get(BOOKING_CODE), str)])
    if reg:
        code = reg[BOOKING_CODE]
        reg[BOOKING_CODE] = rng.choice([code.lower(), f"  {code} ", f" {code.lower()}\t", code.title()])


def booking_status_lower(store: SandboxStore, rng: random.Random, now: float) -> None:
    booking = _pick(rng, sorted(store.checkfront.bookings.values(), key=lambda b: b["booking_id"]))
    if booking:
        booking["status_id"] = str(booking.get("status_id") or "PEND").lower()


def booking_paid(store: SandboxStore, rng: random.Random, now: float) -> None:
    pair = _pick(rng, _with_booking(store))
    if pair:
        reg, booking = pair
        booking["status_id"] = rng.choice(["PAID", "PART", "PEND", "HOLD"])
        reg[STATUS] = rng.choice(["Draft", "Draft", "Completed", "To Process"])


def draft_bare(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    payload = _payload(reg) if reg else None
    if reg and payload is not None:
        payload.pop("sessionId", None)
        reg[PAYLOAD] = json.dumps(payload)
        reg[BOOKING_CODE] = None
        reg[STATUS] = "Draft"


def in_flight(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:
        reg["CreatedDate"] = _iso(now - rng.randint(60, 600))


def booking_young(store: SandboxStore, rng: random.Random, now: float) -> None:
    """A booking made minutes ago; half the time behind an overdue Draft (pending: submit it)."""
    pair = _pick(rng, _with_booking(store))
    if pair:
        reg, booking = pair
        booking["created_date"] = int(now - rng.randint(60, 600))
        if rng.random() < 0.5:
            booking["status_id"] = "PAID"
            reg.update({STATUS: "Draft", "CreatedDate": _iso(now - 2 * DAY)})


def old_draft(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:
        reg[STATUS] = "Draft"
        reg["CreatedDate"] = _iso(now - rng.choice([2 * DAY, 10 * DAY]))


def code_names_no_booking(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:
        reg[BOOKING_CODE] = f"ZZZZ-{rng.randint(100000, 999999)}"
        reg[STATUS] = rng.choice(["Completed", "Draft", "To Process", "Failed"])


def shared_code(store: SandboxStore, rng: random.Random, now: float) -> None:
    regs = _regs(store)
    carriers = [r for r in regs if isinstance(r.get(BOOKING_CODE), str)]
    first, second = _pick(rng, carriers), _pick(rng, regs)
    if first and second and first is not second:
        second[BOOKING_CODE] = first[BOOKING_CODE]


def shared_cart(store: SandboxStore, rng: random.Random, now: float) -> None:
    regs = [(reg, _payload(reg)) for reg in _regs(store)]
    regs = [(reg, payload) for reg, payload in regs if payload is not None]
    first, second = _pick(rng, regs), _pick(rng, regs)
    if first and second and first[0] is not second[0] and first[1].get("sessionId"):
        second[1]["sessionId"] = first[1]["sessionId"]
        second[0][PAYLOAD] = json.dumps(second[1])


def to_process_cart_gone(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    payload = _payload(reg) if reg else None
    cart = store.checkfront.booking_sessions.get(payload.get("sessionId") or "") if payload else None
    if reg and cart:
        reg[STATUS] = "To Process"
        reg[BOOKING_CODE] = None
        cart["ended"] = now - rng.randint(HOUR, 3 * DAY)


def _idle(store: SandboxStore, rng: random.Random, now: float) -> dict[str, Any] | None:
    """Make a named cart alive and idle past the TTL, its registration no longer in progress.

    Returns that registration. Not a Completed registration with a booking code: the pull reading
    its booking session is issue 13 item 3 (another change); until that is in, the warehouse never
    sees that cart.
    """
    named = []
    for reg in _regs(store):
        payload = _payload(reg)
        cart_id = payload.get("sessionId") if payload else None
        if reg.get(STATUS) == "Completed" and reg.get(BOOKING_CODE):
            continue
        if isinstance(cart_id, str) and cart_id in store.checkfront.booking_sessions:
            named.append((reg, cart_id))
    if not named:
        return None
    reg, cart_id = rng.choice(named)
    cart = store.checkfront.booking_sessions[cart_id]
    cart.update(ended=None, booking_code=None, modified=now - rng.choice([7 * HOUR, 2 * DAY]))
    reg[STATUS] = rng.choice(["Failed", "Failed", "Draft", "To Process"])
    if rng.random() < 0.3:
        reg["IsDeleted"] = True
    return reg


def idle_cart(store: SandboxStore, rng: random.Random, now: float) -> None:
    """A stale candidate (unless still protected): something for the holds to hold."""
    _idle(store, rng, now)


def idle_cart_partly_read(store: SandboxStore, rng: random.Random, now: float) -> None:
    """An idle cart whose registration is partly read: held, never ended."""
    reg = _idle(store, rng, now)
    if reg is not None:
        rng.choice([amount_huge, payload_truncated, payload_not_object, attendee_without_id])(
            _Only(store, reg), rng, now
        )


def idle_cart_quarantined(store: SandboxStore, rng: random.Random, now: float) -> None:
    """An idle cart named by a registration that cannot be loaded at all (held by its raw payload)
    and by a second, fully read one that does not need it (which makes the cart known)."""
    reg = _idle(store, rng, now)
    payload = _payload(reg) if reg is not None else None
    other = _pick(rng, [r for r in _regs(store) if reg is not None and r is not reg and _payload(r)])
    if reg is None or payload is None or other is None:
        return
    second = _payload(other)
    assert second is not None
    second["sessionId"] = payload["sessionId"]
    other.update({PAYLOAD: json.dumps(second), STATUS: "Failed", BOOKING_CODE: None})
    reg[STATUS] = rng.choice(["Bogus", None])
    if rng.random() < 0.3:
        reg[PAYLOAD] = reg[PAYLOAD][: rng.randint(20, max(20, len(reg[PAYLOAD]) - 1))]


class _Only(SandboxStore):
    """A view of a store with one registration, so a mutation damages that very one."""

    def __init__(self, store: SandboxStore, reg: dict[str, Any]) -> None:
        super().__init__(checkfront=store.checkfront, clock=store.clock, lock=store.lock)
        self.salesforce.tables[REGISTRATION] = {reg["Id"]: reg}


def quarantined(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:
        reg[STATUS] = rng.choice(["Bogus", None, "Draft "])


def deleted(store: SandboxStore, rng: random.Random, now: float) -> None:
    reg = _pick(rng, _regs(store))
    if reg:
        reg["IsDeleted"] = True


MUTATIONS: dict[str, Mutation] = {
    f.__name__: f
    for f in (
        amount_huge,
        amount_null,
        amount_sub_cent,
        blank_session_id,
        attendee_without_id,
        same_session_twice,
        payload_truncated,
        payload_not_object,
        session_id_not_text,
        line_qty_zero,
        code_case_and_blanks,
        booking_status_lower,
        booking_paid,
        draft_bare,
        in_flight,
        booking_young,
        old_draft,
        code_names_no_booking,
        shared_code,
        shared_cart,
        to_process_cart_gone,
        idle_cart,
        idle_cart_partly_read,
        idle_cart_quarantined,
        quarantined,
        deleted,
    )
}
# Idle carts first make stale candidates, so that the holds have something to hold.
edits = st.lists(st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 2**32)), min_size=1, max_size=6)


def _wipe(engine: Engine) -> None:
    """An empty warehouse again (every table, journal and state included), schema kept."""
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


def _keys(items: Any) -> set[tuple[str, str | None, str | None, str | None]]:
    return {(m.code, m.registration_id, m.booking_session_id, m.booking_code) for m in items}


_BASES: dict[int, SandboxStore] = {}


def _base(seed: int) -> SandboxStore:
    """The generated store of a seed, made once (its times are relative to when it was made)."""
    if seed not in _BASES:
        _BASES[seed] = SandboxStore()
        populate(GeneratorConfig(registrations=REGISTRATIONS, seed=seed), _BASES[seed])
    return _BASES[seed]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One sandbox for every example; each example puts its own store's content in."""
    with Sandbox() as started:
        yield started


def check_one_store(sandbox: Sandbox, engine: Engine, seed: int, chosen: list[tuple[str, int]]) -> None:
    """Build, mutate, serve, pull and compare the three readings of one store."""
    _wipe(engine)
    base, store = _base(seed), sandbox.store
    with store.lock:
        store.salesforce = copy.deepcopy(base.salesforce)
        store.checkfront = copy.deepcopy(base.checkfront)
        now = store.clock.now()
        for name, salt in chosen:
            MUTATIONS[name](store, random.Random(salt), now)
    sandbox.checkfront.invalidate()
    sandbox.clear_requests()
    config = sandbox.settings()
    report = run_pull(config, engine=engine, sleep=lambda _s: None)
    assert report.outcome in ("ok", "partial"), report.message
    at = datetime.fromtimestamp(store.clock.now(), tz=UTC)
    truth = compute_truth(store, None, at.timestamp())
    fields = config.salesforce.registration_fields
    with engine.connect() as connection:
        found = evaluate(connection, config.reconcile, at)
        sql_pending = {row[0] for row in connection.execute(pending_registrations(config.reconcile, at))}
        plan = make_plan(connection, PlanContext(policy_of(config), at, None, fields), [SUBMIT, END])
    assert _keys(found) == _keys(truth.mismatches), chosen
    assert sql_pending == set(truth.pending_registrations), chosen
    assert {c.target_id for c in plan.candidates[SUBMIT]} == set(truth.pending_registrations), chosen
    assert {c.target_id for c in plan.candidates[END]} == set(truth.stale_booking_sessions), chosen


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("REGSYNC_DIFFERENTIAL_RANDOM") != "1",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(1, SEEDS), chosen=edits)
def test_truth_sql_and_planner_agree_on_mutated_stores(
    sandbox: Sandbox, warehouse: Engine, seed: int, chosen: Any
) -> None:
    check_one_store(sandbox, warehouse, seed, chosen)
