"""What every section shares: strict models, a CA file checked when the config loads."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict


def check_ca_file(value: Path | None) -> Path | None:
    """A CA file must exist, be readable and hold PEM certificates: found at load time, not as a
    TLS traceback at the first call (a sandbox config outliving the sandbox's CA, a typo)."""
    if value is None:
        return None
    try:
        data = value.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"CA file {value} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"CA file {value} is a directory") from None
    except OSError as exc:
        raise ValueError(f"CA file {value} cannot be read: {exc.strerror or exc}") from None
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
