"""How fast regsync pulls a generated dataset from the sandbox into SQLite or PostgreSQL.

The sandbox runs in its own process; `regsync sync` runs in another (so its peak RSS is its own),
twice: a full first sync, then a no-change incremental run. Last line, one JSON object:
registrations, db, seconds, records_per_s, sf_calls, sf_calls_min, cf_calls, peak_rss_mb,
noop_seconds, noop_cpu_seconds, outcome.

    python bench/pull.py [--registrations 100000] [--db sqlite|postgresql] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).parent))
from _common import REGSYNC, bench_warehouse_url, emit, run_measured, sandbox_process


def run_sync(config: Path) -> tuple[float, float, float, int]:
    """Run `regsync sync` in a child; (wall seconds, user+sys seconds, peak RSS MB, exit code)."""
    return run_measured([REGSYNC, "--config", str(config), "--log-format", "text", "sync"])


def last_run(url: str) -> dict[str, Any]:
    from regsync.warehouse.tables import registrations, runs, sf_sessions

    engine = create_engine(url)
    with engine.connect() as connection:
        run = connection.execute(select(runs).order_by(runs.c.started_at.desc()).limit(1)).mappings().one()
        rows = connection.execute(select(func.count()).select_from(registrations)).scalar_one()
        sessions = connection.execute(select(func.count()).select_from(sf_sessions)).scalar_one()
    engine.dispose()
    return {"run": dict(run), "registrations": rows, "sf_sessions": sessions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="regsync-bench-") as tmp,
        bench_warehouse_url(args.db, Path(tmp)) as url,
    ):
        config = Path(tmp) / "bench.toml"
        t0 = time.perf_counter()
        with sandbox_process(
            args.registrations, args.seed, Path(tmp) / "sandbox", write_config=config, warehouse_url=url
        ):
            print(
                f"sandbox ready with {args.registrations} registrations in {time.perf_counter() - t0:.1f}s",
                flush=True,
            )
            seconds, cpu, rss, code = run_sync(config)
            first = last_run(url)
            noop_seconds, noop_cpu, _, noop_code = run_sync(config)
            second = last_run(url)
    calls = first["run"]["api_calls"] or {}
    counts = first["run"]["counts"] or {}
    stream_s = {k.split(".")[0]: v / 1000 for k, v in counts.items() if k.endswith(".milliseconds")}
    sf_calls = int(calls.get("salesforce_calls", 0))
    sf_min = math.ceil(first["registrations"] / 2000) + math.ceil(first["sf_sessions"] / 2000)
    print(
        f"first sync: {first['run']['outcome']} (exit {code}) in {seconds:.1f}s, cpu {cpu:.1f}s; api calls {calls}"
    )
    print(
        f"no-change sync: {second['run']['outcome']} (exit {noop_code}) in {noop_seconds:.2f}s, cpu {noop_cpu:.2f}s"
    )
    emit(
        {
            "registrations": args.registrations,
            "db": args.db,
            "seconds": round(seconds, 2),
            "records_per_s": round(args.registrations / seconds, 1),
            "registrations_stream_per_s": round(
                args.registrations / max(stream_s.get("registrations", 0), 1e-9), 1
            ),
            "stream_seconds": {k: round(v, 2) for k, v in stream_s.items()},
            "sf_calls": sf_calls,
            "sf_calls_min": sf_min,
            "sf_calls_over_min_pct": round(100 * (sf_calls - sf_min) / sf_min, 2) if sf_min else 0.0,
            "cf_calls": int(calls.get("checkfront_calls", 0)),
            "peak_rss_mb": round(rss, 1),
            "cpu_seconds": round(cpu, 2),
            "noop_seconds": round(noop_seconds, 2),
            "noop_cpu_seconds": round(noop_cpu, 2),
            "outcome": first["run"]["outcome"],
        }
    )


if __name__ == "__main__":
    main()
