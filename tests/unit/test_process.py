"""The command line caps glibc's malloc arenas before any command starts a thread (issue 16: a
pull's threads each took an arena of their own, and the peak RSS with them)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import regsync.cli.commands as commands
from regsync.cli import app
from regsync.cli.process import limit_malloc_arenas

ON_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt(M_ARENA_MAX) is glibc's")
def test_the_arena_cap_is_set_on_glibc() -> None:
    code = "from regsync.cli.process import limit_malloc_arenas as f; raise SystemExit(0 if f() else 3)"
    env = {"PATH": "/usr/bin:/bin"}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_an_operators_own_malloc_arena_max_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


def test_every_command_caps_the_arenas_first(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(commands, "limit_malloc_arenas", lambda: calls.append(1) or True)
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    assert calls == [1]
