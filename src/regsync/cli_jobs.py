"""`regsync run JOB [--wait]` (for cron) and `regsync schedule` (the daemon).

cli.py wires them with one line, ``register(app)``. cli.py's helpers (settings_or_exit, the stop
flag, the consoles) are imported from regsync.cli inside the commands, so this module does not
import regsync.cli at import time (no cycle).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from regsync.exitcodes import ExitCode
from regsync.jobs.settings import JOB_NAMES

log = logging.getLogger("regsync.jobs")

JOBS_FILE = typer.Option(
    "--jobs-file",
    envvar="REGSYNC_JOBS_FILE",
    help="TOML file whose [jobs] table overrides the config's [jobs] (cadences, lock lease, reports dir).",
)


HELPERS = ("settings_or_exit", "_stop_flag", "console", "out")


def _cli(app: typer.Typer, helpers: Any) -> Any:
    """cli.py's helpers: the ones given to register(), else those of the module defining `app`.

    Not simply `import regsync.cli`: under `python -m regsync.cli` the running module is
    `__main__`, and a second copy imported as regsync.cli would not have seen --config.
    """
    if helpers is not None:
        return helpers
    callback = getattr(getattr(app, "registered_callback", None), "callback", None)
    namespace = getattr(callback, "__globals__", {})
    if all(name in namespace for name in HELPERS):
        return SimpleNamespace(**{name: namespace[name] for name in HELPERS})
    import regsync.cli as cli

    return cli


def load_job_settings(settings: Any, jobs_file: Path | None) -> Any:
    """[jobs]: packaged defaults < the config's [jobs] (once wired) < --jobs-file."""
    from regsync.errors import ConfigError
    from regsync.jobs.registry import job_settings_of
    from regsync.jobs.settings import JobSettings, deep_merge, read_jobs_file

    base = job_settings_of(settings)
    if jobs_file is None:
        return base
    try:
        override = read_jobs_file(jobs_file)
        return JobSettings.model_validate(deep_merge(base.model_dump(mode="json"), override))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"{jobs_file}: {exc}") from None


def _job_settings_or_exit(cli: Any, settings: Any, jobs_file: Path | None) -> Any:
    from regsync.errors import ConfigError

    try:
        return load_job_settings(settings, jobs_file)
    except ConfigError as exc:
        cli.console.print(f"[bold red]config error:[/] {exc}", highlight=False)
        raise typer.Exit(ExitCode.CONFIG) from None


def _write_metrics(cli: Any, settings: Any, result: Any, metrics_file: Path | None) -> None:
    """--metrics-file, else [metrics] file: the run's figures for node_exporter (regsync.metrics)."""
    from regsync.metrics import MetricsSettings, emit

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


def register(app: typer.Typer, helpers: Any = None) -> None:
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
        from regsync.jobs.registry import run_job

        cli = _cli(app, helpers)
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
        jobs = _job_settings_or_exit(cli, settings, jobs_file)
        stop = cli._stop_flag()
        result = run_job(
            job,
            settings,
            should_stop=stop.is_set,
            wait=wait,
            wait_timeout_s=wait_timeout,
            job_settings=jobs,
        )
        _write_metrics(cli, settings, result, metrics_file)
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
        from sqlalchemy.exc import SQLAlchemyError

        from regsync.jobs.schedule import next_run_times, run_daemon

        cli = _cli(app, helpers)
        settings = cli.settings_or_exit()
        jobs = _job_settings_or_exit(cli, settings, jobs_file)
        if list_only:
            from rich.table import Table

            table = Table(title=f"schedule (time zone {jobs.timezone})")
            for column in ("job", "cadence", "next runs"):
                table.add_column(column)
            upcoming = next_run_times(jobs)
            for name in JOB_NAMES:
                times = "\n".join(t.strftime("%Y-%m-%d %H:%M:%S %Z") for t in upcoming.get(name, []))
                table.add_row(name, jobs.cadence.get(name, "off"), times or "-")
            cli.out.print(table)
            raise typer.Exit(ExitCode.OK)
        stop = cli._stop_flag()
        try:
            code = run_daemon(settings, jobs, stop=stop)
        except SQLAlchemyError as exc:
            log.error("the daemon cannot use the warehouse: %s", exc)
            raise typer.Exit(ExitCode.FAILED) from None
        raise typer.Exit(code)
