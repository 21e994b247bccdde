"""`regsync config check --online`: every assumption regsync makes about the two systems, checked.

Like Airbyte's `check` and `discover`, before any pull: log in to both systems, confirm the API
version is served, describe every configured Salesforce object and field (exists, of a type regsync
can read, which are long text areas), confirm the Blackthorn Apex endpoint answers (a GET, which
the POST-only endpoint refuses with 405: nothing is written), ping Checkfront, read one booking
and one booking session the way the pull reads them, and report the API quota left.

Blackthorn's field API names are not confirmed by any public source: this is where a wrong name
in the config shows, by name, before a pull trips on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from regsync.clients.checkfront import CheckfrontClient
from regsync.clients.salesforce import SalesforceClient
from regsync.clients.usage import ApiUsage
from regsync.config import RetrySettings, Settings
from regsync.errors import ApiError, ConfigError, QuotaExhaustedError, RecordRejected, RegsyncError
from regsync.extract.soql import identifier
from regsync.normalize.checkfront import (
    normalize_booking_index_entry,
    normalize_booking_lines,
    normalize_booking_session,
)
from regsync.normalize.salesforce import (
    normalize_registration,
    normalize_session,
    registration_select,
    session_select,
)

log = logging.getLogger("regsync.preflight")

Status = Literal["ok", "warn", "fail", "skip"]
APEX_PATH = "/services/apexrest/conference360/sessionRegistration"
LONG_TEXT = 255  # a textarea longer than this is a long text area (not filterable in SOQL)
# What regsync can read from each configured field: describe types it accepts.
EXPECTED: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("registration_fields", "status"): ("picklist", "string"),
    ("registration_fields", "event"): ("reference", "id", "string"),
    ("registration_fields", "attendee_json"): ("textarea",),
    ("registration_fields", "error_message"): ("textarea", "string"),
    ("registration_fields", "amount"): ("currency", "double", "int", "long"),
    ("registration_fields", "checkfront_session"): ("string", "textarea"),
    ("registration_fields", "booking_code"): ("string", "textarea"),
    ("session_fields", "event"): ("reference", "id", "string"),
    ("session_fields", "checkfront_item"): ("string", "double", "int", "long"),
    ("session_fields", "attendee_session"): ("reference", "id", "string"),
    ("session_fields", "attendee_attendee"): ("reference", "id", "string"),
    ("session_fields", "attendee_status"): ("picklist", "string"),
}
# Which object each configured field lives on.
FIELD_OBJECT = {
    ("registration_fields", "status"): "registration",
    ("registration_fields", "event"): "registration",
    ("registration_fields", "attendee_json"): "registration",
    ("registration_fields", "error_message"): "registration",
    ("registration_fields", "amount"): "registration",
    ("registration_fields", "checkfront_session"): "registration",
    ("registration_fields", "booking_code"): "registration",
    ("session_fields", "event"): "session",
    ("session_fields", "checkfront_item"): "session",
    ("session_fields", "attendee_session"): "session_attendee",
    ("session_fields", "attendee_attendee"): "session_attendee",
    ("session_fields", "attendee_status"): "session_attendee",
}
FIELD_ROLE = {f"salesforce.{section}.{key}": role for (section, key), role in FIELD_OBJECT.items()}
STANDARD = {
    "registration": ("Id", "Name", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"),
    "session": ("Id", "Name", "IsDeleted", "SystemModstamp"),
}
REGISTRATIONS_SCANNED = 20  # recent registrations searched for one that names a booking session


@dataclass(frozen=True)
class Check:
    """One line of the preflight table."""

    system: str
    name: str
    status: Status
    detail: str


@dataclass
class PreflightReport:
    """Every check, in the order run."""

    checks: list[Check] = field(default_factory=list)

    def add(self, system: str, name: str, status: Status, detail: str) -> Check:
        check = Check(system, name, status, detail)
        self.checks.append(check)
        return check

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def find(self, name: str) -> list[Check]:
        return [check for check in self.checks if check.name == name]


def _why(exc: BaseException, limit: int = 240) -> str:
    """One line: a SOQL error echoes the whole query over several lines."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


CAUGHT = (ApiError, RegsyncError, ConfigError, OSError, ValueError)


def run_preflight(settings: Settings, *, now: datetime | None = None) -> PreflightReport:
    """Run every check (reads only); a failed login skips that system's other checks."""
    now = now or datetime.now(UTC)
    # A preflight answers quickly: two attempts, short waits (a dead host is one readable line).
    quick = settings.model_copy(update={"retry": RetrySettings(attempts=2, initial_s=0.2, max_s=1.0)})
    usage = ApiUsage(1.0)  # never stop the checks for quota: report it instead
    report = PreflightReport()
    session_id = _salesforce(quick, usage, report)
    _checkfront(quick, usage, report, session_id, now)
    calls = ", ".join(f"{k}={v}" for k, v in usage.snapshot().items())
    report.add("regsync", "API calls of this check", "ok", calls or "none")
    return report


# -- Salesforce -------------------------------------------------------------------------------------


def _salesforce(settings: Settings, usage: ApiUsage, report: PreflightReport) -> str | None:
    """The Salesforce checks; returns a booking session id some registration names (for the cart read)."""
    sf = settings.salesforce
    client = SalesforceClient(sf, settings.retry, usage)
    try:
        token = client.tokens.current()
    except CAUGHT as exc:
        report.add("Salesforce", "login", "fail", f"{sf.auth} login at {sf.login_url}: {_why(exc)}")
        report.add("Salesforce", "objects and fields", "skip", "needs a login")
        return None
    report.add("Salesforce", "login", "ok", f"{sf.auth} login; instance {token.instance_url}")
    served = _served_version(client, settings, usage, report)
    if served is None:
        return None
    client = served
    described = _objects(client, settings, report)
    _fields(described, settings, report)
    session_id = _read_like_the_pull(client, settings, report, described)
    _apex(client, report)
    _quota(client, settings, report)
    return session_id


def _served_version(
    client: SalesforceClient, settings: Settings, usage: ApiUsage, report: PreflightReport
) -> SalesforceClient | None:
    """Check the configured version is served; describe with the latest served one if it is not."""
    wanted = settings.salesforce.api_version
    try:
        status, body = client.get_status("/services/data/")
    except CAUGHT as exc:
        report.add("Salesforce", "API version", "fail", f"cannot list the versions served: {_why(exc)}")
        return None
    versions = [str(v.get("version")) for v in body if isinstance(v, dict)] if isinstance(body, list) else []
    if status != 200 or not versions:
        report.add(
            "Salesforce", "API version", "fail", f"/services/data/ answered HTTP {status}, no version list"
        )
        return None
    served = sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))
    if wanted in served:
        report.add("Salesforce", "API version", "ok", f"v{wanted} is served (latest v{served[-1]})")
        return client
    report.add(
        "Salesforce",
        "API version",
        "fail",
        f"salesforce.api_version = {wanted!r} is not served by this org (it serves v{served[0]} to v{served[-1]}); "
        f"the checks below use v{served[-1]}",
    )
    latest = settings.salesforce.model_copy(update={"api_version": served[-1]})
    return SalesforceClient(latest, settings.retry, usage, http=client.http)


def _objects(
    client: SalesforceClient, settings: Settings, report: PreflightReport
) -> dict[str, dict[str, Any]]:
    """Describe every configured object: role -> {field name -> describe entry} for those found."""
    found: dict[str, dict[str, Any]] = {}
    for role, name in settings.salesforce.objects.model_dump().items():
        try:
            described = client.describe(name)
        except CAUGHT as exc:
            report.add("Salesforce", f"object {role}", "fail", f"{name}: cannot describe it: {_why(exc)}")
            continue
        if described is None:
            report.add(
                "Salesforce",
                f"object {role}",
                "fail",
                f"salesforce.objects.{role} = {name!r}: no such object, or the user cannot see it",
            )
            continue
        fields = {f["name"]: f for f in described.get("fields", []) if isinstance(f, dict) and "name" in f}
        found[role] = fields
        report.add("Salesforce", f"object {role}", "ok", f"{name}: {len(fields)} fields")
    return found


def _kind(entry: Mapping[str, Any]) -> str:
    kind = str(entry.get("type", "?"))
    length = entry.get("length")
    if kind == "textarea" and isinstance(length, int) and length > LONG_TEXT:
        return f"long text area ({length})"
    return kind


def _fields(described: Mapping[str, Mapping[str, Any]], settings: Settings, report: PreflightReport) -> None:
    """Every configured field (and the standard ones the pull selects): exists, of a readable type."""
    sf = settings.salesforce
    for role, names in STANDARD.items():
        fields = described.get(role)
        if fields is None:
            continue
        missing = [name for name in names if name not in fields]
        if missing:
            report.add("Salesforce", f"standard fields of {role}", "fail", f"missing: {', '.join(missing)}")
    for (section, key), expected in EXPECTED.items():
        name = getattr(getattr(sf, section), key)
        setting = f"salesforce.{section}.{key}"
        role = FIELD_OBJECT[(section, key)]
        if not name:
            report.add("Salesforce", setting, "skip", 'not configured ("")')
            continue
        fields = described.get(role)
        if fields is None:
            report.add("Salesforce", setting, "skip", f"{name}: its object ({role}) was not found")
            continue
        entry = fields.get(name)
        if entry is None:
            report.add(
                "Salesforce",
                setting,
                "fail",
                f"{name!r} is not a field of {getattr(sf.objects, role)} (or not visible to the user)",
            )
            continue
        kind = str(entry.get("type"))
        shown = _kind(entry)
        if kind not in expected:
            report.add(
                "Salesforce",
                setting,
                "fail",
                f"{name} is a {shown}; regsync reads it as {' or '.join(expected)}",
            )
        elif key == "attendee_json" and not shown.startswith("long text area"):
            report.add(
                "Salesforce",
                setting,
                "warn",
                f"{name} is a {shown}: a payload over {LONG_TEXT} characters would not fit",
            )
        else:
            report.add("Salesforce", setting, "ok", f"{name}: {shown}")


def _read_like_the_pull(
    client: SalesforceClient, settings: Settings, report: PreflightReport, described: Mapping[str, Any]
) -> str | None:
    """One page of each SOQL stream with the pull's own field list; the registration shaped as the
    pull shapes it. Returns a booking session id that a recent registration names."""
    sf = settings.salesforce
    streams: list[tuple[str, str, list[str], Callable[[dict[str, Any]], Any]]] = [
        (
            "registration",
            sf.objects.registration,
            registration_select(sf.registration_fields),
            lambda r: normalize_registration(r, sf.registration_fields),
        ),
        (
            "session",
            sf.objects.session,
            session_select(sf.session_fields),
            lambda r: normalize_session(r, sf.session_fields),
        ),
    ]
    session_id: str | None = None
    for role, sobject, fields, shape in streams:
        name = f"read {role}s as the pull does"
        if role not in described:
            report.add("Salesforce", name, "skip", "its object was not found")
            continue
        broken = [
            c.name
            for c in report.failures
            if c.name.startswith("salesforce.") and FIELD_ROLE.get(c.name) == role
        ]
        if broken:
            report.add(
                "Salesforce", name, "skip", f"its query names the failed field(s): {', '.join(broken)}"
            )
            continue
        soql = (
            f"SELECT {', '.join(identifier(f) for f in fields)} FROM {identifier(sobject)} "
            f"ORDER BY SystemModstamp DESC LIMIT {REGISTRATIONS_SCANNED}"
        )
        try:
            records = client.query_first(soql).records
        except CAUGHT as exc:
            report.add("Salesforce", name, "fail", f"the pull's query is refused: {_why(exc)}")
            continue
        if not records:
            report.add(
                "Salesforce", name, "warn", f"{sobject} has no records yet: nothing to check the shape of"
            )
            continue
        try:
            shaped = [shape(record) for record in records]
        except RecordRejected as exc:
            report.add("Salesforce", name, "warn", f"a recent record would be quarantined: {_why(exc)}")
            continue
        report.add("Salesforce", name, "ok", f"{len(records)} recent record(s) read and shaped")
        if role == "registration":
            session_id = next(
                (
                    r.registration["booking_session_id"]
                    for r in shaped
                    if r.registration.get("booking_session_id")
                ),
                None,
            )
    return session_id


def _apex(client: SalesforceClient, report: PreflightReport) -> None:
    """The Blackthorn endpoint answers, probed with a GET the POST-only Apex class refuses (405)."""
    name = "Blackthorn Apex endpoint"
    try:
        status, body = client.get_status(APEX_PATH)
    except CAUGHT as exc:
        report.add("Salesforce", name, "fail", f"{APEX_PATH}: {_why(exc)}")
        return
    if status in (200, 400, 405):
        report.add(
            "Salesforce", name, "ok", f"{APEX_PATH} answers (HTTP {status} to a GET; nothing was sent)"
        )
    elif status == 404:
        report.add(
            "Salesforce",
            name,
            "fail",
            f"{APEX_PATH}: HTTP 404: is Blackthorn Events installed, and may this user run its Apex REST class?",
        )
    else:
        report.add("Salesforce", name, "fail", f"{APEX_PATH}: HTTP {status}: {str(body)[:120]}")


def _quota(client: SalesforceClient, settings: Settings, report: PreflightReport) -> None:
    try:
        limits = client.limits()
    except QuotaExhaustedError as exc:
        report.add("Salesforce", "API quota", "fail", _why(exc))
        return
    except CAUGHT as exc:
        report.add("Salesforce", "API quota", "warn", f"/limits cannot be read: {_why(exc)}")
        return
    daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
    if not isinstance(daily, dict) or not isinstance(daily.get("Max"), int):
        report.add("Salesforce", "API quota", "warn", "/limits has no DailyApiRequests")
        return
    most, left = daily["Max"], int(daily.get("Remaining", 0))
    used = (most - left) / most if most else 1.0
    detail = f"{left:,} of {most:,} daily API requests left ({used:.0%} used; runs defer at {settings.quota.max_share:.0%})"
    report.add("Salesforce", "API quota", "fail" if used >= settings.quota.max_share else "ok", detail)


# -- Checkfront -------------------------------------------------------------------------------------


def _checkfront(
    settings: Settings, usage: ApiUsage, report: PreflightReport, session_id: str | None, now: datetime
) -> None:
    cf = settings.checkfront
    try:
        client = CheckfrontClient(cf, settings.retry, usage)
    except CAUGHT as exc:
        report.add("Checkfront", "login", "fail", _why(exc))
        return
    try:
        if not _ping(client, cf.base_url, report):
            return
        _one_booking(client, report, now)
        _one_cart(client, report, session_id, now)
        report.add(
            "Checkfront",
            "API quota",
            "skip",
            "Checkfront publishes no quota; a rate limit answers 429 (retried)",
        )
    finally:
        client.close()


def _ping(client: CheckfrontClient, base_url: str, report: PreflightReport) -> bool:
    try:
        body = client.request("GET", "/ping")
    except CAUGHT as exc:
        report.add("Checkfront", "ping", "fail", f"{base_url}/api/3.0/ping: {_why(exc)}")
        return False
    host = body.get("host_id") or base_url
    report.add("Checkfront", "ping", "ok", f"{host} answers with these credentials")
    return True


def _one_booking(client: CheckfrontClient, report: PreflightReport, now: datetime) -> None:
    name = "read one booking as the pull does"
    try:
        page = client.booking_index_page(1, filters={"limit": 1})
        if not page.bookings:
            report.add(
                "Checkfront", name, "warn", "the booking index is empty: nothing to check the shape of"
            )
            return
        entry = normalize_booking_index_entry(page.bookings[0], now)
        booking = client.get_booking(str(entry["code"]))
        if booking is None:
            report.add(
                "Checkfront", name, "fail", f"booking {entry['code']} is in the index but cannot be read"
            )
            return
        _, lines = normalize_booking_lines(booking)
    except RecordRejected as exc:
        report.add("Checkfront", name, "warn", f"it would be quarantined: {_why(exc)}")
        return
    except CAUGHT as exc:
        report.add("Checkfront", name, "fail", _why(exc))
        return
    report.add(
        "Checkfront",
        name,
        "ok",
        f"booking {entry['code']} ({entry['status_id']}): {len(lines)} line(s); {page.total_records} in the index",
    )


def _one_cart(
    client: CheckfrontClient, report: PreflightReport, session_id: str | None, now: datetime
) -> None:
    name = "read one booking session as the pull does"
    if not session_id:
        report.add("Checkfront", name, "skip", "no recent registration names a booking session")
        return
    try:
        read = client.get_booking_session(session_id)
        if not read.found:
            report.add(
                "Checkfront", name, "ok", f"{session_id}: read; unknown or expired (as the pull records it)"
            )
            return
        shaped = normalize_booking_session(read.session, now)
    except RecordRejected as exc:
        report.add("Checkfront", name, "warn", f"{session_id} would be quarantined: {_why(exc)}")
        return
    except CAUGHT as exc:
        report.add("Checkfront", name, "fail", f"{session_id}: {_why(exc)}")
        return
    report.add("Checkfront", name, "ok", f"{session_id}: alive, {len(shaped.lines)} line(s)")
