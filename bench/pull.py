"""How fast regsync pulls a generated dataset from the sandbox into SQLite or PostgreSQL.

The sandbox runs in its own process; `regsync sync` runs in another (so its peak RSS is its own),
twice: a full first sync, then a no-change incremental run. Last line, one JSON object:
registrations, db, seconds, records_per_s, stream_seconds, sf_calls, sf_calls_min, cf_calls,
peak_rss_mb, cpu_seconds, noop_seconds, noop_cpu_seconds, outcome; and with

- `--latency checkfront=100ms,salesforce=300ms [--concurrency N]`: floor_seconds and
  ratio_to_floor, where

      floor_seconds = cf_calls * checkfront latency / concurrency + sf_calls * salesforce latency

  (every Checkfront call is a round trip on one of `concurrency` connections; the Salesforce
  calls of a first sync follow one another: each query page needs the locator of the one before.
  A first sync wide enough to be read in slices, `[sync] soql_slices`, has up to that many
  pages in flight at once: the Salesforce term is then an upper bound, and sf_calls exceeds
  sf_calls_min by the slices' own first queries);
- `--naive`: naive_seconds, bench/naive_pull.py (the obvious concurrent script) on the same
  sandbox, at the same concurrency;
- `--rate-limit R`: cf_rate_limit, cf_achieved_rate (Checkfront calls / the seconds from the first
  to the last, polled from the sandbox's counters every 0.1 s), cf_429 (the sandbox's count) and
  cf_calls, with the concurrency left at its default (adaptive);
- `--sf-only [--soql-slices N] [--query-batch-size B]`: the Salesforce streams alone (sessions,
  registrations), with slices: the registrations' slice count ("slices", 1 for one query). With
  `--latency salesforce=300ms` this is what a wide re-backfill of Salesforce costs, sliced or not;
- `--cpu` (loopback): cpu_per_cf_call_ms, regsync's CPU per Checkfront call (the first sync's CPU
  less that of a first sync of the Salesforce streams alone into another warehouse, / cf_calls),
  and bare_cpu_per_cf_call_ms, a bare httpx GET /booking/{id} on as many threads (the client half
  of bench/checkfront_floor.py), from the same run.

sf_calls_min is the fewest Salesforce data calls the first sync can make under Salesforce's batch
rules (query batches of 2,000 by default and at most; at most 200 when two or more long text area
fields are selected) for the fields regsync needs:

    sf_calls_min = ceil(S / 2000) + ceil(R / B) + ceil(F / 2000)

with S Sessions, R registrations, F registrations whose status is Failed (2,000 read as the
`--query-batch-size` when one is given), and B = 2000 when the
registration query selects at most one long text area field (regsync selects the Attendee JSON,
and reads the error message, its second long text area, only for Failed registrations, in their
own query: the F term), else B = 200 and F = 0 (everything in one query).

    python bench/pull.py [--registrations 100000] [--db sqlite|postgresql] [--seed 1]
        [--latency SPEC] [--concurrency N] [--naive] [--rate-limit R] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).parent))
from _common import REGSYNC, RunningSandbox, bench_warehouse_url, emit, run_measured, sandbox_process

MAX_BATCH = 2000
LONG_TEXT_BATCH = 200


def run_sync(config: Path, *streams: str) -> tuple[float, float, float, int]:
    """Run `regsync sync` in a child; (wall seconds, user+sys seconds, peak RSS MB, exit code)."""
    only = [arg for stream in streams for arg in ("--stream", stream)]
    return run_measured([REGSYNC, "--config", str(config), "--log-format", "text", "sync", *only])


def last_run(url: str) -> dict[str, Any]:
    from regsync.warehouse.tables import registrations, runs, sf_sessions

    engine = create_engine(url)
    with engine.connect() as connection:
        run = connection.execute(select(runs).order_by(runs.c.started_at.desc()).limit(1)).mappings().one()
        rows = connection.execute(select(func.count()).select_from(registrations)).scalar_one()
        failed = connection.execute(
            select(func.count()).select_from(registrations).where(registrations.c.status == "Failed")
        ).scalar_one()
        sessions = connection.execute(select(func.count()).select_from(sf_sessions)).scalar_one()
    engine.dispose()
    return {"run": dict(run), "registrations": rows, "failed": failed, "sf_sessions": sessions}


def long_text_fields_selected(config: Path) -> int:
    """How many long text area fields regsync's bulk registration query selects."""
    from regsync.config import load_settings
    from regsync.streams.salesforce import REGISTRATIONS

    settings = load_settings(config)
    fields = settings.salesforce.registration_fields
    selected = set(REGISTRATIONS.fields(settings))
    return len(selected & {fields.attendee_json, fields.error_message})


def sf_calls_min(
    sessions: int, registrations: int, failed: int, long_text: int, batch: int = MAX_BATCH
) -> int:
    """The formula of the module docstring, with `batch` records a page asked for (query_batch_size)."""
    if long_text >= 2:
        return math.ceil(sessions / batch) + math.ceil(registrations / min(batch, LONG_TEXT_BATCH))
    return math.ceil(sessions / batch) + math.ceil(registrations / batch) + math.ceil(failed / batch)


def latency_of(spec: str | None, service: str) -> float:
    if not spec:
        return 0.0
    from regsync.sandbox.network import parse_latencies

    latency = parse_latencies(spec).get(service)
    return latency.seconds if latency is not None else 0.0


class CallWatcher:
    """Polls the sandbox's Checkfront counters: when the calls started and stopped coming."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.client = httpx.Client(
            base_url=sandbox.base_url, verify=ssl.create_default_context(cafile=sandbox.ca_path)
        )
        self.first: float | None = None
        self.last: float | None = None
        self.start_counts = self.counts()
        self.seen = self.start_counts["checkfront_calls"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def counts(self) -> dict[str, int]:
        return self.client.get("/__sandbox/network").json()["counts"]

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            calls = self.counts()["checkfront_calls"]
            now = time.perf_counter()
            if calls != self.seen:
                self.first = self.first or now - 0.05
                self.last = now
                self.seen = calls

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        end = self.counts()
        self.client.close()
        calls = end["checkfront_calls"] - self.start_counts["checkfront_calls"]
        span = (self.last - self.first) if self.first and self.last else float("nan")
        return {
            "cf_calls_seen": calls,
            "cf_429": end["checkfront_429"] - self.start_counts["checkfront_429"],
            "cf_span_s": span,
        }


def bare_cpu_ms(sandbox: RunningSandbox, config: Path, threads: int, calls: int) -> float:
    """CPU per bare httpx GET /booking/{id} on `threads` threads (bench/checkfront_floor.py's client)."""
    from checkfront_floor import booking_ids, measure

    from regsync.clients.checkfront import _auth_headers
    from regsync.config import load_settings

    settings = load_settings(config).checkfront
    with httpx.Client(
        base_url=f"{sandbox.base_url}/api/3.0",
        verify=ssl.create_default_context(cafile=sandbox.ca_path),
        headers={"Authorization": _auth_headers(settings)["Authorization"], "Accept": "application/json"},
        limits=httpx.Limits(max_connections=threads + 2),
        trust_env=False,
    ) as client:
        ids = booking_ids(client, calls)
        return float(
            measure(lambda i: client.get(f"/booking/{i}").content, ids, threads, sandbox.process.pid)[
                "client_cpu_ms"
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", help="e.g. checkfront=100ms,salesforce=300ms")
    parser.add_argument("--concurrency", type=int, help="checkfront.concurrency (default: the config's)")
    parser.add_argument("--rate-limit", type=float, help="the sandbox's Checkfront rate limit, requests/s")
    parser.add_argument("--burst", type=int, help="the rate limit's burst (default: the sandbox's)")
    parser.add_argument("--naive", action="store_true", help="also time bench/naive_pull.py")
    parser.add_argument("--cpu", action="store_true", help="CPU per Checkfront call, regsync and bare")
    parser.add_argument("--no-noop", action="store_true", help="skip the no-change run")
    parser.add_argument(
        "--sf-only", action="store_true", help="pull the Salesforce streams only (sessions, registrations)"
    )
    parser.add_argument("--soql-slices", type=int, help="[sync] soql_slices (default: the config's)")
    parser.add_argument(
        "--query-batch-size", type=int, help="[salesforce] query_batch_size, records per query page"
    )
    args = parser.parse_args()
    if args.soql_slices:
        os.environ["REGSYNC_SYNC__SOQL_SLICES"] = str(args.soql_slices)
    if args.query_batch_size:
        os.environ["REGSYNC_SALESFORCE__QUERY_BATCH_SIZE"] = str(args.query_batch_size)
    streams = ("sessions", "registrations") if args.sf_only else ()
    extra: list[str] = []
    if args.latency:
        extra += ["--latency", args.latency]
    if args.rate_limit:
        burst = f",burst={args.burst}" if args.burst else ""
        extra += ["--rate-limit", f"checkfront={args.rate_limit:g}/s{burst}"]
    if args.concurrency:
        os.environ["REGSYNC_CHECKFRONT__CONCURRENCY"] = str(args.concurrency)
    from regsync.config import load_settings

    with (
        tempfile.TemporaryDirectory(prefix="regsync-bench-") as tmp,
        bench_warehouse_url(args.db, Path(tmp)) as url,
    ):
        config = Path(tmp) / "bench.toml"
        t0 = time.perf_counter()
        with sandbox_process(
            args.registrations,
            args.seed,
            Path(tmp) / "sandbox",
            write_config=config,
            warehouse_url=url,
            extra_args=extra,
        ) as sandbox:
            print(
                f"sandbox ready with {args.registrations} registrations in {time.perf_counter() - t0:.1f}s",
                flush=True,
            )
            settings = load_settings(config)
            concurrency = settings.checkfront.concurrency
            batch = settings.salesforce.query_batch_size or MAX_BATCH
            long_text = long_text_fields_selected(config)
            watcher = CallWatcher(sandbox)
            seconds, cpu, rss, code = run_sync(config, *streams)
            watched = watcher.stop()
            first = last_run(url)
            result: dict[str, Any] = {}
            if not args.no_noop:
                noop_seconds, noop_cpu, _, noop_code = run_sync(config, *streams)
                second = last_run(url)
                print(
                    f"no-change sync: {second['run']['outcome']} (exit {noop_code}) in {noop_seconds:.2f}s, "
                    f"cpu {noop_cpu:.2f}s"
                )
                result |= {"noop_seconds": round(noop_seconds, 2), "noop_cpu_seconds": round(noop_cpu, 2)}
            calls = first["run"]["api_calls"] or {}
            cf_calls = int(calls.get("checkfront_calls", 0))
            if args.cpu:
                with bench_warehouse_url(args.db, Path(tmp) / "sf-only") as sf_url:
                    sf_config = Path(tmp) / "sf-only.toml"
                    sf_config.write_text(config.read_text().replace(url, sf_url))
                    (Path(tmp) / "sf-only").mkdir(exist_ok=True)
                    env_file = config.with_suffix(".env")
                    if env_file.exists():
                        sf_config.with_suffix(".env").write_text(env_file.read_text())
                    _, sf_cpu, _, _ = run_sync(sf_config, "sessions", "registrations")
                result["cpu_per_cf_call_ms"] = round(1000 * (cpu - sf_cpu) / max(cf_calls, 1), 3)
                result["bare_cpu_per_cf_call_ms"] = round(
                    bare_cpu_ms(sandbox, config, concurrency, min(cf_calls, 3000)), 3
                )
                result["cpu_ratio_to_bare"] = round(
                    result["cpu_per_cf_call_ms"] / result["bare_cpu_per_cf_call_ms"], 2
                )
            if args.naive:
                naive_url = url if args.db == "postgresql" else f"sqlite:///{Path(tmp) / 'naive.db'}"
                naive = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("naive_pull.py")),
                        "--config",
                        str(config),
                        "--url",
                        naive_url,
                        "--concurrency",
                        str(concurrency),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    check=True,
                )
                print(naive.stdout.strip().splitlines()[-1])
                result["naive_seconds"] = float(json.loads(naive.stdout.strip().splitlines()[-1])["seconds"])
    counts = first["run"]["counts"] or {}
    stream_s = {k.split(".")[0]: v / 1000 for k, v in counts.items() if k.endswith(".milliseconds")}
    sf_calls = int(calls.get("salesforce_calls", 0))
    sf_min = sf_calls_min(first["sf_sessions"], first["registrations"], first["failed"], long_text, batch)
    print(
        f"first sync: {first['run']['outcome']} (exit {code}) in {seconds:.1f}s, cpu {cpu:.1f}s; api calls {calls}"
    )
    out: dict[str, Any] = {
        "registrations": args.registrations,
        "db": args.db,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "records_per_s": round(args.registrations / seconds, 1),
        "stream_seconds": {k: round(v, 2) for k, v in stream_s.items()},
        "sf_calls": sf_calls,
        "sf_calls_min": sf_min,
        "sf_calls_over_min_pct": round(100 * (sf_calls - sf_min) / sf_min, 2) if sf_min else 0.0,
        "cf_calls": cf_calls,
        "peak_rss_mb": round(rss, 1),
        "cpu_seconds": round(cpu, 2),
        "outcome": first["run"]["outcome"],
    }
    if args.sf_only:
        registration_counts = {
            k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("registrations.")
        }
        out |= {"sf_only": True, "query_batch_size": batch, "slices": registration_counts.get("slices", 1)}
    if args.latency:
        floor = cf_calls * latency_of(args.latency, "checkfront") / concurrency + sf_calls * latency_of(
            args.latency, "salesforce"
        )
        out |= {
            "floor_seconds": round(floor, 2),
            "ratio_to_floor": round(seconds / floor, 3) if floor else None,
        }
    if args.rate_limit:
        span = watched["cf_span_s"]
        out |= {
            "cf_rate_limit": args.rate_limit,
            "cf_achieved_rate": round(watched["cf_calls_seen"] / span, 2)
            if span == span and span > 0
            else None,
            "cf_429": watched["cf_429"],
            "cf_429_pct": round(100 * watched["cf_429"] / max(watched["cf_calls_seen"], 1), 2),
        }
    emit(out | result)


if __name__ == "__main__":
    main()
