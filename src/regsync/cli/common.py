"""What every command shares: the global options' state, the consoles, settings loading, the stop flag.

commands.py's callback fills `state`; the commands of commands.py and jobs.py read it from here, so
neither reaches into the other (and `python -m regsync.cli` sees the same state as an import would).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from rich.console import Console

from regsync.cli.errors import OUTPUT, fail
from regsync.cli.errors import console as console
from regsync.config import Settings, load_settings, secret_values
from regsync.errors import ConfigError
from regsync.exitcodes import ExitCode
from regsync.logs import setup_logging

out = Console(soft_wrap=True)  # URLs, paths and commands must not be broken across lines in logs
UNBOUNDED_WIDTH = 1_000  # columns for output that goes to a file or a pipe: tables at their natural width


class _State:
    config: Path | None = None
    env_file: Path | None = None
    log_format: str = "auto"


state = _State()


def settings_or_exit() -> Settings:
    """Load settings; a bad config is one readable message and exit code 78, never a traceback."""
    try:
        settings = load_settings(state.config, env_file=state.env_file)
    except ConfigError as exc:
        fail(ExitCode.CONFIG, f"config error: {exc}")
    setup_logging(state.log_format, secrets=secret_values(settings))
    OUTPUT.logging_ready, OUTPUT.warehouse_url = True, settings.warehouse.url
    return settings


def stop_flag() -> threading.Event:
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
