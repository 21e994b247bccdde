"""The words of docs/rules.md defined once: statuses, reason codes and threshold defaults.

Planner, reconciliation, normalizers, generator truth and the config all take these values from
here, so a status or a default is never spelled twice. Only values live here, never logic: the
generator's truth (regsync.sandbox.generator.truth.compute_truth) must stay an independent reading of
docs/rules.md and shares nothing else with the SQL rules or the planner.
"""

from __future__ import annotations

from typing import Final

# Registration statuses (Event Registration Submission Status picklist).
DRAFT: Final = "Draft"
TO_PROCESS: Final = "To Process"
COMPLETED: Final = "Completed"
FAILED: Final = "Failed"
REGISTRATION_STATUSES: Final = (DRAFT, TO_PROCESS, COMPLETED, FAILED)
# Still in progress: such a registration protects its booking session (until stale_draft_s).
IN_PROGRESS_STATUSES: Final = (DRAFT, TO_PROCESS)
# The one status a pending registration (submit) has.
PENDING_STATUS: Final = DRAFT

# Booking statuses no registration is expected for (never BOOKING_WITHOUT_REGISTRATION).
UNTRACKED_BOOKING_STATUSES: Final = ("VOID", "STOP")

# The reason codes of docs/rules.md, in report order. regsync.reconcile.rules declares one rule per
# code in this order (its CODES is this tuple); the [reconcile] settings check severity overrides
# against it without loading the rules.
REASON_CODES: Final = (
    "BOOKING_SESSION_MISSING",
    "BOOKING_WITHOUT_REGISTRATION",
    "ATTENDEE_COUNT_MISMATCH",
    "ATTENDEE_SESSIONS_MISMATCH",
    "COMPLETED_BOOKING_UNPAID",
    "DRAFT_BOOKING_PAID",
    "DUPLICATE_REGISTRATION",
    "AMOUNT_MISMATCH",
    "STALE_DRAFT",
    "BOOKING_CODE_MISSING",
    "BOOKING_NOT_FOUND",
    "DUPLICATE_BOOKING_CODE",
    "REGISTRATION_PARTLY_READ",
)

# Threshold defaults (seconds unless named otherwise); configured in [rules] / [reconcile].
IN_FLIGHT_S: Final = 900
CONFIRMED_STATUSES: Final = ("PAID", "PART")
STALE_SESSION_TTL_S: Final = 21600
OVERDUE_S: Final = 86400
STALE_DRAFT_S: Final = 604800
AMOUNT_TOLERANCE: Final = "0.01"  # a decimal string: read exactly

# Salesforce currency fields hold up to 16 integer digits (18 digits, 2 after the point).
SF_CURRENCY_LIMIT: Final = "1e16"

# The parts of a registration that may be unreadable while it is still kept (docs/rules.md,
# "Partly read registrations"); identity (Id, IsDeleted, Status, dates) is never one of them.
ATTENDEES: Final = "attendees"
AMOUNT: Final = "amount"
BOOKING_CODE: Final = "booking_code"
BOOKING_SESSION: Final = "booking_session"
OTHER: Final = "other"
PARTS: Final = (ATTENDEES, AMOUNT, BOOKING_CODE, BOOKING_SESSION, OTHER)


def booking_code_key(code: str | None) -> str | None:
    """A booking code as both sides are matched by: trimmed, upper-cased; blank is no code."""
    if code is None:
        return None
    key = code.strip().upper()
    return key or None
