"""The command line: parse, call one function, map its outcome to an exit code."""

from __future__ import annotations

import gc
import json
import math
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from regsync import __version__
from regsync.cli.common import UNBOUNDED_WIDTH, console, out, settings_or_exit, state, stop_flag
from regsync.cli.errors import LOG_FORMATS, OUTPUT, ReadableErrors, fail
from regsync.cli.jobs import register as register_jobs
from regsync.cli.process import limit_malloc_arenas
from regsync.config import Settings, masked
from regsync.errors import ConfigError
from regsync.exitcodes import ExitCode

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from regsync.jobs.pull import PullReport

# The commands import what they run inside their bodies, on purpose: every invocation (`--help`,
# `version`, `config check`) loads this module and should not pay for the API clients, the
# warehouse machinery or pandas that only one command needs.
app = typer.Typer(
    cls=ReadableErrors,  # a failure regsync understands is one line and an exit code, not a traceback
    help="regsync keeps Blackthorn Events registrations (Salesforce) and Checkfront in step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML config file (default: $REGSYNC_CONFIG).",
            envvar="REGSYNC_CONFIG",
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="KEY=VALUE file of REGSYNC_* secrets (default: <config>.env)."),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option("--log-format", help="auto | rich | text | json (JSON lines for cron/shippers)."),
    ] = "auto",
) -> None:
    """Global options."""
    limit_malloc_arenas()  # before any command starts a thread
    if log_format not in LOG_FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(LOG_FORMATS)}", param_hint="--log-format")
    state.config = config
    state.env_file = env_file
    state.log_format = OUTPUT.log_format = log_format


OUTCOME_EXIT = {
    "ok": ExitCode.OK,
    "partial": ExitCode.PARTIAL,
    "deferred": ExitCode.DEFERRED,
    "failed": ExitCode.FAILED,
}


@contextmanager
def _writer_lock(
    settings: Settings, job: str, stop: threading.Event | None = None, *, wait: bool = False
) -> Iterator[Engine]:
    """The warehouse, held under the same lock the scheduled jobs take (one writer at a time).

    A second writer exits at once with LOCK_HELD (with `wait`: polls until the lock is free, or a
    signal); a lock lost while held asks the job to stop.
    """
    from regsync.warehouse.locks import LOCK_NAME, LockHeld, hold, never, open_warehouse_locked

    engine = open_warehouse_locked(settings.warehouse.url)
    jobs = settings.jobs
    try:
        with hold(
            engine,
            LOCK_NAME,
            job=job,
            lease_s=jobs.lock_lease_s,
            heartbeat_s=jobs.lock_heartbeat_s,
            wait=wait,
            poll_s=jobs.lock_poll_s,
            should_stop=stop.is_set if stop is not None else never,
        ) as lock:
            if stop is not None:

                def stop_when_lost() -> None:
                    lock.lost.wait()
                    stop.set()

                threading.Thread(target=stop_when_lost, daemon=True).start()
            yield engine
    except LockHeld as exc:
        fail(ExitCode.LOCK_HELD, str(exc))
    finally:
        engine.dispose()


def _print_pull(report: PullReport) -> None:
    table = Table(title=f"run {report.run_id}: {report.outcome}", show_lines=False)
    table.add_column("stream")
    table.add_column("counts")
    for stream in report.streams:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(stream.counts.items()) if v)
        table.add_row(stream.stream, shown or "-")
    out.print(table)
    calls = ", ".join(f"{k}={v}" for k, v in report.api_calls.items())
    out.print(f"API calls: {calls or 'none'}")
    if report.message:
        out.print(f"note: {report.message}")


def _streams(stream: list[str] | None) -> tuple[str, ...]:
    """The --stream values, checked before anything is opened (a typo is a usage error, exit 2)."""
    from regsync.jobs.pull import STREAM_ORDER

    unknown = [name for name in stream or () if name not in STREAM_ORDER]
    if unknown:
        fail(
            ExitCode.USAGE,
            f"--stream: unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAM_ORDER)}",
        )
    return tuple(stream) if stream else STREAM_ORDER


WAIT = typer.Option("--wait", help="If another run holds the lock, wait for it (default: exit 5 at once).")


def _run_pull_command(job: str, *, wait: bool = False, **kwargs: Any) -> None:
    from regsync.extract.progress import progress_reporter
    from regsync.jobs.pull import run_pull

    settings = settings_or_exit()
    stop = stop_flag()
    try:
        with (
            _writer_lock(settings, job, stop, wait=wait) as engine,
            progress_reporter(console) as progress,
        ):
            report = run_pull(
                settings, engine=engine, job=job, progress=progress, should_stop=stop.is_set, **kwargs
            )
    except ConfigError as exc:
        fail(ExitCode.CONFIG, f"config error: {exc}")
    _print_pull(report)
    raise typer.Exit(OUTCOME_EXIT[report.outcome])


@app.command()
def sync(
    stream: Annotated[list[str] | None, typer.Option(help="Only these streams (repeatable).")] = None,
    wait: Annotated[bool, WAIT] = False,
) -> None:
    """Incremental pull of every stream into the warehouse."""
    _run_pull_command("sync", wait=wait, streams=_streams(stream))


def _date(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(ExitCode.USAGE, f"{option}: expected a date such as 2025-01-31 or 2025-01-31T12:00:00Z")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def backfill(
    since: Annotated[str, typer.Option(help="Start of the range (date or datetime, UTC).")],
    until: Annotated[str | None, typer.Option(help="End of the range (default: now).")] = None,
    stream: Annotated[list[str] | None, typer.Option(help="Only these streams (repeatable).")] = None,
    wait: Annotated[bool, WAIT] = False,
) -> None:
    """Pull a historical range in resumable windows (kill it, run it again: it continues).

    The Salesforce streams read [--since, --until); the booking index reads every booking modified
    since --since (Checkfront filters by one bound); booking sessions and lines read what the
    warehouse's registrations name, whatever their age.
    """
    streams = _streams(stream)
    start = _date(since, "--since")
    end = _date(until, "--until") if until else None
    if end is not None and end <= start:
        console.print("[red]--until must be after --since[/]")
        raise typer.Exit(ExitCode.USAGE)
    _run_pull_command("backfill", wait=wait, streams=streams, since=start, until=end)


@app.command()
def reconcile(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the reports.")] = Path("reports"),
    fmt: Annotated[str, typer.Option("--format", help="csv | html | both")] = "both",
    fail_on_mismatch: Annotated[
        bool,
        typer.Option("--fail-on-mismatch", help=f"Exit {int(ExitCode.MISMATCHES)} when mismatches exist."),
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Judge ages as of this UTC time instead of now (re-runs, audits)."),
    ] = None,
    excel: Annotated[
        bool,
        typer.Option("--excel", help="CSV files with a UTF-8 byte order mark, so Excel reads accents right."),
    ] = False,
) -> None:
    """Find every mismatch between Salesforce and Checkfront in the warehouse; write the reports."""
    from regsync.reconcile.run import FORMATS, run_reconcile

    if fmt not in FORMATS:
        console.print(f"[red]--format must be one of {', '.join(FORMATS)}[/]")
        raise typer.Exit(ExitCode.USAGE)
    now = _date(as_of, "--as-of") if as_of else datetime.now(UTC)
    settings = settings_or_exit()
    with _writer_lock(settings, "reconcile") as engine:
        result = run_reconcile(
            engine,
            settings.reconcile,
            out_dir=out_dir,
            fmt=fmt,  # type: ignore[arg-type]
            now=now,
            instance_url=settings.salesforce.instance_url or settings.salesforce.login_url,
            registration_object=settings.salesforce.objects.registration,
            checkfront_url=settings.checkfront.base_url,
            excel=excel,
        )
    _print_freshness(result.freshness)
    table = Table(
        title=f"reconcile: {result.total} mismatch(es) — {result.new} new, {result.open} still open, {result.resolved} resolved"
    )
    table.add_column("reason code")
    table.add_column("count", justify="right")
    for code, number in result.counts.items():
        table.add_row(code, str(number))
    console.print(table)
    for path in result.paths:
        out.print(str(path))
    if fail_on_mismatch and result.total:
        raise typer.Exit(ExitCode.MISMATCHES)


def _print_freshness(freshness: object) -> None:
    """Data as of when; a red warning when a pull failed or the data is older than max_data_age_s."""
    from regsync.warehouse.freshness import Freshness

    if not isinstance(freshness, Freshness):
        return
    if freshness.fresh:
        console.print(f"[green]{freshness.as_of_text()}[/]", highlight=False)
        return
    console.print(
        f"[bold red]WARNING: this reconciliation ran on stale or incomplete data ({freshness.as_of_text()})[/]",
        highlight=False,
    )
    for warning in freshness.warnings:
        console.print(f"[red]  - {warning}[/]", highlight=False)


def _duration(value: str | None) -> int | None:
    """'90m', '6h', '2d', '45s' or plain seconds -> seconds."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        fail(
            ExitCode.USAGE,
            f"--older-than: expected a duration of 0 or more such as 6h, 90m or 2d, not {value!r}",
        )
    return int(seconds)


def _print_plan(plan: object, *, explain: bool) -> None:
    from regsync.actions.candidates import Plan

    assert isinstance(plan, Plan)
    for kind, candidates in plan.candidates.items():
        table = Table(
            title=f"{kind}: {len(candidates)} candidate(s) of {plan.population.get(kind, 0)} eligible"
        )
        table.add_column("target")
        table.add_column("rule")
        for candidate in candidates:
            table.add_row(candidate.target_id, candidate.reason)
        out.print(table)
    if explain and plan.explanations:
        table = Table(title="every draft registration and known alive booking session")
        table.add_column("kind")
        table.add_column("target")
        table.add_column("decision")
        table.add_column("why")
        for item in plan.explanations:
            table.add_row(item.kind, item.target_id, "act" if item.selected else "skip", item.text)
        out.print(table)


def _write_command(
    kinds: tuple[str, ...], *, dry_run: bool, apply: bool, limit: int | None, older_than: str | None
) -> None:
    from regsync.actions.apply import run_actions

    if dry_run and apply:
        console.print("[red]--dry-run and --apply exclude each other[/]")
        raise typer.Exit(ExitCode.USAGE)
    older_than_s = _duration(older_than)  # a bad value is a usage error before anything is opened
    settings = settings_or_exit()
    with _writer_lock(settings, "-".join(kinds)) as engine:
        report = run_actions(
            settings,
            engine=engine,
            apply=apply,
            dry_run=dry_run,
            kinds=kinds,
            limit=limit,
            older_than_s=older_than_s,
        )
    _print_plan(report.plan, explain=False)
    counts = ", ".join(f"{k}={v}" for k, v in sorted(report.counts.items()) if v)
    if report.dry_run:
        planned = sum(len(c) for c in report.plan.candidates.values())
        out.print(
            f"[yellow]dry run: {planned} write(s) would be sent; nothing was sent and nothing journaled[/]"
        )
        _print_breaker_prediction({"--apply": report.breaker_prediction} if report.breaker_prediction else {})
    else:
        out.print(f"outcome {report.outcome}: {counts or 'nothing to do'}")
    if report.message:
        out.print(f"note: {report.message}")
    raise typer.Exit(report.exit_code)


DRY_RUN = typer.Option("--dry-run", help="Print the plan; send and journal nothing.")
APPLY = typer.Option("--apply", help="Write even if actions.enabled is false in the config.")


FORMAT = typer.Option("--format", help="table (for people) | json (one JSON document, for scripts).")


def _output_format(value: str) -> str:
    from regsync.cli.machine import FORMATS

    if value not in FORMATS:
        console.print(f"[red]--format must be one of {', '.join(FORMATS)}, not {value!r}[/]", highlight=False)
        raise typer.Exit(ExitCode.USAGE)
    return value


def _print_breaker_prediction(verdicts: dict[str, object]) -> None:
    """Whether --apply would trip the circuit breaker, and the rule that says so."""
    from regsync.actions.apply import BreakerVerdict

    for command, verdict in verdicts.items():
        assert isinstance(verdict, BreakerVerdict)
        colour = "bold red" if verdict.trips else "green"
        head = "WOULD TRIP" if verdict.trips else "would pass"
        out.print(f"[{colour}]breaker ({command}): {head}[/] — {verdict.reason}", highlight=False)


@app.command()
def plan(
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Also list every skipped record and why.")
    ] = True,
    fmt: Annotated[str, FORMAT] = "table",
) -> None:
    """Show what submit-pending and close-stale would do, with the rule behind every decision,
    and whether `--apply` would trip the circuit breaker."""
    from regsync.actions.apply import plan as make_plan
    from regsync.actions.apply import policy_of, predict_breaker
    from regsync.warehouse.locks import open_warehouse_locked

    fmt = _output_format(fmt)
    settings = settings_or_exit()
    engine = open_warehouse_locked(settings.warehouse.url)
    try:
        found = make_plan(settings, engine=engine, explained=explain)
    finally:
        engine.dispose()
    verdicts = predict_breaker(policy_of(settings), found)
    if fmt == "json":
        from regsync.cli.machine import dumps, plan_document

        sys.stdout.write(dumps(plan_document(found, verdicts, explained=explain)))
        return
    _print_plan(found, explain=explain)
    _print_breaker_prediction({f"{command} --apply": v for command, v in verdicts.items()})


@app.command("submit-pending")
def submit_pending(
    dry_run: Annotated[bool, DRY_RUN] = False,
    apply: Annotated[bool, APPLY] = False,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many submissions.")] = None,
) -> None:
    """Submit draft registrations whose booking is confirmed (Apex sessionRegistration, submit: true)."""
    from regsync.actions.journal import SUBMIT

    _write_command((SUBMIT,), dry_run=dry_run, apply=apply, limit=limit, older_than=None)


@app.command("close-stale")
def close_stale(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Idle longer than this (e.g. 6h).")
    ] = None,
    dry_run: Annotated[bool, DRY_RUN] = False,
    apply: Annotated[bool, APPLY] = False,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many ends.")] = None,
) -> None:
    """End Checkfront booking sessions that hold seats and will never be booked."""
    from regsync.actions.journal import END

    _write_command((END,), dry_run=dry_run, apply=apply, limit=limit, older_than=older_than)


@app.command()
def actions(
    state: Annotated[str | None, typer.Option(help="planned | sent | succeeded | failed | skipped")] = None,
    since: Annotated[str | None, typer.Option(help="Planned at or after this date/time (UTC).")] = None,
    target: Annotated[str | None, typer.Option(help="A registration id or booking session id.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many rows.")] = 100,
    fmt: Annotated[str, FORMAT] = "table",
) -> None:
    """List the write-back journal."""
    fmt = _output_format(fmt)
    from regsync.actions.journal import list_actions
    from regsync.warehouse.locks import open_warehouse_locked

    settings = settings_or_exit()
    engine = open_warehouse_locked(settings.warehouse.url)
    try:
        rows = list_actions(
            engine,
            state=state,
            since=_date(since, "--since") if since else None,
            target=target,
            limit=limit,
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(ExitCode.USAGE) from None
    finally:
        engine.dispose()
    if fmt == "json":
        from regsync.cli.machine import actions_document, dumps

        sys.stdout.write(dumps(actions_document(rows)))
        return
    table = Table(title=f"{len(rows)} action(s), newest first")
    for column in ("planned", "kind", "target", "state", "reason", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["planned_at"])[:19],
            row["kind"],
            row["target_id"],
            row["state"],
            str(row["reason"] or ""),
            str(row["error"] or "")[:60],
        )
    out.print(table)


@app.command()
def status(fmt: Annotated[str, FORMAT] = "table") -> None:
    """Show each stream's watermark, row counts, quarantine and the last runs."""
    from regsync.jobs.status import jobs_status
    from regsync.warehouse.status import warehouse_status

    fmt = _output_format(fmt)
    settings = settings_or_exit()
    if fmt == "json":
        _status_json(settings)
        return
    # Under cron (no terminal) rich would assume 80 columns and fold every table into it.
    shown = out if out.is_terminal else Console(soft_wrap=True, width=UNBOUNDED_WIDTH)
    shown.print(warehouse_status(settings))
    shown.print(jobs_status(settings))
    _status_freshness(settings)


def _status_freshness(settings: Settings) -> None:
    """Data as of when, per system; the warning a report would carry if reconcile ran now."""
    from regsync.warehouse.freshness import load_freshness
    from regsync.warehouse.locks import open_warehouse_locked

    engine = open_warehouse_locked(settings.warehouse.url)
    try:
        with engine.connect() as connection:
            freshness = load_freshness(
                connection, now=datetime.now(UTC), max_age_s=settings.reconcile.max_data_age_s
            )
    finally:
        engine.dispose()
    out.print(freshness.as_of_text(), highlight=False)
    for warning in freshness.warnings:
        out.print(f"[red]warning: {warning}[/]", highlight=False)


def _status_json(settings: Settings) -> None:
    from regsync.cli.machine import dumps, status_document
    from regsync.warehouse.locks import open_warehouse_locked

    engine = open_warehouse_locked(settings.warehouse.url)
    try:
        sys.stdout.write(dumps(status_document(settings, engine)))
    finally:
        engine.dispose()


@app.command()
def version() -> None:
    """Print regsync's version."""
    out.print(f"regsync {__version__}")


@config_app.command("check")
def config_check(
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also log in to both systems and check the API version, every configured object and "
            "field, the Apex endpoint, one booking and one cart, and the quota (reads only).",
        ),
    ] = False,
) -> None:
    """Validate the configuration and print the effective values, secrets masked."""
    settings = settings_or_exit()
    out.print_json(json.dumps(masked(settings)))
    _refuse_incomplete(settings)
    if online:
        _preflight(settings)
    console.print("[green]configuration is valid[/]")


def _config_path() -> Path | None:
    import os

    from regsync.config import CONFIG_ENV_VAR

    given = state.config or os.environ.get(CONFIG_ENV_VAR)
    return Path(given) if given else None


def _refuse_incomplete(settings: Settings) -> None:
    """An empty, secret-less or placeholder config is not "valid": exit 78 naming what is missing."""
    from regsync.starter import incomplete

    problems = incomplete(settings, _config_path())
    if problems:
        console.print("[bold red]configuration is not usable:[/]", highlight=False)
        for problem in problems:
            console.print(f"[red]  - {problem}[/]", highlight=False)
        raise typer.Exit(ExitCode.CONFIG)


def _preflight(settings: Settings) -> None:
    """config check --online: one table of every check against the real systems; 78 if any failed."""
    from regsync.preflight import run_preflight

    report = run_preflight(settings)
    table = Table(title="preflight (reads only; nothing is written)")
    for column in ("system", "check", "result", "detail"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
    for check in report.checks:
        table.add_row(check.system, check.name, f"[{colours[check.status]}]{check.status}[/]", check.detail)
    out.print(table)
    if report.failures:
        console.print(f"[bold red]{len(report.failures)} check(s) failed:[/]", highlight=False)
        for check in report.failures:
            console.print(f"[red]  - {check.system} {check.name}: {check.detail}[/]", highlight=False)
        raise typer.Exit(ExitCode.CONFIG)


@config_app.command("init")
def config_init(
    path: Annotated[
        Path, typer.Argument(help="Where to write the example config (e.g. /etc/regsync/regsync.toml).")
    ],
    jobs: Annotated[
        bool,
        typer.Option("--jobs/--no-jobs", help="Also write the cron and systemd examples in jobs/ beside it."),
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace files that exist.")] = False,
) -> None:
    """Write the documented example config (and the cron/systemd examples) to start from."""
    from regsync.starter import ExistsError, init_config

    try:
        written = init_config(path, jobs=jobs, force=force)
    except ExistsError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(ExitCode.USAGE) from None
    except OSError as exc:
        console.print(
            f"[bold red]cannot write {exc.filename or path}:[/] {exc.strerror or exc}", highlight=False
        )
        raise typer.Exit(ExitCode.CONFIG) from None
    out.print(f"wrote {written.config}", highlight=False)
    for job_file in written.jobs:
        out.print(f"wrote {job_file}", highlight=False)
    out.print(
        f"next: edit {written.config}, put the secrets in {written.config.with_suffix('.env')} "
        f"(REGSYNC_*; see the file's header), then `regsync --config {written.config} config check --online`",
        highlight=False,
    )


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 8443,
    data: Annotated[Path | None, typer.Option(help="Dataset file to serve (docs/dataset.md).")] = None,
    generate: Annotated[int | None, typer.Option(help="Generate this many registrations.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 1,
    faults: Annotated[Path | None, typer.Option(help="Fault plan file (JSON or TOML).")] = None,
    write_config: Annotated[
        Path | None,
        typer.Option("--write-config", help="Write a regsync config (+ .env) pointing here."),
    ] = None,
    state_dir: Annotated[Path | None, typer.Option(help="Where the CA and keys go (default: temp).")] = None,
    truth: Annotated[Path | None, typer.Option(help="Write the generator's ground truth here.")] = None,
    latency: Annotated[
        str | None,
        typer.Option(help="Per-service latency, e.g. checkfront=100ms,salesforce=300ms+-50ms."),
    ] = None,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit", help="Token-bucket rate limit, e.g. checkfront=20/s,burst=40 (429 beyond)."
        ),
    ] = None,
    sf_long_running: Annotated[
        str | None,
        typer.Option(help="Salesforce's concurrent long-running limit N[,after=20s] (default 25,after=20s)."),
    ] = None,
) -> None:
    """Serve local emulators of Salesforce and Checkfront over HTTPS until interrupted."""
    from regsync.sandbox import DEMO, Sandbox
    from regsync.sandbox.faults import FaultPlanError

    if data is not None and generate is not None:
        console.print("[red]--data and --generate exclude each other[/]")
        raise typer.Exit(ExitCode.USAGE)
    try:
        if data is not None:
            box = Sandbox.from_file(data, port=port, state_dir=state_dir)
        else:
            box = Sandbox.generated(
                generate if generate is not None else 1000, seed, port=port, state_dir=state_dir
            )
        box.network.configure(latency=latency, rate_limit=rate_limit, long_running=sf_long_running)
        if faults is not None:
            box.faults.load_file(faults)
    except (FaultPlanError, ValueError, OSError) as exc:
        console.print(f"[bold red]cannot start the sandbox:[/] {exc}", highlight=False)
        raise typer.Exit(ExitCode.CONFIG) from None
    gc.freeze()  # millions of long-lived records: keep later collections from re-walking them
    box.start()
    if truth is not None and box.truth is not None:
        from regsync.sandbox.generator import write_truth

        write_truth(box.truth, truth)
    out.print(f"sandbox listening on {box.base_url}")
    out.print(
        f"  Salesforce  {box.base_url}/services/data/v60.0/  (token: {box.base_url}/services/oauth2/token)"
    )
    out.print(f"  Checkfront  {box.base_url}/api/3.0/")
    out.print(f"  CA file     {box.ca_path}")
    out.print(f"  JWT key     {box.jwt_key_path}")
    out.print(
        f"  demo Salesforce user {DEMO.sf_username} / {DEMO.sf_password} + token {DEMO.sf_security_token}, "
        f"consumer {DEMO.sf_consumer_key} / {DEMO.sf_consumer_secret}"
    )
    out.print(f"  demo Checkfront key {DEMO.cf_api_key} / {DEMO.cf_api_secret}, bearer {DEMO.cf_token}")
    if write_config is not None:
        toml_path, env_path = box.write_config(write_config)
        out.print(f"  wrote {toml_path} and {env_path}: run `regsync --config {toml_path} ...`")
    sys.stdout.flush()
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    box.stop()
    out.print("sandbox stopped")


@app.command()
def demo(
    registrations: Annotated[int, typer.Option(help="Size of the generated dataset.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 1,
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its warehouse and reports.")] = Path(
        ".demo"
    ),
) -> None:
    """Run the main job against an embedded sandbox and a SQLite warehouse, and explain it."""
    from regsync.demo import run_demo

    raise typer.Exit(run_demo(registrations=registrations, seed=seed, workdir=workdir, console=out))


register_jobs(app)  # `run` and `schedule` (regsync.cli.jobs)

if __name__ == "__main__":  # pragma: no cover
    app()
