"""`regsync run JOB [--wait]` (for cron) and `regsync schedule` (the daemon).

regsync.cli.commands wires them with one line, ``register(app)``; the helpers both share (settings
loading, the stop flag, the consoles) come from regsync.cli.common.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from regsync.cli import common as cli
from regsync.config import Settings
from regsync.errors import ConfigError
from regsync.exitcodes import ExitCode
from regsync.settings.jobs import JOB_NAMES, JobSettings, deep_merge, read_jobs_file
from regsync.settings.metrics import MetricsSettings

if TYPE_CHECKING:
    from regsync.jobs.registry import JobResult

# The job machinery (SQLAlchemy, the API clients, pandas for reports) is imported inside the
# commands: every `regsync` invocation imports this module, and `--help` or `config check` should
# not pay for it.

log = logging.getLogger("regsync.jobs")

JOBS_FILE = typer.Option(
    "--jobs-file",
    envvar="REGSYNC_JOBS_FILE",
    help="TOML file whose [jobs] table overrides the config's [jobs] (cadences, lock lease, reports dir).",
)


def load_job_settings(settings: Settings, jobs_file: Path | None) -> JobSettings:
    """[jobs]: packaged defaults < the config's [jobs] (once wired) < --jobs-file."""
    from regsync.jobs.registry import job_settings_of  # start-up time (see above)

    base = job_settings_of(settings)
    if jobs_file is None:
        return base
    try:
        override = read_jobs_file(jobs_file)
        return JobSettings.model_validate(deep_merge(base.model_dump(mode="json"), override))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"{jobs_file}: {exc}") from None


def _job_settings_or_exit(settings: Settings, jobs_file: Path | None) -> JobSettings:
    try:
        return load_job_settings(settings, jobs_file)
    except ConfigError as exc:
        cli.console.print(f"[bold red]config error:[/] {exc}", highlight=False)
        raise typer.Exit(ExitCode.CONFIG) from None


def _write_metrics(settings: Settings, result: JobResult, metrics_file: Path | None) -> None:
    """--metrics-file, else [metrics] file: the run's figures for node_exporter (regsync.jobs.metrics)."""
    from regsync.jobs.metrics import emit  # start-up time (see above)

    if metrics_file is not None and not metrics_file.name.endswith(".prom"):
        cli.console.print(
            f"[yellow]--metrics-file {metrics_file}: node_exporter reads only *.prom files[/]",
            highlight=False,
        )
    if metrics_file is None and not getattr(settings, "metrics", MetricsSettings()).file:
        return
    written = emit(settings, result, path=metrics_file)
    if written is None:
        cli.console.print("[red]the metrics file could not be written (see the log)[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `run` and `schedule` to the regsync Typer app (idempotent)."""
    if getattr(app, "_regsync_jobs_registered", False):
        return
    app._regsync_jobs_registered = True  # type: ignore[attr-defined]

    @app.command("run")
    def run_command(
        job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOB_NAMES)}.", show_default=False)],
        wait: Annotated[
            bool,
            typer.Option(
                "--wait",
                help=f"If the lock is held, wait for it (default: exit {int(ExitCode.LOCK_HELD)} at once).",
            ),
        ] = False,
        wait_timeout: Annotated[
            float | None,
            typer.Option(
                "--wait-timeout",
                help=f"With --wait: give up after this many seconds (exit {int(ExitCode.LOCK_HELD)}).",
            ),
        ] = None,
        jobs_file: Annotated[Path | None, JOBS_FILE] = None,
        metrics_file: Annotated[
            Path | None,
            typer.Option(
                "--metrics-file",
                help="Write the run's figures here in Prometheus text format (node_exporter textfile "
                "collector; '{job}' becomes the job's name). Default: [metrics] file.",
            ),
        ] = None,
    ) -> None:
        """Run one job now, under the run lock (what cron calls); the exit code says how it went."""
        from regsync.jobs.registry import run_job  # start-up time (see above)

        if job not in JOB_NAMES:
            cli.console.print(f"[red]unknown job {job!r}; known: {', '.join(JOB_NAMES)}[/]", highlight=False)
            raise typer.Exit(ExitCode.USAGE)
        if metrics_file is not None and not metrics_file.name.endswith(".prom"):
            cli.console.print(
                f"[red]--metrics-file {metrics_file}: node_exporter's textfile collector reads only *.prom files[/]",
                highlight=False,
            )
            raise typer.Exit(ExitCode.USAGE)
        settings = cli.settings_or_exit()
        jobs = _job_settings_or_exit(settings, jobs_file)
        stop = cli.stop_flag()
        result = run_job(
            job,
            settings,
            should_stop=stop.is_set,
            wait=wait,
            wait_timeout_s=wait_timeout,
            job_settings=jobs,
        )
        _write_metrics(settings, result, metrics_file)
        run = f" (run {result.run_id})" if result.run_id else ""
        cli.out.print(f"{job}: {result.outcome}{run}: {result.summary}", highlight=False, soft_wrap=True)
        raise typer.Exit(result.exit_code)

    @app.command("schedule")
    def schedule_command(
        jobs_file: Annotated[Path | None, JOBS_FILE] = None,
        list_only: Annotated[
            bool,
            typer.Option("--list", help="Print the effective schedule and the next run times; do not start."),
        ] = False,
    ) -> None:
        """Run the daemon: every job on its cadence, one at a time, until SIGTERM / SIGINT."""
        from regsync.jobs.schedule import next_run_times, run_daemon  # start-up time (see above)

        settings = cli.settings_or_exit()
        jobs = _job_settings_or_exit(settings, jobs_file)
        if list_only:
            table = Table(title=f"schedule (time zone {jobs.timezone})")
            for column in ("job", "cadence", "next runs"):
                table.add_column(column)
            upcoming = next_run_times(jobs)
            for name in JOB_NAMES:
                times = "\n".join(t.strftime("%Y-%m-%d %H:%M:%S %Z") for t in upcoming.get(name, []))
                table.add_row(name, jobs.cadence.get(name, "off"), times or "-")
            cli.out.print(table)
            raise typer.Exit(ExitCode.OK)
        stop = cli.stop_flag()
        try:
            code = run_daemon(settings, jobs, stop=stop)
        except SQLAlchemyError as exc:
            log.error("the daemon cannot use the warehouse: %s", exc)
            raise typer.Exit(ExitCode.FAILED) from None
        raise typer.Exit(code)
