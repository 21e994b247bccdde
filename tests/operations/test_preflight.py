"""`config check --online` against the sandbox: every check passes on a good config; a missing field,
a wrong type and a wrong API version are each named, exit 78; nothing is ever written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regsync.cli import app
from regsync.config import load_settings
from regsync.exitcodes import ExitCode
from regsync.preflight import run_preflight
from regsync.sandbox import Sandbox

pytestmark = pytest.mark.sandbox
runner = CliRunner()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.generated(60, seed=7) as box:
        yield box


def _config(sandbox: Sandbox, tmp_path: Path, **extra: dict[str, str]) -> Path:
    config, _env = sandbox.write_config(
        tmp_path / "regsync.toml", f"sqlite:///{tmp_path / 'w.db'}", extra=extra
    )
    return config


def test_a_good_config_passes_every_check(sandbox: Sandbox, tmp_path: Path) -> None:
    before = len(sandbox.writes())
    report = run_preflight(load_settings(_config(sandbox, tmp_path)))
    assert report.failures == []
    statuses = {check.name: check.status for check in report.checks}
    for name in (
        "login",
        "API version",
        "object registration",
        "object session_attendee",
        "salesforce.registration_fields.attendee_json",
        "salesforce.session_fields.attendee_status",
        "read registrations as the pull does",
        "Blackthorn Apex endpoint",
        "API quota",
        "ping",
        "read one booking as the pull does",
        "read one booking session as the pull does",
    ):
        assert name in statuses, name
    assert statuses["Blackthorn Apex endpoint"] == "ok"
    assert statuses["read one booking as the pull does"] == "ok"
    assert statuses["read one booking session as the pull does"] == "ok"
    attendee_json = report.find("salesforce.registration_fields.attendee_json")[0]
    assert "long text area (131072)" in attendee_json.detail
    quota = report.find("API quota")[0]
    assert "daily API requests left" in quota.detail
    assert len(sandbox.writes()) == before  # reads only: no Apex POST, no session end, no update

    result = runner.invoke(app, ["--config", str(_config(sandbox, tmp_path)), "config", "check", "--online"])
    assert result.exit_code == ExitCode.OK, result.output
    assert "preflight" in result.stdout
    assert "configuration is valid" in result.output


def test_a_missing_field_a_wrong_type_and_a_wrong_version_are_each_named(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = _config(
        sandbox,
        tmp_path,
        salesforce={"api_version": "30.0"},  # retired: Salesforce serves 31.0 and later
        **{
            "salesforce.registration_fields": {
                "booking_code": "Checkfront_Code_Typo__c",
                "amount": "conference360__Status__c",
            }
        },
    )
    before = len(sandbox.writes())
    result = runner.invoke(app, ["--config", str(config), "config", "check", "--online"])
    assert result.exit_code == ExitCode.CONFIG, result.output
    said = " ".join(result.output.split())
    assert "salesforce.api_version = '30.0' is not served by this org (it serves v31.0 to v65.0)" in said
    assert (
        "'Checkfront_Code_Typo__c' is not a field of conference360__Event_Registration_Submission__c" in said
    )
    assert (
        "conference360__Status__c is a picklist; regsync reads it as currency or double or int or long"
        in said
    )
    assert "configuration is valid" not in said
    # The describes still ran (with the latest served version), so all three are named in one go.
    report = run_preflight(load_settings(config))
    failed = {check.name for check in report.failures}
    assert {
        "API version",
        "salesforce.registration_fields.booking_code",
        "salesforce.registration_fields.amount",
    } <= failed
    assert report.find("read registrations as the pull does")[0].status == "skip"
    assert "salesforce.registration_fields.status" not in failed
    assert len(sandbox.writes()) == before


def test_a_missing_object_and_wrong_checkfront_credentials(sandbox: Sandbox, tmp_path: Path) -> None:
    config = _config(sandbox, tmp_path, **{"salesforce.objects": {"session_attendee": "Nope__c"}})
    env = config.with_suffix(".env")
    env.write_text(
        env.read_text().replace("REGSYNC_CHECKFRONT__API_SECRET=", "REGSYNC_CHECKFRONT__API_SECRET=x")
    )
    report = run_preflight(load_settings(config))
    failed = {check.name: check.detail for check in report.failures}
    assert (
        "salesforce.objects.session_attendee = 'Nope__c': no such object" in failed["object session_attendee"]
    )
    assert "ping" in failed
    assert {c.status for c in report.find("salesforce.session_fields.attendee_status")} == {"skip"}


def test_a_wrong_salesforce_password_skips_the_rest(sandbox: Sandbox, tmp_path: Path) -> None:
    config = _config(sandbox, tmp_path)
    env = config.with_suffix(".env")
    env.write_text(env.read_text().replace("REGSYNC_SALESFORCE__PASSWORD=", "REGSYNC_SALESFORCE__PASSWORD=x"))
    report = run_preflight(load_settings(config))
    assert [c.name for c in report.failures] == ["login"]
    assert "AuthenticationError" in report.failures[0].detail
    assert report.find("objects and fields")[0].status == "skip"
