"""Both clients of one run, sharing its API usage counter and retry policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.salesforce import SalesforceClient
from regsync.clients.usage import ApiUsage
from regsync.config import Settings


def make_clients(
    settings: Settings,
    usage: ApiUsage,
    sleep: Callable[[float], None] | None = None,
    pace: Callable[[float], None] | None = None,
) -> tuple[SalesforceClient, CheckfrontClient]:
    """(Salesforce, Checkfront) for one run; `sleep` replaces the retry waits and `pace` the
    Checkfront rate limiter's (tests: a replayed cassette has no server to spare)."""
    options: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    paced: dict[str, Any] = {} if pace is None else {"pace": pace}
    return (
        SalesforceClient(settings.salesforce, settings.retry, usage, **options),
        CheckfrontClient(settings.checkfront, settings.retry, usage, **options, **paced),
    )
