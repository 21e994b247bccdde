"""A small threaded HTTPS server with a router, a request log and a fault hook, for the emulators.

The standard library's server keeps the sandbox free of web-framework dependencies and is fast
enough (HTTP/1.1 keep-alive, orjson bodies) to serve well over 50,000 records/s of query pages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson

if TYPE_CHECKING:
    from regsync.sandbox.network import NetworkModel


class RequestHeaders(dict[str, str]):
    """Header names lower-cased, so emulators need not care about case."""

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> RequestHeaders:
        return cls((name.lower(), value) for name, value in pairs)


@dataclass
class SandboxRequest:
    """One request as the emulators see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: RequestHeaders
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route pattern

    @property
    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except Exception:
            return {}
        return {key: morsel.value for key, morsel in jar.items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query-string parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError on a broken body."""
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, list[str]]:
        """The body as a form (x-www-form-urlencoded), or {} for other content types."""
        content_type = self.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" in content_type or (self.body and not content_type):
            return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {}


@dataclass
class SandboxResponse:
    """One answer: status, headers and body bytes."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json;charset=UTF-8"
    # Set by the fault injector: drop the connection instead of answering.
    drop: bool = False
    delay_s: float = 0.0
    tags: dict[str, Any] = field(default_factory=dict)  # what the request log keeps beside the status

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> SandboxResponse:
        return cls(status, orjson.dumps(payload), list(headers))


Handler = Callable[[SandboxRequest], SandboxResponse]


@dataclass(frozen=True)
class Route:
    """A method and a path pattern (a regex with named groups, matched in full)."""

    method: str
    pattern: str
    handler: Handler
    name: str = ""

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern)


@dataclass
class LoggedRequest:
    """What the request log keeps of each call: enough to prove what was (not) sent."""

    seq: int
    at: float
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    status: int
    endpoint: str
    fault: str | None = None
    tags: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. a query page's cursor and whether it is queryAll


class Router:
    """Finds the handler of a request; 404 and 405 answers come from the service that owns the path."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], Route]] = []
        self.not_found: Callable[[SandboxRequest], SandboxResponse] = lambda _req: SandboxResponse.json(
            404, {"error": "not found"}
        )

    def add(self, routes: Iterable[Route]) -> None:
        for route in routes:
            self._routes.append((route.compiled(), route))

    def resolve(self, request: SandboxRequest) -> tuple[Route | None, Mapping[str, str]]:
        """The route and its path parameters; with no route, {"__allowed__": "GET,HEAD"} when the
        path is known under other methods."""
        allowed: list[str] = []
        for pattern, route in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method in (request.method, "*"):
                return route, match.groupdict()
            allowed.append(route.method)
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            return None, {"__allowed__": ",".join(dict.fromkeys(allowed))}
        return None, {}


def _method_not_allowed(request: SandboxRequest, not_found: SandboxResponse, allowed: str) -> SandboxResponse:
    """405 for a known path asked with another method, in the owning service's shape.

    Salesforce answers `[{"errorCode": "METHOD_NOT_ALLOWED", "message": "HTTP Method 'POST' not
    allowed. Allowed are GET,HEAD"}]` (its REST API developer guide, status codes); Checkfront
    documents no such case, so its envelope stays the not-found one with status 405.
    """
    not_found.status = 405
    if not_found.body.startswith(b"["):  # Salesforce's error array
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
        return SandboxResponse.json(405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": message}])
    return not_found


# A hook that may replace or alter the answer: (endpoint name, request, calls so far) -> response | None
FaultHook = Callable[[str, SandboxRequest], SandboxResponse | None]
AfterHook = Callable[[str, SandboxRequest, SandboxResponse], SandboxResponse]


class SandboxHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that carries the router, the log and the hooks."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(address, _Handler)
        self.router = router
        self.ssl_context = ssl_context
        self.log: list[LoggedRequest] = []
        self.log_lock = threading.Lock()
        self.fault_hook: FaultHook | None = None
        self.after_hook: AfterHook | None = None
        self.keep_bodies = True
        self.network: NetworkModel | None = None  # latency and limits on the HTTP path only

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # Handshake in the worker thread (see _Handler.setup), not in the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def record(self, entry: LoggedRequest) -> None:
        with self.log_lock:
            entry.seq = len(self.log) + 1
            self.log.append(entry)

    def dispatch(self, request: SandboxRequest, refusal: SandboxResponse | None = None) -> SandboxResponse:
        """Route one request through faults, the emulator and the log (HTTP or in-process alike).

        `refusal` is the network model's answer for a call it did not let through (a rate limit's
        429): logged like any answer, with `fault` set, and nothing else runs."""
        route, params = self.router.resolve(request)
        endpoint = route.name if route else "unknown"
        fault: str | None = None
        response: SandboxResponse | None = refusal
        if response is not None:
            fault = endpoint
        elif self.fault_hook is not None:
            response = self.fault_hook(endpoint, request)
            if response is not None:
                fault = endpoint
        if response is None:
            if route is None:
                response = self.router.not_found(request)
                if params.get("__allowed__") and response.status == 404:
                    response = _method_not_allowed(request, response, params["__allowed__"])
            else:
                request.params = dict(params)
                try:
                    response = route.handler(request)
                except Exception as exc:  # an emulator bug must not kill the connection
                    response = SandboxResponse.json(
                        500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": f"sandbox: {exc!r}"}]
                    )
            if self.after_hook is not None:
                response = self.after_hook(endpoint, request, response)
        self.record(
            LoggedRequest(
                seq=0,
                at=time.time(),
                method=request.method,
                path=request.path,
                query=request.query,
                body=request.body if self.keep_bodies else b"",
                status=response.status,
                endpoint=endpoint,
                fault=fault,
                tags=response.tags,
            )
        )
        return response


MAX_BODY = 64 * 1024 * 1024  # larger bodies are refused (no vendor call regsync makes is near this)
log = logging.getLogger("regsync.sandbox")


class _UnreadableBody(Exception):
    """A request body whose framing the server cannot follow."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxHTTPServer
    server_version = "regsync-sandbox"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._handshake_failed = False
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(30)
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                # A client that does not trust the CA, or a port probe: one line, not a traceback.
                self._handshake_failed = True
                self.close_connection = True
                host, port = self.client_address[:2]
                log.warning("sandbox: TLS handshake with %s:%s failed: %s", host, port, exc)

    def handle(self) -> None:
        if self._handshake_failed:
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # the request log replaces stderr noise

    def _read_body(self) -> bytes:
        """The request body, framed by `Transfer-Encoding: chunked` or `Content-Length` (RFC 9112
        section 6: chunked wins over a length); raises _UnreadableBody when the framing is broken."""
        codings = [
            coding.strip().lower()
            for value in self.headers.get_all("Transfer-Encoding") or []
            for coding in value.split(",")
            if coding.strip()
        ]
        if codings:
            if codings != ["chunked"]:
                # RFC 9112 6.3: chunked not final -> 400 and close; other codings are not decoded.
                raise _UnreadableBody(f"unsupported Transfer-Encoding: {', '.join(codings)}")
            return self._read_chunked()
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if not lengths:
            return b""
        if len(lengths) != 1:
            raise _UnreadableBody("conflicting Content-Length headers")
        raw = lengths.pop()
        if not (raw.isascii() and raw.isdigit()):
            raise _UnreadableBody(f"invalid Content-Length: {raw[:40]!r}")
        length = int(raw)
        if length > MAX_BODY:
            raise _UnreadableBody("request body too large")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise _UnreadableBody("request body shorter than its Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1026)
            if not line.endswith(b"\n"):
                raise _UnreadableBody("broken chunk size line")
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
                raise _UnreadableBody("broken chunk size line")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise _UnreadableBody("request body too large")
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _UnreadableBody("chunk shorter than its size")
            parts.append(data)
        for _ in range(100):  # trailer fields, up to the empty line
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n"):
                return b"".join(parts)
            if not line.endswith(b"\n"):
                break
        raise _UnreadableBody("broken chunked trailer")

    def _refuse_body(self, parts: Any, reason: str) -> None:
        """400 for a body that cannot be read, then close: the connection cannot be resynchronised."""
        self.close_connection = True
        if parts.path.startswith("/api/"):
            payload: Any = {
                "error": "invalid_request",
                "error_description": f"Malformed request body: {reason}",
            }
        else:
            payload = [{"message": f"Malformed request body: {reason}", "errorCode": "BAD_REQUEST"}]
        body = orjson.dumps(payload)
        route, _ = self.server.router.resolve(SandboxRequest(self.command, parts.path, {}, RequestHeaders()))
        self.server.record(
            LoggedRequest(
                seq=0,
                at=time.time(),
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                body=b"",
                status=400,
                endpoint=route.name if route else "unknown",
                tags={"unreadable_body": reason},
            )
        )
        self.send_response(400)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        try:
            body = self._read_body()
        except _UnreadableBody as exc:
            self._refuse_body(parts, str(exc))
            return
        request = SandboxRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=RequestHeaders.of(self.headers.items()),
            body=body,
        )
        network = self.server.network
        if network is None:
            response = self.server.dispatch(request)
            delay = response.delay_s
        else:
            ticket = network.admit(parts.path)
            try:
                response = self.server.dispatch(request, ticket.refusal)
                delay = response.delay_s + network.delay(ticket)
                if delay:
                    time.sleep(delay)
                    delay = 0.0
            finally:
                network.end(ticket)  # a call is "running" until its answer is ready to go
        if delay:
            time.sleep(delay)
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


def serve_in_thread(server: SandboxHTTPServer) -> threading.Thread:
    """Run the server loop in a daemon thread; stop with server.shutdown()."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return thread
