"""The mismatch rules of docs/rules.md, each one set-based SELECT so the warehouse does the work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    RowMapping,
    Select,
    and_,
    case,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from regsync import definitions as words
from regsync.definitions import AMOUNT, ATTENDEES, BOOKING_CODE, BOOKING_SESSION, PARTS
from regsync.settings.reconcile import ReconcileSettings as ReconcileSettings  # re-export
from regsync.settings.reconcile import Severity
from regsync.warehouse.tables import (
    booking_lines,
    booking_sessions,
    bookings,
    registration_attendee_sessions,
    registration_attendees,
    registrations,
    sf_sessions,
)

IN_PROGRESS_STATUSES = words.IN_PROGRESS_STATUSES
UNTRACKED_BOOKING_STATUSES = words.UNTRACKED_BOOKING_STATUSES

r, b, bs = registrations, bookings, booking_sessions
ra, ras, sfs, line = registration_attendees, registration_attendee_sessions, sf_sessions, booking_lines


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One broken rule on one case; `key` identifies it from one run to the next."""

    code: str
    severity: Severity
    registration_id: str | None
    booking_session_id: str | None
    booking_code: str | None
    sf_value: str
    cf_value: str
    explanation: str

    @property
    def key(self) -> str:
        return "|".join((self.code, *(part or "" for part in self.ids)))

    @property
    def ids(self) -> tuple[str | None, str | None, str | None]:
        return (self.registration_id, self.booking_session_id, self.booking_code)

    def sort_key(self) -> tuple[str, ...]:
        return sort_key(self.code, self.registration_id, self.booking_code, self.booking_session_id)


def sort_key(code: str, registration_id: Any, booking_code: Any, booking_session_id: Any) -> tuple[str, ...]:
    """The report order: (code, registration id, booking code, booking session id), NULL first."""
    return (code, registration_id or "", booking_code or "", booking_session_id or "")


@dataclass(frozen=True)
class RuleContext:
    """What every mismatch rule's query is built against: the [reconcile] settings and a fixed "now"
    (the write-back planner's equivalent is actions.candidates.PlanContext)."""

    settings: ReconcileSettings
    now: datetime

    def ago(self, seconds: int) -> datetime:
        return self.now - timedelta(seconds=seconds)

    @property
    def settled(self) -> datetime:
        """Records created before this are out of flight."""
        return self.ago(self.settings.in_flight_s)

    @property
    def tolerance_cents(self) -> int:
        # Differences of amounts exact at the cent are whole cents: d > t  <=>  d > floor(t).
        return int(self.settings.amount_tolerance * 100)


# -- shared pieces --------------------------------------------------------------------------------


def _shape(sf_raw: Any, cf_raw: Any, ids: tuple[Any, Any, Any] | None = None) -> list[Any]:
    """The columns every rule returns, in one order."""
    registration_id, session_id, code = ids or (r.c.id, r.c.booking_session_id, r.c.booking_code)
    return [
        registration_id.label("registration_id"),
        session_id.label("booking_session_id"),
        code.label("booking_code"),
        sf_raw.label("sf_raw"),
        cf_raw.label("cf_raw"),
    ]


def _live(ctx: RuleContext) -> tuple[ColumnElement[bool], ...]:
    """A registration a rule may look at: not deleted, out of flight."""
    return (r.c.is_deleted.is_(False), r.c.created_at < ctx.settled)


def _readable(*parts: str) -> ColumnElement[bool]:
    """The registration's `parts` were read (docs/rules.md, "Partly read registrations")."""
    unread = r.c.unreadable_parts
    return or_(unread.is_(None), and_(*(~unread.contains(f",{part},", autoescape=True) for part in parts)))


def _with_booking(ctx: RuleContext, sf_raw: Any, cf_raw: Any, *outer: tuple[Any, Any]) -> Select[Any]:
    """Live registrations joined to their booking (plus `outer` outer joins).

    Registration-level codes look at the registration's age only: a booking in flight still counts
    (docs/rules.md), as it does for the planner.
    """
    source = r.join(b, b.c.code == r.c.booking_code)
    for target, onclause in outer:
        source = source.outerjoin(target, onclause)
    return select(*_shape(sf_raw, cf_raw)).select_from(source).where(*_live(ctx), _readable(BOOKING_CODE))


def _confirmed(ctx: RuleContext) -> ColumnElement[bool]:
    return b.c.status_id.in_(ctx.settings.confirmed_statuses)


def _session_item(ctx: RuleContext, session_id: Any, item_id: Any) -> Any:
    """The Checkfront item a Salesforce Session maps to: the config mapping first, then the field."""
    mapping = ctx.settings.session_item_mapping
    return case(mapping, value=session_id, else_=item_id) if mapping else item_id


def _is_mapped(ctx: RuleContext, item_id: Any) -> ColumnElement[bool]:
    """The item is one some Salesforce Session maps to (package add-ons are not)."""
    item = _session_item(ctx, sfs.c.id, sfs.c.checkfront_item_id)
    from_sessions = item_id.in_(select(item).where(sfs.c.is_deleted.is_(False), item.is_not(None)))
    extra = sorted(set(ctx.settings.session_item_mapping.values()))
    return or_(from_sessions, item_id.in_(extra)) if extra else from_sessions


def _wanted_items(ctx: RuleContext) -> Select[Any]:
    """(registration, item, 1, 0) for every item mapped from an attendee's session id."""
    item = _session_item(ctx, ras.c.session_id, sfs.c.checkfront_item_id)
    session = and_(sfs.c.id == ras.c.session_id, sfs.c.is_deleted.is_(False))
    return (
        select(ras.c.registration_id, item.label("item_id"), *_sides(1, 0))
        .select_from(ras.outerjoin(sfs, session))
        .where(item.is_not(None))
    )


def _booked_items(ctx: RuleContext) -> Select[Any]:
    """(registration, item, 0, 1) for every mapped item the registration's booking has a line for."""
    return (
        select(r.c.id, line.c.item_id, *_sides(0, 1))
        .select_from(r.join(b, b.c.code == r.c.booking_code).join(line, line.c.booking_id == b.c.booking_id))
        .where(line.c.qty > 0, _is_mapped(ctx, line.c.item_id))
    )


def _sides(in_sf: int, in_cf: int) -> tuple[Any, Any]:
    return literal_column(str(in_sf)).label("in_sf"), literal_column(str(in_cf)).label("in_cf")


def _item_sets(ctx: RuleContext) -> Any:
    """Per registration: both item sets as "a,b" texts and how many items are on one side only."""
    tagged = union_all(_wanted_items(ctx), _booked_items(ctx)).subquery("tagged")
    pairs = (
        select(
            tagged.c.registration_id,
            tagged.c.item_id,
            func.max(tagged.c.in_sf).label("in_sf"),
            func.max(tagged.c.in_cf).label("in_cf"),
        )
        .group_by(tagged.c.registration_id, tagged.c.item_id)
        .subquery("pairs")
    )
    return (
        select(
            pairs.c.registration_id,
            func.aggregate_strings(case((pairs.c.in_sf == 1, pairs.c.item_id)), ",").label("sf_items"),
            func.aggregate_strings(case((pairs.c.in_cf == 1, pairs.c.item_id)), ",").label("cf_items"),
            func.sum(case((pairs.c.in_sf == pairs.c.in_cf, 0), else_=1)).label("one_sided"),
        )
        .group_by(pairs.c.registration_id)
        .subquery("item_sets")
    )


def _cents(column: Any) -> Any:
    return type_coerce(column, BigInteger)


# -- one query per reason code --------------------------------------------------------------------


def _gone_without_booking(ctx: RuleContext, status: str) -> Select[Any]:
    """Registrations of `status` with no booking whose booking session Checkfront no longer knows."""
    return (
        select(*_shape(r.c.status, bs.c.state))
        .select_from(r.join(bs, bs.c.id == r.c.booking_session_id))
        .where(
            *_live(ctx),
            _readable(BOOKING_CODE, BOOKING_SESSION),
            r.c.status == status,
            bs.c.state == "missing",
            ~exists().where(b.c.code == r.c.booking_code),
        )
    )


def _booking_session_missing(ctx: RuleContext) -> Select[Any]:
    return _gone_without_booking(ctx, words.DRAFT)


def _booking_code_missing(ctx: RuleContext) -> Select[Any]:
    # A To Process registration was submitted: its cart is most likely gone because it was booked
    # (Checkfront ends a cart when a booking is made from it and API 3.0 does not say which).
    return _gone_without_booking(ctx, words.TO_PROCESS).where(r.c.booking_code.is_(None))


def _booking_not_found(ctx: RuleContext) -> Select[Any]:
    return select(*_shape(r.c.status, null())).where(
        *_live(ctx),
        _readable(BOOKING_CODE),
        r.c.booking_code.is_not(None),
        ~exists().where(b.c.code == r.c.booking_code),
    )


def _sharing(ctx: RuleContext, column: Any, value: Any, *where: ColumnElement[bool]) -> Select[Any]:
    """Live registrations (and `where`) whose `column` value at least one other of them carries.

    The values carried more than once by any registration are found first, on the column's index
    alone (no table row read, no sort); only the registrations carrying one of those are read and
    counted again among the live ones.
    """
    repeated = select(column).where(column.is_not(None)).group_by(column).having(func.count() > 1)
    sharing = func.count().over(partition_by=column)
    shared = (
        select(r.c.id, r.c.booking_session_id, r.c.booking_code, sharing.label("sharing"))
        .where(*_live(ctx), *where, column.in_(repeated))
        .subquery("shared")
    )
    ids = (shared.c.id, shared.c.booking_session_id, shared.c.booking_code)
    return select(*_shape(shared.c.sharing, value(shared), ids=ids)).where(shared.c.sharing > 1)


def _duplicate_booking_code(ctx: RuleContext) -> Select[Any]:
    return _sharing(ctx, r.c.booking_code, lambda shared: shared.c.booking_code)


def _partly_read(ctx: RuleContext) -> Select[Any]:
    return select(*_shape(r.c.unreadable_parts, r.c.unreadable)).where(
        *_live(ctx), r.c.unreadable_parts.is_not(None)
    )


def _booking_without_registration(ctx: RuleContext) -> Select[Any]:
    carried = exists().where(r.c.booking_code == b.c.code, r.c.is_deleted.is_(False))
    return select(*_shape(null(), b.c.status_id, ids=(null(), null(), b.c.code))).where(
        b.c.created_at < ctx.settled,
        b.c.status_id.not_in(UNTRACKED_BOOKING_STATUSES),
        ~carried,
    )


def _attendee_count(ctx: RuleContext) -> Select[Any]:
    # Seats needed is stored on the registration when it is loaded (Σ of its attendees' distinct
    # session ids = its registration_attendee_sessions rows), so no aggregate over them here.
    booked = (
        select(line.c.booking_id, func.sum(line.c.qty).label("seats"))
        .where(line.c.qty > 0, _is_mapped(ctx, line.c.item_id))
        .group_by(line.c.booking_id)
        .subquery("booked")
    )
    seats_needed, seats_booked = r.c.seats_needed, func.coalesce(booked.c.seats, 0)
    return _with_booking(
        ctx,
        seats_needed,
        seats_booked,
        (booked, booked.c.booking_id == b.c.booking_id),
    ).where(b.c.detail_fetched.is_(True), _readable(ATTENDEES), seats_needed != seats_booked)


def _attendee_sessions(ctx: RuleContext) -> Select[Any]:
    sets = _item_sets(ctx)
    joined = (sets, sets.c.registration_id == r.c.id)
    return _with_booking(ctx, sets.c.sf_items, sets.c.cf_items, joined).where(
        b.c.detail_fetched.is_(True), _readable(ATTENDEES), sets.c.one_sided > 0
    )


def _completed_booking_unpaid(ctx: RuleContext) -> Select[Any]:
    return _with_booking(ctx, r.c.status, b.c.status_id).where(
        r.c.status == words.COMPLETED, ~_confirmed(ctx)
    )


def _pending(ctx: RuleContext) -> Select[Any]:
    """Pending registrations (docs/rules.md): Draft, fully read, confirmed booking, every attendee
    with a session."""
    attendee_here = ra.c.registration_id == r.c.id
    sessionless = exists().where(
        attendee_here,
        ~exists().where(ras.c.registration_id == ra.c.registration_id, ras.c.position == ra.c.position),
    )
    return _with_booking(ctx, r.c.status, b.c.status_id).where(
        r.c.status == words.PENDING_STATUS,
        r.c.unreadable_parts.is_(None),
        _confirmed(ctx),
        exists().where(attendee_here),
        ~sessionless,
    )


def _draft_booking_paid(ctx: RuleContext) -> Select[Any]:
    return _pending(ctx).where(r.c.created_at < ctx.ago(ctx.settings.overdue_s))


def _duplicate_registration(ctx: RuleContext) -> Select[Any]:
    return _sharing(
        ctx, r.c.booking_session_id, lambda shared: shared.c.booking_session_id, _readable(BOOKING_SESSION)
    )


def _amount(ctx: RuleContext) -> Select[Any]:
    # Both exact at the cent (the Money columns are exact then): whole cents decide. Either with
    # sub-cent digits: its cents are rounded by at most half a cent, so the cents select every
    # candidate and `_amount_differs` decides on the exact decimals.
    difference = func.abs(_cents(r.c.amount) - _cents(b.c.total))
    sub_cent = or_(r.c.amount_exact.is_not(None), b.c.total_exact.is_not(None))
    cut = case((sub_cent, ctx.tolerance_cents - 1), else_=ctx.tolerance_cents)
    query = _with_booking(ctx, r.c.amount, b.c.total).where(
        _readable(AMOUNT), r.c.amount.is_not(None), b.c.total.is_not(None), difference > cut
    )
    return query.add_columns(r.c.amount_exact.label("sf_exact"), b.c.total_exact.label("cf_exact"))


def _exact(row: RowMapping, side: str) -> Decimal:
    text = row[f"{side}_exact"]
    return Decimal(text) if text is not None else Decimal(row[f"{side}_raw"])


def _amount_differs(row: RowMapping, settings: ReconcileSettings) -> bool:
    """Exact decimals against the tolerance: 100.005 and 99.99 differ by 0.015 (docs/rules.md)."""
    if row["sf_exact"] is None and row["cf_exact"] is None:
        return True  # decided in SQL
    return abs(_exact(row, "sf") - _exact(row, "cf")) > settings.amount_tolerance


def _stale_draft(ctx: RuleContext) -> Select[Any]:
    return (
        select(*_shape(r.c.created_at, b.c.status_id))
        .select_from(r.outerjoin(b, b.c.code == r.c.booking_code))
        .where(
            *_live(ctx),
            _readable(BOOKING_CODE),
            r.c.status == words.DRAFT,
            r.c.created_at < ctx.ago(ctx.settings.stale_draft_s),
            or_(b.c.booking_id.is_(None), ~_confirmed(ctx)),
        )
    )


# -- the rule table -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _seats(count: Any) -> str:
    return f"{count} seat" if count == 1 else f"{count} seats"


def _items(value: Any) -> str:
    ids = sorted({part for part in _text(value).split(",") if part}, key=lambda i: (len(i), i))
    return "items " + ", ".join(ids) if ids else "no mapped items"


@dataclass(frozen=True)
class Rule:
    """A reason code: its default severity, meaning, query and how its values read."""

    code: str
    severity: Severity
    description: str
    query: Callable[[RuleContext], Select[Any]]
    explanation: str  # str.format over registration_id, booking_session_id, booking_code, sf, cf
    sf_text: Callable[[Any], str] = _text
    cf_text: Callable[[Any], str] = _text
    # A last exact test on a row the query selected (only AMOUNT_MISMATCH has one).
    keep: Callable[[RowMapping, ReconcileSettings], bool] | None = None


RULES: tuple[Rule, ...] = (
    Rule(
        "BOOKING_SESSION_MISSING",
        "high",
        "An in-progress registration with no booking whose booking session is unknown or expired.",
        _booking_session_missing,
        "Checkfront no longer knows booking session {booking_session_id} and no booking was made.",
        sf_text=lambda status: f"{status}, no booking",
        cf_text=lambda _state: "session unknown or expired",
    ),
    Rule(
        "BOOKING_WITHOUT_REGISTRATION",
        "high",
        "A booking (not VOID/STOP) whose code no registration carries.",
        _booking_without_registration,
        "Booking {booking_code} ({cf}) is carried by no registration in Salesforce.",
        sf_text=lambda _none: "no registration",
    ),
    Rule(
        "ATTENDEE_COUNT_MISMATCH",
        "high",
        "Seats needed by the attendees differ from the seats booked on mapped items.",
        _attendee_count,
        "The attendees need {sf} but booking {booking_code} has {cf}.",
        sf_text=_seats,
        cf_text=_seats,
    ),
    Rule(
        "ATTENDEE_SESSIONS_MISMATCH",
        "medium",
        "The items mapped from the attendees' sessions differ from the mapped items booked.",
        _attendee_sessions,
        "The attendees' sessions map to {sf} but booking {booking_code} books {cf}.",
        sf_text=_items,
        cf_text=_items,
    ),
    Rule(
        "COMPLETED_BOOKING_UNPAID",
        "high",
        "A Completed registration whose booking is not confirmed.",
        _completed_booking_unpaid,
        "The registration is {sf} but booking {booking_code} is {cf}, not confirmed.",
    ),
    Rule(
        "DRAFT_BOOKING_PAID",
        "medium",
        "A pending registration older than overdue_s: its submission is overdue.",
        _draft_booking_paid,
        "The registration is still {sf} although booking {booking_code} is {cf}: submission overdue.",
    ),
    Rule(
        "DUPLICATE_REGISTRATION",
        "medium",
        "Two or more registrations point at the same booking session.",
        _duplicate_registration,
        "{sf} point at booking session {booking_session_id}.",
        sf_text=lambda n: f"{n} registrations",
        cf_text=lambda _session: "1 booking session",
    ),
    Rule(
        "AMOUNT_MISMATCH",
        "high",
        "The registration amount and the booking total differ by more than amount_tolerance.",
        _amount,
        "The registration amount {sf} differs from the total {cf} of booking {booking_code}.",
        keep=_amount_differs,
    ),
    Rule(
        "STALE_DRAFT",
        "low",
        "A Draft older than stale_draft_s with no confirmed booking.",
        _stale_draft,
        "The registration has been a Draft since {sf} and has {cf}.",
        sf_text=lambda created: f"{created:%Y-%m-%d}",
        cf_text=lambda status: "no booking" if status is None else f"booking {status}",
    ),
    Rule(
        "BOOKING_CODE_MISSING",
        "high",
        "A To Process registration without a booking code whose booking session is gone.",
        _booking_code_missing,
        "The registration is {sf} with no booking code, and booking session {booking_session_id} is "
        "gone: the customer has probably booked.",
        sf_text=lambda status: f"{status}, no booking code",
        cf_text=lambda _state: "session gone (ended, booked or expired)",
    ),
    Rule(
        "BOOKING_NOT_FOUND",
        "high",
        "A registration whose booking code names no booking Checkfront knows.",
        _booking_not_found,
        "The registration ({sf}) carries booking code {booking_code}, which names no booking in Checkfront.",
        cf_text=lambda _none: "no such booking",
    ),
    Rule(
        "DUPLICATE_BOOKING_CODE",
        "medium",
        "Two or more registrations carry the same booking code.",
        _duplicate_booking_code,
        "{sf} carry booking code {booking_code}.",
        sf_text=lambda n: f"{n} registrations",
        cf_text=lambda _code: "1 booking",
    ),
    Rule(
        "REGISTRATION_PARTLY_READ",
        "medium",
        "Parts of the registration could not be read; the rules that need them were not checked.",
        _partly_read,
        "Could not read {sf} of the registration ({cf}); the rules needing them were not checked "
        "and regsync will not write back for it.",
        sf_text=lambda parts: ", ".join(part for part in _text(parts).split(",") if part in PARTS),
        cf_text=lambda why: _text(why)[:300],
    ),
)
# The codes are the bottom layer's (definitions.REASON_CODES, which the settings check overrides
# against); RULES declares one rule per code, in that order (tests/reconcile/test_rules.py).
CODES: tuple[str, ...] = words.REASON_CODES
RULES_BY_CODE: Mapping[str, Rule] = {rule.code: rule for rule in RULES}


def severity_of(settings: ReconcileSettings, code: str) -> Severity:
    return settings.severity.get(code, RULES_BY_CODE[code].severity)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _mismatch(rule: Rule, row: RowMapping, settings: ReconcileSettings) -> Mismatch:
    sf, cf = rule.sf_text(row["sf_raw"]), rule.cf_text(row["cf_raw"])
    ids = {name: row[name] for name in ("registration_id", "booking_session_id", "booking_code")}
    return Mismatch(
        code=rule.code,
        severity=severity_of(settings, rule.code),
        sf_value=sf,
        cf_value=cf,
        explanation=rule.explanation.format(sf=sf, cf=cf, **ids),
        **ids,
    )


def rule_query(rule: Rule, settings: ReconcileSettings, now: datetime) -> Select[Any]:
    """The SELECT behind one reason code, for `now` (exposed for inspection and EXPLAIN)."""
    return rule.query(RuleContext(settings, _aware(now)))


def pending_registrations(settings: ReconcileSettings, now: datetime) -> Select[Any]:
    """Registration ids the reconciliation counts as pending (its bookings must also be out of flight;
    the write-back planner, regsync.actions.candidates, ages only the registration as docs/rules.md says)."""
    return _pending(RuleContext(settings, _aware(now))).with_only_columns(r.c.id)


RULE_BATCH = 5_000  # rows fetched at a time (a server-side cursor on PostgreSQL): no whole result is buffered


def _rule_mismatches(
    connection: Connection, rule: Rule, settings: ReconcileSettings, now: datetime
) -> list[Mismatch]:
    query = rule_query(rule, settings, now).execution_options(yield_per=RULE_BATCH)
    rows = connection.execute(query).mappings()
    if rule.keep is not None:
        keep = rule.keep
        rows = (row for row in rows if keep(row, settings))  # type: ignore[assignment]
    return [_mismatch(rule, row, settings) for row in rows]


def evaluate(connection: Connection, settings: ReconcileSettings, now: datetime) -> list[Mismatch]:
    """Every mismatch in the warehouse at `now`, in report order."""
    found = [item for rule in RULES for item in _rule_mismatches(connection, rule, settings, now)]
    return sorted(found, key=Mismatch.sort_key)


# The rules that read the most rows go first, so that with two workers they run side by side.
_COSTLIEST_FIRST = sorted(
    RULES,
    key=lambda rule: (
        rule.code
        not in (
            "ATTENDEE_SESSIONS_MISMATCH",
            "ATTENDEE_COUNT_MISMATCH",
            "DUPLICATE_REGISTRATION",
            "DUPLICATE_BOOKING_CODE",
        )
    ),
)


def evaluate_concurrently(engine: Engine, settings: ReconcileSettings, now: datetime) -> list[Mismatch]:
    """`evaluate`, with the rules spread over `settings.query_workers` connections.

    SQLite and psycopg release the GIL while a query runs, so on a two-core machine the two
    costliest rules run at once. The rules read on separate connections, which see the same data
    because every regsync job holds the warehouse-writer lock (regsync.warehouse.locks) for its whole run:
    no regsync writer changes the warehouse between them. An in-memory SQLite database exists once
    per connection, so it is read on one.
    """
    workers = settings.query_workers
    if workers <= 1 or (
        engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:")
    ):
        with engine.connect() as connection:
            return evaluate(connection, settings, now)

    def one(rule: Rule) -> list[Mismatch]:
        with engine.connect() as connection:
            return _rule_mismatches(connection, rule, settings, now)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rules") as pool:
        found = [item for part in pool.map(one, _COSTLIEST_FIRST) for item in part]
    return sorted(found, key=Mismatch.sort_key)
