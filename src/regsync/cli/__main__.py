"""`python -m regsync.cli`: the same command line as the `regsync` script."""

from regsync.cli import app

if __name__ == "__main__":  # importing this module (a walk over the package) runs nothing
    app(prog_name="regsync")
