"""The Checkfront client builds each call's URL itself (one parse instead of httpx's three): the
requests on the wire must be exactly those httpx builds from a relative path and params."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.usage import ApiUsage
from regsync.config import CheckfrontSettings, RetrySettings

OK = b'{"version": "3.0", "request": {"status": "OK"}, "booking": {"session": {"id": "s"}}}'


def _client(base_url: str, sent: list[httpx.Request]) -> CheckfrontClient:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=OK, headers={"Content-Type": "application/json"})

    settings = CheckfrontSettings(base_url=base_url, api_key="key", api_secret="secret")
    return CheckfrontClient(
        settings, RetrySettings(attempts=1), ApiUsage(), transport=httpx.MockTransport(answer)
    )


CALLS: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
    ("GET", "/booking/session", {"session_id": "k2j4h5g6f7d8s9a0q1w2e3r4t5"}, None),
    ("GET", "/booking/PIMS-270125", None, None),
    ("GET", "/booking/1234", {}, None),
    ("GET", "/booking/index", {"limit": 250, "page": 3, "last_modified": ">1700000000"}, None),
    ("GET", "/booking/index", {"status_id": "PEND HOLD", "q": "a&b=c/d?é"}, None),
    ("POST", "/booking/session/end", None, {"session_id": "k2j4h5g6f7d8s9a0q1w2e3r4t5"}),
    ("GET", "ping", None, None),
]


@pytest.mark.parametrize("base_url", ["https://acme.checkfront.com", "https://127.0.0.1:8443/sub/path"])
@pytest.mark.parametrize(("method", "path", "params", "data"), CALLS)
def test_each_request_is_the_one_httpx_builds(
    base_url: str, method: str, path: str, params: dict[str, Any] | None, data: dict[str, Any] | None
) -> None:
    sent: list[httpx.Request] = []
    client = _client(base_url, sent)
    try:
        client.request(method, path, params=params, data=data)
        expected = client.http.build_request(method, path, params=params, data=data)
    finally:
        client.close()
    (request,) = sent
    assert str(request.url) == str(expected.url)
    assert request.url.raw_path == expected.url.raw_path
    assert request.method == expected.method
    assert list(request.headers.multi_items()) == list(expected.headers.multi_items())
    assert request.content == expected.content
