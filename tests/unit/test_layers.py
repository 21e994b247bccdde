"""The layering contract of regsync's imports (docs: README "Layout").

Settings at the bottom, then the stages in data-flow order, then jobs, then the command line:
a module imports only from its own unit (top-level module or package) or from a unit of a lower
rank, never from a sibling of the same rank, never upwards. Imports under TYPE_CHECKING are
exempt (they do not run); imports inside functions are not (they run, just later). The test reads
the source with `ast`, so it needs no third-party tool and sees every import `python` would run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "regsync"

# Higher ranks may import lower ranks. Units of the same rank are independent of each other.
RANKS: dict[str, int] = {
    "regsync": 0,  # the package itself: __version__ only
    "regsync.errors": 0,
    "regsync.exitcodes": 0,
    "regsync.logs": 0,
    "regsync.definitions": 0,  # the domain's words: statuses, default thresholds, part names
    "regsync.settings": 1,  # every section's model: imports nothing of regsync's above errors
    "regsync.config": 2,  # the loader and the root Settings
    "regsync.clients": 3,  # HTTP: Salesforce, Checkfront, the retry policy
    "regsync.sandbox": 3,  # beside the clients: the emulators know config and errors only
    "regsync.extract": 4,  # reading the sources: SOQL, the pull's context, progress
    "regsync.normalize": 4,  # raw payload -> typed rows
    "regsync.warehouse": 4,  # tables, migrations, upserts, state, the run lock, status, freshness
    "regsync.streams": 5,  # each stream: extract -> normalize -> warehouse, its state
    "regsync.actions": 6,  # write-backs
    "regsync.reconcile": 6,  # mismatch rules and reports
    "regsync.jobs": 7,  # the pull, what runs when under the lock, the metrics file
    "regsync.preflight": 8,
    "regsync.starter": 8,
    "regsync.demo": 9,
    "regsync.cli": 10,  # thin: parse, call one function, map the outcome to an exit code (or JSON)
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def unit_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported regsync module, line, at module level) for every import that runs."""
    is_package = path.name == "__init__.py"

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
        return submodules or [base]

    def walk(body: list[ast.stmt], top: bool) -> Iterator[tuple[str, int, bool]]:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in targets(node):
                    if target.split(".")[0] == "regsync":
                        yield target, node.lineno, top
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    yield from walk(node.body, top)
                yield from walk(node.orelse, top)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from walk(node.body, False)
            elif isinstance(node, ast.ClassDef | ast.With | ast.For | ast.While):
                yield from walk(node.body, top)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    yield from walk(block, top)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")).body, True)


def test_every_unit_has_a_rank() -> None:
    assert sorted({unit_of(m) for m in MODULES} - set(RANKS)) == []


def test_imports_point_down() -> None:
    wrong = []
    for module, path in sorted(MODULES.items()):
        source = unit_of(module)
        for target, line, _top in imports_of(module, path):
            dest = unit_of(target)
            if dest == source:
                continue
            if RANKS[dest] >= RANKS[source]:
                wrong.append(f"{path.relative_to(SRC)}:{line} {module} -> {target}")
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph[module] = {t for t, _line, top in imports_of(module, path) if top and t != module}
    assert _cycles(graph) == []


def test_no_workarounds_for_cycles() -> None:
    """No lazy module __getattr__, no reaching into another module's globals, no late imports."""
    found = []
    for module, path in sorted(MODULES.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                found.append(f"{module}: module __getattr__")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "__globals__":
                found.append(f"{module}:{node.lineno} __globals__")
        seen_code = False
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                if seen_code:
                    found.append(f"{module}:{node.lineno} import below code")
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the docstring
            elif isinstance(node, ast.If | ast.Try):
                continue  # TYPE_CHECKING blocks, optional imports
            else:
                seen_code = True
    assert found == []


def _runs_on_import(module: str) -> set[str]:
    """Every regsync module importing `module` runs: its imports (in functions too), theirs, and
    the packages each sits in (importing a.b.c runs a/__init__ and a/b/__init__ first)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for found in (".".join(parts[:end]) for end in range(1, len(parts) + 1)):
            if found in MODULES and found not in seen:
                seen.add(found)
                todo.extend(target for target, _line, _top in imports_of(found, MODULES[found]))
    return seen


GENERATOR_TRUTH = "regsync.sandbox.generator.truth"


def test_the_generator_truth_is_an_independent_reading_of_the_rules() -> None:
    """compute_truth is the reference the SQL rules (reconcile) and the planner (actions) are tested
    against: it reads docs/rules.md's words over the raw store, so it must run none of their code,
    nor the warehouse's, and take nothing from the building and planting it is meant to check."""
    assert GENERATOR_TRUTH in MODULES
    reached = _runs_on_import(GENERATOR_TRUTH)
    forbidden = {"regsync.reconcile", "regsync.actions", "regsync.warehouse"}
    assert sorted(m for m in reached if unit_of(m) in forbidden) == []
    # Importing the generator package itself would hand it all of them (its __init__ does).
    direct = {target for target, _line, _top in imports_of(GENERATOR_TRUTH, MODULES[GENERATOR_TRUTH])}
    package = GENERATOR_TRUTH.rsplit(".", 1)[0]
    generation = {package, *(f"{package}.{name}" for name in ("build", "catalogue", "plant", "populate"))}
    assert sorted(direct & generation) == []


RELIABILITY_JUDGE = Path(__file__).resolve().parents[1] / "support" / "remote_truth.py"


def test_the_reliability_judge_shares_nothing_with_the_emulator() -> None:
    """tests/support/remote_truth.py judges the warehouse against the sandbox's raw store: it may
    read the store (regsync.sandbox.store: the records and their shape constants) but must not
    call the emulator's readers (`_line_qty`, `_counts`, `_money`...), or a bug there would cancel out."""
    tree = ast.parse(RELIABILITY_JUDGE.read_text(encoding="utf-8"))
    sandbox_imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("regsync.sandbox"):
            sandbox_imports += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            sandbox_imports += [(a.name, "*") for a in node.names if a.name.startswith("regsync.sandbox")]
    assert sandbox_imports, "the judge reads the sandbox's store"
    assert [(m, n) for m, n in sandbox_imports if m != "regsync.sandbox.store" or n.startswith("_")] == []


# What `import regsync.normalize.salesforce` may load: the settings section it reads, the JSON
# helper, the domain's words, the error tree (12 modules). Before the settings moved to the bottom it loaded 20 (config
# pulled in the reconcile rules, the warehouse tables, metrics and freshness).
NORMALIZE_NEEDS = {
    "regsync",
    "regsync.clients",
    "regsync.clients.lenient_json",
    "regsync.definitions",
    "regsync.errors",
    "regsync.normalize",
    "regsync.normalize.coerce",
    "regsync.normalize.salesforce",
    "regsync.settings",
    "regsync.settings.common",
    "regsync.settings.salesforce",
    "regsync.settings.types",
}


@pytest.mark.parametrize(
    ("module", "allowed"),
    [("regsync.normalize.salesforce", NORMALIZE_NEEDS), ("regsync.settings.reconcile", None)],
)
def test_a_stage_loads_only_what_it_needs(module: str, allowed: set[str] | None) -> None:
    code = (
        f"import sys, {module}; print('\\n'.join(sorted(m for m in sys.modules if m.startswith('regsync'))))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    if allowed is None:  # a settings module: nothing of regsync's but the settings and the words
        assert {unit_of(m) for m in loaded} <= {"regsync", "regsync.settings", "regsync.definitions"}
    else:
        assert loaded == allowed


def test_the_reason_codes_are_spelled_once_at_the_bottom() -> None:
    """The settings check severity overrides against definitions.REASON_CODES; the rules declare them."""
    from regsync import definitions
    from regsync.reconcile.rules import CODES, RULES
    from regsync.settings.reconcile import ReconcileSettings

    assert CODES is definitions.REASON_CODES
    assert tuple(rule.code for rule in RULES) == definitions.REASON_CODES
    every = dict.fromkeys(definitions.REASON_CODES, "low")
    assert ReconcileSettings.model_validate({"severity": every}).severity == every
