"""Logging: rich on a terminal, JSON lines for cron and shippers; secrets scrubbed from every line."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from rich.logging import RichHandler

_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}


MASK = "********"
# Credentials a server may echo back into an error body (an Authorization header, a session id).
_BEARER = re.compile(r"\b(Bearer|OAuth)(\s+)[A-Za-z0-9._~+/=!\-]{16,}", re.IGNORECASE)
_BASIC = re.compile(r"\b(Basic)(\s+)([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])", re.IGNORECASE)
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_SESSION_ID = re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._\-]{20,}")


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as it travels (as is, URL-encoded, base64), longest first: what `redact` masks."""
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= 4:
            encoded = {quote_plus(secret), quote(secret, safe="")}
            encoded |= {_PERCENT.sub(lambda m: m[0].lower(), form) for form in encoded}  # %2b as well as %2B
            forms |= {secret, base64.b64encode(secret.encode()).decode(), *encoded}
    return sorted(forms, key=len, reverse=True)


def redact(text: str, forms: Iterable[str] = ()) -> str:
    """`text` with every secret form and every echoed credential (Bearer, Basic, session id) masked."""
    for form in forms:
        text = text.replace(form, MASK)
    text = _BEARER.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    text = _BASIC.sub(lambda m: f"{m[1]}{m[2]}{MASK}" if _is_pair(m[3]) else m[0], text)
    return _SESSION_ID.sub(MASK, text)


def _is_pair(candidate: str) -> bool:
    """base64 of `user:password` (a Basic credential), not a word such as "Basic Admission"."""
    try:
        decoded = base64.b64decode(candidate, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


class SecretScrubber(logging.Filter):
    """Mask every known secret (and its encodings) and every echoed credential in the message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = secret_forms(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = redact(message, self.secrets)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


class ContextFilter(logging.Filter):
    """Stamp every line with the run id and job."""

    def __init__(self) -> None:
        super().__init__()
        self.run_id: str | None = None
        self.job: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = record.run_id = getattr(record, "run_id", None) or self.run_id
        job = record.job = getattr(record, "job", None) or self.job
        # For the human formats: "[sync 1f2e3d4c] " when a job is running, nothing otherwise.
        record.context = f"[{job} {str(run_id or '-')[:8]}] " if job else ""
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
    for old in list(root.handlers):
        root.removeHandler(old)
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
