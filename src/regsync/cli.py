"""The command line: parse, call one function, map its outcome to an exit code."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from regsync import __version__
from regsync.config import Settings, load_settings, masked, secret_values
from regsync.errors import ConfigError
from regsync.exitcodes import ExitCode
from regsync.logs import setup_logging

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from regsync.pull import PullReport

app = typer.Typer(
    help="regsync keeps Blackthorn Events registrations (Salesforce) and Checkfront in step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)  # URLs, paths and commands must not be broken across lines in logs


class _State:
    config: Path | None = None
    env_file: Path | None = None
    log_format: str = "auto"


state = _State()


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
    state.config = config
    state.env_file = env_file
    state.log_format = log_format


def settings_or_exit() -> Settings:
    """Load settings; a bad config is one readable message and exit code 78, never a traceback."""
    try:
        settings = load_settings(state.config, env_file=state.env_file)
    except ConfigError as exc:
        console.print(f"[bold red]config error:[/] {exc}", highlight=False)
        raise typer.Exit(ExitCode.CONFIG) from None
    setup_logging(state.log_format, secrets=secret_values(settings))
    return settings


OUTCOME_EXIT = {
    "ok": ExitCode.OK,
    "partial": ExitCode.PARTIAL,
    "deferred": ExitCode.DEFERRED,
    "failed": ExitCode.FAILED,
}


def _stop_flag() -> threading.Event:
    """SIGTERM/SIGINT ask the running job to finish its page, commit and stop."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        # Through logging, so that under --log-format json this too is a JSON line.
        logging.getLogger("regsync.cli").warning(
            "signal %s: finishing the current page, then stopping", signum
        )
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    return stop


@contextmanager
def _writer_lock(settings: Settings, job: str, stop: threading.Event | None = None) -> Iterator[Engine]:
    """The warehouse, held under the same lock the scheduled jobs take (one writer at a time).

    A second writer exits at once with LOCK_HELD; a lock lost while held asks the job to stop.
    """
    from regsync.locks import LOCK_NAME, LockHeld, hold, open_warehouse_locked

    engine = open_warehouse_locked(settings.warehouse.url)
    jobs = settings.jobs
    try:
        with hold(
            engine, LOCK_NAME, job=job, lease_s=jobs.lock_lease_s, heartbeat_s=jobs.lock_heartbeat_s
        ) as lock:
            if stop is not None:
                threading.Thread(target=lambda: lock.lost.wait() or stop.set(), daemon=True).start()
            yield engine
    except LockHeld as exc:
        console.print(f"[bold yellow]{exc}[/]", highlight=False)
        raise typer.Exit(ExitCode.LOCK_HELD) from None


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


def _run_pull_command(job: str, **kwargs: object) -> None:
    from regsync.progress import progress_reporter
    from regsync.pull import run_pull

    settings = settings_or_exit()
    stop = _stop_flag()
    try:
        with _writer_lock(settings, job, stop) as engine, progress_reporter(console) as progress:
            report = run_pull(
                settings, engine=engine, job=job, progress=progress, should_stop=stop.is_set, **kwargs
            )  # type: ignore[arg-type]
    except ConfigError as exc:
        console.print(f"[bold red]config error:[/] {exc}", highlight=False)
        raise typer.Exit(ExitCode.CONFIG) from None
    _print_pull(report)
    raise typer.Exit(OUTCOME_EXIT[report.outcome])


@app.command()
def sync(
    stream: Annotated[list[str] | None, typer.Option(help="Only these streams (repeatable).")] = None,
) -> None:
    """Incremental pull of every stream into the warehouse."""
    from regsync.pull import STREAM_ORDER

    _run_pull_command("sync", streams=tuple(stream) if stream else STREAM_ORDER)


def _date(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        console.print(f"[red]{option}: expected a date such as 2025-01-31 or 2025-01-31T12:00:00Z[/]")
        raise typer.Exit(ExitCode.USAGE) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def backfill(
    since: Annotated[str, typer.Option(help="Start of the range (date or datetime, UTC).")],
    until: Annotated[str | None, typer.Option(help="End of the range (default: now).")] = None,
    stream: Annotated[list[str] | None, typer.Option(help="Only these streams (repeatable).")] = None,
) -> None:
    """Pull a historical range in resumable windows (kill it, run it again: it continues).

    The Salesforce streams read [--since, --until); the booking index reads every booking modified
    since --since (Checkfront filters by one bound); booking sessions and lines read what the
    warehouse's registrations name, whatever their age.
    """
    from regsync.pull import STREAM_ORDER

    start = _date(since, "--since")
    end = _date(until, "--until") if until else None
    if end is not None and end <= start:
        console.print("[red]--until must be after --since[/]")
        raise typer.Exit(ExitCode.USAGE)
    _run_pull_command("backfill", streams=tuple(stream) if stream else STREAM_ORDER, since=start, until=end)


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
) -> None:
    """Find every mismatch between Salesforce and Checkfront in the warehouse; write the reports."""
    from regsync.reconcile.run import FORMATS, run_reconcile

    if fmt not in FORMATS:
        console.print(f"[red]--format must be one of {', '.join(FORMATS)}[/]")
        raise typer.Exit(ExitCode.USAGE)
    settings = settings_or_exit()
    with _writer_lock(settings, "reconcile") as engine:
        result = run_reconcile(
            engine,
            settings.reconcile,
            out_dir=out_dir,
            fmt=fmt,  # type: ignore[arg-type]
            now=_date(as_of, "--as-of") if as_of else datetime.now(UTC),
            instance_url=settings.salesforce.instance_url or settings.salesforce.login_url,
            registration_object=settings.salesforce.objects.registration,
        )
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


def _duration(value: str | None) -> int | None:
    """'90m', '6h', '2d', '45s' or plain seconds -> seconds."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        console.print(f"[red]--older-than: expected a duration such as 6h, 90m or 2d, not {value!r}[/]")
        raise typer.Exit(ExitCode.USAGE) from None
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
    settings = settings_or_exit()
    with _writer_lock(settings, "-".join(kinds)) as engine:
        report = run_actions(
            settings,
            engine=engine,
            apply=apply,
            dry_run=dry_run,
            kinds=kinds,
            limit=limit,
            older_than_s=_duration(older_than),
        )
    _print_plan(report.plan, explain=False)
    counts = ", ".join(f"{k}={v}" for k, v in sorted(report.counts.items()) if v)
    if report.dry_run:
        planned = sum(len(c) for c in report.plan.candidates.values())
        out.print(
            f"[yellow]dry run: {planned} write(s) would be sent; nothing was sent and nothing journaled[/]"
        )
    else:
        out.print(f"outcome {report.outcome}: {counts or 'nothing to do'}")
    if report.message:
        out.print(f"note: {report.message}")
    raise typer.Exit(report.exit_code)


DRY_RUN = typer.Option("--dry-run", help="Print the plan; send and journal nothing.")
APPLY = typer.Option("--apply", help="Write even if actions.enabled is false in the config.")


@app.command()
def plan(
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Also list every skipped record and why.")
    ] = True,
) -> None:
    """Show what submit-pending and close-stale would do, with the rule behind every decision."""
    from regsync.actions.apply import plan as make_plan

    _print_plan(make_plan(settings_or_exit(), explained=explain), explain=explain)


@app.command("submit-pending")
def submit_pending(
    dry_run: Annotated[bool, DRY_RUN] = False,
    apply: Annotated[bool, APPLY] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many submissions.")] = None,
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
    limit: Annotated[int | None, typer.Option(help="At most this many ends.")] = None,
) -> None:
    """End Checkfront booking sessions that hold seats and will never be booked."""
    from regsync.actions.journal import END

    _write_command((END,), dry_run=dry_run, apply=apply, limit=limit, older_than=older_than)


@app.command()
def actions(
    state: Annotated[str | None, typer.Option(help="planned | sent | succeeded | failed | skipped")] = None,
    since: Annotated[str | None, typer.Option(help="Planned at or after this date/time (UTC).")] = None,
    target: Annotated[str | None, typer.Option(help="A registration id or booking session id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
) -> None:
    """List the write-back journal."""
    from regsync.actions.journal import list_actions
    from regsync.locks import open_warehouse_locked

    settings = settings_or_exit()
    try:
        rows = list_actions(
            open_warehouse_locked(settings.warehouse.url),
            state=state,
            since=_date(since, "--since") if since else None,
            target=target,
            limit=limit,
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(ExitCode.USAGE) from None
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
def status() -> None:
    """Show each stream's watermark, row counts, quarantine and the last runs."""
    from regsync.jobs import jobs_status
    from regsync.status import warehouse_status

    settings = settings_or_exit()
    out.print(warehouse_status(settings))
    out.print(jobs_status(settings))


@app.command()
def version() -> None:
    """Print regsync's version."""
    out.print(f"regsync {__version__}")


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and print the effective values, secrets masked."""
    settings = settings_or_exit()
    out.print_json(json.dumps(masked(settings)))
    console.print("[green]configuration is valid[/]")


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


from regsync.cli_jobs import register as _register_jobs  # noqa: E402 - needs `app` and the helpers above

_register_jobs(app)

if __name__ == "__main__":  # pragma: no cover
    app()
