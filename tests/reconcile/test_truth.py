"""On generated data, reconciliation finds exactly the generator's ground truth, and follows fixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from regsync.jobs.pull import run_pull
from regsync.reconcile.rules import CODES, evaluate
from regsync.reconcile.run import run_reconcile
from regsync.sandbox import Sandbox
from regsync.sandbox.generator import UNPLANTED_CODES
from regsync.sandbox.store import REGISTRATION

pytestmark = pytest.mark.sandbox


def found_keys(
    engine: Engine, sandbox: Sandbox, now: datetime
) -> set[tuple[str, str | None, str | None, str | None]]:
    settings = sandbox.settings().reconcile
    with engine.connect() as connection:
        return {
            (m.code, m.registration_id, m.booking_session_id, m.booking_code)
            for m in evaluate(connection, settings, now)
        }


def truth_keys(sandbox: Sandbox) -> set[tuple[str, str | None, str | None, str | None]]:
    return {
        (m.code, m.registration_id, m.booking_session_id, m.booking_code) for m in sandbox.truth.mismatches
    }


def test_reconcile_finds_exactly_the_planted_mismatches(warehouse: Engine, tmp_path: Path) -> None:
    with Sandbox.generated(2000, seed=11) as sandbox:
        report = run_pull(sandbox.settings(), engine=warehouse, sleep=lambda _s: None)
        assert report.outcome == "ok", report.message
        now = datetime.fromtimestamp(sandbox.truth.anchor, tz=UTC)
        expected = truth_keys(sandbox)
        found = found_keys(warehouse, sandbox, now)
        assert {code for code, *_ in expected} == set(CODES) - set(UNPLANTED_CODES)  # planted cases
        assert found - expected == set(), "false positives"
        assert expected - found == set(), "missed mismatches"

        # fix one case at the source, pull again: it disappears and shows as resolved
        result = run_reconcile(
            warehouse,
            sandbox.settings().reconcile,
            out_dir=tmp_path,
            fmt="csv",
            now=now,
            instance_url=sandbox.base_url,
            registration_object=REGISTRATION,
        )
        assert result.total == len(expected)
        unpaid = next(m for m in sandbox.truth.mismatches if m.code == "COMPLETED_BOOKING_UNPAID")
        assert unpaid.registration_id is not None
        sandbox.store.update_sf(REGISTRATION, unpaid.registration_id, {"conference360__Status__c": "Draft"})
        sandbox.store.delete_sf(REGISTRATION, unpaid.registration_id)
        later = datetime.now(UTC) + timedelta(seconds=120)
        assert (
            run_pull(sandbox.settings(), engine=warehouse, now=lambda: later, sleep=lambda _s: None).outcome
            == "ok"
        )
        again = run_reconcile(
            warehouse,
            sandbox.settings().reconcile,
            out_dir=tmp_path,
            fmt="csv",
            now=now,
            instance_url=sandbox.base_url,
            registration_object=REGISTRATION,
        )
        assert again.resolved >= 1
        diff = (tmp_path / "diff.csv").read_text()
        assert unpaid.registration_id in diff
        assert "resolved" in diff


def test_reconcile_checks_a_user_supplied_dataset(warehouse: Engine, tmp_path: Path) -> None:
    """A case nobody generated: a user edits a dataset file by hand; reconcile finds what the rules say."""
    import orjson

    from regsync.sandbox.generator import GeneratorConfig, PlantRates, compute_truth, write_dataset

    path = tmp_path / "mine.json"
    write_dataset(GeneratorConfig(registrations=300, seed=4, rates=PlantRates.none()), path)
    lines = path.read_text().splitlines()
    # the user's own case: a completed registration whose amount they typed wrong
    for index, line in enumerate(lines):
        body = line.rstrip(",")
        if '"conference360__Status__c":"Completed"' in body and '"Checkfront_Booking_Code__c":"' in body:
            record = orjson.loads(body)
            record["conference360__Amount__c"] = round(record["conference360__Amount__c"] + 25.0, 2)
            lines[index] = orjson.dumps(record).decode() + ("," if line.endswith(",") else "")
            edited = record["Id"]
            break
    path.write_text("\n".join(lines) + "\n")

    with Sandbox.from_file(path) as sandbox:
        info = sandbox.dataset
        assert run_pull(sandbox.settings(), engine=warehouse, sleep=lambda _s: None).outcome == "ok"
        now = datetime.fromtimestamp(info.anchor + info.shift_s, tz=UTC)
        expected = {
            (m.code, m.registration_id, m.booking_session_id, m.booking_code)
            for m in compute_truth(sandbox.store, None, now.timestamp()).mismatches
        }
        found = found_keys(warehouse, sandbox, now)
    assert found == expected
    assert any(code == "AMOUNT_MISMATCH" and reg == edited for code, reg, *_ in found)
