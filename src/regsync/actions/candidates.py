"""What to write back, per docs/rules.md: one SQL CASE per target gives the rule or the first reason not to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, RowMapping, Select, and_, case, exists, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from regsync import definitions as words
from regsync.actions.journal import END, SUBMIT, holds_key
from regsync.normalize.salesforce import booking_session_ids_in
from regsync.settings.actions import ActionSettings
from regsync.settings.salesforce import RegistrationFields
from regsync.warehouse.actions_tables import actions
from regsync.warehouse.batching import batched
from regsync.warehouse.tables import (
    booking_sessions,
    bookings,
    quarantine,
    registration_attendee_sessions,
    registration_attendees,
    registrations,
)

IN_PROGRESS_STATUSES = words.IN_PROGRESS_STATUSES
SELECTED = {SUBMIT: "pending", END: "stale"}
REGISTRATIONS_SOURCE = "salesforce.registrations"
CHUNK = 500

r, b, bs, a = registrations, bookings, booking_sessions, actions
ra, ras = registration_attendees, registration_attendee_sessions


@dataclass(frozen=True)
class PlanContext:
    """What a write-back plan is made against: the [actions] thresholds, a fixed "now" and the
    caller's --older-than (the reconciliation's equivalent is reconcile.rules.RuleContext)."""

    settings: ActionSettings
    now: datetime
    older_than_s: int | None = None
    # Where a quarantined registration's raw record names its booking session (fail-safe holds).
    registration_fields: RegistrationFields = field(default_factory=RegistrationFields)

    def ago(self, seconds: float) -> datetime:
        return self.now - timedelta(seconds=seconds)


@dataclass(frozen=True)
class QuarantineHolds:
    """What quarantined registrations (not loaded: their identity is unreadable) hold against ends.

    `named`: booking session id -> a quarantined record naming it; `unknown`: records whose raw
    payload names a booking session that cannot be made out (then every end is held).
    """

    named: dict[str, str]
    unknown: tuple[str, ...]


def quarantine_holds(connection: Connection, fields: RegistrationFields) -> QuarantineHolds:
    """Read the booking session ids out of the open quarantined registrations' raw payloads.

    One pass over the open quarantine rows of registrations only (a handful, not the warehouse).
    """
    named: dict[str, str] = {}
    unknown: list[str] = []
    # A partly read registration is loaded (and also open in the quarantine, to be read again):
    # its warehouse row holds what it names, so only the registrations that could not load count.
    loaded = select(registrations.c.id).where(registrations.c.unreadable_parts.is_not(None))
    query = select(quarantine.c.record_id, quarantine.c.payload).where(
        quarantine.c.source == REGISTRATIONS_SOURCE,
        quarantine.c.resolved_at.is_(None),
        quarantine.c.record_id.not_in(loaded),
    )
    for record_id, text in connection.execute(query):
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            record = None
        ids = booking_session_ids_in(record, fields)
        for ident in ids:
            named.setdefault(ident, record_id)
        if not ids and _names_a_booking_session(record, text, fields):
            unknown.append(record_id)
    return QuarantineHolds(named, tuple(sorted(set(unknown))))


def _names_a_booking_session(record: Any, text: str, fields: RegistrationFields) -> bool:
    """The raw record mentions a booking session that could not be read (so it may need any)."""
    if not isinstance(record, dict):
        return "sessionId" in text or bool(fields.checkfront_session and fields.checkfront_session in text)
    if fields.checkfront_session and record.get(fields.checkfront_session) not in (None, ""):
        return True
    payload = record.get(fields.attendee_json)
    return payload not in (None, "") and "sessionId" in str(payload)


@dataclass(frozen=True)
class Explanation:
    """One draft registration or known alive booking session, and why it is (not) acted on."""

    kind: str
    target_id: str
    reason: str  # "pending" / "stale" when selected, else the first reason it was skipped
    text: str

    @property
    def selected(self) -> bool:
        return self.reason == SELECTED[self.kind]


@dataclass(frozen=True)
class Candidate:
    """One write to make: its target, the rule that selected it and the request to send."""

    kind: str
    target_id: str
    reason: str
    request: dict[str, Any]


@dataclass
class Plan:
    """The candidates of each kind, the eligible population the breaker compares them with."""

    now: datetime
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    population: dict[str, int] = field(default_factory=dict)
    explanations: list[Explanation] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(found) for found in self.candidates.values())


# -- the CASE per kind ----------------------------------------------------------------------------


def _held(kind: str, target: Any) -> ColumnElement[bool]:
    """Join condition: the journal action that holds this target (at most one, by the unique index)."""
    return and_(a.c.kind == kind, a.c.target_id == target, holds_key())


def _journal_whens() -> list[tuple[ColumnElement[bool], str]]:
    return [
        (a.c.state == "succeeded", "done"),
        (a.c.state == "failed", "failed_final"),
        (a.c.action_id.is_not(None), "unresolved"),
    ]


def _too_recent(ctx: PlanContext, at: Any) -> list[tuple[ColumnElement[bool], str]]:
    if ctx.older_than_s is None:
        return []
    return [(at >= ctx.ago(ctx.older_than_s), "too_recent")]


def _draft() -> tuple[ColumnElement[bool], ...]:
    return (r.c.status == words.PENDING_STATUS, r.c.is_deleted.is_(False))


def _attendee_stats() -> Any:
    """Per draft registration: its number of attendees and how many of them have no session id."""
    same_attendee = and_(ras.c.registration_id == ra.c.registration_id, ras.c.position == ra.c.position)
    per_attendee = (
        select(ra.c.registration_id, func.count(ras.c.session_id).label("sessions"))
        .select_from(ra.outerjoin(ras, same_attendee))
        .where(ra.c.registration_id.in_(select(r.c.id).where(*_draft())))
        .group_by(ra.c.registration_id, ra.c.position)
        .subquery("per_attendee")
    )
    return (
        select(
            per_attendee.c.registration_id,
            func.count().label("attendees"),
            func.sum(case((per_attendee.c.sessions == 0, 1), else_=0)).label("sessionless"),
        )
        .group_by(per_attendee.c.registration_id)
        .subquery("attendee_stats")
    )


def _columns(target: Any, reason: Any, at: Any, ref: Any, ref_status: Any) -> list[Any]:
    """The columns both explanation queries return, in one order."""
    return [
        target.label("target_id"),
        reason.label("reason"),
        at.label("at"),
        ref.label("ref"),
        ref_status.label("ref_status"),
        a.c.action_id.label("action_id"),
        a.c.state.label("action_state"),
        a.c.error.label("action_error"),
    ]


def registration_reasons(ctx: PlanContext) -> Select[Any]:
    """Every draft registration with "pending" (docs/rules.md) or the first rule it fails."""
    settings = ctx.settings
    stats = _attendee_stats()
    reason = case(
        (r.c.created_at >= ctx.ago(settings.in_flight_s), "in_flight"),
        *_too_recent(ctx, r.c.created_at),
        (r.c.unreadable_parts.is_not(None), "partly_read"),  # never submit what is not fully read
        (r.c.booking_code.is_(None), "no_booking"),
        (b.c.booking_id.is_(None), "booking_unknown"),
        (b.c.status_id.not_in(settings.confirmed_statuses), "booking_unconfirmed"),
        (func.coalesce(stats.c.attendees, 0) == 0, "no_attendees"),
        (stats.c.sessionless > 0, "sessionless_attendee"),
        *_journal_whens(),
        else_=SELECTED[SUBMIT],
    )
    source = (
        r.outerjoin(b, b.c.code == r.c.booking_code)
        .outerjoin(stats, stats.c.registration_id == r.c.id)
        .outerjoin(a, _held(SUBMIT, r.c.id))
    )
    columns = _columns(r.c.id, reason, r.c.created_at, r.c.booking_code, b.c.status_id)
    extra = (stats.c.attendees.label("attendees"), r.c.unreadable.label("unreadable"))
    return select(*columns, *extra).select_from(source).where(*_draft())


def booking_session_reasons(ctx: PlanContext, holds: QuarantineHolds | None = None) -> Select[Any]:
    """Every known alive booking session with "stale" (docs/rules.md) or the first rule it fails.

    Fail safe: a booking session is never ended while a registration naming it is not fully read
    (partly read, or quarantined with the id legible in its raw payload), nor at all while a
    registration's unreadable link could name it; `holds` are the quarantined ones.
    """
    settings = ctx.settings
    holds = holds or QuarantineHolds({}, ())
    partly_read = r.alias("partly_read")
    held_by = (
        select(func.min(partly_read.c.id))
        .where(partly_read.c.booking_session_id == bs.c.id, partly_read.c.unreadable_parts.is_not(None))
        .scalar_subquery()
    )
    unread_link = r.alias("unread_link")
    lost_link = exists().where(
        unread_link.c.unreadable_parts.contains(f",{words.BOOKING_SESSION},", autoescape=True),
        unread_link.c.booking_session_id.is_(None),
        unread_link.c.is_deleted.is_(False),
        unread_link.c.status.in_(IN_PROGRESS_STATUSES),
        unread_link.c.created_at > ctx.ago(settings.stale_draft_s),
    )
    held: list[tuple[ColumnElement[bool], str]] = [(held_by.is_not(None), "held_partly_read")]
    if holds.named:
        held.append((bs.c.id.in_(sorted(holds.named)), "held_quarantined"))
    if holds.unknown:
        held.append((literal(True), "held_quarantined_unknown"))
    held.append((lost_link, "held_unreadable_link"))
    in_progress = and_(
        r.c.is_deleted.is_(False),
        r.c.status.in_(IN_PROGRESS_STATUSES),
        r.c.created_at > ctx.ago(settings.stale_draft_s),
        r.c.booking_session_id.is_not(None),
    )
    protectors = (
        select(r.c.booking_session_id, func.min(r.c.id).label("protector"))
        .where(in_progress)
        .group_by(r.c.booking_session_id)
        .subquery("protectors")
    )
    protector = r.alias("protector")
    reason = case(
        (bs.c.last_activity_at.is_(None), "age_unknown"),
        (bs.c.last_activity_at >= ctx.ago(settings.stale_session_ttl_s), "not_idle"),
        *_too_recent(ctx, bs.c.last_activity_at),
        *held,
        (protectors.c.protector.is_not(None), "protected"),
        *_journal_whens(),
        else_=SELECTED[END],
    )
    source = (
        bs.outerjoin(protectors, protectors.c.booking_session_id == bs.c.id)
        .outerjoin(protector, protector.c.id == protectors.c.protector)
        .outerjoin(a, _held(END, bs.c.id))
    )
    known = exists().where(r.c.booking_session_id == bs.c.id)
    columns = _columns(bs.c.id, reason, bs.c.last_activity_at, protector.c.id, protector.c.status)
    return select(*columns, held_by.label("held_by")).select_from(source).where(bs.c.state == "alive", known)


def _reasons(
    connection: Connection, ctx: PlanContext, kind: str
) -> tuple[Select[Any], QuarantineHolds | None]:
    """The explanation query of one kind (ends first read what quarantined registrations hold)."""
    if kind == SUBMIT:
        return registration_reasons(ctx), None
    holds = quarantine_holds(connection, ctx.registration_fields)
    return booking_session_reasons(ctx, holds), holds


# -- reading them ---------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds} s"


def _short(ident: Any) -> str:
    return f"{str(ident)[:8]}…" if ident else "?"


def _describe(kind: str, row: RowMapping, ctx: PlanContext, holds: QuarantineHolds | None = None) -> str:
    """The human reading of one explanation row."""
    settings = ctx.settings
    holds = holds or QuarantineHolds({}, ())
    unknown = ", ".join(holds.unknown[:3]) + (" …" if len(holds.unknown) > 3 else "")
    age = duration((ctx.now - row["at"]).total_seconds()) if row["at"] is not None else "?"
    ttl = duration(settings.stale_session_ttl_s)
    texts = {
        "in_flight": f"in flight (created {age} ago)",
        "too_recent": f"younger than --older-than ({age})",
        "no_booking": "no booking code yet",
        "booking_unknown": f"booking {row['ref']} not found in Checkfront",
        "booking_unconfirmed": f"booking {row['ref_status']} not confirmed",
        "no_attendees": "no attendees in the payload",
        "sessionless_attendee": "attendee without session ids",
        "partly_read": f"held: not fully read ({str(row.get('unreadable') or '')[:200]})",
        "held_partly_read": f"held: registration {row.get('held_by')} naming it is not fully read",
        "held_quarantined": "held: quarantined registration "
        f"{holds.named.get(row['target_id'], '?')} names it",
        "held_quarantined_unknown": f"held: quarantined registration(s) {unknown} name a booking "
        "session that cannot be read, so no booking session is ended",
        "held_unreadable_link": "held: an in-progress registration's booking session could not be "
        "read, so no booking session is ended",
        "age_unknown": "idle time unknown",
        "not_idle": f"idle {age}, not over the {ttl} TTL",
        "protected": f"protected: {str(row['ref_status']).lower()} {row['ref']} in progress",
        "done": f"already done by action {_short(row['action_id'])}",
        "failed_final": f"failed for good earlier: {row['action_error']}",
        "unresolved": f"action {_short(row['action_id'])} left {row['action_state']} by an interrupted run",
        "pending": f"pending: Draft with booking {row['ref']} {row['ref_status']}, "
        f"{row.get('attendees')} attendee(s) with sessions",
        "stale": f"stale: idle {age} > {ttl}, no registration in progress needs it",
    }
    return texts[row["reason"]]


def explain(connection: Connection, ctx: PlanContext, kinds: Sequence[str]) -> list[Explanation]:
    """Every draft / known alive booking session of these kinds, selected ones first."""
    found = []
    for kind in kinds:
        query, holds = _reasons(connection, ctx, kind)
        found += [
            Explanation(kind, row["target_id"], row["reason"], _describe(kind, row, ctx, holds))
            for row in connection.execute(query).mappings()
        ]
    return sorted(found, key=lambda e: (e.kind != SUBMIT, not e.selected, e.reason, e.target_id))


def population(connection: Connection, ctx: PlanContext, kind: str) -> int:
    """Drafts (submits) or known alive booking sessions (ends): what the breaker's share is of."""
    listed = _reasons(connection, ctx, kind)[0].subquery("listed")
    return int(connection.execute(select(func.count()).select_from(listed)).scalar_one())


def selected(
    connection: Connection, ctx: PlanContext, kind: str, limit: int | None = None
) -> list[tuple[str, str]]:
    """(target id, rule text) of the candidates of one kind, oldest first, at most `limit`."""
    reasons, holds = _reasons(connection, ctx, kind)
    listed = reasons.subquery("listed")
    query = (
        select(listed)
        .where(listed.c.reason == SELECTED[kind])
        .order_by(listed.c.at, listed.c.target_id)
        .limit(limit)
    )
    rows = connection.execute(query).mappings()
    return [(row["target_id"], _describe(kind, row, ctx, holds)) for row in rows]


def submit_payloads(connection: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The sessionRegistration payload of each registration, rebuilt from the warehouse."""
    payloads: dict[str, dict[str, Any]] = {}
    for chunk in batched(ids, CHUNK):
        query = (
            select(r.c.id, r.c.booking_session_id, ra.c.position, ra.c.attendee_id, ras.c.session_id)
            .select_from(
                r.join(ra, ra.c.registration_id == r.c.id).outerjoin(
                    ras, and_(ras.c.registration_id == ra.c.registration_id, ras.c.position == ra.c.position)
                )
            )
            .where(r.c.id.in_(list(chunk)))
            .order_by(r.c.id, ra.c.position, ras.c.session_id)
        )
        attendees: dict[tuple[str, int], dict[str, Any]] = {}
        for reg_id, session_id, position, attendee_id, sf_session_id in connection.execute(query):
            payload = payloads.setdefault(reg_id, _payload(reg_id, session_id))
            attendee = attendees.get((reg_id, position))
            if attendee is None:
                attendee = attendees[(reg_id, position)] = {"id": attendee_id, "sessionIds": []}
                payload["attendeeList"].append(attendee)
            if sf_session_id is not None:
                attendee["sessionIds"].append(sf_session_id)
    return payloads


def _payload(registration_id: str, booking_session_id: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"id": registration_id}
    if booking_session_id is not None:
        payload["sessionId"] = booking_session_id
    return {**payload, "attendeeList": [], "submit": True}


def candidates(
    connection: Connection, ctx: PlanContext, kind: str, limit: int | None = None
) -> list[Candidate]:
    """The writes of one kind the warehouse calls for at ctx.now, with their requests."""
    chosen = selected(connection, ctx, kind, limit)
    if kind == END:
        return [Candidate(END, target, reason, {"session_id": target}) for target, reason in chosen]
    payloads = submit_payloads(connection, [target for target, _ in chosen])
    return [Candidate(SUBMIT, target, reason, payloads[target]) for target, reason in chosen]


def make_plan(
    connection: Connection,
    ctx: PlanContext,
    kinds: Sequence[str],
    *,
    limit: int | None = None,
    explained: bool = False,
) -> Plan:
    """Candidates and populations of each kind (and, for `regsync plan`, every explanation)."""
    plan = Plan(now=ctx.now)
    for kind in kinds:
        plan.candidates[kind] = candidates(connection, ctx, kind, limit)
        plan.population[kind] = population(connection, ctx, kind)
    if explained:
        plan.explanations = explain(connection, ctx, kinds)
    return plan
