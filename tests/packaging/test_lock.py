"""The lock files pin every dependency pyproject.toml declares, within its range, one version each.

`make` installs requirements-dev.lock (with hashes) and then regsync itself without dependencies:
a dependency added to pyproject.toml but not locked would be missing from every fresh install
(`make lock` re-resolves both files).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def _pins(path: Path) -> dict[str, set[str]]:
    """{package: its pinned versions} (a universal lock may pin two, under exclusive markers)."""
    pins: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := _PIN.match(line):
            pins.setdefault(canonicalize_name(match[1]), set()).add(match[2])
    return pins


def _declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return found


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements.lock", ("postgres",)), ("requirements-dev.lock", ("postgres", "dev"))],
)
def test_every_declared_dependency_is_locked_within_its_range(lock: str, extras: tuple[str, ...]) -> None:
    pins = _pins(ROOT / lock)
    assert len(pins) > 20, lock
    for requirement in _declared(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {lock}: run `make lock`"
        for version in pins[name]:
            assert requirement.specifier.contains(Version(version), prereleases=True), (
                f"{lock} pins {name}=={version}, outside {requirement}: run `make lock`"
            )


def test_every_pin_carries_hashes() -> None:
    """pip installs the lock with --require-hashes: a pin without a hash would refuse the install."""
    for lock in ("requirements.lock", "requirements-dev.lock"):
        lines = (ROOT / lock).read_text(encoding="utf-8").splitlines()
        pinned = [i for i, line in enumerate(lines) if _PIN.match(line)]
        assert pinned, lock
        unhashed = [lines[i] for i in pinned if "--hash=sha256:" not in lines[i + 1]]
        assert unhashed == [], lock


def test_the_dev_lock_installs_the_applications_versions() -> None:
    application, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    assert {name: dev.get(name) for name in application} == application
