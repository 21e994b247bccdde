"""`regsync sandbox` as a user runs it: a subprocess, a banner, a config to point regsync at it.

Each test starts the real command line in a subprocess (port 0), waits for "listening on", uses
the sandbox the way its banner says (the written config, the CA file, the demo credentials) and
stops it with SIGTERM. Broken input files must give one readable message and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import ssl
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from regsync.exitcodes import ExitCode
from regsync.sandbox import DEMO
from regsync.sandbox.generator import GeneratorConfig, write_dataset
from regsync.sandbox.store import REGISTRATION
from regsync.warehouse.types import Money

pytestmark = pytest.mark.sandbox

_SCRIPT = Path(sys.executable).with_name("regsync")
REGSYNC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "regsync.cli"]
LISTENING = re.compile(r"sandbox listening on (https://127\.0\.0\.1:(\d+))")
SECRETS = (
    DEMO.sf_password,
    DEMO.sf_security_token,
    DEMO.sf_consumer_secret,
    DEMO.cf_api_key,
    DEMO.cf_api_secret,
)


def cli_env() -> dict[str, str]:
    """The user's environment without REGSYNC_* settings that would override the written config.

    COLUMNS: Rich wraps its output at 80 columns when stdout is a pipe, which would split the long
    lines of the banner (URLs, paths) that these tests read.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    env.update(COLUMNS="250", NO_COLOR="1")
    return env


@dataclass
class Running:
    """A `regsync sandbox` subprocess and what it has printed so far."""

    proc: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None
    base_url: str = ""
    result: tuple[int, str, str] | None = None

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, then (exit code, all stdout, all stderr); the pipes are closed."""
        if self.result is not None:
            return self.result
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the sandbox did not stop on SIGTERM")
        finally:
            assert self.proc.stdout is not None
            assert self.proc.stderr is not None
            err = self.proc.stderr.read()
            if self.reader is not None:
                self.reader.join(10)  # it has seen EOF
            self.proc.stdout.close()
            self.proc.stderr.close()
        self.result = (self.proc.returncode, self.stdout, err)
        return self.result


def launch(*args: str, cwd: Path) -> Running:
    proc = subprocess.Popen(
        [*REGSYNC, "sandbox", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(proc)
    # The banner's last line: it is flushed as a whole, but read here line by line.
    last = "  wrote " if "--write-config" in args else "  demo Checkfront"

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.out.append(line)
            if line.startswith(last):
                running.ready.set()
        running.ready.set()

    running.reader = threading.Thread(target=read, daemon=True)
    running.reader.start()
    return running


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start `regsync sandbox ARGS`, wait for its banner; every one started is stopped at the end."""
    started: list[Running] = []

    def run(*args: str) -> Running:
        running = launch("--port", "0", *args, cwd=tmp_path)
        started.append(running)
        assert running.ready.wait(60), "no banner within 60 s"
        match = LISTENING.search(running.stdout)
        if match is None:
            code, out, err = running.stop()
            pytest.fail(f"the sandbox did not start (exit {code}):\n{out}\n{err}")
        running.base_url = match.group(1)
        return running

    yield run
    for running in started:
        if running.proc.poll() is None:
            running.stop()


def regsync(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REGSYNC, *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def banner_value(stdout: str, label: str) -> str:
    match = re.search(rf"^\s*{label}\s+(\S+)", stdout, re.MULTILINE)
    assert match is not None, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


def client_for(running: Running) -> httpx.Client:
    ca = banner_value(running.stdout, "CA file")
    return httpx.Client(base_url=running.base_url, verify=ssl.create_default_context(cafile=ca), timeout=30)


def sf_token(http: httpx.Client) -> dict[str, str]:
    response = http.post(
        "/services/oauth2/token",
        data=DEMO.password_grant(),
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_sync(config: Path, cwd: Path, running: Running) -> None:
    """`regsync --config <config> sync` exits 0 and its calls reached this sandbox."""
    with client_for(running) as http:
        http.delete("/__sandbox/requests")
        done = regsync("--config", str(config), "sync", cwd=cwd)
        assert done.returncode == ExitCode.OK, f"{done.stdout}\n{done.stderr}"
        assert_clean(done.stdout, done.stderr)
        assert re.search(r"run \S+: ok", done.stdout), done.stdout
        served = {row["endpoint"] for row in http.get("/__sandbox/requests").json()}
    assert {"salesforce.oauth.token", "salesforce.query", "checkfront.booking.index"} <= served
    assert (cwd / "regsync.db").exists()  # the config's warehouse, relative to where regsync ran


# ---------------------------------------------------------------------------------------------
# Generated data: the banner, the written config, config check, sync
# ---------------------------------------------------------------------------------------------


def test_generated_sandbox_banner_config_check_and_sync(start, tmp_path: Path) -> None:
    config = tmp_path / "sb.toml"
    truth = tmp_path / "truth.json"
    running = start("--generate", "300", "--seed", "5", "--write-config", str(config), "--truth", str(truth))
    out = running.stdout
    base = running.base_url

    # What the banner promises: the base URLs of both APIs, the CA file, the demo credentials.
    assert f"{base}/services/data/v60.0/" in out
    assert f"{base}/services/oauth2/token" in out
    assert f"{base}/api/3.0/" in out
    ca = Path(banner_value(out, "CA file"))
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert Path(banner_value(out, "JWT key")).exists()
    for value in (
        DEMO.sf_username,
        DEMO.sf_password,
        DEMO.sf_security_token,
        DEMO.sf_consumer_key,
        DEMO.sf_consumer_secret,
        DEMO.cf_api_key,
        DEMO.cf_api_secret,
        DEMO.cf_token,
    ):
        assert value in out, value
    env_file = config.with_suffix(".env")
    assert f"wrote {config} and {env_file}" in out

    # The config and its .env: owner-only; secrets only in the .env.
    assert mode(config) == 0o600
    assert mode(env_file) == 0o600
    written = tomllib.loads(config.read_text())
    assert written["salesforce"]["login_url"] == base
    assert written["salesforce"]["username"] == DEMO.sf_username
    assert written["salesforce"]["ca_file"] == str(ca)
    assert written["checkfront"]["base_url"] == base
    assert written["checkfront"]["ca_file"] == str(ca)
    for secret in SECRETS:
        assert secret not in config.read_text()
    env_lines = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#")
    )
    assert env_lines["REGSYNC_SALESFORCE__PASSWORD"] == DEMO.sf_password
    assert env_lines["REGSYNC_CHECKFRONT__API_SECRET"] == DEMO.cf_api_secret

    # The ground truth of the generated data.
    assert json.loads(truth.read_text())["format"] == "regsync-sandbox-truth"

    # `config check` passes and shows no secret in clear.
    checked = regsync("--config", str(config), "config", "check", cwd=tmp_path)
    assert checked.returncode == ExitCode.OK, checked.stderr
    assert "configuration is valid" in checked.stderr
    effective = json.loads(checked.stdout)
    assert effective["salesforce"]["login_url"] == base
    for section, key in (
        ("salesforce", "password"),
        ("salesforce", "security_token"),
        ("salesforce", "consumer_secret"),
        ("checkfront", "api_key"),
        ("checkfront", "api_secret"),
    ):
        assert set(effective[section][key]) == {"*"}, (section, key)
    for secret in SECRETS:
        assert secret not in checked.stdout + checked.stderr

    check_sync(config, tmp_path, running)

    code, out, err = running.stop()
    assert code == 0
    assert "sandbox stopped" in out
    assert_clean(out, err)


# ---------------------------------------------------------------------------------------------
# Your own dataset: as generated, and edited by hand
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "dataset.json"
    write_dataset(GeneratorConfig(registrations=120, seed=3), path)
    return path


def test_dataset_file_is_served_and_synced(start, tmp_path: Path, dataset: Path) -> None:
    config = tmp_path / "sb.toml"
    running = start("--data", str(dataset), "--write-config", str(config))
    data = json.loads(dataset.read_text())
    with client_for(running) as http:
        state = http.get("/__sandbox/state").json()
    assert state[REGISTRATION] == len(data["salesforce"][REGISTRATION])
    assert state["bookings"] == len(data["checkfront"]["bookings"])
    assert state["booking_sessions"] == len(data["checkfront"]["booking_sessions"])
    assert state["items"] == len(data["checkfront"]["items"])
    check_sync(config, tmp_path, running)
    code, out, err = running.stop()
    assert code == 0
    assert_clean(out, err)


def test_a_hand_edited_dataset_is_served_as_edited(start, tmp_path: Path, dataset: Path) -> None:
    data = json.loads(dataset.read_text())
    record = next(r for r in data["salesforce"][REGISTRATION] if not r["IsDeleted"])
    record["Name"] = "ERS-EDITED-BY-HAND"
    record["conference360__Amount__c"] = 12345.67
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data, indent=2))  # laid out as a person's editor would leave it
    config = tmp_path / "sb.toml"
    running = start("--data", str(edited), "--write-config", str(config))

    with client_for(running) as http:
        soql = f"SELECT Id, Name, conference360__Amount__c FROM {REGISTRATION} WHERE Id = '{record['Id']}'"
        response = http.get("/services/data/v60.0/query", params={"q": soql}, headers=sf_token(http))
    assert response.status_code == 200, response.text
    (served,) = response.json()["records"]
    assert served["Name"] == "ERS-EDITED-BY-HAND"
    assert served["conference360__Amount__c"] == 12345.67

    check_sync(config, tmp_path, running)
    with sqlite3.connect(tmp_path / "regsync.db") as db:
        row = db.execute("SELECT name, amount FROM registrations WHERE id = ?", (record["Id"],)).fetchone()
    assert row is not None
    assert row[0] == "ERS-EDITED-BY-HAND"
    assert Money().process_result_value(row[1], None) == Decimal("12345.67")  # stored as cents
    running.stop()


# ---------------------------------------------------------------------------------------------
# Fault plans
# ---------------------------------------------------------------------------------------------


def test_fault_plan_file_shows_the_fault(start, tmp_path: Path) -> None:
    plan = tmp_path / "faults.json"
    plan.write_text(
        json.dumps({"rules": [{"endpoint": "salesforce.query", "kind": "status", "status": 503, "nth": [1]}]})
    )
    running = start("--generate", "20", "--faults", str(plan))
    soql = {"q": f"SELECT Id FROM {REGISTRATION}"}
    with client_for(running) as http:
        auth = sf_token(http)
        first = http.get("/services/data/v60.0/query", params=soql, headers=auth)
        second = http.get("/services/data/v60.0/query", params=soql, headers=auth)
        summary = http.get("/__sandbox/faults").json()
        log = http.get("/__sandbox/requests").json()
    assert first.status_code == 503
    assert first.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert second.status_code == 200
    assert second.json()["totalSize"] > 0
    assert summary == {"status_503": 1}
    queries = [row for row in log if row["endpoint"] == "salesforce.query"]
    assert [(row["status"], row["fault"]) for row in queries] == [(503, "salesforce.query"), (200, None)]
    code, out, err = running.stop()
    assert code == 0
    assert_clean(out, err)


def test_toml_fault_plan_with_retry_after(start, tmp_path: Path) -> None:
    plan = tmp_path / "faults.toml"
    plan.write_text(
        '[[rules]]\nendpoint = "checkfront.*"\nkind = "status"\nstatus = 429\nretry_after = 2\nevery = 2\n'
    )
    running = start("--generate", "20", "--faults", str(plan))
    with client_for(running) as http:
        answers = [http.get("/api/3.0/ping", auth=(DEMO.cf_api_key, DEMO.cf_api_secret)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 429, 200, 429]
    assert answers[1].headers["Retry-After"] == "2"
    assert answers[1].json() == {"error": "rate_limited", "error_description": "HTTP 429"}
    running.stop()


def test_network_options_shape_the_running_sandbox(start, tmp_path: Path) -> None:
    """`--latency`, `--rate-limit` and `--sf-long-running` as a benchmark passes them; the 429s the
    limiter sent are read back from `GET /__sandbox/network`."""
    running = start(
        "--generate",
        "5",
        "--latency",
        "checkfront=50ms",
        "--rate-limit",
        "checkfront=0.1/s,burst=2",
        "--sf-long-running",
        "5,after=30s",
    )
    with client_for(running) as http:
        answers = [http.get("/api/3.0/ping", auth=(DEMO.cf_api_key, DEMO.cf_api_secret)) for _ in range(3)]
        network = http.get("/__sandbox/network").json()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert network["latency"] == {"checkfront": {"seconds": 0.05, "jitter_s": 0.0}}
    assert network["rate_limit"] == {"checkfront": {"per_s": 0.1, "burst": 2}}
    assert network["salesforce_long_running"] == {"max_requests": 5, "after_s": 30.0}
    assert network["counts"]["checkfront_429"] == 1
    assert network["counts"]["checkfront_calls"] == 3
    code, out, err = running.stop()
    assert code == 0
    assert_clean(out, err)


# ---------------------------------------------------------------------------------------------
# Broken input files: one clear message, a non-zero exit, no traceback
# ---------------------------------------------------------------------------------------------

BROKEN: dict[str, tuple[list[str], str, int]] = {
    # name: (arguments, text the message must contain, exit code)
    "plan-not-json": (["--faults", "{dir}/plan.json"], "not valid json", ExitCode.CONFIG),
    "plan-bad-toml": (["--faults", "{dir}/plan.toml"], "not valid toml", ExitCode.CONFIG),
    "plan-unknown-kind": (["--faults", "{dir}/kind.json"], "fault kind 'explode'", ExitCode.CONFIG),
    "plan-unknown-key": (["--faults", "{dir}/key.json"], "unknown fault plan keys: rulez", ExitCode.CONFIG),
    "plan-no-trigger": (["--faults", "{dir}/trigger.json"], "needs nth, every or fraction", ExitCode.CONFIG),
    "plan-bad-fraction": (
        ["--faults", "{dir}/fraction.json"],
        "fraction must be between 0 and 1",
        ExitCode.CONFIG,
    ),
    "plan-unknown-field": (["--faults", "{dir}/field.json"], "bad fault rule", ExitCode.CONFIG),
    "plan-missing": (["--faults", "{dir}/nowhere.json"], "nowhere.json", ExitCode.CONFIG),
    "data-truncated": (["--data", "{dir}/truncated.json"], "not valid JSON", ExitCode.CONFIG),
    "data-wrong-format": (["--data", "{dir}/other.json"], "not a regsync sandbox dataset", ExitCode.CONFIG),
    "data-unknown-field": (["--data", "{dir}/field-data.json"], "unknown field 'Bogus__c'", ExitCode.CONFIG),
    "data-bad-id": (["--data", "{dir}/bad-id.json"], "is not an 18-character id", ExitCode.CONFIG),
    "data-missing": (["--data", "{dir}/nowhere-data.json"], "cannot read the dataset", ExitCode.CONFIG),
    "data-directory": (["--data", "{dir}"], "cannot read the dataset", ExitCode.CONFIG),
    "latency-no-unit": (["--latency", "checkfront=100"], "'100' is not a duration", ExitCode.CONFIG),
    "rate-unknown-service": (["--rate-limit", "crm=5/s"], "unknown service 'crm'", ExitCode.CONFIG),
    "long-running-zero": (["--sf-long-running", "0"], "must be a whole number >= 1", ExitCode.CONFIG),
    "plan-bad-network": (["--faults", "{dir}/network.json"], "bad network block", ExitCode.CONFIG),
    "data-and-generate": (
        ["--data", "{dir}/other.json", "--generate", "5"],
        "exclude each other",
        ExitCode.USAGE,
    ),
}


def write_broken_files(directory: Path) -> None:
    (directory / "plan.json").write_text('{"rules": [{"endpoint": "salesforce.query",')
    (directory / "plan.toml").write_text("[[rules]\nendpoint = salesforce.query\n")
    (directory / "kind.json").write_text(json.dumps({"rules": [{"kind": "explode", "nth": [1]}]}))
    (directory / "key.json").write_text(json.dumps({"rulez": []}))
    (directory / "trigger.json").write_text(json.dumps({"rules": [{"endpoint": "*", "kind": "status"}]}))
    (directory / "network.json").write_text(json.dumps({"network": {"rate_limit": {"checkfront": "x"}}}))
    (directory / "fraction.json").write_text(json.dumps({"rules": [{"kind": "drop", "fraction": 1.5}]}))
    (directory / "field.json").write_text(
        json.dumps({"rules": [{"kind": "drop", "nth": [1], "when": "now"}]})
    )
    dataset = directory / "good.json"
    write_dataset(GeneratorConfig(registrations=10, seed=2), dataset)
    text = dataset.read_text()
    (directory / "truncated.json").write_text(text[: len(text) // 2])
    (directory / "other.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    data = json.loads(text)
    data["salesforce"][REGISTRATION][0]["Bogus__c"] = 1
    (directory / "field-data.json").write_text(json.dumps(data))
    data = json.loads(text)
    data["salesforce"][REGISTRATION][0]["Id"] = "not-an-id"
    (directory / "bad-id.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    """Every broken case at once (each is a Python start-up): name -> (exit code, stdout, stderr)."""
    directory = tmp_path_factory.mktemp("broken")
    write_broken_files(directory)
    procs = {
        name: subprocess.Popen(
            [*REGSYNC, "sandbox", "--port", "0", *(a.format(dir=directory) for a in args)],
            cwd=directory,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (args, _, _) in BROKEN.items()
    }
    results = {}
    deadline = time.monotonic() + 60
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # it started serving: the bad file was accepted
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        results[name] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_file_is_a_clear_error(broken_runs: dict[str, tuple[int, str, str]], name: str) -> None:
    code, out, err = broken_runs[name]
    _, expected, exit_code = BROKEN[name]
    assert "listening on" not in out, f"started despite the broken file:\n{out}"
    assert code == exit_code, (code, out, err)
    message = " ".join((out + err).split())  # Rich may wrap the message over lines
    assert expected in message, message
    if exit_code == ExitCode.CONFIG:
        assert "cannot start the sandbox:" in message
    assert_clean(out, err)


def test_a_fault_rule_with_a_wrong_value_type_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"rules": [{"endpoint": "checkfront.ping", "kind": "status", "nth": "x"}]}))
    running = launch("--port", "0", "--generate", "5", "--faults", str(plan), cwd=tmp_path)
    running.ready.wait(60)
    code, out, err = running.stop()
    assert "listening on" not in out
    assert code == ExitCode.CONFIG
    assert "nth" in err
