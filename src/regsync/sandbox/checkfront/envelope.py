"""What every Checkfront route shares: credentials, PHP-style parameters, the response envelope."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from regsync.sandbox.checkfront.values import _BadRequest, _pairs, _php_decode
from regsync.sandbox.http import SandboxRequest, SandboxResponse
from regsync.sandbox.store import SandboxStore

API = r"/api/3\.0"
ACCOUNT_ID = 1


@dataclass
class _Call:
    """One authenticated call: the request, its merged parameters, when it started."""

    request: SandboxRequest
    params: dict[str, Any]
    started: float

    @property
    def method(self) -> str:
        return "post" if self.request.method == "POST" else "get"


class CheckfrontCore:
    """The account's identity and the plumbing of its routes: authenticate, read parameters, answer."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        api_key: str,
        api_secret: str,
        bearer_token: str,
        host_id: str = "your-company.checkfront.com",
        account_name: str = "Your Company",
        currency: str = "CAD",
    ) -> None:
        self.store = store
        self.api_key = api_key
        self.api_secret = api_secret
        self.bearer_token = bearer_token
        self.host_id = host_id
        self.account_name = account_name
        self.currency = currency

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """An unknown /api/3.0/... path: credentials first, then an ERROR envelope.

        Unconfirmed: the docs show no such answer. The envelope with request.status "ERROR" is the
        documented form of request-level errors; HTTP 404 (the router turns it into 405 when only
        the method is wrong) tells plain HTTP clients what happened.
        """
        started = time.perf_counter()
        try:
            params = self._params(request)
        except ValueError:
            params = {}
        refused = self._authenticate(request, params)
        if refused is not None:
            return refused
        call = _Call(request, params, started)
        segments = [s for s in request.path.split("/") if s]
        resource = segments[2] if len(segments) > 2 and segments[:2] == ["api", "3.0"] else ""
        rest = "/".join(segments[2:]) or request.path
        return self._error(
            call,
            resource,
            None,
            _BadRequest("not_found", "Not found", f"Unknown resource: {rest}"),
            status=404,
        )

    # ------------------------------------------------------------------ plumbing
    def _wrap(
        self, handler: Callable[[_Call], SandboxResponse]
    ) -> Callable[[SandboxRequest], SandboxResponse]:
        def serve(request: SandboxRequest) -> SandboxResponse:
            started = time.perf_counter()
            try:
                params = self._params(request)
            except ValueError:
                params = None
            refused = self._authenticate(request, params or {})
            if refused is not None:
                return refused
            call = _Call(request, params or {}, started)
            resource = request.path.split("/")[3] if request.path.count("/") >= 3 else ""
            if params is None:
                # Unconfirmed: a JSON body that does not parse; answered as a request-level error.
                return self._error(
                    call,
                    resource,
                    None,
                    _BadRequest("invalid_request", "Invalid request", "The request body is not valid JSON."),
                )
            with self.store.lock:
                return handler(call)

        return serve

    @staticmethod
    def _params(request: SandboxRequest) -> dict[str, Any]:
        """Query and body parameters merged as PHP's $_REQUEST (body keys win); ValueError on bad JSON."""
        params = _php_decode(_pairs(request.query))
        if request.method != "GET" and request.body:
            content_type = request.headers.get("content-type", "")
            if "json" in content_type:
                body = request.json()
                if not isinstance(body, dict):
                    raise ValueError("a JSON body must be an object")
                params.update({str(k): v for k, v in body.items()})
            else:
                params.update(_php_decode(_pairs(request.form())))
        return params

    def _authenticate(self, request: SandboxRequest, params: dict[str, Any]) -> SandboxResponse | None:
        """HTTP Basic key:secret, `Authorization: Bearer` (any case) or `access_token=`.

        Failures are "critical errors": no envelope, an OAuth-style body. Their HTTP status is
        unconfirmed by the docs; 401 is what an OAuth2 resource server answers. When both a header
        and an access_token parameter are sent, the header decides (unconfirmed).
        """
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            value = value.strip()
            if scheme.lower() == "basic" and value:
                try:
                    decoded = base64.b64decode(value, validate=True).decode("utf-8")
                except (binascii.Error, ValueError):
                    return self._critical("invalid_request", "Malformed auth header.")
                key, colon, secret = decoded.partition(":")
                if not colon:
                    return self._critical("invalid_request", "Malformed auth header.")
                if _same(key, self.api_key) & _same(secret, self.api_secret):
                    return None
                return self._critical("invalid_grant", "The access token provided is invalid.")
            if scheme.lower() == "bearer" and value and " " not in value:
                if _same(value, self.bearer_token):
                    return None
                return self._critical("invalid_grant", "The access token provided is invalid.")
            return self._critical("invalid_request", "Malformed auth header.")
        token = params.get("access_token")
        if isinstance(token, str) and token:
            if _same(token, self.bearer_token):
                return None
            return self._critical("invalid_grant", "The access token provided is invalid.")
        return self._critical("invalid_request", "The access token was not found.")

    @staticmethod
    def _critical(error: str, description: str) -> SandboxResponse:
        return SandboxResponse.json(
            401,
            {"error": error, "error_description": description},
            [("WWW-Authenticate", 'Bearer realm="Service"')],
        )

    def _envelope(
        self,
        call: _Call,
        resource: str,
        request_id: str | None,
        *,
        records: int = 0,
        limit: int = 0,
        page: int = 1,
        pages: int = 1,
        status: str = "OK",
        **extra: Any,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"status": status, "resource": resource}
        if request_id is not None:
            request["id"] = request_id
        request.update(
            records=records,
            limit=limit,
            page=page,
            pages=pages,
            time=float(round(time.perf_counter() - call.started, 4)),
            method=call.method,
        )
        request.update(extra)
        return {
            "version": "3.0",
            "account_id": ACCOUNT_ID,
            "host_id": self.host_id,
            "name": self.account_name,
            "locale": {"id": "en_US", "lang": "en", "currency": self.currency},
            "request": request,
        }

    def _ok(
        self,
        call: _Call,
        resource: str,
        request_id: str | None,
        body: dict[str, Any],
        *,
        headers: Iterable[tuple[str, str]] = (),
        **envelope: Any,
    ) -> SandboxResponse:
        payload = self._envelope(call, resource, request_id, **envelope)
        payload.update(body)
        return SandboxResponse.json(200, payload, headers)

    def _error(
        self, call: _Call, resource: str, request_id: str | None, error: _BadRequest, *, status: int = 200
    ) -> SandboxResponse:
        """The documented request-level error: the envelope, status "ERROR", request.error{...}.

        The HTTP status of these answers is unconfirmed (the SDK reads only the body); the sandbox
        answers 200, as a PHP API that reports errors in its envelope most plausibly does.
        """
        payload = self._envelope(
            call,
            resource,
            request_id,
            status="ERROR",
            timestamp=round(self.store.clock.now(), 4),
            error={"id": error.error_id, "title": error.title, "details": error.details, "data": error.data},
        )
        return SandboxResponse.json(status, payload)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
