from __future__ import annotations

import pytest

from regsync.clients.retry import call_with_retry, parse_retry_after
from regsync.config import RetrySettings
from regsync.errors import (
    BusinessError,
    MalformedResponseError,
    NotDeliveredError,
    OutcomeUnknownError,
    RateLimitedError,
    RetriableApiError,
)

POLICY = RetrySettings(attempts=4, initial_s=0.5, max_s=8.0, max_retry_after_s=30.0)


def test_retries_retriable_errors_then_succeeds() -> None:
    sleeps: list[float] = []
    calls = iter([RetriableApiError("503"), RetriableApiError("reset"), "done"])

    def flaky() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert call_with_retry(POLICY, flaky, sleep=sleeps.append) == "done"
    assert len(sleeps) == 2
    assert all(0 < s <= 8.0 + 0.5 for s in sleeps)


def test_honours_retry_after_capped() -> None:
    sleeps: list[float] = []
    calls = iter([RateLimitedError("429", retry_after=7), RateLimitedError("429", retry_after=900), "ok"])

    def limited() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert call_with_retry(POLICY, limited, sleep=sleeps.append) == "ok"
    assert sleeps == [7.0, 30.0]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        (None, None),
        ("", None),
        ("nan", None),  # would reach sleep(nan)
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # an HTTP date: the backoff decides
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_business_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    count = 0

    def refused() -> None:
        nonlocal count
        count += 1
        raise BusinessError("already complete")

    with pytest.raises(BusinessError):
        call_with_retry(POLICY, refused, sleep=sleeps.append)
    assert count == 1
    assert sleeps == []


def test_gives_up_after_attempts_with_the_last_error() -> None:
    count = 0

    def down() -> None:
        nonlocal count
        count += 1
        raise RetriableApiError(f"down {count}")

    with pytest.raises(RetriableApiError, match="down 4"):
        call_with_retry(POLICY, down, sleep=lambda _s: None)
    assert count == 4


@pytest.mark.parametrize(
    "first",
    [NotDeliveredError("connection refused"), RateLimitedError("429", retry_after=1)],
    ids=["not-delivered", "rate-limited"],
)
def test_a_write_is_sent_again_only_when_it_was_certainly_not_applied(first: Exception) -> None:
    calls = iter([first, "applied"])

    def write() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert call_with_retry(POLICY, write, sleep=lambda _s: None, write=True) == "applied"


@pytest.mark.parametrize(
    "failure",
    [
        RetriableApiError("read timeout", status=None),
        RetriableApiError("HTTP 500", status=500),
        MalformedResponseError("the body is not JSON", status=200),
    ],
    ids=["timeout", "5xx", "spoiled-answer"],
)
def test_an_ambiguous_write_failure_is_never_sent_again(failure: RetriableApiError) -> None:
    count = 0

    def write() -> None:
        nonlocal count
        count += 1
        raise failure

    with pytest.raises(OutcomeUnknownError, match="may have been applied") as raised:
        call_with_retry(POLICY, write, sleep=lambda _s: None, write=True)
    assert count == 1
    assert raised.value.__cause__ is failure
    assert raised.value.status == failure.status
    # The same failure of a read is retried as before.
    count = 0
    with pytest.raises(type(failure)):
        call_with_retry(POLICY, write, sleep=lambda _s: None)
    assert count == POLICY.attempts
