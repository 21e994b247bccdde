"""Counting what reached the remote side: the proof that no write was sent twice.

A write "reached" the emulator when no fault replaced it before the handler ran (a 429/503 or a
dropped connection injected *before* the handler means nothing happened remotely, and sending it
again is a retry, not a duplicate) and the platform did not refuse it before the endpoint's code
ran (401 for an expired session, 403 REQUEST_LIMIT_EXCEEDED: resending after re-authenticating is
correct). Faults that spoil the answer *after* the handler ran (slow,
malformed) leave the write applied: sending it again would be a duplicate, and is counted as one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from urllib.parse import parse_qs

from regsync.sandbox.http import LoggedRequest

SUBMIT_ENDPOINT = "salesforce.apex.session_registration"
END_ENDPOINT = "checkfront.booking_session.end"
PLATFORM_REFUSALS = frozenset({401, 403})


def _target(request: LoggedRequest) -> tuple[str, str] | None:
    if request.endpoint == SUBMIT_ENDPOINT:
        try:
            body = json.loads(request.body)
        except ValueError:
            return ("submit", "<unparseable body>")
        return ("submit", str(body.get("id") if isinstance(body, dict) else body))
    if request.endpoint == END_ENDPOINT:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        session = (form.get("session_id") or request.query.get("session_id") or ["<none>"])[0]
        return ("end", session)
    return None


def writes_reached(requests: Iterable[LoggedRequest]) -> Counter[tuple[str, str]]:
    """(kind, target id) -> how many write requests for it reached the emulator's handler."""
    counts: Counter[tuple[str, str]] = Counter()
    for request in requests:
        if request.fault is not None or request.status in PLATFORM_REFUSALS:
            continue
        target = _target(request)
        if target is not None:
            counts[target] += 1
    return counts


def writes_sent_twice(requests: Iterable[LoggedRequest]) -> int:
    """How many targets received a write more than once (0 is the only acceptable answer)."""
    return sum(1 for count in writes_reached(requests).values() if count > 1)
