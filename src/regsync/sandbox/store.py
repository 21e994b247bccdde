"""The sandbox's in-memory state of both systems: Salesforce tables and Checkfront carts and bookings.

One lock guards everything: the emulators are fast enough that contention does not matter, and a
single lock makes every API call atomic, as the real services are per request.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# ---------------------------------------------------------------------------------------------
# Salesforce ids and datetimes
# ---------------------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id_checksum(id15: str) -> str:
    """The three-character suffix that turns a 15-character Salesforce id into 18 characters."""
    suffix = []
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix.append(_CHECKSUM[bits])
    return "".join(suffix)


def make_sf_id(key_prefix: str, number: int) -> str:
    """An 18-character Salesforce id: key prefix, pod '0U', base-62 counter, checksum."""
    digits = []
    while True:
        number, rem = divmod(number, 62)
        digits.append(_BASE62[rem])
        if number == 0:
            break
    body = "".join(reversed(digits)).rjust(10, "0")
    id15 = f"{key_prefix}{'0U'}{body}"
    assert len(id15) == 15, id15
    return id15 + id_checksum(id15)


def is_sf_id(value: str) -> bool:
    """True for a well-formed 18-character id whose checksum matches."""
    return (
        isinstance(value, str)
        and len(value) == 18
        and value.isalnum()
        and value.isascii()
        and id_checksum(value[:15]) == value[15:]
    )


def sf_datetime(epoch: float) -> str:
    """Salesforce's wire form of a datetime: ``2013-05-20T20:49:32.000+0000`` (always UTC)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_sf_datetime(value: str) -> float:
    """Epoch seconds of a ``2013-05-20T20:49:32.000+0000`` string."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


# ---------------------------------------------------------------------------------------------
# Salesforce schema: what `describe` answers and what SOQL may name
# ---------------------------------------------------------------------------------------------

_STANDARD_FIELDS: dict[str, str] = {
    "Id": "id",
    "Name": "string",
    "IsDeleted": "boolean",
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
}


@dataclass(frozen=True)
class ObjectSchema:
    """An sObject as the sandbox knows it."""

    name: str
    label: str
    key_prefix: str
    fields: dict[str, str]  # API name -> SOAP-ish type (id, string, datetime, boolean, ...)
    picklists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # lookup field -> the object it points at
    lengths: dict[str, int] = field(default_factory=dict)  # text lengths other than the type's default


# Lengths by type when a field does not say otherwise (Salesforce's describe `length`).
TYPE_LENGTHS = {"string": 255, "picklist": 255, "email": 80, "textarea": 255, "id": 18, "reference": 18}
LONG_TEXT_LENGTH = 131072  # a Long Text Area's maximum, as the ERS's JSON fields are


def field_length(schema: ObjectSchema, name: str) -> int:
    return schema.lengths.get(name, TYPE_LENGTHS.get(schema.fields[name], 0))


def is_long_text_area(schema: ObjectSchema, name: str) -> bool:
    """A Long Text Area (describe: type textarea, length over 255); not filterable or sortable, and
    two of them in one SELECT cap query batches at 200."""
    return schema.fields.get(name) == "textarea" and field_length(schema, name) > 255


EVENT = "conference360__Event__c"
SESSION = "conference360__Session__c"
ATTENDEE = "conference360__Attendee__c"
SESSION_ATTENDEE = "conference360__Session_Attendee__c"
REGISTRATION = "conference360__Event_Registration_Submission__c"

REGISTRATION_STATUSES = ("Draft", "To Process", "Completed", "Failed")

SCHEMAS: dict[str, ObjectSchema] = {
    schema.name: schema
    for schema in (
        ObjectSchema(
            EVENT,
            "Event",
            "a0E",
            {
                **_STANDARD_FIELDS,
                "conference360__Status__c": "picklist",
                "conference360__Event_Start_Date__c": "date",
                "conference360__Event_End_Date__c": "date",
            },
            {"conference360__Status__c": ("Draft", "Active", "Completed", "Canceled")},
        ),
        ObjectSchema(
            SESSION,
            "Session",
            "a0S",
            {
                **_STANDARD_FIELDS,
                "conference360__Event__c": "reference",
                "conference360__Capacity__c": "double",
                # The org's own integration field: which Checkfront item sells this Session.
                "Checkfront_Item_Id__c": "string",
            },
            references={"conference360__Event__c": EVENT},
        ),
        ObjectSchema(
            ATTENDEE,
            "Attendee",
            "a0A",
            {
                **_STANDARD_FIELDS,
                "conference360__Event__c": "reference",
                "conference360__Registration_Status__c": "picklist",
                "conference360__First_Name2__c": "string",
                "conference360__Last_Name2__c": "string",
                "conference360__Email2__c": "email",
            },
            {
                "conference360__Registration_Status__c": (
                    "Registered",
                    "Waitlisted - Pending",
                    "Lead",
                    "To Invite",
                    "Invited",
                )
            },
            references={"conference360__Event__c": EVENT},
        ),
        ObjectSchema(
            SESSION_ATTENDEE,
            "Session Attendee",
            "a0T",
            {
                **_STANDARD_FIELDS,
                "conference360__Session__c": "reference",
                "conference360__Attendee__c": "reference",
                "conference360__Registration_Status__c": "picklist",
            },
            {"conference360__Registration_Status__c": ("Registered", "Waitlisted - Pending")},
            references={"conference360__Session__c": SESSION, "conference360__Attendee__c": ATTENDEE},
        ),
        ObjectSchema(
            REGISTRATION,
            "Event Registration Submission",
            "a16",
            {
                **_STANDARD_FIELDS,
                "conference360__Status__c": "picklist",
                "conference360__Event__c": "reference",
                "conference360__Attendee_JSON__c": "textarea",
                "conference360__Error_Message__c": "textarea",
                "conference360__Process__c": "boolean",
                "conference360__Amount__c": "currency",
                # The org's own integration field: the Checkfront booking code once booked.
                "Checkfront_Booking_Code__c": "string",
            },
            {"conference360__Status__c": REGISTRATION_STATUSES},
            references={"conference360__Event__c": EVENT},
            lengths={
                "conference360__Attendee_JSON__c": LONG_TEXT_LENGTH,
                "conference360__Error_Message__c": LONG_TEXT_LENGTH,
            },
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class Clock:
    """Wall-clock time, shiftable so tests can make hours pass in a moment."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class SalesforceState:
    """Records by object, each record a dict keyed by field API name in wire form."""

    tables: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in SCHEMAS}
    )
    counters: dict[str, itertools.count[int]] = field(
        default_factory=lambda: {name: itertools.count(1) for name in SCHEMAS}
    )
    last_modstamp: float = 0.0

    def new_id(self, sobject: str) -> str:
        schema = SCHEMAS[sobject]
        while True:
            candidate = make_sf_id(schema.key_prefix, next(self.counters[sobject]))
            if candidate not in self.tables[sobject]:
                return candidate


@dataclass
class CheckfrontState:
    """Items, booking sessions (carts) and bookings, in the sandbox's own internal form.

    items:            item_id -> {item_id, sku, name, unit, stock, category_id, category,
                                  params: {param: price}, packages: [item_id...]}
    booking_sessions: id -> {id, created, modified, ended (epoch|None), booking_code (str|None),
                             lines: {line_id: {item_id, slip, qty, date, param: {p: n}, optin}}}
    bookings:         booking_id -> {booking_id, code, status_id, created_date, last_modified,
                                     start_date, end_date, customer_name, customer_email,
                                     session_id, lines: [...], sub_total, tax_total, total,
                                     paid_total}
    """

    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    booking_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    bookings: dict[int, dict[str, Any]] = field(default_factory=dict)
    session_ttl_s: float = 7 * 24 * 3600.0  # idle booking sessions expire after this


@dataclass
class SandboxStore:
    """Both systems' state plus the clock, behind one lock."""

    salesforce: SalesforceState = field(default_factory=SalesforceState)
    checkfront: CheckfrontState = field(default_factory=CheckfrontState)
    clock: Clock = field(default_factory=Clock)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def records(self, sobject: str) -> Iterator[dict[str, Any]]:
        return iter(self.salesforce.tables[sobject].values())

    def next_modstamp(self) -> str:
        """A SystemModstamp for a change made now; strictly after the last one handed out."""
        now = round(self.clock.now(), 3)
        if now <= self.salesforce.last_modstamp:
            now = round(self.salesforce.last_modstamp + 0.001, 3)
        self.salesforce.last_modstamp = now
        return sf_datetime(now)

    def insert_sf(self, sobject: str, values: dict[str, Any]) -> dict[str, Any]:
        """Insert a record as the platform would: new Id, audit fields set."""
        with self.lock:
            stamp = self.next_modstamp()
            record: dict[str, Any] = {name: None for name in SCHEMAS[sobject].fields}
            record.update(values)
            record["Id"] = record.get("Id") or self.salesforce.new_id(sobject)
            record["IsDeleted"] = False
            record["CreatedDate"] = record.get("CreatedDate") or stamp
            record["LastModifiedDate"] = stamp
            record["SystemModstamp"] = stamp
            self.salesforce.tables[sobject][record["Id"]] = record
            return record

    def update_sf(self, sobject: str, record_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Update fields and bump LastModifiedDate and SystemModstamp."""
        with self.lock:
            record = self.salesforce.tables[sobject][record_id]
            record.update(values)
            stamp = self.next_modstamp()
            record["LastModifiedDate"] = stamp
            record["SystemModstamp"] = stamp
            return record

    def delete_sf(self, sobject: str, record_id: str) -> None:
        """Soft-delete (recycle bin): visible to queryAll only."""
        with self.lock:
            record = self.salesforce.tables[sobject][record_id]
            record["IsDeleted"] = True
            stamp = self.next_modstamp()
            record["SystemModstamp"] = stamp
            record["LastModifiedDate"] = stamp
