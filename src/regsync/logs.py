"""Logging: rich on a terminal, JSON lines for cron and shippers; secrets scrubbed from every line."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable

from rich.logging import RichHandler

_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}


class SecretScrubber(logging.Filter):
    """Replace every known secret value by '********' in the rendered message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "********")
            record.msg, record.args = message, None
        return True


class ContextFilter(logging.Filter):
    """Stamp every line with the run id and job."""

    def __init__(self) -> None:
        super().__init__()
        self.run_id: str | None = None
        self.job: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = getattr(record, "run_id", None) or self.run_id
        record.job = getattr(record, "job", None) or self.job
        # For the human formats: "[sync 1f2e3d4c] " when a job is running, nothing otherwise.
        record.context = f"[{record.job} {str(record.run_id or '-')[:8]}] " if record.job else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key != "context" and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


CONTEXT = ContextFilter()


def setup_logging(fmt: str = "auto", *, level: int = logging.INFO, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once per process."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif fmt == "rich" or (fmt == "auto" and sys.stderr.isatty()):
        handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(context)s%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(context)s%(message)s"))
    handler.addFilter(SecretScrubber(secrets))
    handler.addFilter(CONTEXT)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
