"""The sandbox's network model: latency, Checkfront's rate limit, Salesforce's long-running limit.

The token bucket and the long-running rule are checked on a fake clock (exact, no sleeping); the
HTTP path is checked end to end with `httpx` and `requests`, asserting only lower bounds on time
(a sleep lasts at least as long as asked, whatever the machine's load).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from regsync.sandbox import DEMO, Sandbox
from regsync.sandbox.faults import FaultPlanError
from regsync.sandbox.network import (
    Latency,
    LongRunningLimit,
    NetworkConfigError,
    NetworkModel,
    RateLimit,
    parse_latencies,
    parse_rate_limits,
)
from regsync.sandbox.store import REGISTRATION, SandboxStore

pytestmark = pytest.mark.sandbox

CF_AUTH = {"Authorization": f"Bearer {DEMO.cf_token}"}
SF_AUTH = {"Authorization": f"Bearer {DEMO.sf_session_id}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------ parsing
def test_latency_and_rate_limit_strings_parse() -> None:
    assert parse_latencies("checkfront=100ms,salesforce=0.3s+-50ms") == {
        "checkfront": Latency(0.1),
        "salesforce": Latency(0.3, 0.05),
    }
    assert parse_latencies("Checkfront=20ms±5ms") == {"checkfront": Latency(0.02, 0.005)}
    assert parse_rate_limits("checkfront=20/s,burst=40") == {"checkfront": RateLimit(20, 40)}
    assert parse_rate_limits("checkfront=600/min") == {"checkfront": RateLimit(10, 10)}
    assert parse_rate_limits("checkfront=2.5/s") == {"checkfront": RateLimit(2.5, 3)}
    assert LongRunningLimit.parse("5,after=2s") == LongRunningLimit(5, 2.0)
    assert LongRunningLimit.parse("25") == LongRunningLimit(25, 20.0)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_latencies, "checkfront=100", "not a duration"),
        (parse_latencies, "hubspot=1s", "unknown service 'hubspot'"),
        (parse_latencies, "checkfront", "expected SERVICE=DURATION"),
        (parse_rate_limits, "burst=4,checkfront=1/s", "must follow the service"),
        (parse_rate_limits, "checkfront=0/s", "above 0"),
        (parse_rate_limits, "checkfront=fast", "not a rate"),
        (parse_rate_limits, "checkfront=1/s,burst=0", "burst must be a whole number >= 1"),
        (LongRunningLimit.parse, "0", ">= 1"),
        (LongRunningLimit.parse, "5,before=2s", "after=DURATION"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(parse, text: str, message: str) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        parse(text)


# ------------------------------------------------------------------------------ on a fake clock
def test_token_bucket_admits_the_burst_then_the_rate_and_counts_429s() -> None:
    clock = FakeClock()
    model = NetworkModel(clock=clock).configure(rate_limit="checkfront=2/s,burst=3")
    statuses = [model.admit("/api/3.0/ping").refusal for _ in range(4)]
    assert [r is None for r in statuses] == [True, True, True, False]
    refused = statuses[3]
    assert refused is not None
    assert refused.status == 429
    assert dict(refused.headers)["Retry-After"] == "1"  # 0.5 s to the next token, in whole seconds
    clock.now += 0.5  # one token back
    assert model.admit("/api/3.0/ping").refusal is None
    assert model.admit("/api/3.0/ping").refusal is not None
    clock.now += 10  # refills to the burst, not beyond
    assert [model.admit("/api/3.0/ping").refusal is None for _ in range(4)] == [True, True, True, False]
    assert model.rate_limited == 3
    counts = model.summary()["counts"]
    assert counts["checkfront_calls"] == 10
    assert counts["checkfront_429"] == 3
    # Salesforce and the admin API are not behind Checkfront's limiter.
    assert all(model.admit("/services/data/v60.0/limits").refusal is None for _ in range(10))
    assert all(model.admit("/__sandbox/requests").refusal is None for _ in range(10))
    assert model.rate_limited == 3


def test_retry_after_is_the_wait_for_one_token_rounded_up() -> None:
    clock = FakeClock()
    model = NetworkModel(clock=clock).configure(rate_limit="checkfront=0.25/s,burst=1")
    assert model.admit("/api/3.0/item").refusal is None
    refused = model.admit("/api/3.0/item").refusal
    assert refused is not None
    assert dict(refused.headers)["Retry-After"] == "4"
    clock.now += 3.5
    refused = model.admit("/api/3.0/item").refusal
    assert refused is not None
    assert dict(refused.headers)["Retry-After"] == "1"
    clock.now += 0.5
    assert model.admit("/api/3.0/item").refusal is None


def test_long_running_limit_refuses_only_while_enough_calls_have_run_long() -> None:
    clock = FakeClock()
    model = NetworkModel(clock=clock).configure(long_running=LongRunningLimit(2, after_s=20))
    first, second = model.admit("/services/data/v60.0/query"), model.admit("/services/data/v60.0/query")
    clock.now += 19.9  # two calls running, neither long yet: no limit on short calls
    third = model.admit("/services/data/v60.0/query")
    assert third.refusal is None
    clock.now += 0.1  # first and second are now 20 s old: the limit is reached
    refused = model.admit("/services/data/v60.0/query")
    assert refused.refusal is not None
    assert refused.refusal.status == 403
    assert refused.refusal.body == (
        b'[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]'
    )
    assert model.admit("/api/3.0/ping").refusal is None  # Checkfront is another service
    model.end(first)
    assert model.admit("/services/data/v60.0/query").refusal is None  # one long call left of two
    model.end(second)
    model.end(third)
    assert model.summary()["counts"]["salesforce_long_running_refused"] == 1


def test_jitter_stays_within_its_bounds_and_is_seeded() -> None:
    def draws(seed: int) -> list[float]:
        model = NetworkModel(seed=seed).configure(latency="checkfront=100ms+-40ms")
        return [model.delay(model.admit("/api/3.0/ping")) for _ in range(200)]

    values = draws(3)
    assert all(0.06 <= v <= 0.14 for v in values)
    assert max(values) - min(values) > 0.04  # it does vary
    assert values == draws(3)
    model = NetworkModel().configure(latency="salesforce=300ms")
    assert model.delay(model.admit("/api/3.0/ping")) == 0.0  # no latency set for Checkfront
    assert model.delay(model.admit("/services/data/")) == 0.3


def test_fault_plan_network_block_is_checked_whole() -> None:
    box = Sandbox(SandboxStore())
    box.faults.load(
        {
            "network": {
                "latency": {"checkfront": "100ms+-10ms", "salesforce": 0.3},
                "rate_limit": {"checkfront": {"per_s": 20, "burst": 40}},
                "salesforce_long_running": {"max_requests": 5, "after_s": 2},
            }
        }
    )
    summary = box.network.summary()
    assert summary["latency"] == {
        "checkfront": {"seconds": 0.1, "jitter_s": 0.01},
        "salesforce": {"seconds": 0.3, "jitter_s": 0.0},
    }
    assert summary["rate_limit"] == {"checkfront": {"per_s": 20, "burst": 40}}
    assert summary["salesforce_long_running"] == {"max_requests": 5, "after_s": 2}
    with pytest.raises(FaultPlanError, match="unknown service 'crm'"):
        box.faults.load({"network": {"latency": {"checkfront": "5ms", "crm": "1ms"}}})
    with pytest.raises(FaultPlanError, match="unknown network keys: jitter"):
        box.faults.load({"network": {"jitter": 1}})
    assert box.network.summary()["latency"]["checkfront"]["seconds"] == 0.1  # nothing half-applied


# ------------------------------------------------------------------------------- over HTTP
@pytest.fixture
def box() -> Iterator[Sandbox]:
    with Sandbox.generated(registrations=20, seed=3) as sandbox:
        yield sandbox


def client(box: Sandbox) -> httpx.Client:
    return httpx.Client(
        base_url=box.base_url, verify=ssl.create_default_context(cafile=str(box.ca_path)), timeout=30
    )


def test_latency_delays_each_answer_of_its_service_only(box: Sandbox) -> None:
    box.network.set_latency("checkfront", 0.25)
    with client(box) as http:
        http.get("/api/3.0/ping", headers=CF_AUTH)  # connection set up outside the measurement
        started = time.perf_counter()
        for _ in range(3):
            assert http.get("/api/3.0/ping", headers=CF_AUTH).status_code == 200
        assert time.perf_counter() - started >= 0.75
        # In-process dispatch (benchmark setup) is not on the network.
        started = time.perf_counter()
        assert box.dispatch("GET", "/api/3.0/ping", headers=CF_AUTH).status == 200
        box.network.set_latency("checkfront", 0.0)
        box.network.set_latency("salesforce", 0.3)
        started = time.perf_counter()
        answer = http.get("/services/data/v60.0/limits", headers=SF_AUTH)
        assert answer.status_code == 200
        assert time.perf_counter() - started >= 0.3


def test_rate_limiter_answers_429_with_retry_after_and_counts_them(box: Sandbox) -> None:
    import requests  # a client other than regsync's own

    box.network.set_rate_limit("checkfront", per_s=0.1, burst=3)
    with requests.Session() as session:
        answers = [
            session.get(f"{box.base_url}/api/3.0/ping", headers=CF_AUTH, verify=str(box.ca_path))
            for _ in range(5)
        ]
        salesforce = session.get(
            f"{box.base_url}/services/data/v60.0/limits", headers=SF_AUTH, verify=str(box.ca_path)
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 10  # ~10 s to the next token at 0.1/s
    assert answers[3].json()["error"] == "rate_limited"
    assert salesforce.status_code == 200
    assert box.network.rate_limited == 2
    log = [r for r in box.requests if r.endpoint == "checkfront.ping"]
    assert [(r.status, r.fault) for r in log][-2:] == [(429, "checkfront.ping")] * 2
    with client(box) as http:
        counts = http.get("/__sandbox/network").json()["counts"]
        assert counts["checkfront_429"] == 2
        assert counts["checkfront_calls"] == 5
        reset = http.request("DELETE", "/__sandbox/network", params={"counts": "clear"}).json()
    assert reset["rate_limit"] == {}
    assert reset["counts"]["checkfront_429"] == 0


def test_long_running_limit_over_http(box: Sandbox) -> None:
    """One query held 3 s by a slow fault; with a limit of 1 call of 0.2 s, a second call made while
    it runs is refused 403 REQUEST_LIMIT_EXCEEDED, and calls go through again once it is done."""
    box.network.set_long_running_limit(1, after_s=0.2)
    box.faults.add(endpoint="salesforce.query", kind="slow", delay_s=3.0, nth=[1])
    results: list[int] = []

    def slow_query() -> None:
        with client(box) as http:
            results.append(
                http.get(
                    "/services/data/v60.0/query",
                    params={"q": f"SELECT Id FROM {REGISTRATION}"},
                    headers=SF_AUTH,
                ).status_code
            )

    worker = threading.Thread(target=slow_query)
    worker.start()
    with client(box) as http:
        while box.network.summary()["counts"]["salesforce_in_flight"] == 0:
            time.sleep(0.02)
        time.sleep(0.4)
        refused = http.get("/services/data/v60.0/limits", headers=SF_AUTH)
        worker.join()
        after = http.get("/services/data/v60.0/limits", headers=SF_AUTH)
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert results == [200]
    assert after.status_code == 200
    assert box.network.summary()["counts"]["salesforce_long_running_refused"] == 1


def test_admin_api_sets_the_network_and_refuses_bad_settings(box: Sandbox) -> None:
    with client(box) as http:
        bad = http.post("/__sandbox/network", json={"rate_limit": {"checkfront": "lots"}})
        assert bad.status_code == 400
        assert "not a rate" in bad.json()["error"]
        good = http.post("/__sandbox/network", json={"rate_limit": {"checkfront": "1/s,burst=1"}})
        assert good.status_code == 200
        assert good.json()["rate_limit"] == {"checkfront": {"per_s": 1.0, "burst": 1}}
        assert http.get("/api/3.0/ping", headers=CF_AUTH).status_code == 200
        assert http.get("/api/3.0/ping", headers=CF_AUTH).status_code == 429
        assert http.get("/__sandbox/state").status_code == 200  # the admin API is never limited


def test_constructor_takes_the_command_line_forms() -> None:
    sandbox = Sandbox(
        SandboxStore(),
        latency="checkfront=100ms",
        rate_limit="checkfront=20/s,burst=40",
        long_running="5,after=2s",
    )
    summary = sandbox.network.summary()
    assert summary["latency"] == {"checkfront": {"seconds": 0.1, "jitter_s": 0.0}}
    assert summary["rate_limit"] == {"checkfront": {"per_s": 20.0, "burst": 40}}
    assert summary["salesforce_long_running"] == {"max_requests": 5, "after_s": 2.0}
