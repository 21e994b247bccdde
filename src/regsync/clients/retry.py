"""The one retry policy: every remote call in regsync goes through `retrying`.

Client code only *classifies* a failure (RetriableApiError or FatalApiError); this module decides
whether and when to try again: jittered exponential backoff, honouring Retry-After, a bounded
number of attempts, no retry on business errors.

A write (`write=True`) is tried again only when it certainly was not applied: it never reached
the service (NotDeliveredError) or the service refused it to slow us down (RateLimitedError).
Any other retriable failure of a write becomes OutcomeUnknownError at once: a second send could
submit a registration or end a session twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from regsync.config import RetrySettings
from regsync.errors import NotDeliveredError, OutcomeUnknownError, RateLimitedError, RetriableApiError

T = TypeVar("T")
log = logging.getLogger("regsync.retry")


class _RetryAfterOrBackoff:
    """Wait what the server asked for (capped), else jittered exponential backoff."""

    def __init__(self, policy: RetrySettings) -> None:
        self.policy = policy
        self.random = random.Random()

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetriableApiError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.policy.max_retry_after_s)
        # Exponential from initial_s, capped at max_s, plus up to initial_s of jitter.
        exponential = self.policy.initial_s * 2.0 ** (state.attempt_number - 1)
        return min(self.policy.max_s, exponential) + self.random.uniform(0, self.policy.initial_s)


def retrying(policy: RetrySettings, *, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """A tenacity Retrying object for one call."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying after %s (attempt %d of %d, waiting %.2fs)",
            type(exc).__name__ if exc else "error",
            state.attempt_number,
            policy.attempts,
            state.next_action.sleep if state.next_action else 0.0,
        )

    return Retrying(
        retry=retry_if_exception_type(RetriableApiError),
        wait=_RetryAfterOrBackoff(policy),
        stop=stop_after_attempt(policy.attempts),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def call_with_retry(
    policy: RetrySettings,
    fn: Callable[[], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
    write: bool = False,
) -> T:
    """Run `fn` under the policy; the last error is raised as itself when attempts run out.

    write: `fn` changes remote state; it is repeated only after failures that prove it was not
    applied, and any other retriable failure is raised as OutcomeUnknownError.
    """
    if not write:
        return retrying(policy, sleep=sleep)(fn)

    def once() -> T:
        try:
            return fn()
        except (NotDeliveredError, RateLimitedError):
            raise
        except RetriableApiError as exc:
            raise OutcomeUnknownError(
                f"{exc} (the write may have been applied: it is read back, not sent again)",
                status=exc.status,
                code=exc.code,
                service=exc.service,
            ) from exc

    return retrying(policy, sleep=sleep)(once)
