"""`config init` writes the documented example and the job examples from the installed package;
`config check` refuses an empty, secret-less or placeholder config instead of calling it valid."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regsync.cli import app
from regsync.config import load_settings
from regsync.exitcodes import ExitCode
from regsync.starter import JOB_FILES, incomplete, init_config, starter_text

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_the_shipped_files_are_the_documented_ones() -> None:
    """The package's starter files are the repository's (one copy to edit, linked into the package)."""
    assert starter_text("regsync.example.toml") == (REPO / "config" / "regsync.example.toml").read_text()
    for name in JOB_FILES:
        assert starter_text(name) == (REPO / "jobs" / name).read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    for pattern in ("starter/*.toml", "starter/*.example", "starter/*.service", "starter/*.timer"):
        assert pattern in pyproject  # shipped in the wheel as package data


def test_config_init_writes_the_example_and_the_jobs(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "regsync.toml"
    result = runner.invoke(app, ["config", "init", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == (REPO / "config" / "regsync.example.toml").read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    jobs = tmp_path / "etc" / "jobs"
    assert sorted(p.name for p in jobs.iterdir()) == sorted([*JOB_FILES, "schedule.toml"])
    assert (jobs / "schedule.toml").read_text() == (REPO / "jobs" / "schedule.toml").read_text()
    assert "config check --online" in result.stdout
    load_settings(target, environ={})  # the example is a valid config as written


def test_config_init_never_overwrites_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "regsync.toml"
    target.write_text("# mine\n")
    result = runner.invoke(app, ["config", "init", str(target), "--no-jobs"])
    assert result.exit_code == ExitCode.USAGE
    assert "will not overwrite" in result.output
    assert target.read_text() == "# mine\n"
    assert not (tmp_path / "jobs").exists()
    forced = runner.invoke(app, ["config", "init", str(target), "--no-jobs", "--force"])
    assert forced.exit_code == 0, forced.output
    assert target.read_text().startswith("# regsync example configuration")


def test_config_init_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "regsync.timer").write_text("mine")
    with pytest.raises(FileExistsError, match=r"regsync\.timer"):
        init_config(tmp_path / "regsync.toml")
    assert not (tmp_path / "regsync.toml").exists()


def test_the_example_as_written_is_not_called_valid(tmp_path: Path) -> None:
    target = tmp_path / "regsync.toml"
    init_config(target, jobs=False)
    result = runner.invoke(app, ["--config", str(target), "config", "check"], env={})
    assert result.exit_code == ExitCode.CONFIG
    said = " ".join(result.output.split())
    assert "configuration is not usable" in said
    assert "needs the secret salesforce.password: set REGSYNC_SALESFORCE__PASSWORD" in said
    assert "needs the secret checkfront.api_key: set REGSYNC_CHECKFRONT__API_KEY" in said
    assert "checkfront.base_url is still the example's placeholder" in said
    assert "configuration is valid" not in said


def test_an_empty_config_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("\n")
    result = runner.invoke(app, ["--config", str(empty), "config", "check"], env={})
    assert result.exit_code == ExitCode.CONFIG
    assert "is empty" in result.output
    none = runner.invoke(app, ["config", "check"], env={"REGSYNC_CONFIG": ""})
    assert none.exit_code == ExitCode.CONFIG
    assert "no config file" in none.output


def test_a_complete_config_has_no_problems(tmp_path: Path) -> None:
    target = tmp_path / "regsync.toml"
    target.write_text(
        '[salesforce]\nusername = "i@acme.org"\nconsumer_key = "k"\n'
        '[checkfront]\nbase_url = "https://acme.checkfront.com"\n'
    )
    env = {
        "REGSYNC_SALESFORCE__PASSWORD": "p",
        "REGSYNC_SALESFORCE__CONSUMER_SECRET": "s",
        "REGSYNC_CHECKFRONT__API_KEY": "a",
        "REGSYNC_CHECKFRONT__API_SECRET": "b",
    }
    assert incomplete(load_settings(target, environ=env), target) == []
    bearer = load_settings(target, environ={**env, "REGSYNC_CHECKFRONT__AUTH": "bearer"})
    assert incomplete(bearer, target) == [
        "checkfront.auth = 'bearer' needs the secret checkfront.token: set REGSYNC_CHECKFRONT__TOKEN "
        "in the environment or the env file"
    ]
    result = runner.invoke(app, ["--config", str(target), "config", "check"], env=env)
    assert result.exit_code == 0, result.output
    assert "configuration is valid" in result.output
