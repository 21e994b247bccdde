"""`python -m regsync.cli`: the same command line as the `regsync` script."""

from regsync.cli import app

app(prog_name="regsync")
