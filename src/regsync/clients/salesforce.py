"""Salesforce: one token provider for every auth method, simple-salesforce for the calls, our errors.

simple-salesforce has no retries and no default timeout; this module adds a timeout to every
request, classifies every failure into regsync's hierarchy, re-authenticates once on
INVALID_SESSION_ID (a token is never captured once for a whole long run) and leaves retrying to
`clients.retry`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jwt
import requests
import urllib3
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from regsync.clients.connection import describe_connection_error
from regsync.clients.retry import call_with_retry, parse_retry_after
from regsync.clients.usage import ApiUsage
from regsync.config import RetrySettings, SalesforceSettings
from regsync.errors import (
    ApiError,
    AuthenticationError,
    BusinessError,
    ConfigError,
    MalformedResponseError,
    NotDeliveredError,
    QueryLocatorError,
    QueryTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    RetriableApiError,
)
from regsync.logs import redact, secret_forms

T = TypeVar("T")
SERVICE = "salesforce"


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request a timeout unless the caller chose one."""

    def __init__(self, timeout: float) -> None:
        super().__init__(pool_connections=4, pool_maxsize=16)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def make_http_session(ca_file: Path | None, timeout: float) -> requests.Session:
    """A requests session with a timeout on every call and TLS verification always on.

    With a CA file (the sandbox, or a corporate CA) verification uses exactly that file: trust_env
    is turned off because REQUESTS_CA_BUNDLE would otherwise override `session.verify`.
    """
    session = requests.Session()
    adapter = _TimeoutAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if ca_file is not None:
        session.verify = str(ca_file)
        session.trust_env = False
    return session


@dataclass(frozen=True)
class Token:
    """An access token and the instance it is good for."""

    access_token: str
    instance_url: str
    obtained_at: float


class TokenProvider:
    """Obtains and renews the access token for every configured auth method."""

    def __init__(
        self, settings: SalesforceSettings, http: requests.Session, usage: ApiUsage | None = None
    ) -> None:
        self.settings = settings
        self.http = http
        self.usage = usage
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.secrets = secret_forms(_configured_secrets(settings))

    def current(self) -> Token:
        with self._lock:
            if self._token is None:
                self._token = self._login()
            return self._token

    def renew(self, stale: Token) -> Token:
        """Replace `stale` unless another thread already did."""
        with self._lock:
            if self._token is None or self._token.access_token == stale.access_token:
                self._token = self._login()
            return self._token

    def _login(self) -> Token:
        s = self.settings
        if s.auth == "session":
            if s.session_id is None or not s.instance_url:
                raise ConfigError(
                    "salesforce.auth = 'session' needs salesforce.instance_url and "
                    "REGSYNC_SALESFORCE__SESSION_ID"
                )
            return Token(s.session_id.get_secret_value(), s.instance_url, time.time())
        form = self._grant_form()
        url = f"{s.login_url}/services/oauth2/token"
        try:
            response = self.http.post(url, data=form, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            failure = NotDeliveredError if _not_sent(exc) else RetriableApiError
            raise failure(
                f"Salesforce login failed: {describe_connection_error(exc, url)}", service=SERVICE
            ) from None
        if self.usage is not None:
            self.usage.count("salesforce_auth")
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        # A rate-limited login is not a refused one: clients.retry waits (Retry-After) and tries again.
        if status == 429 or (status == 503 and retry_after is not None):
            raise RateLimitedError(
                f"Salesforce login answered HTTP {status} (rate limited)",
                status=status,
                service=SERVICE,
                retry_after=retry_after,
            )
        if status >= 500:
            raise RetriableApiError(
                f"Salesforce login answered HTTP {status}",
                status=status,
                service=SERVICE,
                retry_after=retry_after,
            )
        try:
            body = response.json()
        except (ValueError, RecursionError):
            raise MalformedResponseError(
                f"Salesforce login answered HTTP {status} with a body that is not JSON", service=SERVICE
            ) from None
        if not isinstance(body, dict):
            body = {}
        if status != 200 or "access_token" not in body:
            # An error body may echo the login form: password, client secret (URL-encoded).
            error = redact(str(body.get("error", "unknown_error")), self.secrets)
            description = redact(str(body.get("error_description", "")), self.secrets)
            raise AuthenticationError(
                f"Salesforce refused the {s.auth} login: HTTP {status}: {error} ({description})",
                status=status,
                code=str(error),
                service=SERVICE,
            )
        token, instance = body["access_token"], body.get("instance_url") or s.instance_url
        # The token is sent to instance_url from now on: only to an https URL, never in clear text.
        if not (
            isinstance(token, str) and token and isinstance(instance, str) and instance.startswith("https://")
        ):
            raise MalformedResponseError(
                "Salesforce login answered without a usable access_token and https instance_url",
                service=SERVICE,
            )
        return Token(token, instance, time.time())

    def _grant_form(self) -> dict[str, str]:
        s = self.settings

        def need(value: Any, name: str) -> str:
            if (
                value is None
                or (hasattr(value, "get_secret_value") and not value.get_secret_value())
                or value == ""
            ):
                env = f"REGSYNC_SALESFORCE__{name.upper()}"
                raise ConfigError(f"salesforce.auth = '{s.auth}' needs salesforce.{name} (secret: set {env})")
            return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)

        if s.auth == "password":
            return {
                "grant_type": "password",
                "client_id": need(s.consumer_key, "consumer_key"),
                "client_secret": need(s.consumer_secret, "consumer_secret"),
                "username": need(s.username, "username"),
                "password": need(s.password, "password")
                + (s.security_token.get_secret_value() if s.security_token else ""),
            }
        if s.auth == "client_credentials":
            return {
                "grant_type": "client_credentials",
                "client_id": need(s.consumer_key, "consumer_key"),
                "client_secret": need(s.consumer_secret, "consumer_secret"),
            }
        key_path = Path(need(s.private_key_file, "private_key_file"))
        try:
            private_key = key_path.read_text()
        except OSError as exc:
            raise ConfigError(f"salesforce private key file cannot be read: {exc.strerror}") from None
        assertion = jwt.encode(
            {
                "iss": need(s.consumer_key, "consumer_key"),
                "sub": need(s.username, "username"),
                "aud": s.login_url,
                "exp": int(time.time()) + 180,
            },
            private_key,
            algorithm="RS256",
        )
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


@dataclass(frozen=True)
class QueryPage:
    """One page of a SOQL answer."""

    records: list[dict[str, Any]]
    total_size: int
    next_records_url: str | None


class SalesforceClient:
    """The calls regsync makes to Salesforce, each with timeout, classification and the retry policy."""

    def __init__(
        self,
        settings: SalesforceSettings,
        retry: RetrySettings,
        usage: ApiUsage,
        *,
        http: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.retry = retry
        self.usage = usage
        self.sleep = sleep
        self.http = http or make_http_session(settings.ca_file, settings.timeout_s)
        self.http.hooks["response"].append(self._observe)
        if settings.query_batch_size is not None:
            self.http.headers["Sforce-Query-Options"] = f"batchSize={settings.query_batch_size}"
        self.tokens = TokenProvider(settings, self.http, usage)
        self._local = threading.local()
        self._clients: dict[str, Salesforce] = {}
        self._clients_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Count every data call and keep its headers for error classification."""
        self._local.last = response
        if "/services/oauth2/" not in response.url:
            self.usage.count(SERVICE, response.headers.get("Sforce-Limit-Info"))

    def _client(self, token: Token) -> Salesforce:
        with self._clients_lock:
            client = self._clients.get(token.access_token)
            if client is None:
                self._clients.clear()
                client = Salesforce(
                    instance_url=token.instance_url,
                    session_id=token.access_token,
                    version=self.settings.api_version,
                    session=self.http,
                    object_pairs_hook=dict,
                )
                self._clients[token.access_token] = client
            return client

    def _call(self, name: str, fn: Callable[[Salesforce], T], *, write: bool = False) -> T:
        """Run one call: retry policy outside, one re-authentication on an expired session inside.

        write: the call changes remote state; it is repeated only when it certainly was not
        applied (regsync.clients.retry). A 401 is refused before Apex runs: the resend after
        re-authenticating is safe.
        """

        def attempt() -> T:
            # Stop before a call, never after one whose answer we would drop; calls of other
            # threads still in flight count as made (a wide pull reads slices at once).
            with self.usage.in_flight():
                token = self.tokens.current()
                try:
                    return self._classified(name, lambda: fn(self._client(token)))
                except AuthenticationError as exc:
                    if exc.code != "INVALID_SESSION_ID" or self.settings.auth == "session":
                        raise
                    token = self.tokens.renew(token)
                    return self._classified(name, lambda: fn(self._client(token)))

        return call_with_retry(self.retry, attempt, sleep=self.sleep, write=write)

    def _classified(self, name: str, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except SalesforceError as exc:
            raise self._classify(name, exc.status, exc.content) from None
        except (ValueError, RecursionError) as exc:
            # A body that is not JSON (or nested past the parser), or a header simple-salesforce
            # cannot read (its Sforce-Limit-Info parser calls int() on any digits it finds).
            what = "the body is not JSON"
            if not isinstance(exc, requests.exceptions.JSONDecodeError):
                what = f"the answer cannot be read ({type(exc).__name__})"
            raise MalformedResponseError(f"Salesforce {name}: {what}", service=SERVICE) from None
        except requests.RequestException as exc:
            where = describe_connection_error(
                exc, getattr(exc.request, "url", None) or self.settings.login_url
            )
            if _not_sent(exc):
                raise NotDeliveredError(f"Salesforce {name}: not sent: {where}", service=SERVICE) from None
            raise RetriableApiError(f"Salesforce {name}: {where}", service=SERVICE) from None
        return result

    def _classify(self, name: str, status: int, content: Any) -> ApiError:
        code, message = _first_error(content)
        # An error body may echo the request (its Authorization header): never into our messages.
        message = redact(message, self.tokens.secrets)
        code = redact(code, self.tokens.secrets) if isinstance(code, str) else code
        last = getattr(self._local, "last", None)
        retry_after = parse_retry_after(last.headers.get("Retry-After")) if last is not None else None
        text = f"Salesforce {name}: {code or status}: {message}"
        if status == 401:
            return AuthenticationError(
                f"Salesforce {name}: HTTP 401 {code or 'INVALID_SESSION_ID'}: {message}",
                status=status,
                code=code or "INVALID_SESSION_ID",
                service=SERVICE,
            )
        if code == "QUERY_TIMEOUT":
            return QueryTimeoutError(text, status=status, code=code, service=SERVICE)
        if code == "INVALID_QUERY_LOCATOR":
            return QueryLocatorError(text, status=status, code=code, service=SERVICE)
        if code == "REQUEST_LIMIT_EXCEEDED" and status == 403:
            return QuotaExhaustedError(text, status=status, code=code, service=SERVICE)
        if status == 429 or (status == 503 and retry_after is not None):
            return RateLimitedError(text, status=status, code=code, service=SERVICE, retry_after=retry_after)
        if status >= 500:
            return RetriableApiError(text, status=status, code=code, service=SERVICE, retry_after=retry_after)
        return BusinessError(text, status=status, code=code, service=SERVICE)

    # ------------------------------------------------------------------ calls
    def query_first(self, soql: str, *, include_deleted: bool = False) -> QueryPage:
        """The first page of a query (query, or queryAll with deleted rows)."""
        body = self._call("query", lambda sf: sf.query(soql, include_deleted=include_deleted))
        return _page(body)

    def query_next(self, next_records_url: str) -> QueryPage:
        """The page behind a nextRecordsUrl."""
        body = self._call("query_more", lambda sf: sf.query_more(next_records_url, identifier_is_url=True))
        return _page(body)

    def iter_pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[QueryPage]:
        """Every page of a query, one at a time (streams; never holds the whole result)."""
        page = self.query_first(soql, include_deleted=include_deleted)
        yield page
        while page.next_records_url:
            page = self.query_next(page.next_records_url)
            yield page

    def retrieve(self, sobject: str, record_id: str, fields: list[str]) -> dict[str, Any] | None:
        """One record by id, or None when it is gone."""

        def get(sf: Salesforce) -> dict[str, Any] | None:
            url = f"{sf.base_url}sobjects/{sobject}/{record_id}"
            return self._get_or_none(sf, url, sobject, {"fields": ",".join(fields)})

        return self._call("retrieve", get)

    def apex_post(self, action: str, payload: dict[str, Any]) -> Any:
        """POST to an Apex REST endpoint; a non-JSON answer is malformed, not silently a string."""

        def post(sf: Salesforce) -> Any:
            answer = sf.apexecute(action, method="POST", data=payload)
            if isinstance(answer, str):
                raise MalformedResponseError(
                    f"Salesforce apex {action}: the body is not JSON", service=SERVICE
                )
            return answer

        return self._call("apexecute", post, write=True)

    def limits(self) -> dict[str, Any]:
        """The org's /limits document."""
        return self._call("limits", lambda sf: sf.limits())

    # ------------------------------------------------------------------ reads for the preflight
    def _get_or_none(
        self, sf: Salesforce, url: str, sobject: str, params: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        """A GET whose 404 means "no such record or object" (None); another error status raises."""
        response = self.http.get(url, headers=sf.headers, params=params)
        if response.status_code == 404:
            return None
        if response.status_code >= 300:
            raise SalesforceError(url, response.status_code, sobject, _json_or_text(response))
        record: dict[str, Any] = response.json()
        return record

    def describe(self, sobject: str) -> dict[str, Any] | None:
        """An object's describe (its fields and their types), or None when the org has no such object."""

        def get(sf: Salesforce) -> dict[str, Any] | None:
            return self._get_or_none(sf, f"{sf.base_url}sobjects/{sobject}/describe/", sobject)

        return self._call("describe", get)

    def get_status(self, path: str) -> tuple[int, Any]:
        """GET a path of the instance (e.g. /services/data/ or an Apex REST URL): status and body.

        For probes, where a 404 or 405 is an answer to report, not an error; a 401 still raises.
        """

        def get(sf: Salesforce) -> tuple[int, Any]:
            root = sf.base_url.split("/services/", 1)[0]
            response = self.http.get(root + path, headers=sf.headers)
            if response.status_code == 401 or response.status_code >= 500:
                raise SalesforceError(root + path, response.status_code, path, _json_or_text(response))
            return response.status_code, _json_or_text(response)

        return self._call("get", get)


def _not_sent(exc: requests.RequestException) -> bool:
    """The request never left: a connect timeout, or a connection refused or unresolvable.

    requests wraps a connection cut *after* sending (RemoteDisconnected) in ConnectionError too, so
    only urllib3's NewConnectionError under it proves nothing was sent.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError) or not exc.args:
        return False
    reason = getattr(exc.args[0], "reason", exc.args[0])
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _page(body: Any) -> QueryPage:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list) or "done" not in body:
        raise MalformedResponseError("Salesforce query: the answer is not a query result", service=SERVICE)
    done, next_url = body["done"], body.get("nextRecordsUrl")
    # A page that is not the last must say where the rest is: else paging would stop silently.
    if not isinstance(done, bool) or (not done and not (isinstance(next_url, str) and next_url)):
        raise MalformedResponseError(
            "Salesforce query: done/nextRecordsUrl do not say where the rest is", service=SERVICE
        )
    try:
        total = int(body.get("totalSize", 0))
    except (TypeError, ValueError, OverflowError):
        raise MalformedResponseError("Salesforce query: totalSize is not a number", service=SERVICE) from None
    return QueryPage(records=body["records"], total_size=total, next_records_url=None if done else next_url)


def _configured_secrets(settings: SalesforceSettings) -> list[str]:
    """The secrets of the configured login, and the password+token pair the password grant sends."""
    values = [
        value.get_secret_value()
        for value in (
            settings.password,
            settings.security_token,
            settings.consumer_secret,
            settings.session_id,
        )
        if value is not None and value.get_secret_value()
    ]
    if settings.password is not None and settings.security_token is not None:
        values.append(settings.password.get_secret_value() + settings.security_token.get_secret_value())
    return values


def _first_error(content: Any) -> tuple[str | None, str]:
    """(errorCode, message) from a Salesforce error array or a Blackthorn {"error": ...} body."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0].get("errorCode"), str(content[0].get("message", ""))
    if isinstance(content, dict):
        if "error" in content:
            return None, str(content.get("error"))
        return content.get("errorCode"), str(content.get("message", ""))
    return None, str(content)[:500]


def _json_or_text(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
