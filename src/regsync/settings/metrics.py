"""`[metrics]`: where `regsync run` writes its Prometheus textfile."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class MetricsSettings(BaseModel):
    """`[metrics]`: where `regsync run` writes the Prometheus textfile ("" = nowhere)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # e.g. "/var/lib/prometheus/node-exporter/regsync_{job}.prom"; {job} is the job's name.
    file: str = ""

    @field_validator("file")
    @classmethod
    def _prom(cls, value: str) -> str:
        if value and not value.endswith(".prom"):
            raise ValueError("node_exporter's textfile collector reads only files ending in .prom")
        return value
