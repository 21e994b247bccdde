"""How fast and how exactly the write-backs act on a generated dataset, in API calls per write.

A generated sandbox (in this process) fills the warehouse through regsync's own loaders
(bench/_fill.py), then `run_actions` plans and applies every submit and end over HTTPS against
it. Last line, one JSON object: registrations, candidates, applied, writes_per_s,
api_calls_per_write, precision, recall, seconds.

    python bench/actions.py [--registrations 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit
from _fill import fill_warehouse

from regsync.actions.apply import run_actions
from regsync.actions.journal import END, SUBMIT
from regsync.sandbox import Sandbox
from regsync.warehouse.engine import make_engine, migrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regsync-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'warehouse.db'}"
        with Sandbox.generated(
            args.registrations, args.seed, state_dir=Path(tmp) / "sandbox", keep_bodies=False
        ) as sandbox:
            truth = sandbox.truth
            as_of = datetime.fromtimestamp(truth.anchor, tz=UTC)
            # Generated data plants ~25 % pending drafts: open the breaker wide for the benchmark.
            settings = sandbox.settings(url, actions={"enabled": True, "max_share": 1.0, "max_writes": 10**9})
            engine = make_engine(url)
            migrate(engine)
            fill_warehouse(sandbox, engine, settings, as_of)
            sandbox.clear_requests()
            started = time.perf_counter()
            report = run_actions(settings, engine=engine, now=as_of)
            seconds = time.perf_counter() - started
            requests = sandbox.requests
    writes = [
        r
        for r in requests
        if r.endpoint in ("salesforce.apex.session_registration", "checkfront.booking_session.end")
    ]
    api_calls = [r for r in requests if not r.endpoint.startswith(("sandbox.", "salesforce.oauth"))]
    submitted = {c.target_id for c in report.plan.candidates.get(SUBMIT, [])}
    ended = {c.target_id for c in report.plan.candidates.get(END, [])}
    acted = {(SUBMIT, t) for t in submitted} | {(END, t) for t in ended}
    expected = {(SUBMIT, t) for t in truth.pending_registrations} | {
        (END, t) for t in truth.stale_booking_sessions
    }
    hits = len(acted & expected)
    applied = report.total("succeeded")
    print(f"{report.outcome}: {dict(report.counts)}")
    print(f"{len(writes)} write calls, {len(api_calls)} API calls in {seconds:.2f}s")
    emit(
        {
            "registrations": args.registrations,
            "candidates": len(acted),
            "expected": len(expected),
            "applied": applied,
            "writes_per_s": round(applied / seconds, 1) if seconds else 0.0,
            "api_calls_per_write": round(len(api_calls) / max(len(writes), 1), 3),
            "precision": round(hits / len(acted), 6) if acted else 1.0,
            "recall": round(hits / len(expected), 6) if expected else 1.0,
            "seconds": round(seconds, 2),
            "outcome": report.outcome,
        }
    )


if __name__ == "__main__":
    main()
