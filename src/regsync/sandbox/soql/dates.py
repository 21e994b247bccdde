"""SOQL date literals: the words Salesforce knows, and the day ranges of those the sandbox answers."""

from __future__ import annotations

import re
from datetime import date, timedelta

# Every date literal word Salesforce knows: the parser refuses by name those the sandbox lacks.
_DATE_LITERAL = re.compile(
    r"(YESTERDAY|TODAY|TOMORROW|(LAST|THIS|NEXT)_(WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER|FISCAL_YEAR)"
    r"|LAST_90_DAYS|NEXT_90_DAYS|(LAST|NEXT)_N_\w+|N_\w+_AGO)",
    re.IGNORECASE,
)


# The date literals the sandbox answers (Salesforce's "Date Formats and Date Literals in WHERE"):
# each is a range of whole days [start, end) in the user's time zone (UTC in the sandbox).
_DATE_RANGE = "date_range"
_RELATIVE_DAYS = ("TODAY", "YESTERDAY", "TOMORROW", "THIS_MONTH", "LAST_MONTH", "NEXT_MONTH")
_N_DAYS = ("LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO")


def date_literal_range(literal: str, today: date) -> tuple[date, date]:
    """[start, end) of a date literal relative to `today`, as Salesforce documents them: TODAY is
    today from 00:00 for 24 hours; LAST_N_DAYS:n starts n days ago and includes today (":1" is
    yesterday and today); NEXT_N_DAYS:n starts tomorrow and lasts n days (not today); N_DAYS_AGO:n
    is the one day n days ago; THIS_MONTH, LAST_MONTH and NEXT_MONTH are whole calendar months."""
    word, _, amount = literal.partition(":")
    n = int(amount or 0)
    day = timedelta(days=1)
    if word == "TODAY":
        return today, today + day
    if word == "YESTERDAY":
        return today - day, today
    if word == "TOMORROW":
        return today + day, today + 2 * day
    if word == "LAST_N_DAYS":
        return today - n * day, today + day
    if word == "NEXT_N_DAYS":
        return today + day, today + (n + 1) * day
    if word == "N_DAYS_AGO":
        return today - n * day, today - (n - 1) * day
    first = today.replace(day=1)
    if word == "LAST_MONTH":
        first = (first - day).replace(day=1)
    elif word == "NEXT_MONTH":
        first = (first + 32 * day).replace(day=1)
    return first, (first + 32 * day).replace(day=1)
