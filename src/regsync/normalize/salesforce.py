"""Salesforce records -> warehouse rows: registrations with their attendees, and Sessions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regsync.clients import lenient_json
from regsync.errors import RecordRejected
from regsync.normalize import coerce
from regsync.settings.salesforce import RegistrationFields, SessionFields

REGISTRATION_STATUSES = ("Draft", "To Process", "Completed", "Failed")
IN_PROGRESS_STATUSES = ("Draft", "To Process")
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
    """Validate and shape one Event Registration Submission; raises RecordRejected."""
    if not isinstance(record, dict):
        raise RecordRejected("record is not an object")
    registration_id = coerce.sf_id(record.get("Id"), "Id")
    assert registration_id is not None
    is_deleted = coerce.boolean(record.get("IsDeleted", False), "IsDeleted")
    payload = _attendee_payload(record.get(fields.attendee_json), fields.attendee_json)
    attendees, attendee_sessions, seats = _attendees(registration_id, payload, fields.attendee_json)
    if fields.checkfront_session:
        booking_session_id = coerce.text(
            record.get(fields.checkfront_session), fields.checkfront_session, max_length=64
        )
    else:
        booking_session_id = coerce.text(
            payload.get("sessionId"), f"{fields.attendee_json}.sessionId", max_length=64
        )
    booking_code = (
        coerce.text(record.get(fields.booking_code), fields.booking_code, max_length=64)
        if fields.booking_code
        else None
    )
    row = {
        "id": registration_id,
        "name": coerce.text(record.get("Name"), "Name", max_length=80),
        "status": coerce.one_of(record.get(fields.status), REGISTRATION_STATUSES, fields.status),
        "event_id": coerce.sf_id(record.get(fields.event), fields.event, optional=True),
        "booking_session_id": booking_session_id or None,
        "booking_code": booking_code or None,
        "amount": coerce.money(record.get(fields.amount), fields.amount),
        "attendee_count": len(attendees),
        "seats_needed": seats,
        "error_message": coerce.text(
            record.get(fields.error_message), fields.error_message, max_length=coerce.MAX_TEXT
        ),
        "created_at": coerce.sf_datetime(record.get("CreatedDate"), "CreatedDate"),
        "last_modified_at": coerce.sf_datetime(record.get("LastModifiedDate"), "LastModifiedDate"),
        "system_modstamp": coerce.sf_datetime(record.get("SystemModstamp"), "SystemModstamp"),
        "is_deleted": is_deleted,
    }
    return RegistrationRows(row, attendees, attendee_sessions)


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
    registration_id: str, payload: dict[str, Any], field: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    listed = payload.get("attendeeList", [])
    if listed is None:
        listed = []
    if not isinstance(listed, list):
        raise RecordRejected("attendeeList must be a list", field=field)
    if len(listed) > MAX_ATTENDEES:
        raise RecordRejected(f"more than {MAX_ATTENDEES} attendees", field=field)
    attendees: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    seats = 0
    for position, attendee in enumerate(listed):
        where = f"{field}.attendeeList[{position}]"
        if not isinstance(attendee, dict):
            raise RecordRejected("must be an object", field=where)
        attendee_id = coerce.sf_id(attendee.get("id"), f"{where}.id")
        session_ids = attendee.get("sessionIds") or []
        if not isinstance(session_ids, list) or len(session_ids) > MAX_SESSIONS_PER_ATTENDEE:
            raise RecordRejected("sessionIds must be a list of Session ids", field=where)
        unique = list(dict.fromkeys(coerce.sf_id(s, f"{where}.sessionIds") for s in session_ids))
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
