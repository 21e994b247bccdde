"""`[warehouse]`: where the local warehouse lives."""

from __future__ import annotations

from pydantic import field_validator

from regsync.settings.common import Section


class WarehouseSettings(Section):
    """Where the local warehouse lives."""

    url: str = "sqlite:///regsync.db"

    @field_validator("url")
    @classmethod
    def _dialect(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        return value
