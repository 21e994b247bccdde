"""`make demo` as a new user runs it: a relative work directory, from any working directory."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from regsync.demo import run_demo
from regsync.exitcodes import ExitCode


def test_the_demo_runs_from_a_relative_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox-written config names its CA and warehouse so they resolve from the config's folder
    (relative paths in a config are read against its folder, not the working directory)."""
    monkeypatch.chdir(tmp_path)
    shown = io.StringIO()
    code = run_demo(registrations=200, seed=3, workdir=Path(".demo"), console=Console(file=shown, width=200))
    text = shown.getvalue()
    assert code == ExitCode.OK, text
    assert "config error" not in text
    reports = tmp_path / ".demo" / "reports"
    assert (reports / "report.html").stat().st_size > 0
    assert (reports / "summary.csv").read_text(encoding="utf-8").startswith("code,")
    assert not (tmp_path / ".demo" / ".demo").exists()
    assert os.getcwd() == str(tmp_path)
