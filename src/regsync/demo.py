"""`make demo`: the main job on the embedded default (sandbox + SQLite), explained as it goes."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from regsync.actions.apply import run_actions
from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.salesforce import SalesforceClient
from regsync.clients.usage import ApiUsage
from regsync.config import load_settings
from regsync.exitcodes import ExitCode
from regsync.jobs.pull import run_pull
from regsync.logs import setup_logging
from regsync.reconcile.run import run_reconcile
from regsync.sandbox import Sandbox
from regsync.sandbox.generator import compute_truth
from regsync.warehouse.engine import open_warehouse
from regsync.warehouse.status import table_counts


def run_demo(*, registrations: int, seed: int, workdir: Path, console: Console) -> int:
    """Start a sandbox, point regsync at it, run the job, say what happened; returns the exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "regsync.db"
    for stale in workdir.glob("regsync.db*"):
        stale.unlink()
    setup_logging("text", level=logging.WARNING)
    console.rule("[bold]regsync demo")
    console.print(f"1. Generating {registrations} registrations (seed {seed}) and starting the sandbox...")
    with Sandbox.generated(registrations, seed, state_dir=workdir / "sandbox") as sandbox:
        # Writes on, and a breaker wide enough for generated data (which plants ~25 % pending drafts).
        config_path, env_path = sandbox.write_config(
            workdir / "regsync.toml",
            f"sqlite:///{database.resolve()}",
            extra={"actions": {"enabled": True, "max_share": 0.5, "max_writes": 1000}},
        )
        settings = load_settings(config_path)
        console.print(f"   sandbox on {sandbox.base_url} (TLS, CA {sandbox.ca_path})")
        console.print(f"   config written to {config_path} (+ secrets in {env_path.name})")

        console.print("2. The sandbox answers like Salesforce: a paged SOQL query with simple-salesforce")
        usage = ApiUsage()
        salesforce = SalesforceClient(settings.salesforce, settings.retry, usage)
        soql = (
            "SELECT Id, conference360__Status__c, SystemModstamp "
            "FROM conference360__Event_Registration_Submission__c ORDER BY SystemModstamp, Id"
        )
        pages = rows = 0
        first_id = None
        for page in salesforce.iter_pages(soql):
            pages += 1
            rows += len(page.records)
            first_id = first_id or (page.records[0]["Id"] if page.records else None)
        console.print(f"   {rows} registrations in {pages} page(s) of at most 2,000; first Id {first_id}")

        console.print("3. ...and like Checkfront: one booking session read over HTTPS with httpx")
        checkfront = CheckfrontClient(settings.checkfront, settings.retry, usage)
        session_id = _some_booking_session(sandbox)
        read = checkfront.get_booking_session(session_id)
        lines = read.session.get("item") or {}
        console.print(
            f"   booking session {session_id}: age {read.session.get('age')}s, "
            f"{len(lines)} line(s), total {read.session.get('total')} {read.session.get('currency_id')}"
        )
        checkfront.close()

        console.print("4. regsync sync: pulling registrations, Sessions, booking sessions and bookings")
        started = time.perf_counter()
        report = run_pull(settings, job="sync")
        seconds = time.perf_counter() - started
        table = Table(title=f"sync run {report.run_id[:8]}: {report.outcome} in {seconds:.1f}s")
        table.add_column("stream")
        table.add_column("what happened")
        for stream in report.streams:
            table.add_row(stream.stream, ", ".join(f"{k}={v}" for k, v in sorted(stream.counts.items()) if v))
        console.print(table)
        console.print(f"   API calls: {report.api_calls}")
        counts = table_counts(settings)
        console.print("   warehouse rows: " + ", ".join(f"{k}={v}" for k, v in counts.items()))

        console.print("5. A second sync finds nothing new (incremental, by SystemModstamp watermark)")
        again = run_pull(settings, job="sync")
        console.print(f"   outcome {again.outcome}; API calls {again.api_calls}")

        console.print("6. regsync submit-pending + close-stale: the write-backs, journaled, exactly once")
        acted = run_actions(settings)
        done = Table(title=f"write-backs: {acted.outcome}")
        done.add_column("action")
        done.add_column("what happened")
        for kind in acted.plan.candidates:
            shown = ", ".join(
                f"{k.split('.', 1)[1]}={v}"
                for k, v in sorted(acted.counts.items())
                if k.startswith(kind) and v
            )
            done.add_row(kind, shown or "nothing to do")
        console.print(done)
        expected = (
            (len(sandbox.truth.pending_registrations), len(sandbox.truth.stale_booking_sessions))
            if sandbox.truth
            else (0, 0)
        )
        console.print(
            f"   generator truth: {expected[0]} pending registrations, {expected[1]} stale booking sessions"
        )
        console.print("   a second run finds nothing left to do: " + run_actions(settings).outcome)
        after = run_pull(settings, job="sync")
        console.print(f"   sync after the write-backs: {after.outcome}")

        console.print("7. regsync reconcile: every mismatch between the two systems, as CSV and HTML")
        reports = workdir / "reports"
        result = run_reconcile(
            open_warehouse(settings.warehouse.url),
            settings.reconcile,
            out_dir=reports,
            fmt="both",
            now=datetime.now(UTC),
            instance_url=sandbox.base_url,
            registration_object=settings.salesforce.objects.registration,
            checkfront_url=settings.checkfront.base_url,
        )
        found = Table(title=f"{result.total} mismatch(es)")
        found.add_column("reason code")
        found.add_column("found", justify="right")
        found.add_column("expected (ground truth)", justify="right")
        # The generator's reference implementation of docs/rules.md, run on the sandbox as it is now
        # (after the write-backs: submits resolved DRAFT_BOOKING_PAID; ending abandoned drafts'
        # booking sessions turned those drafts into BOOKING_SESSION_MISSING).
        truth_now = (
            compute_truth(sandbox.store, sandbox.truth.thresholds, time.time()) if sandbox.truth else None
        )
        planted = Counter(m.code for m in (truth_now.mismatches if truth_now else []))
        for code, number in result.counts.items():
            found.add_row(code, str(number), str(planted[code]))
        console.print(found)
    console.rule()
    console.print(f"warehouse: {database}")
    for path in result.paths:
        console.print(f"report:    {path}")
    console.print(f"inspect it: regsync --config {config_path} status")
    ok = report.outcome in ("ok", "partial") and again.outcome in ("ok", "partial")
    return int(ExitCode.OK if ok else ExitCode.FAILED)


def _some_booking_session(sandbox: Sandbox) -> str:
    """A live booking session of the generated data (for the demo's read)."""
    store = sandbox.store.checkfront
    for session_id, session in store.booking_sessions.items():
        if session.get("ended") is None and session.get("lines"):
            return session_id
    return next(iter(store.booking_sessions))
