"""After a whole run with known secrets — and errors whose bodies echo the request — no secret is anywhere.

tests.support.leaks runs the main job through the command line (sync, submit-pending and
close-stale applied, reconcile with CSV and HTML, status, actions; text, JSON and rich logs),
provokes a refused password, a refused Checkfront key and servers echoing headers and form bodies
into their errors, records a cassette through the scrubber, then searches every artifact — logs,
reports, every warehouse table and the database files, exception messages, the cassette, config
files — for every secret as is, URL-encoded, base64, as the Basic value and the password+token pair,
and for every access token the org issued.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from regsync.logs import MASK, redact, secret_forms
from tests.support.leaks import (
    ARTIFACT_KINDS,
    LEAK_CREDENTIALS,
    LeakReport,
    encodings,
    find_secrets,
    run_leak_scan,
)

pytestmark = pytest.mark.sandbox
REGISTRATIONS = 150  # enough for every write-back and mismatch kind; run_leak_scan's default is 300
CONFIGURED = 5  # password, security token, consumer secret, Checkfront key and secret


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> LeakReport:
    return run_leak_scan(workdir=tmp_path_factory.mktemp("leaks"), registrations=REGISTRATIONS)


def test_no_secret_in_any_artifact(scan: LeakReport) -> None:
    assert scan.secrets_leaked == 0, "\n".join(scan.where)


def test_every_kind_of_artifact_was_scanned(scan: LeakReport) -> None:
    assert all(scan.by_kind[kind] > 0 for kind in ARTIFACT_KINDS), scan.by_kind
    assert scan.artifacts_scanned == sum(scan.by_kind.values())
    # the configured secrets, the two wrong ones tried, and at least one access token issued
    assert scan.secrets > CONFIGURED + 2
    assert scan.patterns > scan.secrets


def test_the_errors_that_carry_request_details_really_happened(scan: LeakReport) -> None:
    """A scan of runs that never failed would prove nothing about error paths."""
    assert scan.provoked
    assert all(scan.provoked.values()), [name for name, happened in scan.provoked.items() if not happened]


def test_the_secrets_live_only_in_owner_only_env_files(scan: LeakReport) -> None:
    assert scan.private_files
    assert set(scan.private_files.values()) == {"0o600"}


def test_the_scanner_finds_a_secret_in_every_encoding() -> None:
    secret = LEAK_CREDENTIALS.sf_password
    patterns = encodings("password", secret)
    assert len({p.needle for p in patterns}) >= 4  # its encodings differ: each one is looked for
    for pattern in patterns:
        found = find_secrets(b"before " + pattern.needle + b" after", patterns)
        assert pattern.label in found
    assert find_secrets(b"password=" + MASK.encode(), patterns) == []


def test_redact_masks_secrets_and_echoed_credentials() -> None:
    forms = secret_forms([LEAK_CREDENTIALS.sf_password, LEAK_CREDENTIALS.cf_api_secret])
    echoed = " ".join(p.needle.decode() for p in encodings("x", LEAK_CREDENTIALS.sf_password))
    echoed += " Authorization: Bearer 00D5g00000SANDBX!AQnEJ3XYqk-fDX0vSsZX-XGSODb64K87eqHuQP"
    echoed += " Authorization: Basic Y2ZrZXkrbGVhay9zY2FuNTU6Y2ZzZWMrbGVhay9zY2FuJjg4"
    cleaned = redact(echoed, forms)
    assert find_secrets(cleaned.encode(), encodings("x", LEAK_CREDENTIALS.sf_password)) == []
    assert "Basic Admission" in redact("Basic Admission, 2 seats", forms)  # words stay words


def test_a_planted_leak_is_reported(tmp_path: Path) -> None:
    """The scan reports where a secret sits without showing it."""
    patterns = encodings("checkfront api secret", LEAK_CREDENTIALS.cf_api_secret)
    (tmp_path / "notes.txt").write_text(f"debug: {LEAK_CREDENTIALS.cf_api_secret}")
    found = find_secrets((tmp_path / "notes.txt").read_bytes(), patterns)
    assert found == ["checkfront api secret (literal)"]
    assert LEAK_CREDENTIALS.cf_api_secret not in " ".join(found)
