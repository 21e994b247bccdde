"""`[checkfront]`: the account's address, authentication and paging."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from regsync.settings.common import Section, check_ca_file


class CheckfrontSettings(Section):
    """How to reach and authenticate to the Checkfront account."""

    base_url: str = "https://your-company.checkfront.com"
    auth: Literal["token", "bearer"] = "token"
    ca_file: Path | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    concurrency: int = Field(default=8, ge=1, le=64)  # the most calls in flight (adaptive below it)
    max_requests_per_s: float | None = Field(default=None, gt=0)  # None: learned from 429s
    page_limit: int = Field(default=100, ge=1, le=250)
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    token: SecretStr | None = None

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("expected an https:// URL (Checkfront is https-only)")
        return value.rstrip("/")

    _ca_file = field_validator("ca_file")(check_ca_file)
