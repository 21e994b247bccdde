"""After a whole run configured with known secrets, no secret is in any output, file or error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from regsync.clients.salesforce import SalesforceClient
from regsync.clients.usage import ApiUsage
from regsync.config import load_settings
from regsync.errors import AuthenticationError
from regsync.pull import run_pull
from regsync.sandbox import DemoCredentials, Sandbox

pytestmark = pytest.mark.sandbox
REGSYNC = str(Path(sys.executable).with_name("regsync"))
# Distinctive values, so a hit can only be a leak.
SECRETS = DemoCredentials(
    sf_password="pw-Zq81-leakcheck",
    sf_security_token="TOKENleakcheck77",
    sf_consumer_secret="consumer-secret-leakcheck-5521",
    cf_api_key="cf-key-leakcheck-3390",
    cf_api_secret="cf-secret-leakcheck-8847",
)
SECRET_VALUES = [
    SECRETS.sf_password,
    SECRETS.sf_security_token,
    SECRETS.sf_consumer_secret,
    SECRETS.cf_api_key,
    SECRETS.cf_api_secret,
]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox.generated(400, seed=9, credentials=SECRETS, state_dir=tmp_path / "sandbox") as box:
        yield box


def regsync(config: Path, *args: str) -> str:
    done = subprocess.run(
        [REGSYNC, "--config", str(config), "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode in (0, 3, 6), done.stderr[-2000:]
    return done.stdout + done.stderr


def test_no_secret_in_logs_reports_warehouse_or_errors(sandbox: Sandbox, tmp_path: Path) -> None:
    config, env_file = sandbox.write_config(
        tmp_path / "regsync.toml",
        f"sqlite:///{tmp_path / 'warehouse.db'}",
        extra={"actions": {"enabled": True, "max_share": 1.0, "max_writes": 100_000}},
    )
    output = "".join(
        [
            regsync(config, "config", "check"),
            regsync(config, "sync"),
            regsync(config, "submit-pending"),
            regsync(config, "close-stale"),
            regsync(config, "actions"),
            regsync(config, "reconcile", "--out", str(tmp_path / "reports")),
            regsync(config, "status"),
        ]
    )
    assert '"run_id"' in output, "the runs logged JSON lines"
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != env_file and "sandbox" not in p.parts]
    assert any(p.suffix == ".csv" for p in files)
    assert any(p.name == "warehouse.db" for p in files)
    for secret in SECRET_VALUES:
        assert secret not in output, f"secret in command output: {secret}"
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"secret in {path.name}"
    # the only place the secrets live is the env file, owner-only
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert SECRETS.sf_password in env_file.read_text()


def test_no_secret_in_error_messages(sandbox: Sandbox, tmp_path: Path) -> None:
    config, env_file = sandbox.write_config(tmp_path / "regsync.toml", f"sqlite:///{tmp_path / 'w.db'}")
    wrong = "wrong-password-leakcheck-1234"
    env_file.write_text(env_file.read_text().replace(SECRETS.sf_password, wrong))
    settings = load_settings(config)
    report = run_pull(settings, sleep=lambda _s: None)
    assert report.outcome == "failed"
    assert report.message is not None
    assert "invalid_grant" in report.message
    for secret in [*SECRET_VALUES, wrong]:
        assert secret not in report.message
    client = SalesforceClient(settings.salesforce, settings.retry, ApiUsage())
    with pytest.raises(AuthenticationError) as caught:
        client.limits()
    for secret in [*SECRET_VALUES, wrong]:
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value.args)
