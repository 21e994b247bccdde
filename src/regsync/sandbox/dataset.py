"""Sandbox dataset files (docs/dataset.md): saved and reloaded state, shifted so ages survive restarts."""

from __future__ import annotations

import io
import itertools
import mmap
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from regsync.errors import RegsyncError
from regsync.sandbox.store import SCHEMAS, SandboxStore

FORMAT = "regsync-sandbox-dataset"
VERSION = 1
DEFAULT_SESSION_TTL_S = 30 * 24 * 3600

# Timestamps of the Checkfront side (epoch seconds) that a shift moves. Calendar data (event and
# line dates, SLIPs, booking start/end dates) is not a timestamp and stays as it is.
CF_SESSION_TIMES = ("created", "modified", "ended")
CF_BOOKING_TIMES = ("created_date", "last_modified")


class DatasetError(RegsyncError, ValueError):
    """A dataset file that cannot be used; the message says which file and what is wrong."""


@dataclass(frozen=True)
class DatasetInfo:
    """What `load_dataset` loaded."""

    path: Path
    version: int
    anchor: float  # epoch seconds the file's timestamps were written against
    shift_s: int  # seconds added to every timestamp on load (0 without shift_to_now)
    generator: dict[str, Any] | None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class DatasetSource:
    """Records to write without holding a SandboxStore: any iterables, consumed once, in order."""

    anchor: float
    salesforce: Mapping[str, Iterable[dict[str, Any]]]
    items: Iterable[dict[str, Any]] = ()
    booking_sessions: Iterable[dict[str, Any]] = ()
    bookings: Iterable[dict[str, Any]] = ()
    session_ttl_s: float = DEFAULT_SESSION_TTL_S
    generator: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------
# Fast Salesforce datetimes in integer milliseconds (millions of them per load or generation)
# ---------------------------------------------------------------------------------------------

_EPOCH_DATE = date(1970, 1, 1)
_DAY_MS = 86_400_000
_DAY_PREFIX: dict[int, str] = {}
_DAY_NUMBER: dict[str, int] = {}


def _day_prefix(day: int) -> str:
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = (_EPOCH_DATE + timedelta(days=day)).isoformat() + "T"
        _DAY_PREFIX[day] = prefix
    return prefix


_CLOCK: list[str] = []  # "HH:MM:SS." for each second of a day, built on first use
_MILLIS = tuple(f"{milli:03d}+0000" for milli in range(1000))


def format_ms(ms: int) -> str:
    """``2024-05-01T12:34:56.789+0000`` for epoch milliseconds (same text as `store.sf_datetime`)."""
    if not _CLOCK:
        _CLOCK.extend(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(86400))
    day, rem = divmod(ms, _DAY_MS)
    prefix = _DAY_PREFIX.get(day) or _day_prefix(day)
    return prefix + _CLOCK[rem // 1000] + _MILLIS[rem % 1000]


def parse_ms(value: str) -> int:
    """Epoch milliseconds of a Salesforce datetime; ValueError for anything else."""
    if (
        len(value) == 28
        and value[10] == "T"
        and value[13] == ":"
        and value[16] == ":"
        and value[19] == "."
        and value.endswith("+0000")
    ):
        day = _DAY_NUMBER.get(value[:10])
        if day is None:
            day = (date.fromisoformat(value[:10]) - _EPOCH_DATE).days
            _DAY_NUMBER[value[:10]] = day
        return (
            day * _DAY_MS
            + int(value[11:13]) * 3_600_000
            + int(value[14:16]) * 60_000
            + int(value[17:19]) * 1000
            + int(value[20:23])
        )
    # Other ISO-8601 spellings of a user-written file (``Z``, ``+01:00``, no fraction).
    moment = datetime.fromisoformat(value.replace("+0000", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"datetime without a time zone: {value!r}")
    return round(moment.timestamp() * 1000)


def format_anchor(epoch: float) -> str:
    """The anchor as ISO-8601 UTC: ``2026-01-01T00:00:00Z`` (milliseconds only when not zero)."""
    ms = round(epoch * 1000)
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def parse_anchor(value: str) -> float:
    """Epoch seconds of an ISO-8601 UTC datetime such as ``2026-01-01T00:00:00Z``."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("no time zone (write e.g. 2026-01-01T00:00:00Z)")
    return moment.timestamp()


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------

_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS


def _source_of(store: SandboxStore, anchor: float | None, generator: dict[str, Any] | None) -> DatasetSource:
    cf = store.checkfront
    return DatasetSource(
        anchor=store.clock.now() if anchor is None else anchor,
        salesforce={name: store.salesforce.tables[name].values() for name in SCHEMAS},
        items=cf.items.values(),
        booking_sessions=cf.booking_sessions.values(),
        bookings=cf.bookings.values(),
        session_ttl_s=cf.session_ttl_s,
        generator=generator,
    )


def _write_array(out: io.BufferedWriter, records: Iterable[Any]) -> None:
    """``[`` then one record per line, then ``]``: valid JSON that diffs and greps well."""
    dumps = orjson.dumps
    out.write(b"[")
    first = True
    for record in records:
        out.write(b"\n" if first else b",\n")
        out.write(dumps(record, option=_DUMP_OPTIONS))
        first = False
    out.write(b"\n]" if not first else b"]")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def save_dataset(
    store_or_stream: SandboxStore | DatasetSource,
    path: Path | str,
    *,
    anchor: float | None = None,
    generator: dict[str, Any] | None = None,
) -> Path:
    """Write a dataset file record by record (bounded extra memory), owner-only, atomically.

    A SandboxStore is written under its lock, with `anchor` defaulting to the store's clock (its
    timestamps are relative to now); a DatasetSource carries its own anchor and generator block.
    """
    path = Path(path)
    if isinstance(store_or_stream, SandboxStore):
        with store_or_stream.lock:
            _write(_source_of(store_or_stream, anchor, generator), path)
    else:
        _write(store_or_stream, path)
    return path


def _write(source: DatasetSource, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    mode = stat.S_IRUSR | stat.S_IWUSR
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with io.BufferedWriter(io.FileIO(fd, "wb"), buffer_size=1 << 20) as out:
            head = {
                "format": FORMAT,
                "version": VERSION,
                "anchor": format_anchor(source.anchor),
                "generator": source.generator,
            }
            out.write(orjson.dumps(head)[:-1])  # the object stays open
            out.write(b',\n"salesforce":{')
            for index, name in enumerate(source.salesforce):
                out.write(b"\n" if index == 0 else b",\n")
                out.write(orjson.dumps(name) + b":")
                _write_array(out, source.salesforce[name])
            out.write(b'},\n"checkfront":{"session_ttl_s":')
            out.write(orjson.dumps(_number(source.session_ttl_s)))
            for key, records in (
                ("items", source.items),
                ("booking_sessions", source.booking_sessions),
                ("bookings", source.bookings),
            ):
                out.write(f',\n"{key}":'.encode())
                _write_array(out, records)
            out.write(b"}}\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(path, mode)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    """Parse the whole file; a memory map keeps the raw bytes out of the Python heap."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise DatasetError(f"{path}: the file is empty, not a dataset")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return orjson.loads(view)
                finally:
                    view.release()
    except orjson.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the dataset ({exc.strerror or exc})") from None


class _Shifter:
    """Moves Salesforce datetime strings by whole seconds; equal inputs share one output string."""

    def __init__(self, shift_s: int) -> None:
        self.shift_ms = shift_s * 1000
        self.cache: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        out = self.cache.get(value)
        if out is None:
            out = format_ms(parse_ms(value) + self.shift_ms)
            if len(self.cache) < 4_000_000:
                self.cache[value] = out
        return out


def _id_number(record_id: str, key_prefix: str) -> int | None:
    """The counter inside an id minted by `store.make_sf_id` for this prefix, or None."""
    if not record_id.startswith(key_prefix + "0U"):
        return None
    number = 0
    for char in record_id[5:15]:
        digit = _BASE62_VALUE.get(char)
        if digit is None:
            return None
        number = number * 62 + digit
    return number


_BASE62_VALUE = {
    char: value for value, char in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
}


def _load_salesforce(
    path: Path, section: Any, shifter: _Shifter
) -> tuple[dict[str, dict[str, dict[str, Any]]], int, dict[str, int]]:
    if not isinstance(section, dict):
        raise DatasetError(f"{path}: 'salesforce' must be an object of record lists by object name")
    unknown = sorted(set(section) - set(SCHEMAS))
    if unknown:
        raise DatasetError(f"{path}: salesforce: unknown object {unknown[0]!r} (known: {', '.join(SCHEMAS)})")
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    max_stamp = ""
    next_numbers: dict[str, int] = {}
    for name, schema in SCHEMAS.items():
        records = section.get(name, [])
        where = f"{path}: salesforce.{name}"
        if not isinstance(records, list):
            raise DatasetError(f"{where} must be a list of records")
        fields = schema.fields
        field_set = set(fields)
        datetimes = [f for f, kind in fields.items() if kind == "datetime"]
        table: dict[str, dict[str, Any]] = {}
        max_id = ""
        for index, record in enumerate(records):
            if type(record) is not dict:
                raise DatasetError(f"{where}[{index}] must be an object")
            if record.keys() != field_set:
                extra = sorted(record.keys() - field_set)
                if extra:
                    raise DatasetError(f"{where}[{index}]: unknown field {extra[0]!r}")
                for missing in fields:  # absent fields are null, in schema order
                    record.setdefault(missing, None)
            record_id = record["Id"]
            if not isinstance(record_id, str) or len(record_id) != 18 or not record_id.isalnum():
                raise DatasetError(f"{where}[{index}]: Id {record_id!r} is not an 18-character id")
            if record_id in table:
                raise DatasetError(f"{where}[{index}]: duplicate Id {record_id}")
            if record["IsDeleted"] is None:
                record["IsDeleted"] = False
            for name_dt in datetimes:
                value = record[name_dt]
                if value is None:
                    continue
                try:
                    record[name_dt] = shifter(value)
                except (TypeError, ValueError):
                    raise DatasetError(
                        f"{where}[{index}] ({record_id}): {name_dt} {value!r} is not a datetime "
                        "like 2024-05-01T12:34:56.000+0000"
                    ) from None
            stamp = record["SystemModstamp"]
            if stamp is not None and stamp > max_stamp:
                max_stamp = stamp
            if record_id > max_id and record_id.startswith(schema.key_prefix + "0U"):
                max_id = record_id
            table[record_id] = record
        tables[name] = table
        next_numbers[name] = (_id_number(max_id, schema.key_prefix) or 0) + 1
    max_ms = parse_ms(max_stamp) if max_stamp else 0
    return tables, max_ms, next_numbers


def _require_number(where: str, record: dict[str, Any], key: str, *, optional: bool = False) -> None:
    value = record.get(key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"{where}: {key} must be epoch seconds, not {value!r}")


def _load_checkfront(
    path: Path, section: Any, shift_s: int
) -> tuple[dict[int, Any], dict[str, Any], dict[int, Any], float]:
    if not isinstance(section, dict):
        raise DatasetError(f"{path}: 'checkfront' must be an object")
    ttl = section.get("session_ttl_s", DEFAULT_SESSION_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise DatasetError(f"{path}: checkfront.session_ttl_s must be a positive number of seconds")
    lists = {}
    for key in ("items", "booking_sessions", "bookings"):
        value = section.get(key, [])
        if not isinstance(value, list):
            raise DatasetError(f"{path}: checkfront.{key} must be a list")
        lists[key] = value
    items: dict[int, Any] = {}
    for index, item in enumerate(lists["items"]):
        where = f"{path}: checkfront.items[{index}]"
        if type(item) is not dict:
            raise DatasetError(f"{where} must be an object")
        item_id = item.get("item_id")
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise DatasetError(f"{where}: item_id must be an integer, not {item_id!r}")
        if item_id in items:
            raise DatasetError(f"{where}: duplicate item_id {item_id}")
        items[item_id] = item
    sessions: dict[str, Any] = {}
    for index, session in enumerate(lists["booking_sessions"]):
        where = f"{path}: checkfront.booking_sessions[{index}]"
        if type(session) is not dict:
            raise DatasetError(f"{where} must be an object")
        session_id = session.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise DatasetError(f"{where}: id must be a non-empty string, not {session_id!r}")
        if session_id in sessions:
            raise DatasetError(f"{where}: duplicate id {session_id}")
        _require_number(where, session, "created")
        _require_number(where, session, "modified")
        _require_number(where, session, "ended", optional=True)
        if not isinstance(session.setdefault("lines", {}), dict):
            raise DatasetError(f"{where}: lines must be an object keyed by line id")
        session.setdefault("booking_code", None)
        session.setdefault("ended", None)
        if shift_s:
            for key in CF_SESSION_TIMES:
                if session[key] is not None:
                    session[key] += shift_s
        sessions[session_id] = session
    bookings: dict[int, Any] = {}
    for index, booking in enumerate(lists["bookings"]):
        where = f"{path}: checkfront.bookings[{index}]"
        if type(booking) is not dict:
            raise DatasetError(f"{where} must be an object")
        booking_id = booking.get("booking_id")
        if isinstance(booking_id, bool) or not isinstance(booking_id, int):
            raise DatasetError(f"{where}: booking_id must be an integer, not {booking_id!r}")
        if booking_id in bookings:
            raise DatasetError(f"{where}: duplicate booking_id {booking_id}")
        if not isinstance(booking.get("code"), str) or not isinstance(booking.get("status_id"), str):
            raise DatasetError(f"{where}: code and status_id must be strings")
        _require_number(where, booking, "created_date")
        _require_number(where, booking, "last_modified", optional=True)
        if not isinstance(booking.setdefault("lines", []), list):
            raise DatasetError(f"{where}: lines must be a list")
        if shift_s:
            for key in CF_BOOKING_TIMES:
                if booking.get(key) is not None:
                    booking[key] += shift_s
        bookings[booking_id] = booking
    return items, sessions, bookings, float(ttl)


def load_dataset(path: Path | str, store: SandboxStore, *, shift_to_now: bool = True) -> DatasetInfo:
    """Replace the store's contents with a dataset file, validated (DatasetError says what is wrong).

    With `shift_to_now` every timestamp moves by (now - anchor), whole seconds, so ages relative to
    the store's clock are the ages the file was written with.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f'{path}: expected a JSON object with "format": "{FORMAT}"')
    if data.get("format") != FORMAT:
        raise DatasetError(
            f"{path}: not a regsync sandbox dataset (format is {data.get('format')!r}, expected {FORMAT!r})"
        )
    version = data.get("version")
    if version != VERSION:
        raise DatasetError(
            f"{path}: dataset version {version!r} is not supported (this regsync reads version {VERSION})"
        )
    for section in ("anchor", "salesforce", "checkfront"):
        if section not in data:
            raise DatasetError(f"{path}: missing section {section!r}")
    try:
        anchor = parse_anchor(data["anchor"])
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path}: anchor {data['anchor']!r} is not an ISO-8601 UTC datetime ({exc})"
        ) from None
    generator = data.get("generator")
    if generator is not None and not isinstance(generator, dict):
        raise DatasetError(f"{path}: 'generator' must be an object or null")
    shift_s = round(store.clock.now() - anchor) if shift_to_now else 0
    tables, max_stamp_ms, next_numbers = _load_salesforce(path, data["salesforce"], _Shifter(shift_s))
    items, sessions, bookings, ttl = _load_checkfront(path, data["checkfront"], shift_s)
    del data
    with store.lock:
        sf = store.salesforce
        for name, table in tables.items():
            sf.tables[name].clear()
            sf.tables[name].update(table)
            sf.counters[name] = itertools.count(next_numbers[name])
        sf.last_modstamp = max_stamp_ms / 1000
        cf = store.checkfront
        cf.items.clear()
        cf.items.update(items)
        cf.booking_sessions.clear()
        cf.booking_sessions.update(sessions)
        cf.bookings.clear()
        cf.bookings.update(bookings)
        cf.session_ttl_s = ttl
    counts = {name: len(table) for name, table in tables.items()}
    counts.update(items=len(items), booking_sessions=len(sessions), bookings=len(bookings))
    return DatasetInfo(path, VERSION, anchor, shift_s, generator, counts)
