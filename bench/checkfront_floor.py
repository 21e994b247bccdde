"""The floor under regsync's per-booking reads: what a bare client gets from the sandbox per call.

A pull reads each booking's detail (GET /booking/{code}, for its line items) and each booking
session, one call apiece: Checkfront API 3.0 has no batch read for either. This times the same
GET /booking/{id} calls made with nothing around them (no retry policy, no JSON parse, no
normalize, no warehouse), with the HTTP client regsync uses (httpx, on threads as regsync does)
and, for comparison, the standard library's http.client. CPU per call is measured on both sides
(this process and the sandbox's); the ceiling on this machine follows:

    ceiling calls/s = cores / (client CPU + sandbox CPU per call)

Last line, one JSON object: bookings, cores, and per client (httpx, http_client) its calls_per_s,
client_cpu_ms, sandbox_cpu_ms and ceiling_calls_per_s.

    python bench/checkfront_floor.py [--registrations 20000] [--threads 8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, sandbox_process

from regsync.clients.checkfront import _auth_headers
from regsync.config import load_settings


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def booking_ids(client: httpx.Client, limit: int) -> list[str]:
    ids: list[str] = []
    page = 1
    while len(ids) < limit:
        body = client.get("/booking/index", params={"page": page, "limit": 250}).json()
        ids += list(body["booking/index"])
        if page >= body["request"]["pages"]:
            break
        page += 1
    return ids[:limit]


def measure(read: Callable[[str], bytes], ids: list[str], threads: int, sandbox_pid: int) -> dict[str, Any]:
    sandbox0, client0, started = process_cpu(sandbox_pid), own_cpu(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        sizes = [len(body) for body in pool.map(read, ids)]
    seconds = time.perf_counter() - started
    if min(sizes) == 0:
        raise SystemExit("an empty answer: the floor would be meaningless")
    client_ms = 1000 * (own_cpu() - client0) / len(ids)
    sandbox_ms = 1000 * (process_cpu(sandbox_pid) - sandbox0) / len(ids)
    cores = os.cpu_count() or 1
    return {
        "calls_per_s": round(len(ids) / seconds, 1),
        "client_cpu_ms": round(client_ms, 3),
        "sandbox_cpu_ms": round(sandbox_ms, 3),
        "ceiling_calls_per_s": round(cores * 1000 / (client_ms + sandbox_ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regsync-floor-") as scratch:
        tmp = Path(scratch)
        with sandbox_process(
            args.registrations, 1, tmp / "sandbox", write_config=tmp / "floor.toml"
        ) as sandbox:
            settings = load_settings(tmp / "floor.toml").checkfront
            authorization = _auth_headers(settings)["Authorization"]
            context = ssl.create_default_context(cafile=sandbox.ca_path)
            pid = sandbox.process.pid
            with httpx.Client(
                base_url=f"{sandbox.base_url}/api/3.0",
                verify=context,
                headers={"Authorization": authorization, "Accept": "application/json"},
                limits=httpx.Limits(max_connections=args.threads + 2),
                trust_env=False,
            ) as client:
                ids = booking_ids(client, args.registrations)
                print(f"{len(ids)} bookings to read, {args.threads} threads", flush=True)
                figures = {
                    "httpx": measure(lambda i: client.get(f"/booking/{i}").content, ids, args.threads, pid)
                }
            local = threading.local()
            host, port = sandbox.base_url.split("//")[1].rsplit(":", 1)

            def bare(booking_id: str) -> bytes:
                if getattr(local, "connection", None) is None:
                    local.connection = http.client.HTTPSConnection(host, int(port), context=context)
                local.connection.request(
                    "GET", f"/api/3.0/booking/{booking_id}", headers={"Authorization": authorization}
                )
                return local.connection.getresponse().read()

            figures["http_client"] = measure(bare, ids, args.threads, pid)
    for name, values in figures.items():
        print(f"{name}: {values}")
    emit({"bookings": len(ids), "cores": os.cpu_count(), **figures})


if __name__ == "__main__":
    main()
