"""The command line: `regsync` is `app` (commands.py, plus `run` and `schedule` from jobs.py)."""

from __future__ import annotations

from regsync.cli.commands import app

__all__ = ["app"]
