"""The sandbox process: both emulators on one HTTPS port, with a small admin API for tests.

Usable as `regsync sandbox` (foreground, until interrupted) or as a context manager in tests:

    with Sandbox.generated(registrations=500, seed=7) as sandbox:
        settings = sandbox.settings(warehouse_url="sqlite://")
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from regsync.config import Settings, _settings_from, write_private_file
from regsync.sandbox.faults import FaultInjector, FaultPlanError
from regsync.sandbox.http import (
    LoggedRequest,
    RequestHeaders,
    Route,
    Router,
    SandboxHTTPServer,
    SandboxRequest,
    SandboxResponse,
    serve_in_thread,
)
from regsync.sandbox.network import (
    Latency,
    LongRunningLimit,
    NetworkConfigError,
    NetworkModel,
    RateLimit,
)
from regsync.sandbox.salesforce import SalesforceApi, SalesforceCredentials
from regsync.sandbox.store import SCHEMAS, SandboxStore
from regsync.sandbox.tls import make_tls


@dataclass(frozen=True)
class DemoCredentials:
    """The fixed credentials the sandbox accepts. Public on purpose: they open nothing real."""

    sf_username: str = "demo@regsync.sandbox"
    sf_password: str = "demo-password"
    sf_security_token: str = "DEMOSECURITYTOKEN"
    sf_consumer_key: str = "regsync-sandbox-consumer-key"
    sf_consumer_secret: str = "regsync-sandbox-consumer-secret"
    sf_session_id: str = "sandbox-session-id-for-demo-use-only"
    cf_api_key: str = "demo-api-key"
    cf_api_secret: str = "demo-api-secret"
    cf_token: str = "demo-bearer-token"

    def password_grant(self) -> dict[str, str]:
        """The OAuth username-password form that logs the demo user in."""
        return {
            "grant_type": "password",
            "client_id": self.sf_consumer_key,
            "client_secret": self.sf_consumer_secret,
            "username": self.sf_username,
            "password": self.sf_password + self.sf_security_token,
        }


DEMO = DemoCredentials()


class Sandbox:
    """Salesforce and Checkfront emulators behind one TLS port on 127.0.0.1."""

    def __init__(
        self,
        store: SandboxStore | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        state_dir: Path | None = None,
        credentials: DemoCredentials = DEMO,
        fault_seed: int = 0,
        daily_limit: int = 5_000_000,
        keep_bodies: bool = True,
        latency: str | Mapping[str, Latency] | None = None,
        rate_limit: str | Mapping[str, RateLimit] | None = None,
        long_running: str | LongRunningLimit | None = None,
        smaller_batches: bool = False,
    ) -> None:
        """`latency` (`"checkfront=100ms,salesforce=300ms+-50ms"`), `rate_limit`
        (`"checkfront=20/s,burst=40"`) and `long_running` (`"25,after=20s"`) set the network model
        (`sandbox.network`, docs/sandbox.md); they may also be changed while it runs.
        `smaller_batches`: query pages hold 1..batch records instead of the full batch."""
        self.store = store or SandboxStore()
        self.host = host
        self.port = port
        self.credentials = credentials
        self.faults = FaultInjector(seed=fault_seed)
        self.faults.network.configure(latency=latency, rate_limit=rate_limit, long_running=long_running)
        self._own_state_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="regsync-sandbox-"))
        self.daily_limit = daily_limit
        self.smaller_batches = smaller_batches
        self.keep_bodies = keep_bodies
        self.truth: Any = None
        self.dataset: Any = None  # DatasetInfo when loaded from a file (anchor, shift applied)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_path: Path | None = None
        self.jwt_key_path: Path | None = None
        self.salesforce: SalesforceApi | None = None
        self.checkfront: Any = None  # the CheckfrontApi once started (invalidate() after direct edits)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def generated(cls, registrations: int, seed: int = 1, **kwargs: Any) -> Sandbox:
        """A sandbox holding a generated dataset; its ground truth is `sandbox.truth`."""
        from regsync.sandbox.generator import GeneratorConfig, populate

        sandbox = cls(**kwargs)
        sandbox.truth = populate(GeneratorConfig(registrations=registrations, seed=seed), sandbox.store)
        return sandbox

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> Sandbox:
        """A sandbox holding a dataset file (see docs/dataset.md)."""
        from regsync.sandbox.dataset import load_dataset

        sandbox = cls(**kwargs)
        sandbox.dataset = load_dataset(path, sandbox.store)
        return sandbox

    @property
    def network(self) -> NetworkModel:
        """Latency, rate limits and the long-running limit on the HTTP path, and their counters
        (`network.rate_limited`: the 429s the Checkfront limiter sent)."""
        return self.faults.network

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox is not started")
        return f"https://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Sandbox:
        tls = make_tls(self.state_dir)
        self.ca_path = tls.ca_path
        public_pem = self._make_jwt_key()
        creds = self.credentials
        router = Router()
        self.salesforce = SalesforceApi(
            self.store,
            SalesforceCredentials(
                username=creds.sf_username,
                password=creds.sf_password,
                security_token=creds.sf_security_token,
                consumer_key=creds.sf_consumer_key,
                consumer_secret=creds.sf_consumer_secret,
                session_id=creds.sf_session_id,
                jwt_public_key_pem=public_pem,
            ),
            base_url=lambda: self.base_url,
            faults=self.faults,
            daily_limit=self.daily_limit,
            smaller_batches=self.smaller_batches,
        )
        from regsync.sandbox.checkfront import CheckfrontApi

        checkfront = CheckfrontApi(
            self.store,
            api_key=creds.cf_api_key,
            api_secret=creds.cf_api_secret,
            bearer_token=creds.cf_token,
        )
        router.add(self._admin_routes())
        router.add(self.salesforce.routes())
        router.add(checkfront.routes())
        self.checkfront = checkfront

        def not_found(request: SandboxRequest) -> SandboxResponse:
            if request.path.startswith("/api/"):
                return checkfront.not_found(request)
            assert self.salesforce is not None
            return self.salesforce.not_found(request)

        router.not_found = not_found
        server = SandboxHTTPServer((self.host, self.port), router, tls.context)
        server.fault_hook = self.faults.before
        server.after_hook = self.faults.after
        server.keep_bodies = self.keep_bodies
        server.network = self.faults.network
        self._server = server
        self._thread = serve_in_thread(server)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _make_jwt_key(self) -> bytes:
        """An RSA key pair for the JWT bearer flow: private half to a file, public half to the org."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.jwt_key_path = self.state_dir / "sandbox-jwt-key.pem"
        write_private_file(self.jwt_key_path, private_pem.decode())
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]] | None = None,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> SandboxResponse:
        """Serve one request in-process (no socket): benchmarks use it to set up large warehouses."""
        if self._server is None:
            raise RuntimeError("sandbox is not started")
        request = SandboxRequest(method, path, query or {}, RequestHeaders.of((headers or {}).items()), body)
        return self._server.dispatch(request)

    # ------------------------------------------------------------------ what tests look at
    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request served so far (the proof of what was and was not sent)."""
        if self._server is None:
            return []
        with self._server.log_lock:
            return list(self._server.log)

    def clear_requests(self) -> None:
        if self._server is not None:
            with self._server.log_lock:
                self._server.log.clear()

    def writes(self) -> list[LoggedRequest]:
        """Requests that change remote state (Apex REST posts, Checkfront session ends, updates)."""
        return [
            r
            for r in self.requests
            if r.endpoint
            in (
                "salesforce.apex.session_registration",
                "salesforce.update",
                "salesforce.delete",
                "checkfront.booking_session.end",
                "checkfront.booking_session.clear",
                "checkfront.booking.update",
                "checkfront.booking.create",
            )
        ]

    # ------------------------------------------------------------------ config for regsync
    def config_values(self, warehouse_url: str = "sqlite:///regsync.db") -> dict[str, Any]:
        """The TOML-side settings that point regsync at this sandbox."""
        if self.ca_path is None:
            raise RuntimeError("the sandbox has not started: it has no CA yet")
        return {
            "salesforce": {
                "auth": "password",
                "login_url": self.base_url,
                "username": self.credentials.sf_username,
                "consumer_key": self.credentials.sf_consumer_key,
                "ca_file": str(self.ca_path.resolve()),
            },
            "checkfront": {
                "base_url": self.base_url,
                "auth": "token",
                "ca_file": str(self.ca_path.resolve()),
            },
            "warehouse": {"url": warehouse_url},
        }

    def secret_env(self) -> dict[str, str]:
        """The environment-side settings (secrets) for the demo credentials."""
        creds = self.credentials
        return {
            "REGSYNC_SALESFORCE__PASSWORD": creds.sf_password,
            "REGSYNC_SALESFORCE__SECURITY_TOKEN": creds.sf_security_token,
            "REGSYNC_SALESFORCE__CONSUMER_SECRET": creds.sf_consumer_secret,
            "REGSYNC_CHECKFRONT__API_KEY": creds.cf_api_key,
            "REGSYNC_CHECKFRONT__API_SECRET": creds.cf_api_secret,
        }

    def settings(self, warehouse_url: str = "sqlite://", **overrides: Any) -> Settings:
        """Validated Settings pointing at this sandbox (secrets passed as the environment would)."""
        values = self.config_values(warehouse_url)
        for section, block in overrides.items():
            values.setdefault(section, {}).update(block)
        return _settings_from(values, self.secret_env())

    def write_config(
        self,
        path: Path,
        warehouse_url: str = "sqlite:///regsync.db",
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> tuple[Path, Path]:
        """Write `path` (TOML) and `path` with suffix .env (secrets), both owner-only."""
        values = self.config_values(warehouse_url)
        for section, block in (extra or {}).items():
            values.setdefault(section, {}).update(block)
        lines = [
            "# Written by `regsync sandbox --write-config`: points regsync at the local sandbox.",
            f"# Secrets are in {path.with_suffix('.env').name} beside this file (loaded automatically).",
        ]
        for section, block in values.items():
            lines.append(f"\n[{section}]")
            for key, value in block.items():
                lines.append(f"{key} = {_toml_value(value)}")
        write_private_file(path, "\n".join(lines) + "\n")
        env_path = path.with_suffix(".env")
        env_lines = ["# Demo secrets of the local sandbox (they open nothing real)."]
        env_lines += [f"{key}={value}" for key, value in self.secret_env().items()]
        write_private_file(env_path, "\n".join(env_lines) + "\n")
        return path, env_path

    # ------------------------------------------------------------------ admin API
    def _admin_routes(self) -> list[Route]:
        return [
            Route("GET", r"/__sandbox/requests", self._admin_requests, "sandbox.requests"),
            Route(
                "DELETE",
                r"/__sandbox/requests",
                self._admin_clear_requests,
                "sandbox.requests.clear",
            ),
            Route("POST", r"/__sandbox/faults", self._admin_add_faults, "sandbox.faults.add"),
            Route("DELETE", r"/__sandbox/faults", self._admin_clear_faults, "sandbox.faults.clear"),
            Route("GET", r"/__sandbox/faults", self._admin_fault_summary, "sandbox.faults"),
            Route("POST", r"/__sandbox/clock", self._admin_clock, "sandbox.clock"),
            Route("GET", r"/__sandbox/state", self._admin_state, "sandbox.state"),
            Route("GET", r"/__sandbox/network", self._admin_network, "sandbox.network"),
            Route("POST", r"/__sandbox/network", self._admin_set_network, "sandbox.network.set"),
            Route("DELETE", r"/__sandbox/network", self._admin_reset_network, "sandbox.network.reset"),
        ]

    def _admin_requests(self, request: SandboxRequest) -> SandboxResponse:
        raw = request.arg("since", "0") or "0"
        if not (raw.isascii() and raw.isdigit()):
            return SandboxResponse.json(400, {"error": "since must be a request sequence number"})
        since = int(raw)
        return SandboxResponse.json(
            200,
            [
                {
                    "seq": r.seq,
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "endpoint": r.endpoint,
                    "fault": r.fault,
                    "tags": r.tags,
                    "body": r.body.decode("utf-8", "replace"),
                }
                for r in self.requests
                if r.seq > since and not r.endpoint.startswith("sandbox.")
            ],
        )

    def _admin_clear_requests(self, request: SandboxRequest) -> SandboxResponse:
        self.clear_requests()
        return SandboxResponse(204)

    def _admin_add_faults(self, request: SandboxRequest) -> SandboxResponse:
        try:
            self.faults.load(orjson.loads(request.body or b"null"))
        except (orjson.JSONDecodeError, FaultPlanError) as exc:
            return SandboxResponse.json(400, {"error": str(exc)})
        return SandboxResponse.json(200, {"rules": len(self.faults.rules)})

    def _admin_clear_faults(self, request: SandboxRequest) -> SandboxResponse:
        self.faults.clear()
        return SandboxResponse(204)

    def _admin_fault_summary(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse.json(200, self.faults.summary())

    def _admin_network(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse.json(200, self.network.summary())

    def _admin_set_network(self, request: SandboxRequest) -> SandboxResponse:
        try:
            self.network.load(orjson.loads(request.body or b"null"))
        except (orjson.JSONDecodeError, NetworkConfigError) as exc:
            return SandboxResponse.json(400, {"error": str(exc)})
        return SandboxResponse.json(200, self.network.summary())

    def _admin_reset_network(self, request: SandboxRequest) -> SandboxResponse:
        self.network.reset()
        if request.arg("counts") == "clear":
            self.network.clear_counts()
        return SandboxResponse.json(200, self.network.summary())

    def _admin_clock(self, request: SandboxRequest) -> SandboxResponse:
        try:
            advance = float(orjson.loads(request.body or b"{}").get("advance_s", 0))
            if not math.isfinite(advance):
                raise ValueError("not finite")
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return SandboxResponse.json(400, {"error": 'expected {"advance_s": seconds}'})
        self.store.clock.advance(advance)
        return SandboxResponse.json(200, {"now": self.store.clock.now()})

    def _admin_state(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.lock:
            counts = {name: len(self.store.salesforce.tables[name]) for name in SCHEMAS}
            cf = self.store.checkfront
            counts.update(
                items=len(cf.items),
                booking_sessions=len(cf.booking_sessions),
                bookings=len(cf.bookings),
            )
        return SandboxResponse.json(200, counts)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
