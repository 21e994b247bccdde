"""The network between regsync and the vendors: latency, Checkfront's rate limit, Salesforce's limit
of concurrent long-running requests.

On loopback every call answers in microseconds and nothing ever says "slow down", so a client tuned
against the bare sandbox is tuned for a world that does not exist. In production each call costs a
round trip (50-300 ms), Checkfront answers 429 + `Retry-After` beyond a rate it does not publish, and
a Salesforce org refuses new calls while 25 calls of 20 s or longer are running. This module puts
those three on the sandbox's HTTP path (never on in-process `Sandbox.dispatch`, which benchmarks use
for setup), configured from the command line (`--latency`, `--rate-limit`, `--sf-long-running`),
from a fault plan's `"network"` block, from `POST /__sandbox/network` or in code.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from regsync.sandbox.http import SandboxResponse

SERVICES: tuple[str, ...] = ("checkfront", "salesforce")


class NetworkConfigError(ValueError):
    """A latency, rate-limit or long-running setting that cannot be used."""


def service_of(path: str) -> str | None:
    """Which vendor a path belongs to (None for the admin API, which the network model leaves alone)."""
    if path.startswith("/api/"):
        return "checkfront"
    if path.startswith(("/services/", "/id/")):
        return "salesforce"
    return None


# ---------------------------------------------------------------------------------------- parsing
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """`100ms`, `0.3s` -> seconds. A unit is required: a bare `100` is ambiguous."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise NetworkConfigError(f"{text!r} is not a duration like 100ms or 0.3s")
    value = float(match.group(1))
    return value / 1000 if match.group(2).lower() == "ms" else value


@dataclass(frozen=True)
class Latency:
    """Time added to every answer of a service: `seconds`, plus or minus up to `jitter_s` (uniform)."""

    seconds: float
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("seconds", "jitter_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 3600:
                raise NetworkConfigError(f"latency {name} must be a number of seconds in [0, 3600)")

    @classmethod
    def parse(cls, text: str) -> Latency:
        """`100ms`, `100ms+-20ms` or `100ms±20ms`."""
        mean, sep, jitter = text.replace("±", "+-").partition("+-")
        return cls(parse_duration(mean), parse_duration(jitter) if sep else 0.0)

    def draw(self, rng: random.Random) -> float:
        if not self.jitter_s:
            return self.seconds
        return max(0.0, self.seconds + rng.uniform(-self.jitter_s, self.jitter_s))


def _service(name: str) -> str:
    name = name.strip().lower()
    if name not in SERVICES:
        raise NetworkConfigError(f"unknown service {name!r} (expected one of {', '.join(SERVICES)})")
    return name


def parse_latencies(text: str) -> dict[str, Latency]:
    """`checkfront=100ms,salesforce=300ms+-50ms` -> {service: Latency}."""
    out: dict[str, Latency] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq:
            raise NetworkConfigError(f"{part!r}: expected SERVICE=DURATION, e.g. checkfront=100ms")
        out[_service(name)] = Latency.parse(value)
    if not out:
        raise NetworkConfigError("no latency given")
    return out


_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|min|m)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `per_s` tokens a second, at most `burst` saved up; a call takes one token."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if isinstance(self.per_s, bool) or not isinstance(self.per_s, int | float) or not self.per_s > 0:
            raise NetworkConfigError("a rate limit needs a rate above 0 requests/s")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise NetworkConfigError("a rate limit's burst must be a whole number >= 1")

    @classmethod
    def of(cls, per_s: float, burst: int | None = None) -> RateLimit:
        """Default burst: one second's worth of calls (at least 1)."""
        return cls(per_s, burst if burst is not None else max(1, math.ceil(per_s)))


def parse_rate_limits(text: str) -> dict[str, RateLimit]:
    """`checkfront=20/s,burst=40` (or `20/min`) -> {service: RateLimit}; `burst=` applies to the
    service named before it."""
    rates: dict[str, float] = {}
    bursts: dict[str, int] = {}
    last: str | None = None
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq:
            raise NetworkConfigError(f"{part!r}: expected SERVICE=N/s or burst=N")
        if name.strip().lower() == "burst":
            if last is None:
                raise NetworkConfigError("burst= must follow the service it applies to")
            if not value.strip().isdigit():
                raise NetworkConfigError(f"burst must be a whole number, not {value!r}")
            bursts[last] = int(value)
            continue
        last = _service(name)
        match = _RATE.fullmatch(value)
        if match is None:
            raise NetworkConfigError(f"{value!r} is not a rate like 20/s or 600/min")
        per = float(match.group(1))
        rates[last] = per / 60 if match.group(2).lower() in ("min", "m") else per
    if not rates:
        raise NetworkConfigError("no rate limit given")
    return {name: RateLimit.of(rate, bursts.get(name)) for name, rate in rates.items()}


@dataclass(frozen=True)
class LongRunningLimit:
    """Salesforce's concurrent API request limit: while `max_requests` calls have been running for
    `after_s` seconds or longer, new calls are refused (25 and 20 s in production orgs)."""

    max_requests: int = 25
    after_s: float = 20.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_requests, bool)
            or not isinstance(self.max_requests, int)
            or self.max_requests < 1
        ):
            raise NetworkConfigError("the long-running limit must be a whole number >= 1")
        if isinstance(self.after_s, bool) or not isinstance(self.after_s, int | float) or self.after_s < 0:
            raise NetworkConfigError("after must be a duration >= 0")

    @classmethod
    def parse(cls, text: str) -> LongRunningLimit:
        """`25` or `5,after=2s`."""
        head, _, rest = text.partition(",")
        if not head.strip().isdigit():
            raise NetworkConfigError(f"{text!r}: expected N[,after=DURATION], e.g. 25,after=20s")
        after = 20.0
        if rest:
            key, eq, value = rest.partition("=")
            if key.strip().lower() != "after" or not eq:
                raise NetworkConfigError(f"{rest!r}: expected after=DURATION")
            after = parse_duration(value)
        return cls(int(head), after)


def _plan_latency(value: Any) -> Latency:
    if isinstance(value, str):
        return Latency.parse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Latency(float(value))
    if isinstance(value, dict) and set(value) <= {"seconds", "jitter_s"}:
        return Latency(value.get("seconds", 0.0), value.get("jitter_s", 0.0))
    raise NetworkConfigError(
        f'latency {value!r}: use "100ms", "100ms+-20ms", seconds, or {{seconds, jitter_s}}'
    )


def _plan_rate(value: Any) -> RateLimit:
    if isinstance(value, str):
        text = value.strip()
        rate, _, burst = text.partition(",")
        return parse_rate_limits(f"checkfront={rate}" + (f",{burst}" if burst else ""))["checkfront"]
    if isinstance(value, dict) and "per_s" in value and set(value) <= {"per_s", "burst"}:
        return RateLimit.of(value["per_s"], value.get("burst"))
    raise NetworkConfigError(f'rate limit {value!r}: use "20/s,burst=40" or {{per_s, burst}}')


# ------------------------------------------------------------------------------------ the model
@dataclass
class Ticket:
    """One call on its way through the network: refused, or admitted (and then ended)."""

    service: str | None
    started: float
    refusal: SandboxResponse | None = None
    tracked: bool = False


class _Bucket:
    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.clock = clock
        self.updated = clock()

    def take(self) -> float:
        """0 when a token was taken; else the seconds until one is there (nothing is taken)."""
        now = self.clock()
        self.tokens = min(float(self.limit.burst), self.tokens + (now - self.updated) * self.limit.per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.per_s


class NetworkModel:
    """Latency per service, rate limits per service, and Salesforce's long-running limit; counts what
    it did (calls, 429s sent, calls refused for the long-running limit)."""

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.latency: dict[str, Latency] = {}
        self._buckets: dict[str, _Bucket] = {}
        # On by default, as in every production org (25 calls of 20 s or longer).
        self.long_running: LongRunningLimit | None = LongRunningLimit()
        self._running: dict[int, float] = {}  # id(ticket) -> start, Salesforce calls in flight
        self.counts: Counter[str] = Counter()

    # -- configuration -------------------------------------------------------------------------
    def set_latency(self, service: str, seconds: float, jitter_s: float = 0.0) -> None:
        self.latency[_service(service)] = Latency(seconds, jitter_s)

    def set_rate_limit(self, service: str, per_s: float, burst: int | None = None) -> None:
        limit = RateLimit.of(per_s, burst)
        with self._lock:
            self._buckets[_service(service)] = _Bucket(limit, self._clock)

    def set_long_running_limit(self, max_requests: int | None, after_s: float = 20.0) -> None:
        """None turns the limit off."""
        self.long_running = None if max_requests is None else LongRunningLimit(max_requests, after_s)

    @property
    def rate_limits(self) -> dict[str, RateLimit]:
        return {name: bucket.limit for name, bucket in self._buckets.items()}

    def configure(
        self,
        *,
        latency: str | Mapping[str, Latency] | None = None,
        rate_limit: str | Mapping[str, RateLimit] | None = None,
        long_running: str | LongRunningLimit | None = None,
    ) -> NetworkModel:
        """Apply settings in their command-line form (`"checkfront=100ms"`) or as objects."""
        for name, lat in (parse_latencies(latency) if isinstance(latency, str) else latency or {}).items():
            self.set_latency(name, lat.seconds, lat.jitter_s)
        rates = parse_rate_limits(rate_limit) if isinstance(rate_limit, str) else rate_limit or {}
        for name, rate in rates.items():
            self.set_rate_limit(name, rate.per_s, rate.burst)
        if long_running is not None:
            made = LongRunningLimit.parse(long_running) if isinstance(long_running, str) else long_running
            self.long_running = made
        return self

    def load(self, block: Any) -> None:
        """A fault plan's `"network"` block (or the body of `POST /__sandbox/network`):
        {"latency": {service: "100ms+-20ms" | seconds | {seconds, jitter_s}},
         "rate_limit": {service: "20/s,burst=40" | {per_s, burst}},
         "salesforce_long_running": {"max_requests": 25, "after_s": 20} | null}.
        Services not named keep their settings; everything is checked before anything changes."""
        if not isinstance(block, dict):
            raise NetworkConfigError(
                "the network block is an object with latency, rate_limit, salesforce_long_running"
            )
        unknown = set(block) - {"latency", "rate_limit", "salesforce_long_running"}
        if unknown:
            raise NetworkConfigError(f"unknown network keys: {', '.join(sorted(unknown))}")
        for key in ("latency", "rate_limit"):
            if not isinstance(block.get(key, {}), dict):
                raise NetworkConfigError(f"{key} must be an object keyed by service")
        latencies = {_service(k): _plan_latency(v) for k, v in block.get("latency", {}).items()}
        rates = {_service(k): _plan_rate(v) for k, v in block.get("rate_limit", {}).items()}
        long_running = self.long_running
        if "salesforce_long_running" in block:
            raw = block["salesforce_long_running"]
            if raw is None:
                long_running = None
            elif isinstance(raw, dict) and set(raw) <= {"max_requests", "after_s"}:
                long_running = LongRunningLimit(raw.get("max_requests", 25), raw.get("after_s", 20.0))
            else:
                raise NetworkConfigError("salesforce_long_running is {max_requests, after_s} or null")
        self.configure(latency=latencies, rate_limit=rates)
        self.long_running = long_running

    def reset(self) -> None:
        """No latency, no rate limits, the production long-running limit; counters kept."""
        with self._lock:
            self.latency.clear()
            self._buckets.clear()
        self.long_running = LongRunningLimit()

    # -- per call ------------------------------------------------------------------------------
    def admit(self, path: str) -> Ticket:
        """Decide at arrival: a refusal (429 from a rate limit, 403 from the long-running limit) or
        an admitted call, tracked until `end`."""
        service = service_of(path)
        now = self._clock()
        ticket = Ticket(service, now)
        if service is None:
            return ticket
        with self._lock:
            self.counts[f"{service}.calls"] += 1
            bucket = self._buckets.get(service)
            wait = bucket.take() if bucket is not None else 0.0
            if wait:
                self.counts[f"{service}.rate_limited"] += 1
                ticket.refusal = _rate_limited(service, wait)
                return ticket
            limit = self.long_running
            if service == "salesforce" and limit is not None:
                long = sum(1 for started in self._running.values() if now - started >= limit.after_s)
                if long >= limit.max_requests:
                    self.counts["salesforce.long_running_refused"] += 1
                    ticket.refusal = _long_running_refused()
                    return ticket
                self._running[id(ticket)] = now
                ticket.tracked = True
        return ticket

    def delay(self, ticket: Ticket) -> float:
        """The latency this answer waits before it is sent."""
        latency = self.latency.get(ticket.service or "")
        if latency is None:
            return 0.0
        with self._lock:
            return latency.draw(self._rng)

    def end(self, ticket: Ticket) -> None:
        if ticket.tracked:
            with self._lock:
                self._running.pop(id(ticket), None)

    # -- what tests and benchmarks read -----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Settings and counters, as `GET /__sandbox/network` shows them."""
        with self._lock:
            counts = dict(self.counts)
            in_flight = len(self._running)
        return {
            "latency": {k: {"seconds": v.seconds, "jitter_s": v.jitter_s} for k, v in self.latency.items()},
            "rate_limit": {k: {"per_s": v.per_s, "burst": v.burst} for k, v in self.rate_limits.items()},
            "salesforce_long_running": None
            if self.long_running is None
            else {"max_requests": self.long_running.max_requests, "after_s": self.long_running.after_s},
            "counts": {
                "checkfront_calls": counts.get("checkfront.calls", 0),
                "checkfront_429": counts.get("checkfront.rate_limited", 0),
                "salesforce_calls": counts.get("salesforce.calls", 0),
                "salesforce_429": counts.get("salesforce.rate_limited", 0),
                "salesforce_long_running_refused": counts.get("salesforce.long_running_refused", 0),
                "salesforce_in_flight": in_flight,
            },
        }

    @property
    def rate_limited(self) -> int:
        """How many 429s the Checkfront rate limiter sent."""
        return self.counts["checkfront.rate_limited"]

    def clear_counts(self) -> None:
        with self._lock:
            self.counts.clear()


def _rate_limited(service: str, wait_s: float) -> SandboxResponse:
    """429 with `Retry-After` in whole seconds (HTTP's delta-seconds), rounded up, at least 1."""
    retry_after = max(1, math.ceil(wait_s))
    if service == "salesforce":
        body: Any = [{"message": "Rate limit exceeded", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    else:
        # Checkfront documents the status and the header, not the body: the OAuth-style critical
        # error form its docs give for failures without the envelope.
        body = {
            "error": "rate_limited",
            "error_description": "Too many requests: retry after the Retry-After delay.",
        }
    return SandboxResponse(429, orjson.dumps(body), [("Retry-After", str(retry_after))])


def _long_running_refused() -> SandboxResponse:
    """What Salesforce answers while its concurrent long-running limit is reached."""
    return SandboxResponse.json(
        403, [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    )
