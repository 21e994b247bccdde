"""The layering contract (import-linter, `[tool.importlinter]` in pyproject.toml), one test per contract.

Imports point one way (issue #17): the `imports-down` contract holds the graph as it is (settings at
the bottom, CLI on top, the sandbox beside the stages) and is enforced; so is the data flow read
literally as layers (`layers`: clients -> extract -> normalize -> warehouse -> streams -> actions /
reconcile -> jobs -> cli, each stage importing only the ones before it).
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(contract: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "pyproject.toml", "--contract", contract, "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_an_upward_import_breaks_the_layers_contract() -> None:
    """The contract can fail: it names the upward imports it finds (and today finds some)."""
    done = _lint("layers")
    assert "regsync's packages import down the data flow" in done.stdout
    assert done.returncode == 0 or "is not allowed to import" in done.stdout, done.stdout[-4000:]


def test_packages_import_down() -> None:
    done = _lint("imports-down")
    assert done.returncode == 0, done.stdout[-6000:]
    assert "1 kept, 0 broken" in done.stdout


def test_packages_import_down_the_data_flow() -> None:
    done = _lint("layers")
    assert done.returncode == 0, done.stdout[-6000:]


def test_the_sandbox_depends_only_on_the_settings_and_the_error_tree() -> None:
    done = _lint("sandbox-beside")
    assert done.returncode == 0, done.stdout[-6000:]


def _cycles() -> list[list[str]]:
    """Import cycles between regsync's top-level packages and modules (TYPE_CHECKING aside)."""
    graph = grimp.build_graph(
        "regsync", include_external_packages=False, exclude_type_checking_imports=True, cache_dir=None
    )
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            source, target = ".".join(module.split(".")[:2]), ".".join(imported.split(".")[:2])
            if source != target and "regsync" not in (source, target):
                edges[source].add(target)
    # A unit is on a cycle with every unit that reaches it and that it reaches.
    reach = {unit: _reachable(edges, unit) for unit in edges}
    cycles = {
        tuple(sorted({unit} | {other for other in reach[unit] if unit in reach.get(other, set())}))
        for unit in edges
        if unit in reach[unit]
    }
    return sorted(list(cycle) for cycle in cycles)


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        unit = todo.pop()
        if unit not in seen:
            seen.add(unit)
            todo.extend(edges.get(unit, ()))
    return seen


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _reachable(edges, "a") == {"a", "b", "c"}
    assert "d" not in _reachable(edges, "a")


def test_no_import_cycle_between_regsync_packages() -> None:
    assert _cycles() == []
