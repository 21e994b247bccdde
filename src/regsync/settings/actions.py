"""Write-back settings: thresholds of docs/rules.md, the write switch and the circuit breaker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from regsync import definitions as words
from regsync.settings.types import BookingStatuses


class ActionSettings(BaseModel):
    """`[actions]`: what may be written back, and how much at most in one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Writes happen only when this is true or the caller passes apply=True (`--apply`).
    enabled: bool = False
    in_flight_s: int = Field(default=words.IN_FLIGHT_S, ge=0)
    confirmed_statuses: BookingStatuses = words.CONFIRMED_STATUSES
    stale_session_ttl_s: int = Field(default=words.STALE_SESSION_TTL_S, ge=0)
    stale_draft_s: int = Field(default=words.STALE_DRAFT_S, ge=0)
    # The circuit breaker: a run that would write more than max_writes actions, or more than
    # max_share of the eligible population (drafts for submits, known alive booking sessions for
    # ends), writes nothing.
    max_writes: int = Field(default=200, ge=0)
    max_share: float = Field(default=0.2, gt=0, le=1)
    # The share rule applies only from this many writes of a kind: on a small org a handful of
    # writes is a large share of a small population and no sign of a runaway plan.
    share_min_writes: int = Field(default=5, ge=1)
    # Ids per batched re-read / confirming SOQL query (kept well under Salesforce's URI length).
    batch_size: int = Field(default=200, ge=1, le=500)
