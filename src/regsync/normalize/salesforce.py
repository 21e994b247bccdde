"""Salesforce records -> warehouse rows: registrations with their attendees, and Sessions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from regsync.clients import lenient_json
from regsync.definitions import (
    AMOUNT,
    ATTENDEES,
    BOOKING_CODE,
    BOOKING_SESSION,
    OTHER,
    REGISTRATION_STATUSES,
    booking_code_key,
)
from regsync.errors import RecordRejected
from regsync.normalize import coerce
from regsync.settings.salesforce import RegistrationFields, SessionFields

_AUDIT = ("Id", "Name", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")
MAX_ATTENDEES = 1000
MAX_SESSIONS_PER_ATTENDEE = 500


@dataclass(frozen=True)
class RegistrationRows:
    """One registration and its attendees, ready for the warehouse."""

    registration: dict[str, Any]
    attendees: list[dict[str, Any]]
    attendee_sessions: list[dict[str, Any]]


def registration_select(fields: RegistrationFields) -> list[str]:
    """The SOQL field list for registrations (configured names, no duplicates)."""
    wanted = [
        *_AUDIT,
        fields.status,
        fields.event,
        fields.attendee_json,
        fields.error_message,
        fields.amount,
    ]
    wanted += [name for name in (fields.booking_code, fields.checkfront_session) if name]
    return list(dict.fromkeys(wanted))


def session_select(fields: SessionFields) -> list[str]:
    wanted = ["Id", "Name", "IsDeleted", "SystemModstamp", fields.event]
    if fields.checkfront_item:
        wanted.append(fields.checkfront_item)
    return list(dict.fromkeys(wanted))


def normalize_registration(record: dict[str, Any], fields: RegistrationFields) -> RegistrationRows:
    """Validate and shape one Event Registration Submission.

    Raises RecordRejected only when its identity cannot be read (Id, IsDeleted, Status, CreatedDate,
    LastModifiedDate, SystemModstamp). Any other unreadable part (amount, links, the Attendee JSON
    or one attendee in it) is left out and named in `unreadable`, so the registration keeps its
    links and takes part in every rule its readable parts allow (docs/rules.md, "Partly read").
    """
    if not isinstance(record, dict):
        raise RecordRejected("record is not an object")
    registration_id = coerce.sf_id(record.get("Id"), "Id")
    assert registration_id is not None
    is_deleted = coerce.boolean(record.get("IsDeleted", False), "IsDeleted")
    status = coerce.one_of(record.get(fields.status), REGISTRATION_STATUSES, fields.status)
    created_at = coerce.sf_datetime(record.get("CreatedDate"), "CreatedDate")
    last_modified_at = coerce.sf_datetime(record.get("LastModifiedDate"), "LastModifiedDate")
    system_modstamp = coerce.sf_datetime(record.get("SystemModstamp"), "SystemModstamp")
    problems: list[str] = []
    parts: set[str] = set()

    def read(part: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except RecordRejected as exc:
            problems.append(str(exc))
            parts.add(part)
            return None

    raw_payload = record.get(fields.attendee_json)
    payload = read(ATTENDEES, _attendee_payload, raw_payload, fields.attendee_json)
    before = len(problems)
    attendees, attendee_sessions, seats = _attendees(
        registration_id, payload or {}, fields.attendee_json, problems
    )
    if len(problems) > before:
        parts.add(ATTENDEES)
    if fields.checkfront_session:
        booking_session_id = read(
            BOOKING_SESSION,
            coerce.text,
            record.get(fields.checkfront_session),
            fields.checkfront_session,
            max_length=64,
        )
    elif payload is not None:
        booking_session_id = read(
            BOOKING_SESSION,
            coerce.text,
            payload.get("sessionId"),
            f"{fields.attendee_json}.sessionId",
            max_length=64,
        )
    else:  # the payload is unreadable: its sessionId may still be legible in the text
        parts.add(BOOKING_SESSION)
        booking_session_id = salvage_session_id(raw_payload)
    booking_code = (
        read(BOOKING_CODE, coerce.text, record.get(fields.booking_code), fields.booking_code, max_length=64)
        if fields.booking_code
        else None
    )
    amount = read(AMOUNT, coerce.money, record.get(fields.amount), fields.amount)
    row = {
        "id": registration_id,
        "name": read(OTHER, coerce.text, record.get("Name"), "Name", max_length=80),
        "status": status,
        "event_id": read(OTHER, coerce.sf_id, record.get(fields.event), fields.event, optional=True),
        "booking_session_id": booking_session_id or None,
        "booking_code": booking_code_key(booking_code),
        "amount": amount,
        "amount_exact": coerce.sub_cent(amount),
        "attendee_count": len(attendees),
        "seats_needed": seats,
        "error_message": read(
            OTHER,
            coerce.text,
            record.get(fields.error_message),
            fields.error_message,
            max_length=coerce.MAX_TEXT,
        ),
        "created_at": created_at,
        "last_modified_at": last_modified_at,
        "system_modstamp": system_modstamp,
        "is_deleted": is_deleted,
        "unreadable": "; ".join(problems)[:MAX_UNREADABLE] if problems else None,
        "unreadable_parts": unreadable_parts(parts),
    }
    return RegistrationRows(row, attendees, attendee_sessions)


MAX_UNREADABLE = 2000


def unreadable_parts(parts: set[str]) -> str | None:
    """Unreadable parts as ",amount,attendees," (sorted, comma-framed for LIKE); None when fully read."""
    return f",{','.join(sorted(parts))}," if parts else None


_SESSION_ID_TEXT = re.compile(r'"sessionId"\s*:\s*"([^"\\]{1,64})"')


def salvage_session_id(text: Any) -> str | None:
    """The booking session id legible in a broken Attendee JSON text (truncated, not an object).

    A registration whose payload cannot be parsed may still name its booking session; that link
    must hold the booking session against an end (docs/rules.md, fail safe).
    """
    if not isinstance(text, str):
        return None
    found = {match.strip() for match in _SESSION_ID_TEXT.findall(text[: coerce.MAX_TEXT])}
    found.discard("")
    return found.pop() if len(found) == 1 else None


def booking_session_ids_in(record: Any, fields: RegistrationFields) -> list[str]:
    """Every booking session id a raw (possibly quarantined) registration record may name."""
    if not isinstance(record, dict):
        return []
    found: list[str] = []
    if fields.checkfront_session and isinstance(record.get(fields.checkfront_session), str):
        found.append(record[fields.checkfront_session])
    text = record.get(fields.attendee_json)
    if isinstance(text, str):
        found += [match for match in _SESSION_ID_TEXT.findall(text[: coerce.MAX_TEXT])]
    return sorted({ident.strip() for ident in found if ident.strip() and len(ident.strip()) <= 64})


def _attendee_payload(value: Any, field: str) -> dict[str, Any]:
    """The Attendee JSON (a sessionRegistration payload); empty for a registration that has none."""
    if value is None or value == "":
        return {}
    if not isinstance(value, str):
        raise RecordRejected(f"expected JSON text, got {type(value).__name__}", field=field)
    if len(value) > coerce.MAX_TEXT:
        raise RecordRejected("longer than a long text area can be", field=field)
    try:
        payload = lenient_json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise RecordRejected("is not valid JSON", field=field) from None
    if not isinstance(payload, dict):
        raise RecordRejected("must be a JSON object", field=field)
    return payload


def _attendees(
    registration_id: str, payload: dict[str, Any], field: str, problems: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """The readable attendees and their Session ids; each unreadable part is added to `problems`."""
    listed = payload.get("attendeeList", [])
    if listed is None:
        listed = []
    if not isinstance(listed, list):
        problems.append(str(RecordRejected("attendeeList must be a list", field=field)))
        return [], [], 0
    if len(listed) > MAX_ATTENDEES:
        problems.append(str(RecordRejected(f"more than {MAX_ATTENDEES} attendees", field=field)))
        return [], [], 0
    attendees: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    seats = 0
    for position, attendee in enumerate(listed):
        where = f"{field}.attendeeList[{position}]"
        try:
            if not isinstance(attendee, dict):
                raise RecordRejected("must be an object", field=where)
            attendee_id = coerce.sf_id(attendee.get("id"), f"{where}.id")
            session_ids = attendee.get("sessionIds")
            if session_ids is None:
                session_ids = []
            if not isinstance(session_ids, list) or len(session_ids) > MAX_SESSIONS_PER_ATTENDEE:
                raise RecordRejected("sessionIds must be a list of Session ids", field=where)
        except RecordRejected as exc:
            problems.append(str(exc))
            continue
        readable = []
        for session_id in session_ids:
            try:
                readable.append(coerce.sf_id(session_id, f"{where}.sessionIds"))
            except RecordRejected as exc:
                problems.append(str(exc))
        # The same Session twice for one attendee is one seat (docs/rules.md).
        unique = list(dict.fromkeys(readable))
        attendees.append(
            {"registration_id": registration_id, "position": position, "attendee_id": attendee_id}
        )
        sessions += [
            {"registration_id": registration_id, "position": position, "session_id": session_id}
            for session_id in unique
        ]
        seats += len(unique)
    return attendees, sessions, seats


def normalize_session(record: dict[str, Any], fields: SessionFields) -> dict[str, Any]:
    """A Salesforce Session with the Checkfront item it maps to."""
    if not isinstance(record, dict):
        raise RecordRejected("record is not an object")
    item = record.get(fields.checkfront_item) if fields.checkfront_item else None
    if isinstance(item, float) and item.is_integer():  # int(nan) and int(inf) raise; 1.5 is no item id
        item = int(item)
    if isinstance(item, int) and not isinstance(item, bool):
        item = str(item)
    return {
        "id": coerce.sf_id(record.get("Id"), "Id"),
        "name": coerce.text(record.get("Name"), "Name"),
        "event_id": coerce.sf_id(record.get(fields.event), fields.event, optional=True),
        "checkfront_item_id": coerce.text(item, fields.checkfront_item or "item", max_length=32),
        "system_modstamp": coerce.sf_datetime(record.get("SystemModstamp"), "SystemModstamp"),
        "is_deleted": coerce.boolean(record.get("IsDeleted", False), "IsDeleted"),
    }
