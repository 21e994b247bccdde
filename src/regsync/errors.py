"""The one exception hierarchy of regsync, so callers know what to catch and what to retry.

RegsyncError
├── ConfigError                  bad or missing configuration (exit code: config error)
├── ApiError                     anything a remote API answered or failed to answer
│   ├── RetriableApiError        429, 5xx, dropped connection, timeout: the retry policy may try again
│   │   ├── RateLimitedError     429 / 503 with Retry-After
│   │   ├── NotDeliveredError    the request never reached the service (refused, connect timeout)
│   │   └── MalformedResponseError  a body that is not JSON or not the documented shape
│   ├── OutcomeUnknownError      a write that may have been applied: read back, never resent blindly
│   └── FatalApiError            will fail the same way again: do not retry
│       ├── AuthenticationError  bad credentials, invalid_grant, revoked token
│       ├── QuotaExhaustedError  the org's daily API limit (or our share of it) is used up
│       ├── QueryTimeoutError    QUERY_TIMEOUT: split the window, do not repeat it
│       ├── QueryLocatorError    INVALID_QUERY_LOCATOR: restart the window from its checkpoint
│       └── BusinessError        a 4xx validation answer (already complete, unknown session...)
├── RecordRejected               one record failed normalization: quarantine it, go on
├── WarehouseError               the warehouse cannot be reached or written (down, disk full, read-only)
└── LockHeldError                another run of the same job holds the lock
"""

from __future__ import annotations


class RegsyncError(Exception):
    """Base of every error regsync raises on purpose."""


class ConfigError(RegsyncError):
    """The configuration is invalid; the message names the key and what was expected."""


class ApiError(RegsyncError):
    """A remote API call failed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        service: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.service = service


class RetriableApiError(ApiError):
    """A failure that a later identical request may not repeat."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimitedError(RetriableApiError):
    """The service asked us to slow down (HTTP 429 or 503 with Retry-After)."""


class NotDeliveredError(RetriableApiError):
    """The request never reached the service (connection refused, connect timeout): even a write
    may be sent again."""


class OutcomeUnknownError(ApiError):
    """A write failed in a way that does not say whether the service applied it (a timeout after
    sending, a dropped or spoiled answer, a 5xx). Sending it again could apply it twice: the caller
    reads the remote state instead (regsync.actions recovers it like a crash after the send)."""


class FatalApiError(ApiError):
    """A failure that an identical request would repeat."""


class AuthenticationError(FatalApiError):
    """Credentials were refused."""


class QuotaExhaustedError(FatalApiError):
    """The API budget for today (or the share regsync may use) is spent."""


class QueryTimeoutError(FatalApiError):
    """Salesforce gave up on a query: ask for a narrower window instead of repeating it."""


class QueryLocatorError(FatalApiError):
    """A query cursor expired or is unknown: restart the window from its checkpoint."""


class MalformedResponseError(RetriableApiError):
    """A body that is not JSON or not the documented shape (often a cut connection: retry)."""


class BusinessError(FatalApiError):
    """The API refused one record for a business reason (validation, already complete...)."""


class RecordRejected(RegsyncError):
    """A record could not be normalized; it goes to quarantine with this reason."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason if field is None else f"{field}: {reason}")
        self.reason = reason
        self.field = field


class WarehouseError(RegsyncError):
    """The warehouse cannot be reached or written; the message names the host or the file, never a
    password. (A warehouse that cannot exist as configured is a ConfigError.)"""


class LockHeldError(RegsyncError):
    """Another run of the same job holds the lock."""
