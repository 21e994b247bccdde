"""`[reconcile]`: thresholds of docs/rules.md plus an explicit Session -> Checkfront item mapping."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from regsync import definitions as words
from regsync.settings.types import BookingStatuses

Severity = Literal["high", "medium", "low"]


class ReconcileSettings(BaseModel):
    """Thresholds of docs/rules.md plus an explicit Session -> Checkfront item mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_flight_s: int = Field(default=words.IN_FLIGHT_S, ge=0)
    confirmed_statuses: BookingStatuses = words.CONFIRMED_STATUSES
    stale_session_ttl_s: int = Field(default=words.STALE_SESSION_TTL_S, ge=0)
    overdue_s: int = Field(default=words.OVERDUE_S, ge=0)
    stale_draft_s: int = Field(default=words.STALE_DRAFT_S, ge=0)
    amount_tolerance: Decimal = Field(default=Decimal(words.AMOUNT_TOLERANCE), ge=0)
    severity: dict[str, Severity] = {}
    session_item_mapping: dict[str, str] = {}
    # Connections the rules are spread over (regsync.reconcile.rules.evaluate_concurrently).
    query_workers: int = Field(default=2, ge=1, le=8)
    # Reports warn when a system's last successful pull is older than this (regsync.warehouse.freshness).
    max_data_age_s: int = Field(default=7200, ge=60)

    @field_validator("severity")
    @classmethod
    def _known_codes(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        # The codes of the bottom layer, so an override naming an unknown code is refused when the
        # config loads, without loading the rules (which declare one rule per code, in that order).
        known = words.REASON_CODES
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown reason code(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return value
