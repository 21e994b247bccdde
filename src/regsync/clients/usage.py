"""API usage: count our calls and read Salesforce's Sforce-Limit-Info so a run stops before the quota.

The header comes in several forms, and a guard that cannot parse one of them must not silently
switch off; every part is parsed and an unknown part is kept as-is rather than ignored:

    api-usage=18/5000
    api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)
    api-usage=10018/100000; api-bursts=1/750
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from regsync.errors import QuotaExhaustedError

_PART = re.compile(
    r"^\s*(?P<name>[a-z-]+)\s*=\s*(?P<used>[0-9]{1,18})\s*/\s*(?P<max>[0-9]{1,18})\s*(?:\((?P<extra>[^)]*)\))?\s*$"
)


@dataclass(frozen=True)
class Usage:
    """used of max for one counter."""

    used: int
    max: int

    @property
    def share(self) -> float:
        return self.used / self.max if self.max else 1.0


@dataclass(frozen=True)
class LimitInfo:
    """A parsed Sforce-Limit-Info header."""

    org: Usage | None = None
    per_app: dict[str, Usage] = field(default_factory=dict)
    bursts: Usage | None = None
    unparsed: tuple[str, ...] = ()

    def tightest(self, pending: int = 0) -> tuple[str, Usage] | None:
        """The counter closest to its limit (what the governor must watch), with `pending` calls
        (made, not yet in this header) counted as used."""
        candidates: list[tuple[str, Usage]] = []
        if self.org:
            candidates.append(("api-usage", self.org))
        candidates += [(f"per-app-api-usage({app})", usage) for app, usage in self.per_app.items()]
        candidates = [(name, Usage(usage.used + pending, usage.max)) for name, usage in candidates]
        return max(candidates, key=lambda item: item[1].share) if candidates else None


def parse_limit_info(header: str) -> LimitInfo:
    """Parse every part of a Sforce-Limit-Info header."""
    org: Usage | None = None
    bursts: Usage | None = None
    per_app: dict[str, Usage] = {}
    unparsed: list[str] = []
    for part in filter(None, (p.strip() for p in header.split(";"))):
        match = _PART.match(part)
        if match is None:
            unparsed.append(part)
            continue
        usage = Usage(int(match["used"]), int(match["max"]))
        name = match["name"]
        if name == "api-usage":
            org = usage
        elif name == "per-app-api-usage":
            extra = match["extra"] or ""
            app = extra.partition("=")[2] if "=" in extra else (extra or "app")
            per_app[app] = usage
        elif name == "api-bursts":
            bursts = usage
        else:
            unparsed.append(part)
    return LimitInfo(org=org, per_app=per_app, bursts=bursts, unparsed=tuple(unparsed))


class ApiUsage:
    """Counts calls per service and watches the org's daily limit for one run.

    Thread-safe. Calls may run at once (a wide pull reads its slices concurrently): `in_flight`
    checks each call against the quota with every call still in flight counted as made, so
    concurrent calls cannot each pass the check on the same stale answer and overrun the share.
    """

    def __init__(self, max_share: float = 0.8) -> None:
        self.max_share = max_share
        self.calls: Counter[str] = Counter()
        self.latest: LimitInfo | None = None
        self._lock = threading.Lock()
        self._in_flight = 0

    def count(self, service: str, limit_header: str | None = None) -> None:
        with self._lock:
            self.calls[service] += 1
            if limit_header:
                self.latest = parse_limit_info(limit_header)

    def check(self) -> None:
        """Raise QuotaExhaustedError when the tightest counter has reached our share of it."""
        with self._lock:
            self._check(self._in_flight)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Around one call: checked as `check` does, with the calls in flight now counted as used."""
        with self._lock:
            self._check(self._in_flight)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _check(self, pending: int) -> None:
        latest = self.latest
        if latest is None:
            return
        tightest = latest.tightest(pending)  # answered calls are in the header; pending ones not yet
        if tightest is None:
            return
        name, usage = tightest
        if usage.share >= self.max_share:
            raise QuotaExhaustedError(
                f"Salesforce {name} is at {usage.used}/{usage.max} "
                f"({usage.share:.0%}), at or above the configured share {self.max_share:.0%}",
                service="salesforce",
                code="QUOTA_SHARE_REACHED",
            )

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            out: dict[str, object] = {f"{k}_calls": v for k, v in sorted(self.calls.items())}
            if self.latest and self.latest.org:
                out["sf_api_usage"] = f"{self.latest.org.used}/{self.latest.org.max}"
            return out
