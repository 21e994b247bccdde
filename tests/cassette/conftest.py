"""Cassette tests: the pull replayed offline from recorded HTTP; re-recorded from the sandbox on demand.

Replay (the default, CI): `.venv/bin/pytest tests/cassette` — no sandbox, no network.
Record: `.venv/bin/pytest tests/cassette --record-mode=rewrite` — each scenario starts a sandbox,
records its cassette (on the SQLite run) and saves `cassettes/<scenario>.expected.json` and its
golden snapshots, `cassettes/snapshots/<scenario>.json` (written, never compared, while recording);
the PostgreSQL run of the same scenario then replays the fresh cassette and compares them. See
docs/cassettes.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine

from regsync.config import Settings
from regsync.sandbox import DEMO, Sandbox
from regsync.sandbox.generator import DEFAULT_ANCHOR
from regsync.sandbox.store import SandboxStore
from tests.support import cassettes
from tests.support.cassettes import Scrubber
from tests.support.vcr_threads import keep_httpx_patched_during_force_reset

T = TypeVar("T")

CASSETTE_DIR = Path(__file__).resolve().parents[2] / "cassettes"
REGISTRATIONS = 200  # a couple of hundred: the largest cassette stays under 1 MB
SEED = 11
RECORD_MODE = "rewrite"  # the only mode that records here (see `recording`)
RECORD_ONLY_CHECKFRONT = {"concurrency": 1}  # see Scenario.settings
CALL_PASSED = pytest.StashKey[bool]()


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    cassettes.register(vcr)
    keep_httpx_patched_during_force_reset()  # threads read Checkfront while requests connects


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test itself passed (a failed recording must not save its cassette)."""
    report = yield
    if report.when == "call":
        item.stash[CALL_PASSED] = report.passed
    return report


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The generated sandbox dataset a scenario is recorded from."""

    registrations: int = REGISTRATIONS
    seed: int = SEED


@pytest.fixture
def cassette_dataset() -> Dataset:
    """The dataset of the module's scenarios (a module may override this fixture)."""
    return Dataset()


@pytest.fixture
def match_bodies() -> bool:
    """Whether replay also matches request bodies (a module that records write-backs overrides it)."""
    return False


def demo_secrets() -> list[str]:
    """Every demo credential, and the Basic auth value the Checkfront key pair travels as."""
    values = [str(v) for v in dataclasses.asdict(DEMO).values()]
    return [*values, cassettes.basic_auth_value(DEMO.cf_api_key, DEMO.cf_api_secret)]


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTE_DIR)


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    """One cassette per scenario, shared by its SQLite and PostgreSQL runs."""
    return request.node.originalname


@pytest.fixture
def recording(request: pytest.FixtureRequest, record_mode: str) -> bool:
    """True when this test records: --record-mode=rewrite, and the SQLite run of a scenario.

    The PostgreSQL run replays the cassette its SQLite run has just recorded (params run in
    order), so a scenario is recorded once and both backends are checked against it.
    """
    if record_mode == "none":
        return False
    if record_mode != RECORD_MODE:
        pytest.fail(
            f"tests/cassette records only with --record-mode={RECORD_MODE} (got {record_mode}); "
            "replay needs no option"
        )
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("warehouse_url") if callspec is not None else None
    return backend in (None, "sqlite")


@pytest.fixture
def scrubber() -> Scrubber:
    return Scrubber(secrets=demo_secrets())


@pytest.fixture
def vcr_config(recording: bool, scrubber: Scrubber, match_bodies: bool) -> dict[str, Any]:
    config = cassettes.vcr_config(scrubber, match_bodies=match_bodies)
    if not recording:
        config["record_mode"] = "none"  # wins over --record-mode (pytest-recording merges it last)
    return config


def _roundtrip(value: Any) -> Any:
    """What `value` looks like after a trip through the expected file (tuples -> lists ...)."""
    return json.loads(json.dumps(value))


@dataclasses.dataclass
class Scenario:
    """One recorded scenario: a live sandbox while recording, its saved expectations on replay."""

    name: str
    recording: bool
    engine: Engine
    warehouse_url: str
    expected_file: Path
    expected: dict[str, Any]
    snapshot_file: Path
    snapshots: dict[str, Any]
    sandbox: Sandbox | None = None
    dataset: Dataset = Dataset()
    checked: set[str] = dataclasses.field(default_factory=set)  # replay: the snapshots compared

    @property
    def live(self) -> Sandbox:
        """The sandbox (recording only: scenario set-up that changes remote state)."""
        assert self.sandbox is not None, "the sandbox runs only while recording"
        return self.sandbox

    def settings(self, **overrides: dict[str, Any]) -> Settings:
        """The pull's settings: at the sandbox while recording, at the fake host on replay.

        Recording reads Checkfront one request at a time, so a re-recording writes its cassette in
        the same order (small diffs); replay keeps the default concurrency, so the threads ask for
        their recordings in any order and matching by content is what is exercised.
        """
        if self.sandbox is not None:
            sections = {
                **overrides,
                "checkfront": {**overrides.get("checkfront", {}), **RECORD_ONLY_CHECKFRONT},
            }
            return self.sandbox.settings(self.warehouse_url, **sections)
        return cassettes.replay_settings(self.warehouse_url, **overrides)

    def now(self, key: str, *, plus_s: int = 0) -> datetime:
        """A run's frozen clock: the sandbox's time (whole seconds) when recorded, saved for replay."""
        if self.recording:
            moment = math.floor(self.live.store.clock.now()) + plus_s
            self.expected.setdefault("now", {})[key] = datetime.fromtimestamp(moment, UTC).isoformat()
        return datetime.fromisoformat(self.expected["now"][key])

    def fact(self, key: str, compute: Callable[[Sandbox], T]) -> Any:
        """What the sandbox held (computed when recording, read back on replay)."""
        if self.recording:
            self.expected.setdefault("facts", {})[key] = _roundtrip(compute(self.live))
        return self.expected["facts"][key]

    def check_snapshot(self, key: str, observed: Any) -> None:
        """Recording: write `observed` as the golden value. Replay: it must equal the recorded one.

        Nothing is compared while recording (there is nothing independent to compare with): the
        values land in `cassettes/snapshots/<scenario>.json`, which a review reads in the diff.
        """
        value = _roundtrip(observed)
        if self.recording:
            assert key not in self.snapshots, f"snapshot {key!r} recorded twice"
            self.snapshots[key] = value
            return
        assert key in self.snapshots, (
            f"snapshot {key!r} is not in {self.snapshot_file.name}: re-record (docs/cassettes.md)"
        )
        self.checked.add(key)
        assert value == self.snapshots[key], f"snapshot {key!r} differs from {self.snapshot_file.name}"

    def finish(self, cassette: Any) -> None:
        """Recording: save expectations and snapshots. Replay: every interaction and snapshot was used."""
        if self.recording:
            self.expected["recorded"] = dataclasses.asdict(self.dataset)
            cassettes.save_expected(self.expected_file, self.expected)
            cassettes.save_snapshots(self.snapshot_file, self.snapshots)
        else:
            cassettes.assert_fully_played(cassette)
            unchecked = sorted(set(self.snapshots) - self.checked)
            assert not unchecked, f"{self.snapshot_file.name}: snapshots never compared: {unchecked}"


def _refuse_sandbox(self: Sandbox) -> Sandbox:
    raise AssertionError("replay must not start the sandbox")


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest,
    recording: bool,
    scrubber: Scrubber,
    warehouse: Engine,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    cassette_dataset: Dataset,
    vcr: Any,
) -> Iterator[Scenario]:
    name = request.node.originalname
    path = cassettes.expected_path(CASSETTE_DIR, name)
    snapshot_file = cassettes.snapshot_path(CASSETTE_DIR, name)
    if not recording:
        if not path.exists():
            pytest.fail(
                f"{path.name} is missing: record with `.venv/bin/pytest tests/cassette --record-mode=rewrite`"
            )
        monkeypatch.setattr(Sandbox, "start", _refuse_sandbox)
        expected = cassettes.load_expected(path)
        if expected.get("recorded") != dataclasses.asdict(cassette_dataset):
            pytest.fail(f"{path.name} was recorded from another dataset: re-record (docs/cassettes.md)")
        if "snapshots" in expected:
            pytest.fail(f"{path.name} holds snapshots: they belong in {snapshot_file} (re-record)")
        snapshots = cassettes.load_snapshots(snapshot_file)
        yield Scenario(
            name,
            False,
            warehouse,
            warehouse_url,
            path,
            expected,
            snapshot_file,
            snapshots,
            None,
            cassette_dataset,
        )
        return
    path.unlink(missing_ok=True)  # never a cassette beside another recording's expectations
    snapshot_file.unlink(missing_ok=True)
    store = SandboxStore()
    store.clock.offset = DEFAULT_ANCHOR - time.time()  # the data's "now" is fixed: stable cassettes
    generated = Sandbox.generated(cassette_dataset.registrations, seed=cassette_dataset.seed, store=store)
    sandbox = generated.start()
    scrubber.add_origin(sandbox.base_url)
    try:
        yield Scenario(
            name, True, warehouse, warehouse_url, path, {}, snapshot_file, {}, sandbox, cassette_dataset
        )
    finally:
        sandbox.stop()
        if vcr is not None and not request.node.stash.get(CALL_PASSED, False):
            # pytest does not hand a test's exception to the cassette's context manager, so
            # record_on_exception alone would still save a failed recording: make it save nothing.
            vcr.dirty = False
