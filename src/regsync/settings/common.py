"""What every section shares: strict models, a CA file checked when the config loads, the words for
a file that cannot be read."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict


def why_unreadable(exc: OSError, expected: str | None = None) -> str:
    """Why a file the user named could not be read, in words to follow its name: "does not exist",
    "is a directory[, not `expected`]" or "cannot be read: <the system's reason>"."""
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    if isinstance(exc, IsADirectoryError):
        return "is a directory" + (f", not {expected}" if expected else "")
    return f"cannot be read: {exc.strerror or exc}"


def check_ca_file(value: Path | None) -> Path | None:
    """A CA file must exist, be readable and hold PEM certificates: found at load time, not as a
    TLS traceback at the first call (a sandbox config outliving the sandbox's CA, a typo)."""
    if value is None:
        return None
    try:
        data = value.read_bytes()
    except OSError as exc:
        raise ValueError(f"CA file {value} {why_unreadable(exc)}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError(f"CA file {value} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cafile=str(value))
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"CA file {value} is not a usable PEM certificate: {exc}") from None
    return value


class Section(BaseModel):
    """A config-file section: unknown keys are an error, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)
