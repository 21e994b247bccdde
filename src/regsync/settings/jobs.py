"""`[jobs]`: when the daemon runs what, and how the run lock behaves.

The defaults live in one file, ``default_schedule.toml`` beside this module (``jobs/schedule.toml``
at the top of the repository is a symlink to it). A ``[jobs]`` table in the user's config, or a
``--jobs-file``, overrides only the keys it names: the cadence table is merged job by job.

The cadence helpers live here with the model because validating a cadence needs them.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from regsync.settings.common import why_unreadable

DEFAULT_SCHEDULE = "default_schedule.toml"

# Every job regsync knows, in the order `main` runs its steps (main last). The registry checks
# that it implements exactly these.
JOB_NAMES: tuple[str, ...] = (
    "pull-registrations",
    "pull-checkfront",
    "sync",
    "submit-pending",
    "close-stale",
    "reconcile",
    "main",
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*([smhd]?)$", re.IGNORECASE)
_OFF = ("off", "never", "")


def packaged_defaults() -> dict[str, Any]:
    """The `[jobs]` table of the packaged default schedule."""
    text = resources.files("regsync.settings").joinpath(DEFAULT_SCHEDULE).read_text(encoding="utf-8")
    jobs: dict[str, Any] = tomllib.loads(text)["jobs"]
    return jobs


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, tables merged key by key (a copy; neither argument changes)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def job_name(name: str) -> str:
    """Canonical job name: `submit_pending` (environment variables cannot hold '-') is `submit-pending`."""
    return name.strip().lower().replace("_", "-")


def parse_cadence(spec: str) -> tuple[str, Any] | None:
    """("cron", "m h dom mon dow") | ("interval", seconds) | None for off; ValueError if unreadable."""
    text = " ".join(spec.split())
    if text.lower() in _OFF:
        return None
    every = _EVERY.match(text)
    if every:
        seconds = float(every[1]) * _UNITS[(every[2] or "s").lower()]
        if seconds < 1:
            raise ValueError(f"{spec!r}: an interval must be at least 1 second")
        return "interval", seconds
    if len(text.split(" ")) == 5:
        cron_fields(text)  # raises ValueError when a field is unreadable
        return "cron", text
    raise ValueError(
        f'{spec!r} is not a cadence: expected a 5-field crontab line ("*/15 * * * *"), '
        '"every <n>s|m|h|d" or "off"'
    )


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FULL_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _day_number(token: str) -> int:
    """0-7 as in cron (7 kept, so a range may end on Sunday), or a day name."""
    text = token.strip().lower()
    if text in _DAYS:
        return _DAYS.index(text)
    if text in _FULL_DAYS:
        return _FULL_DAYS.index(text)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise ValueError(f"day of week {token!r} is not 0-7 or sun..sat")


def crontab_days(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as day names APScheduler 3 reads the same way.

    APScheduler 3 counts 0 as Monday; handing it names instead of numbers keeps a line copied from
    a crontab meaning what it meant there ("1-5" = Monday to Friday, "*/2" = Sun, Tue, Thu, Sat).
    """
    if field.strip() == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        body, slash, step_text = part.partition("/")
        if slash and not step_text.isdigit():
            raise ValueError(f"day of week step {step_text!r} is not a number")
        step = int(step_text) if slash else 1
        if step < 1:
            raise ValueError("day of week step must be positive")
        if body.strip() == "*":
            first, last = 0, 6
        elif "-" in body:
            low, high = body.split("-", 1)
            first, last = _day_number(low), _day_number(high)
        else:
            first = _day_number(body)
            last = 6 if slash else first
        if last < first:
            raise ValueError(f"day of week range {body!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DAYS[day] for day in sorted(days))


def cron_fields(expr: str) -> dict[str, str]:
    """The CronTrigger keyword arguments of a crontab line (day of week as in cron, 0 = Sunday)."""
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, day_of_week = expr.split()
    fields = {
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": crontab_days(day_of_week),
    }
    CronTrigger(**fields, timezone="UTC")  # validates every field (raises ValueError)
    return fields


class JobSettings(BaseModel):
    """`[jobs]` of the config: the daemon's schedule, misfire handling and the run lock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str
    misfire_grace_s: int = Field(ge=1)
    coalesce: bool
    lock_lease_s: float = Field(ge=2)
    lock_heartbeat_s: float = Field(gt=0)
    lock_poll_s: float = Field(gt=0)
    reports_dir: Path
    report_format: Literal["csv", "html", "both"]
    cadence: dict[str, str]

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        """What the user wrote, over the packaged defaults (cadences merged job by job)."""
        if isinstance(data, JobSettings):
            return data
        if not isinstance(data, Mapping):
            return data
        given = dict(data)
        if isinstance(given.get("cadence"), Mapping):
            given["cadence"] = {job_name(k): v for k, v in given["cadence"].items()}
        return deep_merge(packaged_defaults(), given)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (expected an IANA name such as Europe/Paris)"
            ) from None
        return value

    @field_validator("cadence")
    @classmethod
    def _cadences(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(JOB_NAMES))
        if unknown:
            raise ValueError(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(JOB_NAMES)}")
        for name, spec in value.items():
            try:
                parse_cadence(spec)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> JobSettings:
        if self.lock_heartbeat_s * 2 > self.lock_lease_s:
            raise ValueError(
                f"lock_heartbeat_s ({self.lock_heartbeat_s:g}) must be at most half of lock_lease_s "
                f"({self.lock_lease_s:g}), or a live holder could lose its lease between two beats"
            )
        return self

    def scheduled(self) -> dict[str, tuple[str, Any]]:
        """Job -> parsed cadence, for the jobs that are not off, in JOB_NAMES order."""
        found: dict[str, tuple[str, Any]] = {}
        for name in JOB_NAMES:
            parsed = parse_cadence(self.cadence.get(name, "off"))
            if parsed is not None:
                found[name] = parsed
        return found


def read_jobs_file(path: Path) -> dict[str, Any]:
    """The `[jobs]` table of a TOML file (a whole config or a schedule file); ValueError if unusable."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:  # missing, a directory, no permission: said, not a traceback
        raise ValueError(f"jobs file {path} {why_unreadable(exc, 'a TOML file')}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"jobs file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"jobs file {path} is not valid TOML: not UTF-8 text ({exc.reason})") from None
    table = data.get("jobs")
    if not isinstance(table, dict):
        raise ValueError(f"jobs file {path} has no [jobs] table")
    return table
