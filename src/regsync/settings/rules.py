"""`[rules]`: the thresholds that write-backs and reconciliation share."""

from __future__ import annotations

from pydantic import Field

from regsync import definitions as words
from regsync.settings.common import Section
from regsync.settings.types import BookingStatuses


class RuleSettings(Section):
    """`[rules]`: the thresholds of docs/rules.md that the write-back planner ([actions]) and the
    reconciliation ([reconcile]) must share, set once (`harmonise_rules`)."""

    in_flight_s: int = Field(default=words.IN_FLIGHT_S, ge=0)
    confirmed_statuses: BookingStatuses = words.CONFIRMED_STATUSES
    stale_session_ttl_s: int = Field(default=words.STALE_SESSION_TTL_S, ge=0)
    stale_draft_s: int = Field(default=words.STALE_DRAFT_S, ge=0)


SHARED_RULES: tuple[str, ...] = tuple(RuleSettings.model_fields)
