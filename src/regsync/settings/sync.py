"""`[sync]`, `[quota]`, `[retry]`: how the pull windows its reads and how every remote call is paced."""

from __future__ import annotations

from pydantic import Field

from regsync.settings.common import Section


class SyncSettings(Section):
    """The incremental pull: windows, look-back and safety lag."""

    lookback_s: int = Field(default=300, ge=0)
    safety_lag_s: int = Field(default=60, ge=0)
    # 0 = one window from the watermark to now (fewest API calls); a window that times out
    # (QUERY_TIMEOUT) is split in two whatever this says.
    window_days: float = Field(default=0.0, ge=0)
    min_window_s: int = Field(default=60, ge=1)
    # A wide pull (a first sync, a backfill) whose first page shows pages enough to share is read
    # in up to this many SystemModstamp slices at once, each with its own checkpoint; 1 = one query
    # after another. At most 4: each slice may hold two query cursors, and Salesforce keeps ten
    # open per user (it releases the oldest past that).
    soql_slices: int = Field(default=4, ge=1, le=4)
    # ... and only when what is left of it spans more than this many days: an ordinary run of
    # minutes stays one query.
    slice_min_days: float = Field(default=7.0, ge=0)
    # ... and only when every slice gets at least this many pages: a slice costs a query or two
    # of its own (its first page, its Failed messages), so 40 keeps those under 5 % of the calls.
    slice_min_pages: int = Field(default=40, ge=1)
    backfill_since: str = "2015-01-01"
    booking_window_days: int = Field(default=365, ge=1)
    # A booking session seen alive is read again when its registration changed since, or when the
    # last read is older than this (its cart may have changed or ended).
    booking_session_refresh_s: int = Field(default=3600, ge=0)


class QuotaSettings(Section):
    """Stop a run cleanly before regsync eats too much of the org's daily API allowance."""

    max_share: float = Field(default=0.8, gt=0, le=1)


class RetrySettings(Section):
    """The one retry policy for every remote call."""

    attempts: int = Field(default=6, ge=1, le=20)
    initial_s: float = Field(default=0.5, ge=0)
    max_s: float = Field(default=30.0, ge=0)
    max_retry_after_s: float = Field(default=120.0, ge=0)
