from __future__ import annotations

import stat
from pathlib import Path

import pytest

from regsync.config import load_settings, masked, secret_values, write_private_file
from regsync.errors import ConfigError


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
