"""The hostile-input strategies themselves never crash, however deep the structures they wrap.

`make test` once failed on a clean clone with a RecursionError raised by the strategy, not by
regsync: a Checkfront envelope wrapped around a ~1,000-level booking session was deep-copied before
mutation. Hypothesis saved the example in `.hypothesis/` and replayed it on every later run.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hostile.clients import _envelope, checkfront_answers
from tests.support.hostile.values import MAX_MUTATION_DEPTH, _copy_tree, _mutate, _nest, _paths, mutated

DEEPEST = 1020  # hostile.values.deep_structures' largest depth (orjson parses up to 1024 levels)


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, dict | list) and value:
        value = value["a"] if isinstance(value, dict) else value[0]
        depth += 1
    return depth


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_a_template_wrapping_the_deepest_structure_is_copied_and_mutated(kind: str) -> None:
    template = _envelope("booking", "session", {"booking": {"session": _nest(DEEPEST, kind)}})
    # Well past what Python's default recursion limit allows a recursive copy (2 frames per level).
    assert sys.getrecursionlimit() < 2 * DEEPEST
    paths = _paths(template)
    assert max(len(path) for path in paths) == MAX_MUTATION_DEPTH
    assert ("booking", "session") in paths
    record = _mutate(template, [(("version",), "set", None), (("booking", "session"), "add", 1)])
    assert record["version"] is None
    assert template["version"] == "3.0"
    assert record["booking"]["session_extra"] == 1
    assert "session_extra" not in template["booking"]
    assert _depth(record["booking"]["session"]) == DEEPEST
    assert record["booking"]["session"] is not template["booking"]["session"]  # a copy, not shared


def test_copy_tree_copies_every_container_and_keeps_leaves() -> None:
    source = {"a": [1, {"b": [2, 3]}, "x"], "c": {"d": None}, "e": 1.5}
    copied = _copy_tree(source)
    assert copied == source
    assert copied is not source
    assert copied["a"] is not source["a"]
    assert copied["a"][1] is not source["a"][1]
    assert copied["a"][1]["b"] is not source["a"][1]["b"]
    copied["a"][1]["b"].append(4)
    assert source["a"][1]["b"] == [2, 3]
    assert _depth(_copy_tree(_nest(5000, "list"))) == 5000


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(depth=st.integers(min_value=900, max_value=DEEPEST), data=st.data())
def test_mutating_an_envelope_around_a_deep_session_draws_without_error(
    depth: int, data: st.DataObject
) -> None:
    template = _envelope("booking", "session", {"booking": {"session": _nest(depth, "dict")}})
    record = data.draw(mutated(template))
    assert isinstance(record, dict)


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(answer=checkfront_answers())
def test_checkfront_answers_draw_without_error(answer: Any) -> None:
    assert isinstance(answer.body, bytes)
