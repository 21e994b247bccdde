"""Secret leak scan: a whole regsync run with known secrets, every artifact searched for them.

Why: a secret leaks through the place nobody looked — an error message quoting a server's echo,
a JSON log line, the run ledger, a cassette. So the scan makes regsync do everything it does
(sync, write-backs applied, reconcile with CSV and HTML reports), provokes the errors that carry
request details (a refused password, a refused Checkfront key, servers answering with an error
body that echoes the request: headers, query string, form body), records a cassette through the
project's scrubber, and then searches every artifact for every secret in the encodings it travels
in: as is, URL-encoded (form bodies, query strings), base64 (and `key:secret` base64, the Basic
authorization value), the password+token pair of the OAuth password grant, and the access tokens
the (sandbox) org issued during the run. Artifacts: the output of every command in each log format
(text, JSON, rich), the reports, every table of the warehouse and its raw database files, the
messages of the errors provoked in-process, the cassette, the config files written. The env files,
where the secrets belong, are not scanned: they are checked to be owner-only.

    report = run_leak_scan(workdir=tmp_path)
    assert report.secrets_leaked == 0, report.where
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
from sqlalchemy import create_engine, inspect, select, text

from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.salesforce import SalesforceClient
from regsync.clients.usage import ApiUsage
from regsync.config import Settings, load_settings, write_private_file
from regsync.errors import ApiError, RegsyncError
from regsync.jobs.pull import run_pull
from regsync.logs import CONTEXT, JsonFormatter, SecretScrubber
from regsync.sandbox import DemoCredentials, Sandbox
from regsync.sandbox.faults import FaultInjector
from regsync.sandbox.http import SandboxRequest, SandboxResponse
from regsync.warehouse.engine import open_warehouse
from tests.support import cassettes

# Distinctive values, each with characters that URL-encoding changes, so every encoding differs.
# They open nothing but the local sandbox.
LEAK_CREDENTIALS = DemoCredentials(
    sf_username="leakscan@regsync.sandbox",
    sf_password="pw+Lk7/scan&Q=1",
    sf_security_token="TOKleak9+scan/X",
    sf_consumer_key="leakscan-consumer-key",
    sf_consumer_secret="cs+leak/scan&4471",
    cf_api_key="cfkey+leak/scan55",
    cf_api_secret="cfsec+leak/scan&88",
)
WRONG_SF_PASSWORD = "wrong+pw/leak&scan=7"
WRONG_CF_SECRET = "wrong+cfsec/leak&scan=3"
ARTIFACT_KINDS = ("log", "report", "warehouse", "database-file", "exception", "cassette", "config")
# (label, how an error answer echoes the request) for the endpoints made to fail on purpose.
ECHO_ERRORS: dict[str, int] = {
    "salesforce.oauth.token": 400,
    "salesforce.query": 500,
    "checkfront.booking.index": 403,
    "checkfront.booking_session.get": 500,
}


@dataclass
class LeakReport:
    """How many secrets were looked for in how many artifacts, and every hit (never the secret)."""

    secrets: int = 0  # distinct secret values (configured, wrong ones tried, access tokens issued)
    patterns: int = 0  # (secret, encoding) strings searched for
    artifacts_scanned: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    secrets_leaked: int = 0  # (secret, artifact) hits
    where: list[str] = field(default_factory=list)
    provoked: dict[str, bool] = field(default_factory=dict)  # each provoked error really happened
    private_files: dict[str, str] = field(default_factory=dict)  # files that hold secrets -> mode
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "secrets": self.secrets,
            "patterns": self.patterns,
            "artifacts_scanned": self.artifacts_scanned,
            "by_kind": dict(self.by_kind),
            "secrets_leaked": self.secrets_leaked,
            "where": list(self.where),
            "provoked": dict(self.provoked),
            "private_files": dict(self.private_files),
            "seconds": round(self.seconds, 2),
        }


# -- what is searched for ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    label: str  # names the secret and the encoding, never shows it
    needle: bytes


def encodings(label: str, secret: str) -> list[_Pattern]:
    """A secret as it may travel: as is, URL-encoded both ways (lower-case hex too), base64, JSON."""
    forms = {
        "literal": secret,
        "url-encoded": quote_plus(secret),
        "percent-encoded": quote(secret, safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "json": json.dumps(secret)[1:-1],
    }
    forms["percent-encoded, lower-case"] = _lower_hex(forms["percent-encoded"])
    seen: dict[str, str] = {}
    for name, value in forms.items():
        seen.setdefault(value, name)
    return [_Pattern(f"{label} ({name})", value.encode()) for value, name in seen.items()]


def _lower_hex(text: str) -> str:
    parts = text.split("%")
    return parts[0] + "".join("%" + part[:2].lower() + part[2:] for part in parts[1:])


def _patterns(credentials: DemoCredentials, tokens: Iterable[str]) -> tuple[int, list[_Pattern]]:
    """(distinct secret values, every pattern) for the configured and wrong secrets and the tokens."""
    c = credentials
    secrets = {
        "salesforce password": c.sf_password,
        "salesforce security token": c.sf_security_token,
        "salesforce consumer secret": c.sf_consumer_secret,
        "checkfront api key": c.cf_api_key,
        "checkfront api secret": c.cf_api_secret,
        "wrong salesforce password": WRONG_SF_PASSWORD,
        "wrong checkfront secret": WRONG_CF_SECRET,
    }
    for number, token in enumerate(sorted(tokens), start=1):
        secrets[f"salesforce access token #{number}"] = token
    patterns = [p for label, secret in secrets.items() for p in encodings(label, secret)]
    compounds = {
        "password+security token": c.sf_password + c.sf_security_token,
        "wrong password+security token": WRONG_SF_PASSWORD + c.sf_security_token,
        "checkfront basic auth": cassettes.basic_auth_value(c.cf_api_key, c.cf_api_secret),
        "wrong checkfront basic auth": cassettes.basic_auth_value(c.cf_api_key, WRONG_CF_SECRET),
    }
    patterns += [p for label, secret in compounds.items() for p in encodings(label, secret)]
    return len(set(secrets.values())), patterns


# -- artifacts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    kind: str  # one of ARTIFACT_KINDS
    name: str
    data: bytes


def _files(root: Path, kind: str, *, skip: Iterable[Path] = ()) -> Iterator[Artifact]:
    skipped = {p.resolve() for p in skip}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.resolve() not in skipped:
            yield Artifact(kind, str(path.relative_to(root.parent)), path.read_bytes())


def _warehouse_tables(url: str, label: str) -> Iterator[Artifact]:
    """Every table of a warehouse, every row, as JSON lines: journal, archive, quarantine, ledger..."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            for table in inspect(connection).get_table_names():
                rows = connection.execute(select(text("*")).select_from(text(f'"{table}"'))).mappings()
                lines = [orjson.dumps(dict(row), default=str, option=orjson.OPT_NON_STR_KEYS) for row in rows]
                yield Artifact("warehouse", f"{label}:{table}", b"\n".join(lines))
    finally:
        engine.dispose()


# -- the sandbox with servers that echo requests into their errors ------------------------------------


class EchoFaults(FaultInjector):
    """A fault injector that can also answer an error whose body echoes the request it refuses.

    Careless servers (and proxies in debug mode) do this; regsync must not carry the echoed
    credentials into its messages, logs or warehouse.
    """

    def __init__(self) -> None:
        super().__init__()
        self.echo: dict[str, int] = {}  # endpoint glob -> HTTP status
        self.echoed: Counter[str] = Counter()

    def before(self, endpoint: str, request: SandboxRequest) -> SandboxResponse | None:
        for pattern, status in self.echo.items():
            if fnmatch.fnmatchcase(endpoint, pattern):
                self.echoed[endpoint] += 1
                return SandboxResponse.json(status, _echo_body(endpoint, request))
        return super().before(endpoint, request)


def _echo_body(endpoint: str, request: SandboxRequest) -> Any:
    echo = (
        f"cannot serve {request.method} {request.path} query={request.query} "
        f"headers={dict(request.headers)} body={request.body.decode('utf-8', 'replace')}"
    )
    if endpoint == "salesforce.oauth.token":
        return {"error": "invalid_grant", "error_description": echo}
    if endpoint.startswith("salesforce."):
        return [{"errorCode": "UNKNOWN_EXCEPTION", "message": echo}]
    return {"error": "invalid_request", "error_description": echo}


# -- running regsync -----------------------------------------------------------------------------------

_FAST_RETRY = {"attempts": 2, "initial_s": 0.0, "max_s": 0.0}


def _regsync(config: Path, env_file: Path, log_format: str, *args: str) -> tuple[int, bytes]:
    """Run the real command line; (exit code, everything it printed)."""
    command = [sys.executable, "-m", "regsync.cli", "--config", str(config), "--env-file", str(env_file)]
    done = subprocess.run(
        [*command, "--log-format", log_format, *args],
        capture_output=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _env_file(path: Path, sandbox: Sandbox, **replace: str) -> Path:
    values = sandbox.secret_env() | replace
    write_private_file(path, "".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def _exception_text(exc: BaseException) -> bytes:
    parts = [str(exc), repr(exc), repr(exc.args)]
    if isinstance(exc, ApiError):
        parts.append(repr((exc.status, exc.code, exc.service)))
    return "\n".join(parts).encode("utf-8", "backslashreplace")


def _caught(call: Any) -> BaseException | None:
    try:
        call()
    except (ApiError, RegsyncError) as exc:
        return exc
    return None


def run_leak_scan(*, workdir: Path, registrations: int = 300, seed: int = 9) -> LeakReport:
    """Run regsync end to end against a sandbox with LEAK_CREDENTIALS; scan everything it left.

    `workdir` receives the config, env files, warehouses, reports and cassette (kept for a look).
    """
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    report = LeakReport()
    artifacts: list[Artifact] = []
    sandbox = Sandbox.generated(
        registrations, seed=seed, credentials=LEAK_CREDENTIALS, state_dir=workdir / "sandbox-state"
    )
    sandbox.faults = faults = EchoFaults()
    with sandbox:
        warehouse_url = f"sqlite:///{workdir / 'warehouse.db'}"
        actions = {"enabled": True, "max_share": 1.0, "max_writes": 100_000}
        config, env_file = sandbox.write_config(
            workdir / "regsync.toml", warehouse_url, extra={"actions": actions}
        )
        failing_config, _ = sandbox.write_config(
            workdir / "failing.toml", warehouse_url, extra={"actions": actions, "retry": _FAST_RETRY}
        )
        failing_config.with_suffix(".env").unlink()  # each failing run names its env file
        fresh_config, _ = sandbox.write_config(
            workdir / "fresh.toml", f"sqlite:///{workdir / 'fresh.db'}", extra={"retry": _FAST_RETRY}
        )
        fresh_config.with_suffix(".env").unlink()
        reports = workdir / "reports"

        # The main job, each command in another log format.
        args: tuple[str, ...]
        for log_format, args in (
            ("text", ("config", "check")),
            ("json", ("sync",)),
            ("text", ("submit-pending", "--apply")),
            ("json", ("close-stale", "--apply")),
            ("rich", ("reconcile", "--out", str(reports), "--format", "both")),
            ("json", ("actions",)),
            ("text", ("status",)),
        ):
            code, output = _regsync(config, env_file, log_format, *args)
            report.provoked[f"{args[0]} ran"] = code in (0, 3, 6)
            artifacts.append(Artifact("log", f"{' '.join(args[:2])} ({log_format})", output))
        report.provoked["write-backs reached the sandbox"] = bool(sandbox.writes())

        # Errors that carry request details, through the command line.
        wrong_password = _env_file(
            workdir / "wrong-password.env", sandbox, REGSYNC_SALESFORCE__PASSWORD=WRONG_SF_PASSWORD
        )
        code, output = _regsync(failing_config, wrong_password, "json", "sync")
        report.provoked["refused salesforce password"] = code != 0 and b"invalid_grant" in output
        artifacts.append(Artifact("log", "sync with a wrong password (json)", output))
        wrong_secret = _env_file(
            workdir / "wrong-secret.env", sandbox, REGSYNC_CHECKFRONT__API_SECRET=WRONG_CF_SECRET
        )
        code, output = _regsync(failing_config, wrong_secret, "text", "sync", "--stream", "bookings")
        report.provoked["refused checkfront secret"] = code != 0 and b"AuthenticationError" in output
        artifacts.append(Artifact("log", "sync with a wrong checkfront secret (text)", output))
        good_env = _env_file(workdir / "failing.env", sandbox)
        for endpoint, status in ECHO_ERRORS.items():
            faults.echo = {endpoint: status}
            args = ("sync", "--stream", "bookings") if "booking.index" in endpoint else ("sync",)
            # Booking sessions are read once: a fresh warehouse reads them all.
            target = fresh_config if endpoint == "checkfront.booking_session.get" else failing_config
            code, output = _regsync(target, good_env, "json" if status >= 500 else "text", *args)
            report.provoked[f"{endpoint} echoed the request"] = faults.echoed[endpoint] > 0 and code != 0
            artifacts.append(Artifact("log", f"{args[0]} while {endpoint} echoes ({status})", output))
        faults.echo = {}

        # The same errors in-process: exception messages, the pull report, the log lines.
        capture = _LogCapture([*_configured(LEAK_CREDENTIALS), WRONG_SF_PASSWORD, WRONG_CF_SECRET])
        try:
            artifacts += _provoke_in_process(
                report, faults, failing_config, wrong_password, wrong_secret, good_env
            )
        finally:
            artifacts += capture.close()

        # A cassette recorded through the project's scrubber.
        cassette = _record_cassette(sandbox, workdir)
        artifacts.append(Artifact("cassette", cassette.name, cassette.read_bytes()))
        tokens = (
            set(sandbox.salesforce.tokens) - {LEAK_CREDENTIALS.sf_session_id} if sandbox.salesforce else set()
        )

    # Everything regsync left behind.
    artifacts += _files(reports, "report")
    for database in ("warehouse.db", "fresh.db", "recorded.db"):
        url = f"sqlite:///{workdir / database}"
        artifacts += _warehouse_tables(url, database)
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = workdir / f"{database}{suffix}"
            if path.exists():
                artifacts.append(Artifact("database-file", path.name, path.read_bytes()))
    for path in (config, failing_config, fresh_config):
        artifacts.append(Artifact("config", path.name, path.read_bytes()))
    secret_files = [env_file, wrong_password, wrong_secret, good_env]
    report.private_files = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in secret_files}

    report.secrets, patterns = _patterns(LEAK_CREDENTIALS, tokens)
    report.patterns = len(patterns)
    _scan(report, artifacts, patterns)
    report.seconds = time.perf_counter() - started
    return report


def _provoke_in_process(
    report: LeakReport,
    faults: EchoFaults,
    config: Path,
    wrong_password: Path,
    wrong_secret: Path,
    good_env: Path,
) -> list[Artifact]:
    """Refused credentials and echoing servers met by the clients and the pull in this process."""
    artifacts = []
    settings = load_settings(config, env_file=wrong_password)
    exc = _caught(lambda: SalesforceClient(settings.salesforce, settings.retry, ApiUsage()).limits())
    report.provoked["in-process: refused password"] = exc is not None
    if exc is not None:
        artifacts.append(Artifact("exception", "salesforce login refused", _exception_text(exc)))
    settings = load_settings(config, env_file=wrong_secret)
    client = CheckfrontClient(settings.checkfront, settings.retry, ApiUsage())
    exc = _caught(lambda: client.booking_index_page(1))
    client.close()
    report.provoked["in-process: refused checkfront secret"] = exc is not None
    if exc is not None:
        artifacts.append(Artifact("exception", "checkfront key refused", _exception_text(exc)))
    settings = load_settings(config, env_file=good_env)
    try:
        for endpoint, status in ECHO_ERRORS.items():
            faults.echo = {endpoint: status}
            exc = _caught(lambda endpoint=endpoint: _one_call(settings, endpoint))
            report.provoked[f"in-process: {endpoint} echoed"] = exc is not None
            if exc is not None:
                artifacts.append(Artifact("exception", f"{endpoint} echo ({status})", _exception_text(exc)))
            engine = open_warehouse(settings.warehouse.url)
            try:
                pulled = run_pull(settings, engine=engine, sleep=lambda _s: None)
            finally:
                engine.dispose()
            message = (pulled.message or "").encode("utf-8", "backslashreplace")
            artifacts.append(Artifact("exception", f"pull report while {endpoint} echoes", message))
    finally:
        faults.echo = {}
    return artifacts


def _configured(credentials: DemoCredentials) -> list[str]:
    """The secrets a sandbox config carries (what `secret_values(settings)` gives the CLI's logging)."""
    c = credentials
    return [c.sf_password, c.sf_security_token, c.sf_consumer_secret, c.cf_api_key, c.cf_api_secret]


class _LogCapture:
    """What the in-process runs log, through regsync's own filters, in the JSON and text formats."""

    def __init__(self, secrets: list[str]) -> None:
        self.streams = {"json": io.StringIO(), "text": io.StringIO()}
        self.handlers = []
        for name, stream in self.streams.items():
            handler = logging.StreamHandler(stream)
            handler.setFormatter(
                JsonFormatter()
                if name == "json"
                else logging.Formatter("%(levelname)s %(name)s: %(message)s")
            )
            handler.addFilter(SecretScrubber(secrets))
            handler.addFilter(CONTEXT)
            self.handlers.append(handler)
        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.setLevel(logging.INFO)
        for handler in self.handlers:
            self.root.addHandler(handler)

    def close(self) -> list[Artifact]:
        for handler in self.handlers:
            self.root.removeHandler(handler)
        self.root.setLevel(self.level)
        return [
            Artifact(
                "log", f"in-process runs ({name})", stream.getvalue().encode("utf-8", "backslashreplace")
            )
            for name, stream in self.streams.items()
        ]


def _one_call(settings: Settings, endpoint: str) -> None:
    """One client call that reaches `endpoint`."""
    usage = ApiUsage()
    if endpoint.startswith("salesforce."):
        SalesforceClient(settings.salesforce, settings.retry, usage, sleep=lambda _s: None).query_first(
            "SELECT Id FROM conference360__Session__c"
        )
        return
    client = CheckfrontClient(settings.checkfront, settings.retry, usage, sleep=lambda _s: None)
    try:
        if endpoint == "checkfront.booking.index":
            client.booking_index_page(1)
        else:
            client.get_booking_session("leakscan-session")
    finally:
        client.close()


def _record_cassette(sandbox: Sandbox, workdir: Path) -> Path:
    """A pull recorded with vcrpy through cassettes.Scrubber, as tests/cassette records them."""
    import vcr

    from tests.support.vcr_threads import keep_httpx_patched_during_force_reset

    c = LEAK_CREDENTIALS
    secrets = [
        c.sf_password,
        c.sf_security_token,
        c.sf_consumer_secret,
        c.cf_api_key,
        c.cf_api_secret,
        c.sf_password + c.sf_security_token,
        cassettes.basic_auth_value(c.cf_api_key, c.cf_api_secret),
    ]
    scrubber = cassettes.Scrubber(secrets=secrets, origins=[sandbox.base_url])
    recorder = vcr.VCR(cassette_library_dir=str(workdir / "cassettes"), record_mode="all")
    cassettes.register(recorder)
    keep_httpx_patched_during_force_reset()
    path = workdir / "cassettes" / "leakscan.yaml"
    if path.exists():
        path.unlink()
    settings = sandbox.settings(f"sqlite:///{workdir / 'recorded.db'}", checkfront={"concurrency": 1})
    engine = open_warehouse(settings.warehouse.url)
    try:
        with recorder.use_cassette(path.name, **cassettes.vcr_config(scrubber)):
            run_pull(settings, engine=engine, sleep=lambda _s: None)
    finally:
        engine.dispose()
    return path


def find_secrets(data: bytes, patterns: Iterable[_Pattern]) -> list[str]:
    """Labels of the secrets (in any of their encodings) and secret-shaped values found in `data`."""
    hits = sorted({p.label for p in patterns if p.needle in data})
    text = data.decode("utf-8", "replace")
    return hits + [f"secret-shaped value: {leak.split(':')[0]}" for leak in cassettes.find_leaks(text)]


def _scan(report: LeakReport, artifacts: list[Artifact], patterns: list[_Pattern]) -> None:
    kinds: Counter[str] = Counter()
    for artifact in artifacts:
        kinds[artifact.kind] += 1
        for label in find_secrets(artifact.data, patterns):
            report.secrets_leaked += 1
            report.where.append(f"{artifact.kind} {artifact.name}: {label}")
    report.artifacts_scanned = len(artifacts)
    report.by_kind = {kind: kinds[kind] for kind in ARTIFACT_KINDS}


def cleanup(workdir: Path) -> None:
    """Remove what a scan left (it keeps everything for a look by default)."""
    shutil.rmtree(workdir, ignore_errors=True)


__all__ = [
    "ARTIFACT_KINDS",
    "LEAK_CREDENTIALS",
    "EchoFaults",
    "LeakReport",
    "encodings",
    "find_secrets",
    "run_leak_scan",
]
