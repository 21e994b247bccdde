"""The Salesforce login: a rate-limited token endpoint is retried, every refusal names its HTTP status,
and a connection that cannot be made names the host and the cause."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from regsync.clients.salesforce import SalesforceClient, make_http_session
from regsync.clients.usage import ApiUsage
from regsync.config import RetrySettings, SalesforceSettings
from regsync.errors import AuthenticationError, NotDeliveredError, RateLimitedError, RetriableApiError

POLICY = RetrySettings(attempts=4, initial_s=0.5, max_s=8.0, max_retry_after_s=30.0)
TOKEN = {"access_token": "00Dxx0000001gPL!AQ4AQFakeTokenForTests", "instance_url": "https://org.example"}
LIMITS = {"DailyApiRequests": {"Max": 15000, "Remaining": 14000}}


def settings(**overrides: Any) -> SalesforceSettings:
    values: dict[str, Any] = {
        "auth": "password",
        "login_url": "https://login.example",
        "username": "ops@example.org",
        "consumer_key": "key",
        "consumer_secret": "consumer-secret-value",
        "password": "pass-word-value",
        **overrides,
    }
    return SalesforceSettings(**values)


class Scripted(BaseAdapter):
    """Answers each request with the next (status, headers, body) of a script, recording the URLs."""

    def __init__(self, answers: list[tuple[int, dict[str, str], Any]]) -> None:
        super().__init__()
        self.answers = answers
        self.urls: list[str] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        self.urls.append(str(request.url))
        status, headers, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response.headers.update({"Content-Type": "application/json", **headers})
        response._content = json.dumps(body).encode()
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


def client(adapter: Scripted, sleeps: list[float], **overrides: Any) -> SalesforceClient:
    http = requests.Session()
    http.mount("https://", adapter)
    return SalesforceClient(settings(**overrides), POLICY, ApiUsage(), http=http, sleep=sleeps.append)


def test_a_rate_limited_login_is_retried_after_retry_after() -> None:
    adapter = Scripted(
        [
            (429, {"Retry-After": "7"}, {"error": "rate_limited"}),
            (200, {}, TOKEN),
            (200, {}, LIMITS),
        ]
    )
    sleeps: list[float] = []
    assert client(adapter, sleeps).limits() == LIMITS
    assert sleeps == [7.0]  # Retry-After honoured by the one retry policy
    assert [url.split("/services/")[1] for url in adapter.urls] == [
        "oauth2/token",
        "oauth2/token",
        "data/v60.0/limits/",
    ]


def test_a_login_rate_limited_every_time_ends_as_rate_limited_not_as_bad_credentials() -> None:
    adapter = Scripted([(429, {}, {"error": "unknown_error"})] * POLICY.attempts)
    sleeps: list[float] = []
    with pytest.raises(RateLimitedError, match="HTTP 429") as caught:
        client(adapter, sleeps).limits()
    assert not isinstance(caught.value, AuthenticationError)
    assert len(sleeps) == POLICY.attempts - 1


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_refused_login_names_its_http_status_and_no_secret(status: int) -> None:
    body = {"error": "invalid_grant", "error_description": "password=pass-word-value rejected"}
    adapter = Scripted([(status, {}, body)])
    sleeps: list[float] = []
    with pytest.raises(AuthenticationError) as caught:
        client(adapter, sleeps).limits()
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert "invalid_grant" in message
    assert "pass-word-value" not in message
    assert caught.value.status == status
    assert sleeps == []  # wrong credentials: never retried


def test_an_expired_session_on_a_data_call_names_http_401() -> None:
    adapter = Scripted([(200, {}, TOKEN), (401, {}, [{"errorCode": "INVALID_AUTH", "message": "bad"}])])
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        client(adapter, []).limits()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _login_error(login_url: str, **overrides: Any) -> str:
    http = make_http_session(overrides.pop("ca_file", None), 5.0)
    sf = SalesforceClient(
        settings(login_url=login_url, **overrides),
        RetrySettings(attempts=1),
        ApiUsage(),
        http=http,
        sleep=lambda _: None,
    )
    with pytest.raises(RetriableApiError) as caught:
        sf.limits()
    return str(caught.value)


def test_a_refused_connection_names_the_host_and_the_cause() -> None:
    port = _closed_port()
    message = _login_error(f"https://127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in message
    assert "connection refused" in message


def test_an_unknown_host_names_the_host_and_dns() -> None:
    message = _login_error("https://no-such-host.invalid")
    assert "no-such-host.invalid:443" in message
    assert "DNS" in message


def test_an_untrusted_certificate_names_the_host_and_tls(tls_server: Callable[[], int]) -> None:
    port = tls_server()
    message = _login_error(f"https://127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in message
    assert "TLS" in message


def test_not_sent_errors_are_not_delivered() -> None:
    port = _closed_port()
    sf = SalesforceClient(
        settings(login_url=f"https://127.0.0.1:{port}"), RetrySettings(attempts=1), ApiUsage()
    )
    with pytest.raises(NotDeliveredError):
        sf.limits()


@pytest.fixture
def tls_server() -> Any:
    """A sandbox serving TLS with its own CA, which the client here does not trust."""
    from regsync.sandbox import Sandbox

    boxes: list[Sandbox] = []

    def start() -> int:
        box = Sandbox.generated(1, seed=1, port=0)
        box.start()
        boxes.append(box)
        return int(box.base_url.rsplit(":", 1)[1])

    yield start
    for box in boxes:
        box.stop()


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_checkfront_key_names_its_http_status(status: int) -> None:
    import httpx

    from regsync.clients.checkfront import CheckfrontClient
    from regsync.config import CheckfrontSettings

    def refuse(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": "invalid_token", "error_description": "revoked"})

    settings = CheckfrontSettings(base_url="https://acme.example", api_key="k", api_secret="s")
    client = CheckfrontClient(settings, POLICY, ApiUsage(), transport=httpx.MockTransport(refuse))
    try:
        with pytest.raises(AuthenticationError, match=f"HTTP {status}: invalid_token"):
            client.get_booking("CFPP-1")
    finally:
        client.close()
