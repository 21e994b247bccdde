"""The fault soak: the full `main` job run again and again against a sandbox that fails on purpose.

Each seeded run starts a generated sandbox and an empty warehouse, installs a seeded random fault
plan on every endpoint regsync calls (429 with Retry-After, 500/503, dropped connections, slow and
malformed answers, wrong field types) together with the Salesforce-wide faults (token expiry,
QUERY_TIMEOUT for wide windows, REQUEST_LIMIT_EXCEEDED, and an org limit low enough that the quota
governor defers), and runs `main` a few times. Those runs may end partial, deferred or failed;
they must not raise. Then the faults are cleared, one clean `main` runs, time moves past the
safety lag and one clean sync picks up what the write-backs changed, and the result is judged:

- the warehouse against the sandbox's own store (tests.support.remote_truth): nothing lost,
  nothing duplicated, nothing different, and every record quarantined on the way recovered;
- the writes: none reached the emulator twice, and every pending registration / stale booking
  session of the generator's truth was acted on exactly once, nothing else at all.

Every problem found is either attributed to one of the known CAUSES (regsync bugs this soak
found, each with the evidence that ties a problem to it) or counted as unexplained: a new
problem cannot hide behind a known one.

The soak owns its warehouse: `warehouse_url` must point at a scratch database (or schema), which
is emptied before each run.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, select

from regsync.config import Settings
from regsync.jobs.pull import run_pull
from regsync.jobs.registry import run_job
from regsync.sandbox import Sandbox
from regsync.sandbox.http import LoggedRequest, SandboxRequest, SandboxResponse
from regsync.sandbox.store import REGISTRATION, SandboxStore
from regsync.warehouse.engine import make_engine, migrate
from regsync.warehouse.tables import runs
from tests.support.remote_truth import (
    BOOKING_CODE,
    PAYLOAD,
    STATUS,
    Comparison,
    Problem,
    compare_with_store,
    quarantined_records,
)
from tests.support.writes import (
    END_ENDPOINT,
    SUBMIT_ENDPOINT,
    _target,
    writes_reached,
    writes_sent_twice,
)

# Every endpoint regsync calls (query_more past 2,000 rows, retrieve only to recover a crashed write).
SALESFORCE_ENDPOINTS = (
    "salesforce.oauth.token",
    "salesforce.query",
    "salesforce.query_more",
    "salesforce.retrieve",
    "salesforce.apex.session_registration",
)
CHECKFRONT_ENDPOINTS = (
    "checkfront.booking_session.get",
    "checkfront.booking_session.end",
    "checkfront.booking.index",
    "checkfront.booking.get",
)
ENDPOINTS = SALESFORCE_ENDPOINTS + CHECKFRONT_ENDPOINTS
WRITE_ENDPOINTS = (SUBMIT_ENDPOINT, END_ENDPOINT)
# Called once per record, hundreds of times a run: a lower rate still fires every kind many times.
BUSY = ("checkfront.booking_session.get", "checkfront.booking.get")
# Fields a wrong_type fault spoils, per endpoint (None: the record's first field other than its id).
# Only fields where the wrong type is no plausible value: a number where Checkfront sends money as
# text ("500.00" -> 12345) is a different amount, which no client could tell from a real one.
WRONG_FIELDS: dict[str, tuple[str | None, ...]] = {
    "salesforce.query": (
        None,
        "conference360__Status__c",
        "SystemModstamp",
        "IsDeleted",
        "conference360__Attendee_JSON__c",
        "Checkfront_Booking_Code__c",
    ),
    "checkfront.booking.index": (None, "status_id", "code", "created_date"),
    "checkfront.booking_session.get": (None, "item", "qty"),
    "checkfront.booking.get": (None, "order"),
}
WRONG_FIELDS["salesforce.query_more"] = WRONG_FIELDS["salesforce.query"]
# The kinds a plan injects, as sandbox.faults.summary() names them.
PLANNED_KINDS = (
    "status_429",
    "status_500",
    "status_503",
    "drop",
    "slow",
    "malformed",
    "wrong_type",
    "token_expired",
    "query_timeout",
    "request_limit_exceeded",
)
WRITES_ON = {"enabled": True, "max_writes": 100_000, "max_share": 1.0}
REGISTRATION_STATUSES = ("Draft", "To Process", "Completed", "Failed")
# Regsync bugs this soak found. A problem is put down to one only on evidence (see _attribute).
CAUSES = {
    "quarantine_not_retried": (
        "a record quarantined once is never read again when its source is fine: the stream's "
        "watermark moves past it (streams/incremental.py pull_soql_stream for registrations and "
        "Sessions; streams/checkfront.py pull_bookings for the booking index and, since "
        "e967249, pull_booking_sessions, whose pass watermark moves on when reads were only "
        "quarantined); what only it names (its cart, its booking's lines, its write-back) is lost too"
    ),
    "unchecked_status_written": (
        "submit-pending writes the status its re-read returned into registrations.status without "
        "validating it (actions/apply.py _submit_batch -> _set_statuses): a wrong-typed status "
        "hides a pending registration from every later plan until the record changes remotely"
    ),
    "write_resent_after_spoiled_answer": (
        "a write whose answer was spoiled after the remote applied it (malformed body) is sent "
        "again by the generic retry policy (clients/salesforce.py apex_post and "
        "clients/checkfront.py end_booking_session run under call_with_retry)"
    ),
}


def no_sleep(_seconds: float) -> None:
    """The retry policy's waits, skipped: the soak is about outcomes, not about waiting."""


@dataclass
class SoakReport:
    """What a soak did and found; `ok` is the verdict, as_dict() the figures for benchmarks."""

    runs: int = 0
    registrations: int = 0
    seed: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)  # kind -> count, all runs
    faults_total: int = 0
    faults_by_endpoint: dict[str, int] = field(default_factory=dict)  # rules fired, per endpoint
    quota_governor_deferrals: int = 0  # jobs the client-side governor deferred (no sandbox fault)
    endpoints_called: list[str] = field(default_factory=list)
    endpoints_without_faults: list[str] = field(default_factory=list)  # called, not in the plan
    records_compared: int = 0
    records_lost: int = 0
    records_duplicated: int = 0
    differences: int = 0
    difference_samples: list[str] = field(default_factory=list)
    by_entity: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantined: int = 0  # distinct records quarantined along the way
    quarantined_not_recovered: int = 0  # of those, still lost or different after the clean runs
    writes_reached: int = 0
    writes_sent_twice: int = 0
    writes_refused_by_platform: int = 0  # 401/403 answered before Apex ran: resending is a retry
    writes_missing: int = 0  # truth targets never written
    writes_unexpected: int = 0  # written targets outside the truth
    write_samples: list[str] = field(default_factory=list)
    attributed: dict[str, int] = field(default_factory=dict)  # CAUSES key -> problems put down to it
    attributed_samples: dict[str, list[str]] = field(default_factory=dict)
    unexplained: int = 0  # problems no known cause accounts for
    unexplained_samples: list[str] = field(default_factory=list)
    jobs_run: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # every job
    clean_outcomes: Counter[str] = field(default_factory=Counter)  # the jobs run after the faults
    crashes: list[str] = field(default_factory=list)  # exceptions a job raised or logged as a crash
    seconds: float = 0.0
    per_run: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems(self) -> int:
        """Every failed check, counted once per record or write target."""
        return (
            self.records_lost
            + self.records_duplicated
            + self.differences
            + self.writes_sent_twice
            + self.writes_missing
            + self.writes_unexpected
            + len(self.crashes)
        )

    @property
    def ok(self) -> bool:
        """Everything the soak checks holds."""
        return self.problems == 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcomes"] = dict(self.outcomes)
        data["clean_outcomes"] = dict(self.clean_outcomes)
        data["problems"] = self.problems
        data["ok"] = self.ok
        return data


# -- the fault plan -------------------------------------------------------------------------------


def fault_rules(rng: random.Random) -> list[dict[str, Any]]:
    """One rule per endpoint and kind, each firing on a seeded fraction of that endpoint's calls.

    One rule per endpoint (never a wrong type: some answers have no field for it) also fires on one
    of its first three calls, so an endpoint called only a few times in a round (the writes, the
    login) meets a fault all the same.
    """
    rules: list[dict[str, Any]] = []
    for endpoint in ENDPOINTS:
        low, high = (0.006, 0.02) if endpoint in BUSY else (0.03, 0.07)
        mine: list[dict[str, Any]] = []
        if endpoint != "salesforce.oauth.token":  # Salesforce's login throttles with invalid_grant
            mine.append({"kind": "status", "status": 429, "retry_after": rng.choice([0, 0.5, 1, 2])})
        mine.append({"kind": "status", "status": 500})
        mine.append({"kind": "status", "status": 503})
        if rng.random() < 0.5:
            mine[-1]["retry_after"] = rng.choice([0, 1])
        mine.append({"kind": "drop"})
        mine.append({"kind": "slow", "delay_s": round(rng.uniform(0.05, 0.3), 3)})
        mine.append({"kind": "malformed"})
        rng.choice(mine)["nth"] = [rng.randint(1, 3)]
        rules += [
            {"endpoint": endpoint, **rule, "fraction": round(rng.uniform(low, high), 4)} for rule in mine
        ]
        targets = WRONG_FIELDS.get(endpoint, (None,))
        for target in targets:  # together, as often as any other kind
            wrong: dict[str, Any] = {
                "endpoint": endpoint,
                "kind": "wrong_type",
                "fraction": round(rng.uniform(low, high) / len(targets), 4),
            }
            if target is not None:
                wrong["target_field"] = target
            rules.append(wrong)
    rng.shuffle(rules)  # which rule fires first on a call is part of the seed
    return rules


@dataclass
class _Round:
    """What one faulty `main` run meets besides the per-endpoint rules (calls from its start)."""

    token_expire_in: int | None
    query_timeout_days: float | None
    request_limit_in: int | None = None
    governor_in: int | None = None


def _rounds(rng: random.Random, count: int) -> list[_Round]:
    """The Salesforce-wide faults of each faulty round.

    Token expiry: every round, a call or two in (a later round may make only two or three calls).
    QUERY_TIMEOUT: always the first round (the backfill, whose window spans years), now and then a
    later one; the emulator also times out queries without a SystemModstamp window (the write-backs'
    re-reads), so such a round submits nothing and the next one finds the pending work.
    REQUEST_LIMIT_EXCEEDED: the second round, within its first calls or in the middle of its
    submits; the quota governor (an org limit that Sforce-Limit-Info shows 80% used): the third.
    """
    rounds = [
        _Round(
            token_expire_in=rng.randint(1, 2),
            query_timeout_days=rng.choice([60.0, 120.0, 240.0]) if i == 0 or rng.random() < 0.25 else None,
        )
        for i in range(count)
    ]
    if count >= 2:
        rounds[1].request_limit_in = rng.randint(1, 6)
    else:
        rounds[0].request_limit_in = rng.randint(20, 60)
    rounds[min(2, count - 1)].governor_in = rng.randint(1, 2)
    return rounds


def _install(
    sandbox: Sandbox, rules: list[dict[str, Any]], plan: _Round, seed: int, max_share: float
) -> None:
    assert sandbox.salesforce is not None
    used = sandbox.salesforce.api_usage
    platform: dict[str, Any] = {}
    if plan.token_expire_in is not None:
        platform["token_expire_after"] = plan.token_expire_in  # counted from when the plan is added
    if plan.query_timeout_days is not None:
        platform["query_timeout_window_s"] = plan.query_timeout_days * 86400
    if plan.request_limit_in is not None:
        platform["request_limit_after"] = plan.request_limit_in
    sandbox.faults.load({"seed": seed, "rules": rules, "salesforce": platform})
    if plan.governor_in is not None:
        # The org's limit, as Sforce-Limit-Info reports it, is reached after a few more calls.
        sandbox.salesforce.daily_limit = max(used + 1, math.ceil((used + plan.governor_in) / max_share))


def _fired_by_endpoint(sandbox: Sandbox) -> Counter[str]:
    fired: Counter[str] = Counter()
    for rule in sandbox.faults.rules:
        fired[rule.endpoint] += rule.fired
    return fired


def _watch_spoiled_writes(sandbox: Sandbox) -> set[tuple[str, str]]:
    """Collects the targets of writes whose answer a fault spoiled after the emulator applied them.

    The request log marks only the faults that replace an answer; this is the evidence that a write
    sent twice followed an answer the client could not read.
    """
    server = sandbox._server
    assert server is not None
    assert server.after_hook is not None
    original = server.after_hook
    spoiled: set[tuple[str, str]] = set()

    def after(endpoint: str, request: SandboxRequest, response: SandboxResponse) -> SandboxResponse:
        before = (response.body, response.delay_s)
        answer = original(endpoint, request, response)
        if endpoint in WRITE_ENDPOINTS and (answer.body, answer.delay_s) != before:
            logged = LoggedRequest(
                0, 0.0, request.method, request.path, request.query, request.body, answer.status, endpoint
            )
            target = _target(logged)
            if target is not None:
                spoiled.add(target)
        return answer

    server.after_hook = after
    return spoiled


# -- running --------------------------------------------------------------------------------------


class _Crashes(logging.Handler):
    """Collects log records that carry a traceback: a job that caught an unexpected exception."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            self.found.append(f"{record.getMessage()} [{type(exc).__name__}: {exc}]")


@contextmanager
def _watching() -> Iterator[_Crashes]:
    handler = _Crashes()
    logger = logging.getLogger("regsync")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def fresh_warehouse(url: str) -> Engine:
    """An empty, migrated warehouse at `url`: every table there is dropped first (scratch only)."""
    engine = make_engine(url)
    existing = MetaData()
    existing.reflect(bind=engine)
    existing.drop_all(bind=engine)
    migrate(engine)
    return engine


@dataclass
class _Run:
    """One seeded run: what it did and what its judgement found."""

    index: int
    seed: int
    outcomes: Counter[str] = field(default_factory=Counter)
    clean_outcomes: Counter[str] = field(default_factory=Counter)
    jobs: int = 0
    crashes: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    fired: Counter[str] = field(default_factory=Counter)
    endpoints: set[str] = field(default_factory=set)
    governor_deferrals: int = 0
    comparison: Comparison = field(default_factory=Comparison)
    quarantined: set[tuple[str, str]] = field(default_factory=set)
    quarantined_not_recovered: int = 0
    writes: dict[str, Any] = field(default_factory=dict)
    attributed: dict[str, list[str]] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)

    def job(self, what: str, call: Callable[[], Any], *, clean: bool = False) -> None:
        """Run one job; count its outcome; an exception escaping it is a crash, recorded, not raised."""
        self.jobs += 1
        try:
            outcome = call().outcome
        except Exception as exc:  # the soak's finding, reported with the rest
            self.crashes.append(f"seed {self.seed} {what}: {type(exc).__name__}: {exc}")
            outcome = "crashed"
        self.outcomes[outcome] += 1
        if clean:
            self.clean_outcomes[outcome] += 1

    def summary(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "seed": self.seed,
            "jobs": self.jobs,
            "outcomes": dict(self.outcomes),
            "clean_outcomes": dict(self.clean_outcomes),
            "faults_injected": dict(sorted(self.kinds.items())),
            "records_compared": c.compared,
            "records_lost": c.lost,
            "records_duplicated": c.duplicated,
            "differences": c.differing,
            "quarantined": len(self.quarantined),
            "quarantined_not_recovered": self.quarantined_not_recovered,
            **{k: v for k, v in self.writes.items() if k != "write_samples"},
            "attributed": {cause: len(found) for cause, found in self.attributed.items()},
            "unexplained": len(self.unexplained),
        }


def _settings(sandbox: Sandbox, warehouse_url: str, workdir: Path) -> Settings:
    return sandbox.settings(
        warehouse_url,
        actions=WRITES_ON,
        jobs={"reports_dir": str(workdir / "reports"), "report_format": "csv"},
    )


def _governor_deferrals(engine: Engine) -> int:
    """Ledger rows the client-side governor deferred (the org's own REQUEST_LIMIT_EXCEEDED aside)."""
    with engine.connect() as connection:
        rows = connection.execute(select(runs.c.message).where(runs.c.outcome == "deferred"))
        return sum(1 for (message,) in rows if message and "configured share" in message)


def run_soak(
    *,
    runs: int,
    registrations: int,
    seed: int,
    warehouse_url: str,
    workdir: Path,
    sleep: Callable[[float], None] = no_sleep,
    faulty_jobs: int = 4,
    max_samples: int = 10,
) -> SoakReport:
    """Soak `runs` seeded runs (seed, seed+1, ...) of `registrations` each; see the module docstring.

    faulty_jobs: `main` runs with faults per seeded run (the Salesforce-wide faults take three).
    sleep: replaces the retry policy's waits (Retry-After included); time.sleep honours them.
    """
    if runs < 1 or faulty_jobs < 1:
        raise ValueError("a soak needs at least one run of at least one faulty job")
    if warehouse_url.startswith("sqlite") and not warehouse_url.startswith("sqlite:///"):
        raise ValueError(
            "the soak's warehouse must be a file or a server: each connection to sqlite:// is empty"
        )
    started = time.perf_counter()
    report = SoakReport(runs=runs, registrations=registrations, seed=seed)
    kinds: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    called: set[str] = set()
    attributed: dict[str, list[str]] = {}
    entities: dict[str, Counter[str]] = {}
    with _watching() as crashes:
        for index in range(runs):
            run = _Run(index, seed + index)
            run_dir = workdir / f"run-{index:03d}"
            run_dir.mkdir(parents=True, exist_ok=True)
            _one_run(run, registrations, warehouse_url, run_dir, sleep, faulty_jobs)
            report.per_run.append(run.summary())
            kinds.update(run.kinds)
            fired.update(run.fired)
            called |= run.endpoints
            report.jobs_run += run.jobs
            report.outcomes.update(run.outcomes)
            report.clean_outcomes.update(run.clean_outcomes)
            report.crashes += run.crashes
            report.quota_governor_deferrals += run.governor_deferrals
            c = run.comparison
            report.records_compared += c.compared
            report.records_lost += c.lost
            report.records_duplicated += c.duplicated
            report.differences += c.differing
            report.difference_samples += [str(p) for p in c.problems][
                : max_samples - len(report.difference_samples)
            ]
            for entity, tally in c.tallies.items():
                entities.setdefault(entity, Counter()).update(asdict(tally))
            report.quarantined += len(run.quarantined)
            report.quarantined_not_recovered += run.quarantined_not_recovered
            for name in ("writes_reached", "writes_sent_twice", "writes_refused_by_platform"):
                setattr(report, name, getattr(report, name) + run.writes[name])
            report.writes_missing += run.writes["writes_missing"]
            report.writes_unexpected += run.writes["writes_unexpected"]
            report.write_samples += run.writes["write_samples"][: max_samples - len(report.write_samples)]
            for cause, found in run.attributed.items():
                attributed.setdefault(cause, []).extend(f"seed {run.seed}: {text}" for text in found)
            report.unexplained += len(run.unexplained)
            report.unexplained_samples += [f"seed {run.seed}: {text}" for text in run.unexplained][
                : max_samples - len(report.unexplained_samples)
            ]
        report.crashes += [f"caught and logged by regsync: {text}" for text in crashes.found]
    report.unexplained += len(report.crashes)
    report.faults_injected = dict(sorted(kinds.items()))
    report.faults_total = sum(kinds.values())
    report.faults_by_endpoint = dict(sorted(fired.items()))
    report.endpoints_called = sorted(called)
    report.endpoints_without_faults = sorted(called - set(ENDPOINTS))
    report.by_entity = {entity: dict(tally) for entity, tally in entities.items()}
    report.attributed = {cause: len(found) for cause, found in attributed.items()}
    report.attributed_samples = {cause: found[:max_samples] for cause, found in attributed.items()}
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _one_run(
    run: _Run,
    registrations: int,
    warehouse_url: str,
    workdir: Path,
    sleep: Callable[[float], None],
    faulty_jobs: int,
) -> None:
    rng = random.Random(run.seed)
    with Sandbox.generated(registrations, seed=run.seed, fault_seed=run.seed) as sandbox:
        assert sandbox.salesforce is not None
        spoiled = _watch_spoiled_writes(sandbox)
        engine = fresh_warehouse(warehouse_url)
        try:
            settings = _settings(sandbox, warehouse_url, workdir)
            normal_limit = sandbox.salesforce.daily_limit
            first_job = time.time()
            for number, plan in enumerate(_rounds(rng, faulty_jobs)):
                _install(sandbox, fault_rules(rng), plan, run.seed * 1000 + number, settings.quota.max_share)
                run.job("main (faults)", lambda: run_job("main", settings, engine=engine, sleep=sleep))
                run.fired.update(_fired_by_endpoint(sandbox))
                sandbox.faults.clear()
                sandbox.salesforce.daily_limit = normal_limit
            run.quarantined = quarantined_records(engine, sandbox.store)
            run.job("main (clean)", lambda: run_job("main", settings, engine=engine, sleep=sleep), clean=True)
            # Time passes beyond the safety lag on both sides, so the sync reads what the writes changed.
            lag = settings.sync.safety_lag_s + 1
            sandbox.store.clock.advance(lag)

            def later() -> datetime:
                return datetime.now(UTC) + timedelta(seconds=lag)

            run.job(
                "sync (clean)",
                lambda: run_pull(settings, engine=engine, job="sync", now=later, sleep=sleep),
                clean=True,
            )
            run.quarantined |= quarantined_records(engine, sandbox.store)
            window_start = first_job - settings.sync.booking_window_days * 86400
            run.comparison = compare_with_store(engine, sandbox.store, booking_window_start=window_start)
            run.governor_deferrals = _governor_deferrals(engine)
        finally:
            engine.dispose()
        requests = sandbox.requests
        run.kinds.update({k: v for k, v in sandbox.faults.summary().items() if not k.startswith("_")})
        run.endpoints = {r.endpoint for r in requests}
        truth = sandbox.truth
        _judge(
            run, sandbox.store, requests, truth.pending_registrations, truth.stale_booking_sessions, spoiled
        )


def _platform_refusal(request: LoggedRequest) -> bool:
    """A write the emulator's auth layer refused (401 token expired, 403 request limit): Apex never ran."""
    return request.endpoint in WRITE_ENDPOINTS and request.fault is None and request.status in (401, 403)


def _judge(
    run: _Run,
    store: SandboxStore,
    requests: list[LoggedRequest],
    pending: list[str],
    stale: list[str],
    spoiled: set[tuple[str, str]],
) -> None:
    """Writes against the truth, then every problem attributed to a known cause or left unexplained."""
    kept = [r for r in requests if not _platform_refusal(r)]
    reached = writes_reached(kept)
    wanted = {("submit", target) for target in pending} | {("end", target) for target in stale}
    missing = sorted(wanted - set(reached))
    unexpected = sorted(set(reached) - wanted)
    twice = sorted(target for target, count in reached.items() if count > 1)
    run.writes = {
        "writes_reached": sum(reached.values()),
        "writes_sent_twice": writes_sent_twice(kept),
        "writes_refused_by_platform": len(requests) - len(kept),
        "writes_missing": len(missing),
        "writes_unexpected": len(unexpected),
        "write_samples": [f"sent {reached[t]} times: {t[0]} {t[1]}" for t in twice]
        + [f"never sent: {kind} {target}" for kind, target in missing]
        + [f"not in the truth, sent anyway: {kind} {target}" for kind, target in unexpected],
    }
    problems = run.comparison.problems
    run.quarantined_not_recovered = len({(p.source, p.owner) for p in problems} & run.quarantined)
    _attribute(run, store, problems, missing, unexpected, twice, spoiled, reached)


def _attribute(
    run: _Run,
    store: SandboxStore,
    problems: list[Problem],
    missing: list[tuple[str, str]],
    unexpected: list[tuple[str, str]],
    twice: list[tuple[str, str]],
    spoiled: set[tuple[str, str]],
    reached: Counter[tuple[str, str]],
) -> None:
    """Put each problem down to a known cause on its evidence, or count it unexplained.

    quarantine_not_retried: the record (or, lost, what only lost registrations named: their carts,
    their bookings' lines, their submit or the end of their cart) was quarantined along the way.
    unchecked_status_written: the warehouse holds a status that is no registration status (and the
    registration's submit never went out). write_resent_after_spoiled_answer: a target written
    twice whose answer a fault spoiled.
    """
    found: dict[str, list[str]] = {cause: [] for cause in CAUSES}
    unexplained: list[str] = []
    # Registrations regsync needs per cart and per booking code (all but Completed with a code, as
    # for carts; every one for codes), from the store.
    carts: dict[str, set[str]] = {}
    codes: dict[str, set[str]] = {}
    for record_id, record in store.salesforce.tables[REGISTRATION].items():
        text = record.get(PAYLOAD)
        cart = json.loads(text).get("sessionId") if text else None
        if cart and not (record[STATUS] == "Completed" and record.get(BOOKING_CODE)):
            carts.setdefault(cart, set()).add(record_id)
        if record.get(BOOKING_CODE):
            codes.setdefault(record[BOOKING_CODE], set()).add(record_id)
    lost_to_quarantine = {
        p.owner for p in problems if p.entity == "registration" and (p.source, p.owner) in run.quarantined
    }
    bad_status = {
        p.owner
        for p in problems
        if p.entity == "registration" and p.what == "differing" and p.held[1] not in REGISTRATION_STATUSES
    }

    def only_lost_name(names: set[str] | None) -> bool:
        return bool(names) and names is not None and names <= lost_to_quarantine

    for p in problems:
        if (p.source, p.owner) in run.quarantined:
            found["quarantine_not_retried"].append(f"{p} (quarantined)")
        elif p.what == "lost" and p.entity == "booking_session" and only_lost_name(carts.get(p.owner)):
            found["quarantine_not_retried"].append(f"{p} (named only by registrations lost to quarantine)")
        elif p.what == "lost" and p.entity == "booking_line" and only_lost_name(codes.get(p.owner)):
            found["quarantine_not_retried"].append(
                f"{p} (its code named only by registrations lost to quarantine)"
            )
        elif p.owner in bad_status and p.entity == "registration":
            found["unchecked_status_written"].append(str(p))
        else:
            unexplained.append(str(p))
    for kind, target in missing:
        if kind == "submit" and target in lost_to_quarantine:
            found["quarantine_not_retried"].append(f"never submitted: {target} (lost to quarantine)")
        elif kind == "submit" and target in bad_status:
            found["unchecked_status_written"].append(f"never submitted: {target} (unreadable status held)")
        elif kind == "end" and only_lost_name(carts.get(target)):
            found["quarantine_not_retried"].append(
                f"never ended: {target} (named only by lost registrations)"
            )
        else:
            unexplained.append(f"never sent: {kind} {target}")
    for kind, target in twice:
        if (kind, target) in spoiled:
            found["write_resent_after_spoiled_answer"].append(
                f"{kind} {target} reached the remote {reached[(kind, target)]} times after a spoiled answer"
            )
        else:
            unexplained.append(f"sent {reached[(kind, target)]} times: {kind} {target}")
    unexplained += [f"not in the truth, sent anyway: {kind} {target}" for kind, target in unexpected]
    run.attributed = {cause: texts for cause, texts in found.items() if texts}
    run.unexplained = unexplained
