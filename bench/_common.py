"""What the benchmarks share: a sandbox in its own process, peak RSS, the final JSON line."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGSYNC = str(Path(sys.executable).with_name("regsync"))


@dataclass(frozen=True)
class RunningSandbox:
    process: subprocess.Popen[str]
    base_url: str
    ca_path: str
    config: Path | None


@contextmanager
def sandbox_process(
    registrations: int,
    seed: int,
    state_dir: Path,
    *,
    write_config: Path | None = None,
    warehouse_url: str | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[RunningSandbox]:
    """`regsync sandbox --generate N` in a child process, stopped with SIGTERM at the end.

    `extra_args` go to the sandbox's command line, e.g. ["--latency", "checkfront=100ms",
    "--rate-limit", "checkfront=20/s,burst=40"]; `GET /__sandbox/network` then reads its counters."""
    command = [
        REGSYNC,
        "sandbox",
        "--port",
        "0",
        "--generate",
        str(registrations),
        "--seed",
        str(seed),
        "--state-dir",
        str(state_dir),
    ]
    if write_config is not None:
        command += ["--write-config", str(write_config)]
    command += list(extra_args)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    base = ca = ""
    config_written = write_config is None
    for line in process.stdout:
        if match := re.search(r"listening on (https://\S+)", line):
            base = match.group(1)
        if match := re.search(r"CA file\s+(\S+)", line):
            ca = match.group(1)
        if "wrote" in line:
            config_written = True
        if base and ca and config_written:
            break
    if not base:
        process.kill()
        raise SystemExit("the sandbox did not start")
    if write_config is not None and warehouse_url is not None:
        text = write_config.read_text()
        write_config.write_text(re.sub(r'url = "sqlite:///regsync.db"', f'url = "{warehouse_url}"', text))
    try:
        yield RunningSandbox(process, base, ca, write_config)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


PG_URL = os.environ.get("REGSYNC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def bench_warehouse_url(
    db: str, directory: Path, *, keep: str | None = None, fresh: bool = True
) -> Iterator[str]:
    """A warehouse URL: a SQLite file in `directory`, or a PostgreSQL schema.

    The PostgreSQL schema is a throwaway one, dropped at the end, unless `keep` names it: then it
    left in place, so a later run can reuse what was filled into it (`fresh=False`); a fresh one
    starts empty, whatever an interrupted earlier fill left there.
    """
    if db == "sqlite":
        yield f"sqlite:///{directory / 'warehouse.db'}"
        return
    from sqlalchemy import create_engine, text

    schema = keep or f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        if fresh:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        if keep is None:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_measured(command: list[str]) -> tuple[float, float, float, int]:
    """Run a command; (wall seconds, user+sys CPU seconds, peak RSS MB, exit code).

    Peak RSS is the child's own VmHWM, polled: ru_maxrss of a child forked from a large process
    reports the parent's high-water mark (Linux keeps it across exec).
    """
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # stderr (the logs) passes through
    peak = 0.0
    while True:
        with suppress(FileNotFoundError, ProcessLookupError, ValueError):
            peak = max(peak, peak_rss_mb(child.pid))
        if child.poll() is not None:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - _cpu_seen[0]
    _cpu_seen[0] = usage.ru_utime + usage.ru_stime
    return seconds, cpu, peak, child.returncode


_cpu_seen = [0.0]


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def emit(result: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps(result), flush=True)
