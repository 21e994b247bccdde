"""Process exit codes, one per outcome an operator's cron or monitoring must tell apart."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What `regsync` exits with; documented in the README."""

    OK = 0
    FAILED = 1
    USAGE = 2  # click/typer's own code for a bad command line
    PARTIAL = 3  # quarantined records or failed actions; everything else committed
    DEFERRED = 4  # stopped at the API quota share; progress committed, resume later
    LOCK_HELD = 5  # another run of the same job holds the lock
    MISMATCHES = 6  # reconcile --fail-on-mismatch found mismatches
    BREAKER = 7  # the write circuit breaker tripped: nothing was written
    CONFIG = 78  # sysexits' EX_CONFIG: the configuration is invalid
