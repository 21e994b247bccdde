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
import math
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


def parse_retry_after(value: str | None) -> float | None:
    """The seconds a Retry-After header asks for; None when absent or not a number.

    NaN counts as absent: it would reach sleep() later. (An HTTP date is not a number either: the
    backoff decides then.)
    """
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or math.isnan(seconds) else seconds


class _RetryAfterOrBackoff:
    """Wait what the server asked for (capped), else jittered exponential backoff.

    done: attempts already made before the Retrying object took over (call_with_retry's first).
    """

    def __init__(self, policy: RetrySettings, done: int = 0) -> None:
        self.policy = policy
        self.done = done
        self.random = random.Random()

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.wait(exc, state.attempt_number + self.done)

    def wait(self, exc: BaseException | None, attempt: int) -> float:
        if isinstance(exc, RetriableApiError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.policy.max_retry_after_s)
        # Exponential from initial_s, capped at max_s, plus up to initial_s of jitter.
        exponential = self.policy.initial_s * 2.0 ** (attempt - 1)
        return min(self.policy.max_s, exponential) + self.random.uniform(0, self.policy.initial_s)


def _log_retry(exc: BaseException | None, attempt: int, attempts: int, wait: float) -> None:
    log.warning(
        "retrying after %s (attempt %d of %d, waiting %.2fs): %s",
        type(exc).__name__ if exc else "error",
        attempt,
        attempts,
        wait,
        exc if exc else "no answer",
    )


def retrying(
    policy: RetrySettings, *, sleep: Callable[[float], None] = time.sleep, done: int = 0
) -> Retrying:
    """A tenacity Retrying object for one call (`done` attempts of it already made)."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        _log_retry(exc, state.attempt_number + done, policy.attempts, wait)

    return Retrying(
        retry=retry_if_exception_type(RetriableApiError),
        wait=_RetryAfterOrBackoff(policy, done),
        stop=stop_after_attempt(max(1, policy.attempts - done)),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def _under_policy(policy: RetrySettings, fn: Callable[[], T], sleep: Callable[[float], None]) -> T:
    """The first attempt bare (nearly every call succeeds: no retry machinery per call), the rest
    under tenacity, numbered and timed as if tenacity had made the first too."""
    try:
        return fn()
    except RetriableApiError as exc:
        if policy.attempts <= 1:
            raise
        wait = _RetryAfterOrBackoff(policy).wait(exc, 1)
        _log_retry(exc, 1, policy.attempts, wait)
    sleep(wait)
    return retrying(policy, sleep=sleep, done=1)(fn)


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
        return _under_policy(policy, fn, sleep)

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

    return _under_policy(policy, once, sleep)
