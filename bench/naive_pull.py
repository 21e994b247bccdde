"""The yardstick: the pull a user would write in an afternoon instead of regsync (issue #16).

simple-salesforce `query_all` for the Sessions and the registrations, a thread pool of httpx GETs
for the booking index (page after page), each registration's booking session and each booking
it names, and pandas `to_sql` into the warehouse database. No resumability, no validation, no
retries, no watermark: the obvious script. It makes the same Checkfront reads as regsync's first
sync, so the two can be timed on one sandbox.

Last line, one JSON object: seconds, sf_calls, cf_calls, registrations, bookings.

    python bench/naive_pull.py --config sandbox.toml --url sqlite:///naive.db [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import requests
from simple_salesforce import Salesforce
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit

from regsync.clients.checkfront import _auth_headers
from regsync.config import load_settings


def salesforce_login(settings: Any) -> Salesforce:
    """Password grant at the sandbox's token endpoint, then simple-salesforce on the session."""
    sf = settings.salesforce
    secret = (sf.password.get_secret_value() if sf.password else "") + (
        sf.security_token.get_secret_value() if sf.security_token else ""
    )
    token = httpx.post(
        f"{sf.login_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": sf.consumer_key,
            "client_secret": sf.consumer_secret.get_secret_value() if sf.consumer_secret else "",
            "username": sf.username,
            "password": secret,
        },
        verify=ssl.create_default_context(cafile=str(sf.ca_file)),
    ).json()
    session = requests.Session()
    session.verify = str(sf.ca_file)
    session.trust_env = False  # a CA bundle from the environment would replace the sandbox's CA
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="60.0"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--url", required=True, help="warehouse database URL (SQLAlchemy)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    settings = load_settings(args.config)
    started = time.perf_counter()

    sf = salesforce_login(settings)
    sessions = sf.query_all(
        "SELECT Id, Name, IsDeleted, SystemModstamp, conference360__Event__c, Checkfront_Item_Id__c "
        "FROM conference360__Session__c",
        include_deleted=True,
    )["records"]
    registrations = sf.query_all(
        "SELECT Id, Name, IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp, "
        "conference360__Status__c, conference360__Event__c, conference360__Attendee_JSON__c, "
        "conference360__Error_Message__c, conference360__Amount__c, Checkfront_Booking_Code__c "
        "FROM conference360__Event_Registration_Submission__c",
        include_deleted=True,
    )["records"]
    sf_calls = 3 + (len(sessions) - 1) // 2000 + (len(registrations) - 1) // 2000  # login + pages

    cf = settings.checkfront
    client = httpx.Client(
        base_url=f"{cf.base_url}/api/3.0",
        headers={"Accept": "application/json", **_auth_headers(cf)},
        verify=ssl.create_default_context(cafile=str(cf.ca_file)),
        limits=httpx.Limits(max_connections=args.concurrency),
        timeout=60,
    )
    index: list[dict[str, Any]] = []
    page, cf_calls = 1, 0
    since = int(time.time()) - 365 * 86400
    while True:
        body = client.get(
            "/booking/index", params={"page": page, "limit": 100, "last_modified": f">{since}"}
        ).json()
        cf_calls += 1
        rows = body["booking/index"]
        index += list(rows.values()) if isinstance(rows, dict) else []
        if page >= body["request"]["pages"]:
            break
        page += 1

    carts, codes = [], []
    for record in registrations:
        try:
            payload = json.loads(record["conference360__Attendee_JSON__c"] or "{}")
        except ValueError:
            payload = {}
        if isinstance(payload, dict) and payload.get("sessionId"):
            carts.append(str(payload["sessionId"]))
        if record["Checkfront_Booking_Code__c"]:
            codes.append(record["Checkfront_Booking_Code__c"])

    def cart(session_id: str) -> dict[str, Any]:
        return client.get("/booking/session", params={"session_id": session_id}).json()

    def booking(code: str) -> dict[str, Any]:
        return client.get(f"/booking/{code}").json()

    with ThreadPoolExecutor(args.concurrency) as pool:
        cart_bodies = list(pool.map(cart, carts))
        booking_bodies = list(pool.map(booking, codes))
    cf_calls += len(carts) + len(codes)
    client.close()

    engine = create_engine(args.url)
    drop = ["attributes"]
    pd.DataFrame(sessions).drop(columns=drop).to_sql("naive_sessions", engine, if_exists="replace")
    pd.DataFrame(registrations).drop(columns=drop).to_sql("naive_registrations", engine, if_exists="replace")
    pd.DataFrame(index).astype(str).to_sql("naive_bookings", engine, if_exists="replace")
    carts_frame = [
        {"id": session_id, "body": json.dumps(body.get("booking", {}).get("session"))}
        for session_id, body in zip(carts, cart_bodies, strict=True)
    ]
    pd.DataFrame(carts_frame).to_sql("naive_booking_sessions", engine, if_exists="replace")
    lines = [
        {"code": code, **{k: str(v) for k, v in line.items()}}
        for code, body in zip(codes, booking_bodies, strict=True)
        for line in ((body.get("booking") or {}).get("order") or {}).get("items") or []
        if isinstance(line, dict)
    ]
    pd.DataFrame(lines).to_sql("naive_booking_lines", engine, if_exists="replace")
    engine.dispose()
    seconds = time.perf_counter() - started
    emit(
        {
            "seconds": round(seconds, 2),
            "sf_calls": sf_calls,
            "cf_calls": cf_calls,
            "registrations": len(registrations),
            "bookings": len(index),
        }
    )


if __name__ == "__main__":
    main()
