"""Checkfront API 3.0 over httpx: auth, the envelope checked, errors typed, bounded concurrency.

Every answer either carries the documented envelope with `request.status == "OK"`, an envelope
with `request.status == "ERROR"` and `request.error` (a business error), or — for "critical"
failures such as bad credentials — an OAuth-style `{"error", "error_description"}` body.
"""

from __future__ import annotations

import base64
import http.cookiejar
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from regsync.clients import lenient_json
from regsync.clients.connection import describe_connection_error
from regsync.clients.retry import call_with_retry, parse_retry_after
from regsync.clients.throttle import Throttle
from regsync.clients.usage import ApiUsage
from regsync.config import CheckfrontSettings, RetrySettings
from regsync.errors import (
    ApiError,
    AuthenticationError,
    BusinessError,
    ConfigError,
    MalformedResponseError,
    NotDeliveredError,
    RateLimitedError,
    RetriableApiError,
)
from regsync.logs import redact, secret_forms

SERVICE = "checkfront"
T = TypeVar("T")
K = TypeVar("K")
_ENVELOPE_KEYS = ("version", "request")
# A booking code ("PIMS-270125") or id goes into the URL path: nothing that could leave its segment
# ("/", "?", "#", "." and "..", which HTTP clients resolve) or be refused by the URL parser.
_BOOKING_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _ssl_context(settings: CheckfrontSettings) -> ssl.SSLContext:
    """Verification always on; a configured CA file replaces the system store."""
    if settings.ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ca_file))
    return ssl.create_default_context()


def _auth_headers(settings: CheckfrontSettings) -> dict[str, str]:
    if settings.auth == "bearer":
        if settings.token is None:
            raise ConfigError("checkfront.auth = 'bearer' needs REGSYNC_CHECKFRONT__TOKEN")
        return {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
    if settings.api_key is None or settings.api_secret is None:
        raise ConfigError(
            "checkfront.auth = 'token' needs REGSYNC_CHECKFRONT__API_KEY and REGSYNC_CHECKFRONT__API_SECRET"
        )
    pair = f"{settings.api_key.get_secret_value()}:{settings.api_secret.get_secret_value()}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing.

    Checkfront answers booking-session calls with a `session_id` cookie; kept, it would ride along
    on every later call, and a server that prefers the cookie to the parameter would answer
    concurrent reads with the wrong cart. Every call names its session explicitly instead (and
    an empty jar costs nothing per call).
    """

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return

    def extract_cookies(self, response: Any, request: Any) -> None:
        return


@dataclass(frozen=True)
class BookingSessionRead:
    """What a read of one booking session returned: the session asked for, or a replacement."""

    requested_id: str
    session: dict[str, Any]

    @property
    def found(self) -> bool:
        """False when Checkfront answered with a different (new, empty) session: unknown or expired."""
        return str(self.session.get("id", "")) == self.requested_id


@dataclass(frozen=True)
class IndexPage:
    """One page of the booking index."""

    bookings: list[dict[str, Any]]
    page: int
    pages: int
    total_records: int


class CheckfrontClient:
    """The calls regsync makes to Checkfront."""

    def __init__(
        self,
        settings: CheckfrontSettings,
        retry: RetrySettings,
        usage: ApiUsage,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pace: Callable[[float], None] = time.sleep,
    ) -> None:
        """`sleep` waits before a retry, `pace` for the rate limiter's next turn (tests replace each)."""
        self.settings = settings
        self.retry = retry
        self.usage = usage
        self.sleep = sleep
        auth = _auth_headers(settings)
        # An error body may echo the request (its Authorization header): never into our messages.
        credentials = [
            v.get_secret_value() for v in (settings.api_key, settings.api_secret, settings.token) if v
        ]
        self._secrets = secret_forms([*credentials, auth["Authorization"].partition(" ")[2]])
        self.http = httpx.Client(
            base_url=f"{settings.base_url}/api/3.0",
            headers={"Accept": "application/json", **auth},
            timeout=settings.timeout_s,
            verify=_ssl_context(settings) if transport is None else True,
            transport=transport,
            limits=httpx.Limits(
                max_connections=settings.concurrency + 2,
                max_keepalive_connections=settings.concurrency + 2,
            ),
            trust_env=settings.ca_file is None,
            cookies=_NoCookies(),
        )
        self._root = str(self.http.base_url)  # ends with "/"

        # One limiter and one pool of workers for every call of the run, whichever stream makes it.
        self.throttle = Throttle(settings.concurrency, settings.max_requests_per_s, sleep=pace)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.http.close()

    def _workers(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.concurrency, thread_name_prefix="cf"
                )
            return self._pool

    # ------------------------------------------------------------------ plumbing
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        write: bool = False,
    ) -> dict[str, Any]:
        """One call under the retry policy; returns the checked envelope.

        write: the call changes remote state; it is repeated only when it certainly was not applied
        (regsync.clients.retry), otherwise OutcomeUnknownError is raised.
        """
        return call_with_retry(
            self.retry, lambda: self._once(method, path, params, data), sleep=self.sleep, write=write
        )

    def _once(
        self, method: str, path: str, params: dict[str, Any] | None, data: dict[str, Any] | None
    ) -> dict[str, Any]:
        url = self._url(path, params)
        started = self.throttle.acquire()
        limited = False
        try:
            response = self.http.request(method, url, data=data)
            limited = response.status_code == 429
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made: nothing was sent.
            where = describe_connection_error(exc, self.settings.base_url)
            raise NotDeliveredError(
                f"Checkfront {method} {path}: not sent: {where}", service=SERVICE
            ) from None
        except httpx.TimeoutException as exc:
            raise RetriableApiError(
                f"Checkfront {method} {path}: timeout ({type(exc).__name__})", service=SERVICE
            ) from None
        except httpx.TransportError as exc:
            where = describe_connection_error(exc, self.settings.base_url)
            raise RetriableApiError(f"Checkfront {method} {path}: {where}", service=SERVICE) from None
        finally:
            self.throttle.release(started, rate_limited=limited)
            self.usage.count(SERVICE)
        return self._checked(method, path, response)

    def _url(self, path: str, params: dict[str, Any] | None) -> httpx.URL:
        """The call's absolute URL, parsed once: from a relative path and params, httpx parses three
        URLs per call (the path, the path joined to the base, then that with the query), the larger
        part of building a request. The same URL either way (tests/unit/test_checkfront_client.py)."""
        query = f"?{httpx.QueryParams(params)}" if params else ""
        return httpx.URL(f"{self._root}{path.lstrip('/')}{query}")

    def _checked(self, method: str, path: str, response: httpx.Response) -> dict[str, Any]:
        where = f"Checkfront {method} {path}"
        status = response.status_code
        # Only a 429 or 503 can carry a Retry-After that counts: no header lookup on every answer.
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
        if status == 429 or (status == 503 and retry_after is not None):
            raise RateLimitedError(
                f"{where}: HTTP {status}", status=status, service=SERVICE, retry_after=retry_after
            )
        if status >= 500:
            raise RetriableApiError(f"{where}: HTTP {status}", status=status, service=SERVICE)
        try:
            body = lenient_json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise MalformedResponseError(
                f"{where}: the body is not JSON (HTTP {status})", status=status, service=SERVICE
            ) from None
        if not isinstance(body, dict):
            raise MalformedResponseError(f"{where}: expected a JSON object", status=status, service=SERVICE)
        if "error" in body and "request" not in body:
            # A "critical" error: no envelope, OAuth-style fields.
            error = redact(str(body.get("error")), self._secrets)
            description = redact(str(body.get("error_description", "")), self._secrets)
            cls = (
                AuthenticationError if status in (401, 403) or error.startswith("invalid_") else BusinessError
            )
            raise cls(
                f"{where}: HTTP {status}: {error}: {description}", status=status, code=error, service=SERVICE
            )
        request = body.get("request")
        if not all(key in body for key in _ENVELOPE_KEYS) or not isinstance(request, dict):
            raise MalformedResponseError(
                f"{where}: the answer has no Checkfront envelope", status=status, service=SERVICE
            )
        if request.get("status") != "OK":
            problem: dict[str, Any] = request["error"] if isinstance(request.get("error"), dict) else {}
            raise BusinessError(
                redact(
                    f"{where}: {problem.get('title', 'error')}: {problem.get('details', '')}", self._secrets
                ),
                status=status,
                code=redact(str(problem.get("id", "error")), self._secrets),
                service=SERVICE,
            )
        if status >= 400:
            raise BusinessError(f"{where}: HTTP {status}", status=status, service=SERVICE)
        return body

    # ------------------------------------------------------------------ booking sessions
    def get_booking_session(self, session_id: str) -> BookingSessionRead:
        """Read one booking session; `found` is False when Checkfront handed back another one."""
        body = self.request("GET", "/booking/session", params={"session_id": session_id})
        booking = body.get("booking")
        session = booking.get("session") if isinstance(booking, dict) else None
        if not isinstance(session, dict):
            raise MalformedResponseError(
                "Checkfront booking/session: no booking.session in the answer", service=SERVICE
            )
        return BookingSessionRead(requested_id=session_id, session=session)

    def concurrently(self, fn: Callable[[K], T], keys: Iterable[K]) -> Iterator[T | ApiError]:
        """Call `fn` for each key on the run's workers; yields results (or errors) in order."""
        return (answer for _, answer in self.read_many(fn, keys))

    def read_many(self, fn: Callable[[K], T], keys: Iterable[K]) -> Generator[tuple[K, T | ApiError]]:
        """(key, result or error) for each key, in order, with a sliding window of calls in flight.

        Keys are taken lazily: a new call starts as soon as the oldest answer is taken, so there is
        no barrier between chunks, and the window (twice the concurrency) keeps the shared workers
        busy while the caller writes. An authentication failure stops everything (it would fail
        every call); other API errors are yielded in place so one bad record does not sink its
        neighbours. Calls still in flight when the caller stops are cancelled or left to finish.
        """

        def one(key: K) -> T | ApiError:
            try:
                return fn(key)
            except AuthenticationError:
                raise
            except ApiError as exc:
                return exc

        pool = self._workers()
        window = 2 * self.settings.concurrency
        pending: deque[tuple[K, Future[T | ApiError]]] = deque()
        try:
            for key in keys:
                pending.append((key, pool.submit(one, key)))
                if len(pending) >= window:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
        finally:
            for _, future in pending:
                future.cancel()

    def get_booking_sessions(self, session_ids: Iterable[str]) -> Iterator[BookingSessionRead | ApiError]:
        """Read many booking sessions with bounded concurrency, in order."""
        return self.concurrently(self.get_booking_session, session_ids)

    def end_booking_session(self, session_id: str) -> dict[str, Any]:
        """End (destroy) a booking session, releasing the seats it holds."""
        return self.request("POST", "/booking/session/end", data={"session_id": session_id}, write=True)

    # ------------------------------------------------------------------ bookings
    def booking_index_page(self, page: int, *, filters: dict[str, Any] | None = None) -> IndexPage:
        """One page of the booking index (an object keyed by booking id, or [] when empty)."""
        params = {"limit": self.settings.page_limit, "page": page, **(filters or {})}
        body = self.request("GET", "/booking/index", params=params)
        index = body.get("booking/index")
        if isinstance(index, list) and not index:
            index = {}
        if not isinstance(index, dict):
            raise MalformedResponseError(
                "Checkfront booking/index: not an object keyed by booking id", service=SERVICE
            )
        request = body["request"]
        try:
            return IndexPage(
                bookings=list(index.values()),
                page=int(request.get("page", page)),
                pages=int(request.get("pages", 1) or 1),
                total_records=int(request.get("total_records", len(index)) or 0),
            )
        except (TypeError, ValueError, OverflowError):
            raise MalformedResponseError(
                "Checkfront booking/index: page, pages or total_records is not a number", service=SERVICE
            ) from None

    def iter_booking_index(
        self, *, filters: dict[str, Any] | None = None, start_page: int = 1
    ) -> Iterator[IndexPage]:
        """Every page of the booking index from `start_page`."""
        page = start_page
        while True:
            result = self.booking_index_page(page, filters=filters)
            yield result
            if result.page >= result.pages or not result.bookings:
                return
            page += 1

    def get_booking(self, code_or_id: str) -> dict[str, Any] | None:
        """One booking by code or id, None when Checkfront does not know it."""
        if not isinstance(code_or_id, str) or not _BOOKING_REF.fullmatch(code_or_id):
            raise BusinessError(
                f"Checkfront booking: {str(code_or_id)[:70]!r} is not a booking code or id",
                code="invalid_booking_ref",
                service=SERVICE,
            )
        try:
            body = self.request("GET", f"/booking/{code_or_id}")
        except BusinessError as exc:
            # The error id of an unknown booking is not documented: "not_found" / "...not found".
            if exc.code == "not_found" or "not found" in str(exc).lower():
                return None
            raise
        booking = body.get("booking")
        if not isinstance(booking, dict):
            raise MalformedResponseError("Checkfront booking: no booking in the answer", service=SERVICE)
        return booking
