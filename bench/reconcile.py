"""How fast and how exactly `regsync reconcile` finds the mismatches planted in a generated dataset.

The warehouse is filled in-process from a generated sandbox (bench/_fill.py: regsync's own
normalizers and loaders, no sockets); then `regsync reconcile` runs in a child process, judged
as of the dataset's "now", so its time and peak RSS are its own. Its mismatches.csv is compared
with the generator's ground truth. Last line, one JSON object: registrations, db, mismatches,
expected, precision, recall, seconds, peak_rss_mb, fill_seconds.

    python bench/reconcile.py [--registrations 100000] [--db sqlite|postgresql] [--seed 1]
                              [--workdir DIR]

With --workdir the filled warehouse (a SQLite file in DIR, or on PostgreSQL a schema named after
the dataset, `bench_keep_<registrations>_<seed>`, left in place) and the ground truth are kept,
and a later run with the same DIR and arguments skips the fill: the reconcile can be timed again,
on a quiet machine or after a change to the rules, without twelve (SQLite) or twenty-five
(PostgreSQL) minutes of filling at 1M. Drop the schema by hand when done with it.
"""

from __future__ import annotations

import argparse
import csv
import pickle
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import REGSYNC, bench_warehouse_url, emit, run_measured
from _fill import fill_warehouse

from regsync.sandbox import Sandbox
from regsync.sandbox.generator import Truth
from regsync.warehouse.engine import bulk_write_cache, make_engine, migrate
from regsync.warehouse.maintenance import vacuum_after_load


def _fill(args: argparse.Namespace, tmp: Path, url: str, config: Path) -> tuple[Truth, float]:
    """Generate the dataset, write the warehouse config, fill the warehouse; the truth and time."""
    t0 = time.perf_counter()
    with Sandbox.generated(args.registrations, args.seed, state_dir=tmp / "sandbox") as sandbox:
        print(f"generated {args.registrations} registrations in {time.perf_counter() - t0:.1f}s", flush=True)
        truth = sandbox.truth
        as_of = datetime.fromtimestamp(truth.anchor, tz=UTC)
        sandbox.write_config(config, url)
        engine = make_engine(url)
        migrate(engine)
        t1 = time.perf_counter()
        with bulk_write_cache():  # as the pull has it
            fill_warehouse(sandbox, engine, sandbox.settings(url), as_of)
        fill_seconds = time.perf_counter() - t1
        engine.dispose()
    engine = make_engine(url)
    vacuum_after_load(engine)  # as a pull ends (PostgreSQL: VACUUM (ANALYZE) of the tables it filled)
    engine.dispose()
    print(f"warehouse filled in {fill_seconds:.1f}s", flush=True)
    return truth, fill_seconds


def _kept_truth(directory: Path, db: str) -> Path:
    return directory / f"truth-{db}.pickle"


def _kept_config(directory: Path, db: str) -> Path:
    return directory / f"bench-{db}.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) the filled warehouse and its truth")
    args = parser.parse_args()
    keep = None
    reuse = False
    if args.workdir is not None:
        keep = f"bench_keep_{args.registrations}_{args.seed}" if args.db == "postgresql" else None
        args.workdir.mkdir(parents=True, exist_ok=True)
        reuse = _kept_truth(args.workdir, args.db).exists() and _kept_config(args.workdir, args.db).exists()
    with (
        tempfile.TemporaryDirectory(prefix="regsync-bench-") as scratch,
        bench_warehouse_url(args.db, args.workdir or Path(scratch), keep=keep, fresh=not reuse) as url,
    ):
        tmp = args.workdir or Path(scratch)
        kept = _kept_truth(tmp, args.db)
        config = _kept_config(tmp, args.db)
        if reuse:
            truth, fill_seconds = pickle.loads(kept.read_bytes())
            print(f"reusing the warehouse filled earlier in {tmp}", flush=True)
        else:
            if args.db == "sqlite":
                (tmp / "warehouse.db").unlink(missing_ok=True)  # what an interrupted fill left
            truth, fill_seconds = _fill(args, tmp, url, config)
            kept.write_bytes(pickle.dumps((truth, fill_seconds)))
        as_of = datetime.fromtimestamp(truth.anchor, tz=UTC)
        out = tmp / "reports"
        command = [REGSYNC, "--config", str(config), "--log-format", "text", "reconcile"]
        command += ["--out", str(out), "--format", "both", "--as-of", as_of.isoformat()]
        seconds, _cpu, peak_rss, code = run_measured(command)
        if code != 0:
            raise SystemExit(f"reconcile failed with exit code {code}")
        with (out / "mismatches.csv").open(newline="", encoding="utf-8") as handle:
            found = {
                (
                    row["code"],
                    row["salesforce_id"] or None,
                    row["booking_session_id"] or None,
                    row["booking_code"] or None,
                )
                for row in csv.DictReader(handle)
            }
    expected = {(m.code, m.registration_id, m.booking_session_id, m.booking_code) for m in truth.mismatches}
    hits = len(found & expected)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(expected) if expected else 1.0
    print(f"reconcile: {len(found)} mismatches in {seconds:.2f}s; expected {len(expected)}; {hits} match")
    emit(
        {
            "registrations": args.registrations,
            "db": args.db,
            "mismatches": len(found),
            "expected": len(expected),
            "precision": round(precision, 6),
            "recall": round(recall, 6),
            "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak_rss, 1),
            "fill_seconds": round(fill_seconds, 1),
        }
    )


if __name__ == "__main__":
    main()
