"""Fault injection: make the sandbox fail the way the real services fail, on purpose and on cue.

A fault plan is a list of rules, read from a JSON or TOML file (`regsync sandbox --faults FILE`) or
added by tests at run time. Each rule matches endpoints by name (globs over route names such as
`salesforce.query`, `checkfront.booking_session.get`) and fires on the Nth matching call, every Nth
call, or a seeded fraction of calls. Salesforce-wide faults (token expiry, the daily request limit,
query timeouts for wide windows) live beside the rules.
"""

from __future__ import annotations

import fnmatch
import json
import random
import re
import threading
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from regsync.sandbox.http import SandboxRequest, SandboxResponse
from regsync.sandbox.network import NetworkConfigError, NetworkModel

FaultKind = Literal["status", "drop", "slow", "malformed", "wrong_type"]
KINDS: tuple[str, ...] = ("status", "drop", "slow", "malformed", "wrong_type")


class FaultPlanError(ValueError):
    """A fault plan file that cannot be used."""


def _check_types(rule: object, expected: dict[str, type | tuple[type, ...]]) -> None:
    """A plan read from a file may hold any JSON type: refuse it at load, not on the 100th request."""
    for name, kinds in expected.items():
        value = getattr(rule, name)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise FaultPlanError(
                f"{name} must be of type {getattr(kinds, '__name__', 'number')}, not {value!r}"
            )


@dataclass
class FaultRule:
    """One kind of failure for the endpoints matching `endpoint`.

    kind: status (answer `status` with `retry_after` and an API-shaped error body), drop (close the
    connection without an answer), slow (answer after `delay_s`), malformed (a truncated JSON body),
    wrong_type (the first record's `target_field` replaced by a value of the wrong JSON type).
    """

    endpoint: str = "*"
    kind: FaultKind = "status"
    status: int = 503
    retry_after: float | None = None
    delay_s: float = 2.0
    target_field: str | None = None
    nth: list[int] = field(default_factory=list)
    every: int = 0
    fraction: float = 0.0
    times: int | None = None  # fire at most this many times
    # Counters, from when the rule was added; not plan fields (a plan naming them is refused).
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        _check_types(
            self,
            {
                "endpoint": str,
                "status": int,
                "delay_s": (int, float),
                "every": int,
                "fraction": (int, float),
            },
        )
        if not isinstance(self.nth, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in self.nth
        ):
            raise FaultPlanError("nth must be a list of call numbers")
        for name in ("retry_after", "times"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise FaultPlanError(f"{name} must be a number")
        if self.kind not in KINDS:
            raise FaultPlanError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not (self.nth or self.every or self.fraction):
            raise FaultPlanError(f"fault on {self.endpoint!r} needs nth, every or fraction")
        if not 0.0 <= self.fraction <= 1.0:
            raise FaultPlanError("fraction must be between 0 and 1")

    def matches(self, endpoint: str) -> bool:
        return fnmatch.fnmatchcase(endpoint, self.endpoint)

    def should_fire(self, rng: random.Random) -> bool:
        self.seen += 1
        if self.times is not None and self.fired >= self.times:
            return False
        hit = (
            self.seen in self.nth
            or (self.every > 0 and self.seen % self.every == 0)
            or (self.fraction > 0 and rng.random() < self.fraction)
        )
        if hit:
            self.fired += 1
        return hit


@dataclass
class SalesforceFaults:
    """Platform-wide Salesforce behaviours that tests want to trigger."""

    token_expire_after: int | None = None  # data/apex calls after which every token is revoked
    request_limit_after: int | None = None  # calls after which REQUEST_LIMIT_EXCEEDED is answered
    query_timeout_window_s: float | None = None  # queries spanning a wider SystemModstamp window time out
    invalid_locator_nth: list[int] = field(default_factory=list)  # nth nextRecordsUrl call: locator expired
    # Counted from when this block was added (not plan fields: a plan cannot set them).
    calls: int = field(default=0, init=False, repr=False)
    locator_calls: int = field(default=0, init=False, repr=False)


class FaultInjector:
    """Holds the plan, decides per call, counts what it injected."""

    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self.salesforce = SalesforceFaults()
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # Latency and limits: set by a plan's "network" block, the command line or the admin API.
        self.network = NetworkModel(seed=seed)

    # -- plan --------------------------------------------------------------------------------
    def add(self, **rule: Any) -> FaultRule:
        made = FaultRule(**rule)
        with self._lock:
            self.rules.append(made)
        return made

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.salesforce = SalesforceFaults()

    def load(self, plan: dict[str, Any]) -> None:
        """Apply a plan: {"seed": 1, "rules": [...], "salesforce": {...}, "network": {...}}."""
        if not isinstance(plan, dict):
            raise FaultPlanError(
                "a fault plan is a JSON/TOML object with keys seed, rules, salesforce, network"
            )
        if not isinstance(plan.get("rules", []), list) or not isinstance(plan.get("salesforce", {}), dict):
            raise FaultPlanError("rules must be a list and salesforce an object")
        unknown = set(plan) - {"seed", "rules", "salesforce", "network"}
        if unknown:
            raise FaultPlanError(f"unknown fault plan keys: {', '.join(sorted(unknown))}")
        try:
            seed = int(plan.get("seed", 0))
            rules = [FaultRule(**rule) for rule in plan.get("rules", [])]
            platform = SalesforceFaults(**plan.get("salesforce", {}))
        except (TypeError, ValueError) as exc:
            raise FaultPlanError(f"bad fault rule: {exc}") from None
        if "network" in plan:
            try:
                self.network.load(plan["network"])  # checked whole before anything changes
            except NetworkConfigError as exc:
                raise FaultPlanError(f"bad network block: {exc}") from None
        if "seed" in plan:
            self._rng = random.Random(seed)
        with self._lock:
            self.rules.extend(rules)
            self.salesforce = platform

    def load_file(self, path: Path) -> None:
        text = path.read_bytes()
        try:
            plan = tomllib.loads(text.decode()) if path.suffix == ".toml" else json.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise FaultPlanError(f"{path}: not valid {path.suffix.lstrip('.') or 'json'}: {exc}") from None
        self.load(plan)

    # -- per call ----------------------------------------------------------------------------
    def _firing(self, endpoint: str, kinds: tuple[str, ...]) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.kind in kinds and rule.matches(endpoint) and rule.should_fire(self._rng):
                    self.injected[rule.kind if rule.kind != "status" else f"status_{rule.status}"] += 1
                    return rule
        return None

    def before(self, endpoint: str, request: SandboxRequest) -> SandboxResponse | None:
        """Faults that replace the answer; None lets the emulator answer."""
        if endpoint.startswith("sandbox."):
            return None
        rule = self._firing(endpoint, ("status", "drop"))
        if rule is None:
            return None
        if rule.kind == "drop":
            return SandboxResponse(status=0, drop=True)
        headers = []
        if rule.retry_after is not None:
            headers.append(("Retry-After", f"{rule.retry_after:g}"))
        return SandboxResponse.json(rule.status, _error_body(endpoint, rule.status), headers)

    def after(self, endpoint: str, request: SandboxRequest, response: SandboxResponse) -> SandboxResponse:
        """Faults that spoil a real answer: slow, malformed, wrong_type."""
        if endpoint.startswith("sandbox.") or response.status >= 300:
            return response
        rule = self._firing(endpoint, ("slow", "malformed", "wrong_type"))
        if rule is None:
            return response
        if rule.kind == "slow":
            response.delay_s = rule.delay_s
        elif rule.kind == "malformed":
            response.body = response.body[: max(1, len(response.body) // 2)]
        else:
            response.body = _wrong_type(response.body, rule.target_field)
        return response

    def summary(self) -> dict[str, int]:
        return dict(self.injected)


def _error_body(endpoint: str, status: int) -> Any:
    """The error body each service sends with such a status."""
    if endpoint.startswith("salesforce."):
        code = {429: "REQUEST_LIMIT_EXCEEDED", 503: "SERVER_UNAVAILABLE"}.get(status, "UNKNOWN_EXCEPTION")
        return [{"message": f"sandbox fault: HTTP {status}", "errorCode": code}]
    # Checkfront's 429/503 bodies are undocumented; an OAuth-style critical error is the documented form.
    return {
        "error": "rate_limited" if status == 429 else "server_error",
        "error_description": f"HTTP {status}",
    }


_WRONG = {
    str: 12345,
    int: "not-a-number",
    float: "not-a-number",
    bool: "maybe",
    type(None): {"x": 1},
}


def _wrong_type(body: bytes, field_name: str | None) -> bytes:
    """Replace one value in the first record of the answer by a value of the wrong JSON type."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    target = _first_record(payload)
    if target is None:
        return body
    name = (
        field_name
        if field_name in target
        else next((key for key in target if key not in ("attributes", "Id", "id")), None)
    )
    if name is None:
        return body
    target[name] = _WRONG.get(type(target[name]), "wrong")
    return orjson.dumps(payload)


def _first_record(payload: Any) -> dict[str, Any] | None:
    if isinstance(payload, dict):
        if isinstance(payload.get("records"), list) and payload["records"]:
            first = payload["records"][0]
            return first if isinstance(first, dict) else None
        for key in ("booking/index",):
            block = payload.get(key)
            if isinstance(block, dict) and block:
                entry = next(iter(block.values()))
                return entry if isinstance(entry, dict) else None
        booking = payload.get("booking")
        if isinstance(booking, dict):
            session = booking.get("session", booking)
            return session if isinstance(session, dict) else None
    return None


_WINDOW = re.compile(
    r"SystemModstamp\s*(>=|>|<=|<)\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))",
    re.IGNORECASE,
)


_BY_ID = re.compile(r"\bWHERE\b.*?\bId\s*(?:=|IN\s*\()", re.IGNORECASE | re.DOTALL)


def selective_by_id(soql: str) -> bool:
    """The query filters on record Ids (`Id = '...'`, `Id IN (...)`): a selective query that real
    Salesforce answers from the primary index, so the wide-window timeout does not apply."""
    return _BY_ID.search(soql) is not None


def window_seconds(soql: str) -> float:
    """Width of the SystemModstamp window a query asks for (inf when unbounded on either side)."""
    from datetime import datetime

    lower: float | None = None
    upper: float | None = None
    for op, literal in _WINDOW.findall(soql):
        moment = datetime.fromisoformat(literal.replace("Z", "+00:00")).timestamp()
        if op.startswith(">"):
            lower = moment if lower is None else max(lower, moment)
        else:
            upper = moment if upper is None else min(upper, moment)
    if lower is None or upper is None:
        return float("inf")
    return max(0.0, upper - lower)
