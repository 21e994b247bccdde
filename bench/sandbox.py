"""How fast the sandbox serves paged SOQL queries, and how much memory it holds.

Starts `regsync sandbox --generate N` in its own process (so its RSS is its own), pages through
every registration with a plain keep-alive HTTPS client, and prints one JSON line last:
registrations, records, pages, seconds, records_per_s, peak_rss_mb, generate_seconds.

    python bench/sandbox.py [--registrations 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, peak_rss_mb, sandbox_process

QUERY = (
    "SELECT Id, Name, IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp, conference360__Status__c, "
    "conference360__Event__c, conference360__Attendee_JSON__c, conference360__Amount__c, "
    "Checkfront_Booking_Code__c FROM conference360__Event_Registration_Submission__c "
    "ORDER BY SystemModstamp, Id"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from regsync.sandbox import DEMO

    with tempfile.TemporaryDirectory(prefix="regsync-bench-") as tmp:
        started = time.perf_counter()
        with sandbox_process(args.registrations, args.seed, Path(tmp)) as box:
            base, ca = box.base_url, box.ca_path
            generate_seconds = time.perf_counter() - started
            with httpx.Client(
                base_url=base, verify=ssl.create_default_context(cafile=ca), timeout=120
            ) as client:
                token = client.post(
                    "/services/oauth2/token",
                    data=DEMO.password_grant(),
                ).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                records = pages = 0
                t0 = time.perf_counter()
                body = orjson.loads(
                    client.get("/services/data/v60.0/queryAll/", params={"q": QUERY}, headers=headers).content
                )
                while True:
                    pages += 1
                    records += len(body["records"])
                    if body["done"]:
                        break
                    body = orjson.loads(client.get(body["nextRecordsUrl"], headers=headers).content)
                seconds = time.perf_counter() - t0
            rss = peak_rss_mb(box.process.pid)
    result = {
        "registrations": args.registrations,
        "records": records,
        "pages": pages,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds, 1),
        "peak_rss_mb": round(rss, 1),
        "generate_seconds": round(generate_seconds, 2),
        "cpu_count": os.cpu_count(),
    }
    print(f"served {records} registrations in {pages} pages in {seconds:.2f}s")
    emit(result)


if __name__ == "__main__":
    main()
