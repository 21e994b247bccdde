from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest

from regsync.config import (
    SHARED_RULES,
    RuleSettings,
    Settings,
    load_settings,
    masked,
    secret_values,
    write_private_file,
)
from regsync.errors import ConfigError
from regsync.reconcile.rules import ReconcileSettings
from regsync.settings.actions import ActionSettings
from regsync.settings.common import why_unreadable


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "regsync.toml"
    path.write_text(text)
    return path


def test_defaults_are_blackthorn_names() -> None:
    settings = load_settings(environ={})
    assert settings.salesforce.objects.registration == "conference360__Event_Registration_Submission__c"
    assert settings.salesforce.registration_fields.status == "conference360__Status__c"
    assert settings.warehouse.url == "sqlite:///regsync.db"


def test_toml_values_and_env_override(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[sync]\nlookback_s = 120\n[checkfront]\nbase_url = "https://acme.checkfront.com"\n'
    )
    settings = load_settings(path, environ={"REGSYNC_SYNC__LOOKBACK_S": "30"})
    assert settings.sync.lookback_s == 30
    assert settings.checkfront.base_url == "https://acme.checkfront.com"


@pytest.mark.parametrize(
    ("section", "key"),
    [("salesforce", "password"), ("salesforce", "consumer_secret"), ("checkfront", "api_secret")],
)
def test_secret_in_toml_is_refused(tmp_path: Path, section: str, key: str) -> None:
    path = write(tmp_path, f'[{section}]\n{key} = "hunter2"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert f"{section}.{key} is a secret" in message
    assert f"REGSYNC_{section.upper()}__{key.upper()}" in message
    assert "hunter2" not in message


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[sync]\nlookback_s = "soon"\n[warehouse]\nurl = "mysql://x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "sync.lookback_s" in str(caught.value)
    assert "warehouse.url" in str(caught.value)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[sync]\nlookbak_s = 3\n")
    with pytest.raises(ConfigError, match=r"sync\.lookbak_s: unknown setting"):
        load_settings(path, environ={})


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[sync\n"), environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("config", "env_file", "message"),
    [
        ("nope.toml", None, "config file {tmp}/nope.toml does not exist"),
        ("folder", None, "config file {tmp}/folder is a directory, not a TOML file"),
        ("regsync.toml", "nope.env", "env file {tmp}/nope.env does not exist"),
        ("regsync.toml", "folder", "env file {tmp}/folder is a directory, not a KEY=VALUE file"),
    ],
)
def test_a_config_or_env_file_that_cannot_be_read_says_why(
    tmp_path: Path, config: str, env_file: str | None, message: str
) -> None:
    write(tmp_path, "")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / config, env_file=env_file and tmp_path / env_file, environ={})
    assert str(caught.value) == message.format(tmp=tmp_path)


def test_any_other_read_error_is_named_by_the_system() -> None:
    assert why_unreadable(PermissionError(13, "Permission denied")) == "cannot be read: Permission denied"
    assert why_unreadable(OSError("disk on fire"), "a TOML file") == "cannot be read: disk on fire"
    assert why_unreadable(IsADirectoryError(21, "Is a directory")) == "is a directory"


def test_http_urls_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[checkfront]\nbase_url = "http://acme.checkfront.com"\n')
    with pytest.raises(ConfigError, match="https"):
        load_settings(path, environ={})


def test_env_file_beside_config_is_loaded_and_masked(tmp_path: Path) -> None:
    path = write(tmp_path, "[salesforce]\nusername = 'u@example.com'\n")
    (tmp_path / "regsync.env").write_text("REGSYNC_SALESFORCE__PASSWORD=s3cret-value\n")
    settings = load_settings(path, environ={})
    assert settings.salesforce.password is not None
    assert settings.salesforce.password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in str(masked(settings))
    assert "s3cret-value" in secret_values(settings)


def test_real_environment_beats_env_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    (tmp_path / "regsync.env").write_text("REGSYNC_CHECKFRONT__API_KEY=from-file\n")
    settings = load_settings(path, environ={"REGSYNC_CHECKFRONT__API_KEY": "from-env"})
    assert settings.checkfront.api_key is not None
    assert settings.checkfront.api_key.get_secret_value() == "from-env"


def test_private_file_is_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "secret.env"
    write_private_file(target, "X=1\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _shared(settings: Settings) -> list[tuple[Any, ...]]:
    """Each shared threshold as [rules], [actions] and [reconcile] hold it."""
    sections = (settings.rules, settings.actions, settings.reconcile)
    return [tuple(getattr(section, key) for section in sections) for key in SHARED_RULES]


def test_the_three_sections_default_to_the_same_thresholds() -> None:
    defaults = (RuleSettings(), ActionSettings(), ReconcileSettings())
    for key in SHARED_RULES:
        assert len({getattr(section, key) for section in defaults}) == 1, key


def test_rules_set_once_reach_the_planner_and_the_reconciliation(tmp_path: Path) -> None:
    path = write(tmp_path, '[rules]\nin_flight_s = 60\nconfirmed_statuses = ["paid"]\n')
    settings = load_settings(path, environ={"REGSYNC_RULES__STALE_DRAFT_S": "3600"})
    assert _shared(settings) == [(60,) * 3, (("PAID",),) * 3, (21600,) * 3, (3600,) * 3]


def test_a_threshold_set_in_one_older_section_counts_for_both(tmp_path: Path) -> None:
    path = write(tmp_path, "[actions]\nstale_session_ttl_s = 7200\n[reconcile]\nstale_draft_s = 86400\n")
    settings = load_settings(path, environ={})
    assert settings.reconcile.stale_session_ttl_s == settings.actions.stale_session_ttl_s == 7200
    assert settings.actions.stale_draft_s == settings.rules.stale_draft_s == 86400


@pytest.mark.parametrize(
    ("toml", "environ", "named"),
    [
        ("[actions]\nin_flight_s = 600\n[reconcile]\nin_flight_s = 900\n", {}, "actions.in_flight_s = 600"),
        (
            '[rules]\nconfirmed_statuses = ["PAID"]\n',
            {"REGSYNC_ACTIONS__CONFIRMED_STATUSES": '["HOLD"]'},
            "HOLD",
        ),
        (
            "[rules]\nstale_draft_s = 10\n[reconcile]\nstale_draft_s = 20\n",
            {},
            "reconcile.stale_draft_s = 20",
        ),
    ],
)
def test_sections_that_disagree_on_a_threshold_are_refused(
    tmp_path: Path, toml: str, environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=r"set \w+ once, in \[rules\]") as caught:
        load_settings(write(tmp_path, toml), environ=environ)
    assert named in str(caught.value)


def test_the_same_value_in_two_sections_is_no_conflict(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[actions]\nconfirmed_statuses = ["paid"]\n[rules]\nconfirmed_statuses = ["PAID"]\n'
    )
    assert load_settings(path, environ={}).reconcile.confirmed_statuses == ("PAID",)


def test_a_private_file_is_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    target = tmp_path / "report.csv"
    write_private_file(target, "good,old\n")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("regsync.config.os.fsync", full)
    with pytest.raises(OSError, match="No space left on device") as caught:
        write_private_file(target, "new," * 10_000)
    assert caught.value.filename == str(target)  # the file is named, whatever call failed
    assert target.read_text() == "good,old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory, not a TOML file"),
        (lambda p: p.write_bytes(b"[jobs]\nx = '\xff\xfe'\n"), "not UTF-8 text"),
        (lambda p: p.write_text("[jobs\n"), "is not valid TOML"),
        (lambda p: p.write_text("[other]\n"), "has no [jobs] table"),
    ],
)
def test_an_unusable_jobs_file_is_named_with_the_reason(tmp_path: Path, make: Any, says: str) -> None:
    from regsync.settings.jobs import read_jobs_file

    path = tmp_path / "jobs.toml"
    make(path)
    with pytest.raises(ValueError, match=re.escape(says)):
        read_jobs_file(path)
