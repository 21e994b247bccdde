"""Value types shared by several settings sections."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _booking_statuses(value: tuple[str, ...]) -> tuple[str, ...]:
    statuses = tuple(dict.fromkeys(status.strip().upper() for status in value if status.strip()))
    if not statuses:
        raise ValueError("name at least one booking status")
    return statuses


# A configured list of Checkfront booking status ids: upper-cased, blanks and repeats dropped, not empty.
BookingStatuses = Annotated[tuple[str, ...], AfterValidator(_booking_statuses)]
