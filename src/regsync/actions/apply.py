"""Run the write-backs safely: recover, plan, trip the breaker, re-read, send journaled, confirm."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, select, update

from regsync.actions import journal
from regsync.actions.candidates import Candidate, Plan, PlanContext, duration, make_plan
from regsync.actions.journal import END, KINDS, SUBMIT
from regsync.clients.checkfront import BookingSessionRead, CheckfrontClient
from regsync.clients.factory import make_clients
from regsync.clients.salesforce import SalesforceClient
from regsync.clients.usage import ApiUsage
from regsync.config import Settings
from regsync.definitions import REGISTRATION_STATUSES
from regsync.errors import (
    ApiError,
    AuthenticationError,
    BusinessError,
    OutcomeUnknownError,
    QuotaExhaustedError,
    RecordRejected,
    RegsyncError,
)
from regsync.exitcodes import ExitCode
from regsync.extract.soql import identifier, in_list
from regsync.normalize import coerce
from regsync.normalize.checkfront import missing_booking_session, normalize_booking_session
from regsync.settings.actions import ActionSettings
from regsync.warehouse.actions_tables import actions
from regsync.warehouse.batching import batched
from regsync.warehouse.engine import open_warehouse
from regsync.warehouse.locks import open_warehouse_locked
from regsync.warehouse.state import finish_run, start_run, utcnow
from regsync.warehouse.tables import booking_session_lines, booking_sessions, registrations
from regsync.warehouse.upsert import replace_children, upsert

log = logging.getLogger("regsync.actions")

APEX_SESSION_REGISTRATION = "conference360/sessionRegistration"
JOBS = {SUBMIT: "submit-pending", END: "close-stale"}
BOTH_JOB = "write-back"  # the ledger's job name when one call does both kinds
PROBLEMS = ("failed", "unconfirmed", "conflict", "unrecovered")


@dataclass
class ActionsReport:
    """What one write-back run did (or, dry, would do)."""

    outcome: str  # ok | partial | deferred | failed | dry-run
    plan: Plan
    dry_run: bool = False
    run_id: str | None = None
    breaker_tripped: bool = False
    message: str | None = None
    counts: Counter[str] = field(default_factory=Counter)  # "<kind>.<what>": n
    api_calls: dict[str, object] = field(default_factory=dict)
    # Dry runs: what the breaker would say of this plan under --apply.
    breaker_prediction: BreakerVerdict | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.breaker_tripped:
            return ExitCode.BREAKER
        codes = {"partial": ExitCode.PARTIAL, "deferred": ExitCode.DEFERRED, "failed": ExitCode.FAILED}
        return codes.get(self.outcome, ExitCode.OK)

    def count(self, kind: str, what: str, n: int = 1) -> None:
        if n:
            self.counts[f"{kind}.{what}"] += n

    def total(self, what: str) -> int:
        return sum(n for key, n in self.counts.items() if key.endswith(f".{what}"))


@dataclass
class _Run:
    """The clients, the warehouse and the report of one real run."""

    settings: Settings
    policy: ActionSettings
    engine: Engine
    salesforce: SalesforceClient
    checkfront: CheckfrontClient
    report: ActionsReport

    @property
    def run_id(self) -> str | None:
        return self.report.run_id


@dataclass(frozen=True)
class _Sent:
    """A journaled send and how it ended."""

    candidate: Candidate
    action_id: str
    state: str  # succeeded | failed
    error: str | None = None


# -- entry points ---------------------------------------------------------------------------------


def policy_of(settings: Settings, action_settings: ActionSettings | None = None) -> ActionSettings:
    """The [actions] settings: the override given, else settings.actions, else the defaults."""
    if action_settings is not None:
        return action_settings
    configured = getattr(settings, "actions", None)
    return configured if isinstance(configured, ActionSettings) else ActionSettings()


def _kinds(kinds: Iterable[str]) -> list[str]:
    wanted = set(kinds)
    unknown = sorted(wanted - set(KINDS))
    if unknown or not wanted:
        raise RegsyncError(
            f"unknown action kind(s) {', '.join(unknown) or '(none)'}; known: {', '.join(KINDS)}"
        )
    return [kind for kind in KINDS if kind in wanted]


def plan(
    settings: Settings,
    *,
    engine: Engine | None = None,
    kinds: Iterable[str] = KINDS,
    now: datetime | None = None,
    limit: int | None = None,
    older_than_s: int | None = None,
    action_settings: ActionSettings | None = None,
    explained: bool = True,
) -> Plan:
    """What a run would do at `now`, from the warehouse alone, with every draft and session explained."""
    if engine is None:
        engine = open_warehouse_locked(settings.warehouse.url)
    fields = settings.salesforce.registration_fields
    ctx = PlanContext(policy_of(settings, action_settings), now or utcnow(), older_than_s, fields)
    with engine.connect() as connection:
        return make_plan(connection, ctx, _kinds(kinds), limit=limit, explained=explained)


def run_actions(
    settings: Settings,
    *,
    engine: Engine | None = None,
    apply: bool = False,
    dry_run: bool = False,
    kinds: Iterable[str] = KINDS,
    limit: int | None = None,
    older_than_s: int | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] | None = None,
    action_settings: ActionSettings | None = None,
) -> ActionsReport:
    """Submit pending registrations and/or end stale booking sessions; API trouble is reported, not raised.

    Writes only when `settings.actions.enabled` or `apply`; otherwise (or with dry_run) the plan is
    returned and nothing is sent nor journaled.
    """
    engine = engine or open_warehouse(settings.warehouse.url)
    policy = policy_of(settings, action_settings)
    chosen = _kinds(kinds)
    now = now or utcnow()
    if dry_run or not (policy.enabled or apply):
        found = plan(
            settings,
            engine=engine,
            kinds=chosen,
            now=now,
            limit=limit,
            older_than_s=older_than_s,
            action_settings=policy,
        )
        why = "dry run" if dry_run else "writes are off: pass apply (--apply) or set actions.enabled = true"
        report = ActionsReport(outcome="dry-run", plan=found, dry_run=True, message=why)
        report.breaker_prediction = breaker_verdict(policy, found)
        return report
    usage = ApiUsage(settings.quota.max_share)
    salesforce, checkfront = make_clients(settings, usage, sleep)
    # "failed" until _execute says otherwise: an interrupted run must not be recorded as ok.
    report = ActionsReport(outcome="failed", plan=Plan(now=now), message="interrupted")
    report.run_id = start_run(engine, JOBS[chosen[0]] if len(chosen) == 1 else BOTH_JOB)
    run = _Run(settings, policy, engine, salesforce, checkfront, report)
    try:
        ctx = PlanContext(policy, now, older_than_s, settings.salesforce.registration_fields)
        _execute(run, chosen, ctx, limit)
    except QuotaExhaustedError as exc:
        report.outcome, report.message = "deferred", str(exc)
    except Exception as exc:
        report.outcome, report.message = "failed", f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, RegsyncError):
            raise
        log.error("write-back failed: %s", report.message)
    finally:
        checkfront.close()
        _record(engine, report, usage)
    return report


def _record(engine: Engine, report: ActionsReport, usage: ApiUsage) -> None:
    """The run's line in the ledger: outcome, counts (with the breaker flag) and API calls."""
    assert report.run_id is not None
    calls = report.api_calls = usage.snapshot()
    counts = {**report.counts, "breaker_tripped": int(report.breaker_tripped)}
    finish_run(engine, report.run_id, report.outcome, counts=counts, api_calls=calls, message=report.message)


def _execute(run: _Run, kinds: Sequence[str], ctx: PlanContext, limit: int | None) -> None:
    """(a) recover, (b) plan, (c) breaker, (d)-(f) per batch: re-read, send, confirm."""
    report = run.report
    _recover(run, kinds)
    with run.engine.connect() as connection:
        report.plan = make_plan(connection, ctx, kinds, limit=limit)
    for kind, found in report.plan.candidates.items():
        report.count(kind, "planned", len(found))
    tripped = breaker(run.policy, report.plan)
    if tripped is not None:
        report.breaker_tripped, report.outcome, report.message = True, "failed", tripped
        log.error("%s", tripped)
        return
    act = {SUBMIT: _submit_batch, END: _end_batch}
    for kind in kinds:
        for batch in batched(report.plan.candidates[kind], run.policy.batch_size):
            act[kind](run, list(batch))
    problems = {what: report.total(what) for what in PROBLEMS if report.total(what)}
    report.outcome, report.message = "ok", None
    if problems:
        report.outcome = "partial"
        report.message = ", ".join(f"{n} {what}" for what, n in problems.items()) + "; see `regsync actions`"


@dataclass(frozen=True)
class BreakerVerdict:
    """Whether a plan would trip the circuit breaker, and the rule that decides it, in words."""

    trips: bool
    reason: str


def breaker_verdict(policy: ActionSettings, plan: Plan) -> BreakerVerdict:
    """The breaker's decision on this plan, explained either way (`plan` and `--dry-run` print it).

    Trips when the plan writes more than max_writes, or when one kind writes at least
    share_min_writes and more than max_share of its eligible population.
    """
    if plan.total > policy.max_writes:
        return BreakerVerdict(
            True,
            f"circuit breaker: {plan.total} writes planned > max_writes {policy.max_writes}; nothing written",
        )
    shares: list[str] = []
    for kind, found in plan.candidates.items():
        eligible = plan.population.get(kind, 0)
        if not found:
            continue
        share = len(found) / eligible if eligible else 1.0
        if len(found) < policy.share_min_writes:
            shares.append(
                f"{len(found)} {kind} of {eligible} eligible ({share:.0%}): under share_min_writes "
                f"{policy.share_min_writes}, the share rule does not apply"
            )
        elif len(found) > policy.max_share * eligible:
            return BreakerVerdict(
                True,
                f"circuit breaker: {len(found)} {kind} of {eligible} eligible "
                f"({share:.0%}) > max_share {policy.max_share:.0%}; nothing written",
            )
        else:
            shares.append(
                f"{len(found)} {kind} of {eligible} eligible ({share:.0%}) <= max_share {policy.max_share:.0%}"
            )
    detail = "; ".join([f"{plan.total} writes <= max_writes {policy.max_writes}", *shares])
    return BreakerVerdict(False, f"the circuit breaker would not trip: {detail}")


def breaker(policy: ActionSettings, plan: Plan) -> str | None:
    """Why this plan must not be written (too many writes, or too large a share), or None."""
    verdict = breaker_verdict(policy, plan)
    return verdict.reason if verdict.trips else None


def predict_breaker(policy: ActionSettings, plan: Plan) -> dict[str, BreakerVerdict]:
    """What `--apply` would meet, per command: submit-pending and close-stale each run the breaker
    on their own kind's plan (as `run main` runs them one after the other)."""
    verdicts: dict[str, BreakerVerdict] = {}
    for kind, found in plan.candidates.items():
        alone = Plan(now=plan.now, candidates={kind: found}, population={kind: plan.population.get(kind, 0)})
        verdicts[JOBS[kind]] = breaker_verdict(policy, alone)
    return verdicts


# -- (a) recovery ---------------------------------------------------------------------------------


def _recover(run: _Run, kinds: Sequence[str]) -> None:
    """Resolve actions a crashed run left planned or sent by reading the remote state; never resend."""
    _finish_interrupted_batches(run, kinds)
    resolve = {SUBMIT: _recover_submit, END: _recover_end}
    for action in journal.unresolved(run.engine, kinds):
        try:
            state, error, retriable = resolve[action.kind](run, action.target_id)
        except (AuthenticationError, QuotaExhaustedError):
            raise
        except ApiError as exc:
            log.warning("could not recover action %s: %s", action.action_id, exc)
            run.report.count(action.kind, "unrecovered")
            continue
        response = {"recovered_from": action.state}
        journal.record_result(
            run.engine, action.action_id, state, response=response, error=error, retriable=retriable
        )
        run.report.count(action.kind, f"recovered_{state}")


def _finish_interrupted_batches(run: _Run, kinds: Sequence[str]) -> None:
    """What a run that died mid-batch did not get to after its sends that succeeded.

    Submits: the batch's confirming read (which also makes the warehouse row Completed). Ends: the
    warehouse booking session becomes missing, unless it was read again after the end.
    """
    if SUBMIT in kinds:
        for batch in batched(journal.unconfirmed_submits(run.engine), run.policy.batch_size):
            sent = [
                _Sent(
                    Candidate(SUBMIT, action.target_id, "confirm", action.request),
                    action.action_id,
                    "succeeded",
                )
                for action in batch
            ]
            try:
                _confirm_submits(run, sent)
            except (AuthenticationError, QuotaExhaustedError):
                raise
            except ApiError as exc:
                log.warning("could not confirm %d submit(s) of an interrupted run: %s", len(sent), exc)
                run.report.count(SUBMIT, "unrecovered", len(sent))
    if END in kinds:
        query = (
            select(actions.c.target_id)
            .select_from(actions.join(booking_sessions, booking_sessions.c.id == actions.c.target_id))
            .where(
                actions.c.kind == END,
                actions.c.state == "succeeded",
                booking_sessions.c.state == "alive",
                booking_sessions.c.read_at <= actions.c.finished_at,
            )
        )
        with run.engine.connect() as connection:
            ended = list(connection.execute(query).scalars())
        _store_sessions(run.engine, run.report.plan.now, ended=ended)
        run.report.count(END, "stored_after_interruption", len(ended))


def _recover_submit(run: _Run, target_id: str) -> tuple[str, str | None, bool]:
    sf = run.settings.salesforce
    status_field = sf.registration_fields.status
    record = run.salesforce.retrieve(sf.objects.registration, target_id, ["Id", status_field])
    if record is None:
        return "failed", "interrupted send; the registration is gone from Salesforce", False
    status = record.get(status_field)
    if status == "Completed":
        _set_statuses(run.engine, {target_id: "Completed"})
        return "succeeded", None, False
    return "failed", f"interrupted send; the registration is still {status}", True


def _recover_end(run: _Run, target_id: str) -> tuple[str, str | None, bool]:
    read = run.checkfront.get_booking_session(target_id)
    if not read.found:
        _store_sessions(run.engine, run.report.plan.now, [read])
        return "succeeded", None, False
    return "failed", "interrupted send; the booking session is still alive", True


# -- (d)-(f) submits ------------------------------------------------------------------------------


def _registration_statuses(run: _Run, ids: Sequence[str]) -> dict[str, Any]:
    """Id -> Status of these registrations (absent: gone), in one SOQL query."""
    sf = run.settings.salesforce
    status = identifier(sf.registration_fields.status)
    soql = f"SELECT Id, {status} FROM {identifier(sf.objects.registration)} WHERE Id IN {in_list(ids)}"
    return {
        record["Id"]: record.get(status)
        for page in run.salesforce.iter_pages(soql)
        for record in page.records
    }


def _session_attendees(run: _Run, attendee_ids: Sequence[str]) -> set[tuple[str, str]]:
    """(attendee, Session) pairs that exist as Session Attendees, one query per batch of attendees."""
    sf = run.settings.salesforce
    attendee = identifier(sf.session_fields.attendee_attendee)
    session = identifier(sf.session_fields.attendee_session)
    found: set[tuple[str, str]] = set()
    for chunk in batched(attendee_ids, run.policy.batch_size):
        soql = (
            f"SELECT {attendee}, {session} FROM {identifier(sf.objects.session_attendee)} "
            f"WHERE {attendee} IN {in_list(chunk)}"
        )
        for page in run.salesforce.iter_pages(soql):
            found.update((record[attendee], record[session]) for record in page.records)
    return found


def _submit_batch(run: _Run, batch: list[Candidate]) -> None:
    statuses = _registration_statuses(run, [c.target_id for c in batch])
    ready = _still_wanted(run, SUBMIT, batch, [_not_draft(statuses, c.target_id) for c in batch])
    # Only a status of the picklist reaches the warehouse: a spoiled read must not hide a pending
    # registration from every later plan (the next plan reads it again).
    _set_statuses(
        run.engine, {t: s for t, s in statuses.items() if s != "Draft" and s in REGISTRATION_STATUSES}
    )
    sent = [
        _send(run, c, partial(run.salesforce.apex_post, APEX_SESSION_REGISTRATION, c.request)) for c in ready
    ]
    _confirm_submits(run, [s for s in sent if s is not None])


def _not_draft(statuses: Mapping[str, Any], target_id: str) -> str | None:
    """Why the re-read rules a registration out (None: still a Draft)."""
    if target_id not in statuses:
        return "gone from Salesforce"
    status = statuses[target_id]
    if status not in REGISTRATION_STATUSES:
        return f"status read back is not a picklist value: {str(status)[:40]!r} (read again next run)"
    return None if status == "Draft" else f"no longer Draft: {status}"


def _still_wanted(
    run: _Run, kind: str, batch: list[Candidate], verdicts: list[str | None]
) -> list[Candidate]:
    """The candidates the re-read kept; the others are journaled as skipped with the reason."""
    ready: list[Candidate] = []
    skipped: list[tuple[str, str, str]] = []
    for candidate, why in zip(batch, verdicts, strict=True):
        if why is None:
            ready.append(candidate)
        else:
            skipped.append((kind, candidate.target_id, why))
    run.report.count(kind, "skipped", journal.record_skipped(run.engine, skipped, run_id=run.run_id))
    return ready


def _confirm_submits(run: _Run, sent: list[_Sent]) -> None:
    """One batched read: each sent registration is Completed and has all its Session Attendees."""
    if not sent:
        return
    statuses = _registration_statuses(run, [s.candidate.target_id for s in sent])
    wanted = {s.action_id: _pairs(s.candidate.request) for s in sent}
    attendees = sorted({attendee for pairs in wanted.values() for attendee, _ in pairs})
    existing = _session_attendees(run, attendees)
    confirmations: dict[str, dict[str, Any]] = {}
    completed: dict[str, str] = {}
    for s in sent:
        status = statuses.get(s.candidate.target_id)
        missing = sorted(wanted[s.action_id] - existing)
        confirmed = status == "Completed" and not missing
        confirmations[s.action_id] = {
            "confirmed": confirmed,
            "status": status,
            "session_attendees": len(wanted[s.action_id]) - len(missing),
            "expected": len(wanted[s.action_id]),
            "missing": [f"{a}/{session}" for a, session in missing[:20]],
        }
        if confirmed:
            completed[s.candidate.target_id] = "Completed"
            _promote(run, s)
        elif s.state == "succeeded":
            run.report.count(SUBMIT, "unconfirmed")
    run.report.count(SUBMIT, "confirmed", len(completed))
    journal.record_confirmations(run.engine, confirmations)
    _set_statuses(run.engine, completed)


def _promote(run: _Run, sent: _Sent) -> None:
    """A failed send whose target turns out complete (e.g. a retried POST that had gone through)."""
    if sent.state != "failed":
        return
    note = f"answered: {sent.error}; the confirming read found it Completed with its Session Attendees"
    journal.record_result(run.engine, sent.action_id, "succeeded", error=note)
    run.report.count(SUBMIT, "failed", -1)
    run.report.count(SUBMIT, "succeeded")


def _pairs(payload: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(person["id"], session) for person in payload["attendeeList"] for session in person["sessionIds"]}


# -- (d)-(e) ends ---------------------------------------------------------------------------------


def _end_batch(run: _Run, batch: list[Candidate]) -> None:
    reads = list(run.checkfront.get_booking_sessions([c.target_id for c in batch]))
    verdicts = [_not_stale(read, run.policy.stale_session_ttl_s) for read in reads]
    ready = _still_wanted(run, END, batch, verdicts)
    skipped = [read for read, why in zip(reads, verdicts, strict=True) if why is not None]
    _store_sessions(
        run.engine, run.report.plan.now, [r for r in skipped if isinstance(r, BookingSessionRead)]
    )
    sent = [_send(run, c, partial(run.checkfront.end_booking_session, c.target_id)) for c in ready]
    _store_sessions(
        run.engine,
        run.report.plan.now,
        ended=[s.candidate.target_id for s in sent if s is not None and s.state == "succeeded"],
    )


def _not_stale(read: BookingSessionRead | ApiError, ttl: int) -> str | None:
    """Why the re-read rules a booking session out (None: still alive and idle over the TTL)."""
    if isinstance(read, ApiError):
        return f"could not re-read it: {read}"
    if not read.found:
        return "no longer alive (ended, expired or booked)"
    try:
        age = coerce.integer(read.session.get("age"), "age")
    except RecordRejected as exc:
        return f"unreadable: {exc}"
    if age is None:  # not reached: integer() without optional=True rejects a missing age
        return "unreadable: no age"
    if age <= ttl:
        return f"idle {duration(age)} now, not over the {duration(ttl)} TTL"
    return None


# -- (e) the journaled send -----------------------------------------------------------------------


def _send(run: _Run, candidate: Candidate, call: Callable[[], Any]) -> _Sent | None:
    """planned (commit) -> sent (commit) -> the call -> succeeded / failed (commit)."""
    kind, engine = candidate.kind, run.engine
    action_id = journal.plan_action(
        engine,
        kind,
        candidate.target_id,
        reason=candidate.reason,
        request=candidate.request,
        run_id=run.run_id,
    )
    if action_id is None:
        run.report.count(kind, "conflict")  # another run holds this target right now
        return None
    journal.mark_sent(engine, action_id)
    run.report.count(kind, "sent")
    try:
        response = call()
    except BusinessError as exc:
        return _failed(run, candidate, action_id, exc, retriable=False)
    except (AuthenticationError, QuotaExhaustedError) as exc:
        _failed(run, candidate, action_id, exc, retriable=True)
        raise
    except OutcomeUnknownError as exc:
        return _read_back(run, candidate, action_id, exc)
    except ApiError as exc:
        return _failed(run, candidate, action_id, exc, retriable=True)
    journal.record_result(engine, action_id, "succeeded", response=response)
    run.report.count(kind, "succeeded")
    return _Sent(candidate, action_id, "succeeded")


def _read_back(run: _Run, candidate: Candidate, action_id: str, exc: OutcomeUnknownError) -> _Sent | None:
    """A send that may have been applied: the remote state says what happened, never a resend.

    The same reads as the recovery of a crash after the send; if they fail too, the action stays
    "sent" and the next run's recovery reads it.
    """
    kind = candidate.kind
    log.warning("%s %s: %s", kind, candidate.target_id, exc)
    run.report.count(kind, "outcome_unknown")
    resolve = {SUBMIT: _recover_submit, END: _recover_end}[kind]
    try:
        state, error, retriable = resolve(run, candidate.target_id)
    except (AuthenticationError, QuotaExhaustedError):
        raise
    except ApiError as read_exc:
        log.warning(
            "%s %s: left sent, to be read back by the next run: %s", kind, candidate.target_id, read_exc
        )
        run.report.count(kind, "unrecovered")
        return None
    note = f"{exc}; read back: {error}" if error else None
    journal.record_result(
        run.engine,
        action_id,
        state,
        response={"recovered_from": "outcome unknown"},
        error=note,
        retriable=retriable,
    )
    run.report.count(kind, state)
    return _Sent(candidate, action_id, state, note)


def _failed(run: _Run, candidate: Candidate, action_id: str, exc: ApiError, *, retriable: bool) -> _Sent:
    log.warning("%s %s failed: %s", candidate.kind, candidate.target_id, exc)
    journal.record_result(run.engine, action_id, "failed", error=str(exc), retriable=retriable)
    run.report.count(candidate.kind, "failed")
    return _Sent(candidate, action_id, "failed", str(exc))


# -- the warehouse follows what was done ----------------------------------------------------------


def _set_statuses(engine: Engine, statuses: Mapping[str, Any]) -> None:
    """Registration statuses read or made remotely, so the next plan sees them before the next pull."""
    by_status: dict[str, list[str]] = {}
    for target, status in statuses.items():
        if status is not None:
            by_status.setdefault(status, []).append(target)
    if not by_status:
        return
    with engine.begin() as connection:
        for status, ids in by_status.items():
            connection.execute(update(registrations).where(registrations.c.id.in_(ids)).values(status=status))


def _store_sessions(
    engine: Engine, now: datetime, reads: Sequence[BookingSessionRead] = (), ended: Sequence[str] = ()
) -> None:
    """Booking sessions as just read, and those just ended (missing from now on), with their lines.

    `now` is the run's clock (as the pull uses its own), so a run with a given `now` stays consistent.
    """
    shaped = [missing_booking_session(target, now) for target in ended]
    for read in reads:
        try:
            shaped.append(
                normalize_booking_session(read.session, now)
                if read.found
                else missing_booking_session(read.requested_id, now)
            )
        except RecordRejected:
            continue
    if not shaped:
        return
    ids = [s.booking_session["id"] for s in shaped]
    with engine.begin() as connection:
        upsert(connection, booking_sessions, [s.booking_session for s in shaped])
        lines = [line for s in shaped for line in s.lines]
        replace_children(connection, booking_session_lines, "booking_session_id", ids, lines)
