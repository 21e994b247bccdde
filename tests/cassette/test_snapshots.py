"""Golden snapshots cannot approve themselves: a recording writes them, only a replay compares them.

A snapshot compared while recording is a value compared with itself. So `Scenario.check_snapshot`
only writes while recording (to `cassettes/snapshots/<scenario>.json`, reviewed in the diff), and a
replay fails on a changed value, on a value never recorded and on a recorded value never compared.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import cassettes

from .conftest import CASSETTE_DIR, Scenario


@dataclass
class _PlayedCassette:
    """A cassette whose every interaction was played (what assert_fully_played reads)."""

    data: list[Any] = field(default_factory=list)
    play_counts: Counter[int] = field(default_factory=Counter)


def _scenario(tmp_path: Path, *, recording: bool, snapshots: dict[str, Any] | None = None) -> Scenario:
    return Scenario(
        name="test_example",
        recording=recording,
        engine=None,  # type: ignore[arg-type]  (check_snapshot and finish never touch it)
        warehouse_url="sqlite://",
        expected_file=cassettes.expected_path(tmp_path, "test_example"),
        expected={},
        snapshot_file=cassettes.snapshot_path(tmp_path, "test_example"),
        snapshots=dict(snapshots or {}),
    )


def test_a_recording_writes_snapshots_to_their_own_file_and_compares_nothing(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, recording=True)
    scenario.check_snapshot("counts", {"registrations": 200})
    scenario.check_snapshot("sleeps", (1.0, 2.0))
    scenario.finish(_PlayedCassette())
    saved = json.loads((tmp_path / "snapshots" / "test_example.json").read_text(encoding="utf-8"))
    assert saved == {"counts": {"registrations": 200}, "sleeps": [1.0, 2.0]}
    assert "snapshots" not in json.loads(scenario.expected_file.read_text(encoding="utf-8"))


def test_a_recording_with_no_snapshot_leaves_no_file(tmp_path: Path) -> None:
    path = cassettes.snapshot_path(tmp_path, "test_example")
    path.parent.mkdir()
    path.write_text('{"stale": 1}\n', encoding="utf-8")
    _scenario(tmp_path, recording=True).finish(_PlayedCassette())
    assert not path.exists()


def test_a_replay_passes_on_the_recorded_value_and_fails_on_another(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, recording=False, snapshots={"counts": {"registrations": 200}})
    scenario.check_snapshot("counts", {"registrations": 200})
    scenario.finish(_PlayedCassette())
    other = _scenario(tmp_path, recording=False, snapshots={"counts": {"registrations": 200}})
    with pytest.raises(AssertionError, match="'counts' differs"):
        other.check_snapshot("counts", {"registrations": 199})


def test_a_replay_fails_on_a_snapshot_never_recorded(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, recording=False, snapshots={})
    with pytest.raises(AssertionError, match="'api_calls' is not in"):
        scenario.check_snapshot("api_calls", {"salesforce_calls": 2})


def test_a_replay_fails_when_a_recorded_snapshot_is_never_compared(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, recording=False, snapshots={"counts": {}, "sleeps": []})
    scenario.check_snapshot("counts", {})
    with pytest.raises(AssertionError, match=r"never compared: \['sleeps'\]"):
        scenario.finish(_PlayedCassette())


def test_the_committed_snapshots_live_in_their_own_files() -> None:
    expected_files = sorted(CASSETTE_DIR.glob("*.expected.json"))
    assert expected_files
    for path in expected_files:
        assert "snapshots" not in cassettes.load_expected(path), path.name
    snapshot_files = sorted((CASSETTE_DIR / cassettes.SNAPSHOT_DIR).glob("*.json"))
    assert len(snapshot_files) >= 7
    for path in snapshot_files:
        scenario = path.name.removesuffix(".json")
        assert (CASSETTE_DIR / f"{scenario}.yaml").is_file(), f"{path.name} belongs to no cassette"
        assert cassettes.load_snapshots(path), f"{path.name} is empty"
