"""The wheel a user installs works without the dev extra: `regsync demo` runs from a fresh virtualenv.

Built with `pip wheel . --no-deps`, installed with the application's lock (requirements.lock: no
pytest, hypothesis, vcrpy or PyYAML) into a new virtualenv. Every shipped module is imported there,
and none may import a dev-only package, even inside a function. The test support (the reliability
harnesses and cassette helpers, which import hypothesis and vcrpy) lives in tests/support and is not
shipped.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Import names of the packages only the dev extra brings (pyproject's [project.optional-dependencies]).
DEV_ONLY = frozenset({"pytest", "_pytest", "pytest_recording", "hypothesis", "vcr", "yaml", "ruff"})

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: Path | None = None, timeout: int = 600) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--quiet", "-w", out, cwd=ROOT)
    (built,) = out.glob("regsync-*.whl")
    return built


def _imported(source: str) -> Iterator[str]:
    """The top-level names of every import in a module, those inside functions included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def _dev_imports(wheel: Path) -> dict[str, set[str]]:
    """{module path in the wheel: the dev-only packages it imports}."""
    found: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                dev = set(_imported(archive.read(name).decode("utf-8"))) & DEV_ONLY
                if dev:
                    found[name] = dev
    return found


def test_the_wheel_ships_only_regsync_and_no_module_importing_a_dev_only_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert len(modules) > 50
    assert "regsync/warehouse/migrations/env.py" in modules
    assert [n for n in modules if not n.startswith("regsync/")] == []  # no tests, no test support
    assert _dev_imports(wheel) == {}


_IMPORT_ALL = """
import importlib, pkgutil, sys
import regsync
skip = ("regsync.warehouse.migrations",)  # env.py runs on import
names = [m.name for m in pkgutil.walk_packages(regsync.__path__, "regsync.") if not m.name.startswith(skip)]
for name in names:
    importlib.import_module(name)
dev = sorted(n for n in ("pytest", "hypothesis", "vcr", "yaml", "pytest_recording") if n in sys.modules)
assert not dev, dev
print(len(names))
"""


def test_the_wheel_runs_the_demo_in_a_fresh_virtualenv_without_the_dev_extra(
    wheel: Path, tmp_path: Path
) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--require-hashes", "-r", ROOT / "requirements.lock")
    _run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel)
    for dev_package in ("pytest", "hypothesis", "vcr", "yaml"):
        missing = subprocess.run(
            [str(python), "-c", f"import {dev_package}"], capture_output=True, check=False
        )
        assert missing.returncode != 0, f"{dev_package} is installed: the check would prove nothing"
    imported = int(_run(python, "-c", _IMPORT_ALL, cwd=tmp_path).strip())
    assert imported > 40
    output = _run(
        env / "bin" / "regsync",
        "demo",
        "--registrations",
        "300",
        "--workdir",
        tmp_path / "demo",
        cwd=tmp_path,
    )
    assert "mismatch" in output
    assert (tmp_path / "demo" / "reports" / "report.html").is_file()
