"""What an operator meets when something is wrong: one readable line and the right exit code, never a
traceback; JSON lines under --log-format json; honest, safe files."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from regsync.cli import app
from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.usage import ApiUsage
from regsync.config import CheckfrontSettings, RetrySettings, load_settings, masked
from regsync.errors import ConfigError, NotDeliveredError
from regsync.exitcodes import ExitCode
from regsync.reconcile.report import csv_text, neutralise, neutralise_bidi
from regsync.sandbox import Sandbox
from regsync.warehouse.locks import hold, open_warehouse_locked
from regsync.warehouse.state import finish_run, start_run
from tests.conftest import PG_URL

PG_DB_URL = PG_URL.split("?")[0]


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"a traceback: {result.exception!r}\n{result.output}"
    )
    return result.exit_code, result.output


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _no_regsync_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("REGSYNC_"):
            monkeypatch.delenv(key)


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output


# -- the config file -------------------------------------------------------------------------------


def test_config_pointing_at_a_directory_is_a_config_error(tmp_path: Path) -> None:
    code, output = run("--config", str(tmp_path), "status")
    assert code == ExitCode.CONFIG
    assert f"{tmp_path} is a directory" in output
    _no_traceback(output)


def test_config_pointing_at_a_binary_file_is_a_config_error(tmp_path: Path) -> None:
    binary = tmp_path / "regsync.toml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00" * 20)
    code, output = run("--config", str(binary), "status")
    assert code == ExitCode.CONFIG
    assert str(binary) in output
    _no_traceback(output)


@pytest.mark.parametrize(
    ("ca", "expected"),
    [
        ("missing.pem", "does not exist"),
        ("not-pem.pem", "holds no PEM certificate"),
        ("broken.pem", "not a usable PEM certificate"),
        ("folder", "is a directory"),
    ],
)
def test_a_bad_ca_file_is_caught_by_config_check(tmp_path: Path, ca: str, expected: str) -> None:
    write(tmp_path / "not-pem.pem", "just text\n")
    write(
        tmp_path / "broken.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    (tmp_path / "folder").mkdir()
    config = write(tmp_path / "regsync.toml", f'[checkfront]\nca_file = "{ca}"\n')
    code, output = run("--config", str(config), "config", "check")
    assert code == ExitCode.CONFIG
    assert "checkfront.ca_file" in output
    assert expected in output
    assert str(tmp_path / ca) in output  # relative to the config file, named in full
    _no_traceback(output)


def test_a_sandbox_config_reused_after_its_ca_was_deleted_is_a_config_error(tmp_path: Path) -> None:
    with Sandbox(state_dir=tmp_path / "sandbox") as box:
        config, _ = box.write_config(tmp_path / "sandbox.toml", f"sqlite:///{tmp_path / 'w.db'}")
        ca = box.ca_path
    assert ca is not None
    ca.unlink()
    code, output = run("--config", str(config), "sync")
    assert code == ExitCode.CONFIG
    assert f"CA file {ca} does not exist" in output
    _no_traceback(output)


# -- the warehouse ---------------------------------------------------------------------------------


def test_a_warehouse_path_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = write(tmp_path / "a-file", "not a folder\n")
    env = {"REGSYNC_WAREHOUSE__URL": f"sqlite:///{blocker}/warehouse.db"}
    code, output = run("status", env=env)
    assert code == ExitCode.CONFIG
    assert str(blocker) in output
    _no_traceback(output)


def test_a_warehouse_path_that_is_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "warehouse.db").mkdir()
    code, output = run("status", env={"REGSYNC_WAREHOUSE__URL": f"sqlite:///{tmp_path / 'warehouse.db'}"})
    assert code == ExitCode.CONFIG
    assert f"{tmp_path / 'warehouse.db'} is a directory" in output


def test_a_sqlite_warehouse_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    """SQLite refusing to write (a read-only file system, a file we may not write) is exit 1."""
    from sqlalchemy.exc import OperationalError

    from regsync.cli.errors import OUTPUT, explain

    OUTPUT.warehouse_url = f"sqlite:///{tmp_path / 'w.db'}"
    refused = OperationalError("INSERT ...", {}, Exception("attempt to write a readonly database"))
    code, message = explain(refused) or (None, "")
    assert code == ExitCode.FAILED
    assert str(tmp_path / "w.db") in message
    assert "read-only" in message


def _postgres_or_skip() -> None:
    from tests.conftest import _PG_PROBLEM

    if _PG_PROBLEM is not None:
        pytest.skip(f"PostgreSQL not reachable ({_PG_PROBLEM})")


@pytest.mark.parametrize("command", [["status"], ["run", "sync"]])
def test_a_postgresql_database_that_does_not_exist_is_named_without_its_password(command: list[str]) -> None:
    _postgres_or_skip()
    url = PG_DB_URL.rsplit("/", 1)[0].replace("postgres@", "postgres:hunter2pw@") + "/regsync_no_such_db"
    code, output = run(*command, env={"REGSYNC_WAREHOUSE__URL": url})
    assert code == ExitCode.CONFIG
    assert "'regsync_no_such_db' does not exist" in output
    assert "hunter2pw" not in output
    _no_traceback(output)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_postgresql_server_that_refuses_names_host_and_cause() -> None:
    port = _closed_port()
    code, output = run(
        "status", env={"REGSYNC_WAREHOUSE__URL": f"postgresql+psycopg://u@127.0.0.1:{port}/db"}
    )
    assert code == ExitCode.FAILED
    assert f"127.0.0.1:{port}: connection refused" in output
    _no_traceback(output)


def test_a_checkfront_connection_refused_names_host_and_cause() -> None:
    port = _closed_port()
    settings = CheckfrontSettings(base_url=f"https://127.0.0.1:{port}", api_key="k", api_secret="s")
    client = CheckfrontClient(settings, RetrySettings(attempts=1), ApiUsage())
    try:
        with pytest.raises(NotDeliveredError) as caught:
            client.get_booking("CFPP-1")
    finally:
        client.close()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "connection refused" in str(caught.value)


# -- a full disk -----------------------------------------------------------------------------------


@pytest.fixture
def reconcile_config(tmp_path: Path) -> Path:
    return write(tmp_path / "etc" / "regsync.toml", '[warehouse]\nurl = "sqlite:///warehouse.db"\n')


def test_a_full_disk_names_the_file_and_leaves_the_previous_report_whole(
    tmp_path: Path, reconcile_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "reports"
    code, output = run("--config", str(reconcile_config), "reconcile", "--out", str(out), "--format", "csv")
    assert code == ExitCode.OK, output
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert set(before) == {"mismatches.csv", "summary.csv", "diff.csv"}

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("regsync.config.os.fsync", full)
    code, output = run("--config", str(reconcile_config), "reconcile", "--out", str(out), "--format", "csv")
    assert code == ExitCode.FAILED
    assert f"cannot write {out / 'mismatches.csv'}" in output.replace("\n", "")
    assert "No space left on device" in output
    _no_traceback(output)
    # Every report is as it stood: no truncated file where a good one was, no temporary left over.
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


# -- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sync", "--stream", "nope"], "unknown stream(s) nope"),
        (["submit-pending", "--limit", "-1"], "--limit"),
        (["close-stale", "--limit", "-3"], "--limit"),
        (["actions", "--limit", "-1"], "--limit"),
        (["close-stale", "--older-than", "-5h"], "--older-than"),
        (["close-stale", "--older-than", "nanh"], "--older-than"),
        (["--log-format", "xml", "status"], "--log-format"),
    ],
)
def test_bad_options_are_usage_errors_before_anything_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = run(*args)
    assert code == ExitCode.USAGE
    assert expected in output
    _no_traceback(output)
    assert list(tmp_path.iterdir()) == []  # no warehouse created, no lock taken


JSON_CASES = [
    ["--log-format", "json", "--config", "/", "status"],
    ["--log-format", "json", "sync", "--stream", "nope"],
    ["--log-format", "json", "sync", "--no-such-option"],
    ["--log-format=json", "close-stale", "--older-than", "-1h"],
]


@pytest.mark.parametrize("args", JSON_CASES)
def test_under_json_logs_every_stderr_line_is_one_json_object_errors_included(
    tmp_path: Path, args: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    done = subprocess.run(
        [sys.executable, "-m", "regsync.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (ExitCode.USAGE, ExitCode.CONFIG), done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, "the error must be said"
    entries = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    assert any(entry["level"] == "error" for entry in entries)


def test_under_json_logs_even_an_unexpected_error_is_one_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_settings: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("regsync.warehouse.status.warehouse_status", broken)
    result = CliRunner().invoke(
        app, ["--log-format", "json", "status"], env={"REGSYNC_WAREHOUSE__URL": "sqlite://"}
    )
    assert result.exit_code == ExitCode.FAILED
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    (entry,) = [e for e in entries if e["level"] == "error"]
    assert "RuntimeError: boom" in entry["message"]
    assert "Traceback" in entry["error"]


# -- honest and safe files -------------------------------------------------------------------------


def test_config_check_masks_a_warehouse_password_from_the_environment(tmp_path: Path) -> None:
    url = "postgresql+psycopg://regsync:s3cr3t-pw@db.example:5432/regsync"
    settings = load_settings(environ={"REGSYNC_WAREHOUSE__URL": url})
    shown = json.dumps(masked(settings))
    assert "s3cr3t-pw" not in shown
    assert "regsync:***@db.example:5432/regsync" in shown
    config = write(  # a config `config check` calls valid: logins in the file, secrets in the env
        tmp_path / "r.toml",
        '[salesforce]\nusername = "ops@example.org"\nconsumer_key = "key"\n'
        '[checkfront]\nbase_url = "https://acme.checkfront.example"\n',
    )
    complete = {
        "REGSYNC_CONFIG": str(config),
        "REGSYNC_WAREHOUSE__URL": url,
        "REGSYNC_SALESFORCE__PASSWORD": "sf-pw",
        "REGSYNC_SALESFORCE__CONSUMER_SECRET": "secret",
        "REGSYNC_CHECKFRONT__API_KEY": "cf-key",
        "REGSYNC_CHECKFRONT__API_SECRET": "cf-secret",
    }
    code, output = run("config", "check", env=complete)
    assert code == ExitCode.OK, output
    assert "s3cr3t-pw" not in output
    assert "regsync:***@db.example" in output


def test_a_warehouse_password_written_in_the_toml_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path / "r.toml", '[warehouse]\nurl = "postgresql+psycopg://u:s3cr3t-pw@db/regsync"\n')
    with pytest.raises(ConfigError, match="REGSYNC_WAREHOUSE__URL") as caught:
        load_settings(config, environ={})
    assert "s3cr3t-pw" not in str(caught.value)
    code, output = run("--config", str(config), "config", "check")
    assert code == ExitCode.CONFIG
    assert "s3cr3t-pw" not in output


def test_a_relative_sqlite_path_is_beside_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "other" / "dir" / "x.toml", '[warehouse]\nurl = "sqlite:///x.db"\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, output = run("--config", "../other/dir/x.toml", "status")
    assert code == ExitCode.OK, output
    assert (config.parent / "x.db").exists()
    assert not (elsewhere / "x.db").exists()
    settings = load_settings(Path("../other/dir/x.toml"), environ={})
    assert settings.warehouse.url == f"sqlite:///{config.parent.resolve() / 'x.db'}"


def test_bidi_controls_are_neutralised_like_formula_prefixes() -> None:
    spoofed = "CFPP-\u202eexe.txt"
    assert neutralise_bidi(spoofed) == "CFPP-[U+202E]exe.txt"
    for control in ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"):
        assert control not in neutralise(f"a{control}b")
    assert neutralise("\u2066=HYPERLINK()") == "[U+2066]=HYPERLINK()"  # shown, and no longer a formula
    assert neutralise("=1+1") == "'=1+1"
    import pandas as pd

    text = csv_text(pd.DataFrame([{"code": "X", "value": "\u202eabc"}]))
    assert "\u202e" not in text
    assert "[U+202E]abc" in text


def test_reconcile_excel_writes_a_utf8_bom(tmp_path: Path, reconcile_config: Path) -> None:
    out = tmp_path / "excel"
    code, output = run(
        "--config", str(reconcile_config), "reconcile", "--out", str(out), "--format", "csv", "--excel"
    )
    assert code == ExitCode.OK, output
    for name in ("mismatches.csv", "summary.csv", "diff.csv"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbfcode,") or data.startswith(b"\xef\xbb\xbfstatus,"), name
        assert data.count(b"\xef\xbb\xbf") == 1
    plain = tmp_path / "plain"
    run("--config", str(reconcile_config), "reconcile", "--out", str(plain), "--format", "csv")
    assert not (plain / "summary.csv").read_bytes().startswith(b"\xef\xbb\xbf")


# -- status and the lock ---------------------------------------------------------------------------


def test_status_without_a_terminal_is_not_folded_to_80_columns(
    tmp_path: Path, reconcile_config: Path
) -> None:
    engine = open_warehouse_locked(f"sqlite:///{reconcile_config.parent / 'warehouse.db'}")
    try:
        run_id = start_run(engine, "sync")
        calls = {f"service_number_{n}_calls": 1000 + n for n in range(8)}
        finish_run(engine, run_id, "ok", api_calls=calls)
    finally:
        engine.dispose()
    code, output = run("--config", str(reconcile_config), "status")
    assert code == ExitCode.OK, output
    line = ", ".join(f"{k}={v}" for k, v in calls.items())
    assert len(line) > 200
    assert line in output  # on one line, not folded into an 80-column cell


def test_interactive_sync_waits_for_the_lock_with_wait(tmp_path: Path) -> None:
    with Sandbox.generated(20, seed=2) as box:
        url = f"sqlite:///{tmp_path / 'w.db'}"
        config, _ = box.write_config(tmp_path / "r.toml", url, extra={"jobs": {"lock_poll_s": 0.1}})
        engine: Engine = open_warehouse_locked(url)
        held, release = threading.Event(), threading.Event()

        def holder() -> None:
            with hold(engine, job="main", lease_s=30, heartbeat_s=1):
                held.set()
                release.wait(30)

        thread = threading.Thread(target=holder)
        thread.start()
        try:
            assert held.wait(10)
            code, output = run("--config", str(config), "sync")
            assert code == ExitCode.LOCK_HELD, output
            threading.Timer(0.5, release.set).start()
            code, output = run("--config", str(config), "sync", "--wait")
            assert code == ExitCode.OK, output
        finally:
            release.set()
            thread.join(30)
            engine.dispose()


def test_cli_help_lists_wait_for_sync() -> None:
    code, output = run("sync", "--help")
    assert code == 0
    assert "--wait" in output
