"""Sandbox dataset files (docs/dataset.md): saved and reloaded state, shifted so ages survive restarts."""

from __future__ import annotations

import functools
import io
import itertools
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

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


def _write_array(out: BinaryIO, records: Iterable[Any]) -> None:
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

_ARRAY_OPEN = re.compile(rb'"([A-Za-z0-9_]+)":\[')
_CF_ARRAYS = ("items", "booking_sessions", "bookings")
_BASE62_VALUE = {
    char: value for value, char in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
}


class _NotStreamable(Exception):
    """The file is not laid out one record per line as `save_dataset` writes it."""


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


def _require_number(where: str, record: dict[str, Any], key: str, *, optional: bool = False) -> None:
    value = record.get(key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"{where}: {key} must be epoch seconds, not {value!r}")


def _check_header(path: Path, data: Any) -> tuple[float, dict[str, Any] | None]:
    """(anchor, generator block) of the top-level object, or DatasetError naming the problem."""
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
    if "anchor" not in data:
        raise DatasetError(f"{path}: missing section 'anchor'")
    try:
        anchor = parse_anchor(data["anchor"])
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path}: anchor {data['anchor']!r} is not an ISO-8601 UTC datetime ({exc})"
        ) from None
    generator = data.get("generator")
    if generator is not None and not isinstance(generator, dict):
        raise DatasetError(f"{path}: 'generator' must be an object or null")
    return anchor, generator


class _Loader:
    """Validates records one by one and builds the tables, whichever way the file is read."""

    def __init__(self, path: Path, anchor: float, generator: dict[str, Any] | None, shift_s: int) -> None:
        self.path = path
        self.anchor = anchor
        self.generator = generator
        self.shift_s = shift_s
        self.shifter = _Shifter(shift_s)
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMAS}
        self.max_ids = dict.fromkeys(SCHEMAS, "")
        self.max_stamp = ""
        self.items: dict[int, Any] = {}
        self.sessions: dict[str, Any] = {}
        self.bookings: dict[int, Any] = {}
        self.session_ttl_s: float = DEFAULT_SESSION_TTL_S
        # Presized record templates (a dict grown key by key takes a third more memory) and one
        # shared string per distinct picklist or low-cardinality reference value.
        self.templates = {name: dict.fromkeys(schema.fields) for name, schema in SCHEMAS.items()}
        self.interned: dict[str, dict[Any, Any]] = {}
        self.intern_fields = {
            name: [
                field
                for field, kind in schema.fields.items()
                if kind == "picklist" or field in ("conference360__Event__c", "conference360__Session__c")
            ]
            for name, schema in SCHEMAS.items()
        }
        self.datetime_fields = {
            name: [field for field, kind in schema.fields.items() if kind == "datetime"]
            for name, schema in SCHEMAS.items()
        }

    # -- sinks: (index, record) of one array
    def sink(self, section: str, key: str) -> Callable[[int, Any], None] | None:
        if section == "salesforce":
            if key not in SCHEMAS:
                raise DatasetError(
                    f"{self.path}: salesforce: unknown object {key!r} (known: {', '.join(SCHEMAS)})"
                )
            return functools.partial(self.sf_record, key)
        return {
            "items": self.cf_item,
            "booking_sessions": self.cf_session,
            "bookings": self.cf_booking,
        }.get(key)

    def sf_record(self, name: str, index: int, parsed: Any) -> None:
        where = f"{self.path}: salesforce.{name}[{index}]"
        if type(parsed) is not dict:
            raise DatasetError(f"{where} must be an object")
        template = self.templates[name]
        record = template.copy()
        record.update(parsed)  # absent fields stay null; fields keep the schema's order
        if len(record) != len(template):
            extra = sorted(parsed.keys() - template.keys())
            raise DatasetError(f"{where}: unknown field {extra[0]!r}")
        record_id = record["Id"]
        if not isinstance(record_id, str) or len(record_id) != 18 or not record_id.isalnum():
            raise DatasetError(f"{where}: Id {record_id!r} is not an 18-character id")
        table = self.tables[name]
        if record_id in table:
            raise DatasetError(f"{where}: duplicate Id {record_id}")
        if record["IsDeleted"] is None:
            record["IsDeleted"] = False
        for field_name in self.datetime_fields[name]:
            value = record[field_name]
            if value is None:
                continue
            try:
                record[field_name] = self.shifter(value)
            except (TypeError, ValueError):
                raise DatasetError(
                    f"{where} ({record_id}): {field_name} {value!r} is not a datetime "
                    "like 2024-05-01T12:34:56.000+0000"
                ) from None
        for field_name in self.intern_fields[name]:
            value = record[field_name]
            if type(value) is str:
                record[field_name] = self.interned.setdefault(field_name, {}).setdefault(value, value)
        stamp = record["SystemModstamp"]
        if stamp is not None and stamp > self.max_stamp:
            self.max_stamp = stamp
        if record_id > self.max_ids[name]:
            self.max_ids[name] = record_id
        table[record_id] = record

    def cf_item(self, index: int, item: Any) -> None:
        where = f"{self.path}: checkfront.items[{index}]"
        if type(item) is not dict:
            raise DatasetError(f"{where} must be an object")
        item_id = item.get("item_id")
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise DatasetError(f"{where}: item_id must be an integer, not {item_id!r}")
        if item_id in self.items:
            raise DatasetError(f"{where}: duplicate item_id {item_id}")
        self.items[item_id] = item

    def cf_session(self, index: int, session: Any) -> None:
        where = f"{self.path}: checkfront.booking_sessions[{index}]"
        if type(session) is not dict:
            raise DatasetError(f"{where} must be an object")
        session_id = session.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise DatasetError(f"{where}: id must be a non-empty string, not {session_id!r}")
        if session_id in self.sessions:
            raise DatasetError(f"{where}: duplicate id {session_id}")
        _require_number(where, session, "created")
        _require_number(where, session, "modified")
        _require_number(where, session, "ended", optional=True)
        if not isinstance(session.setdefault("lines", {}), dict):
            raise DatasetError(f"{where}: lines must be an object keyed by line id")
        session.setdefault("booking_code", None)
        session.setdefault("ended", None)
        if self.shift_s:
            for key in CF_SESSION_TIMES:
                if session[key] is not None:
                    session[key] += self.shift_s
        self.sessions[session_id] = session

    def cf_booking(self, index: int, booking: Any) -> None:
        where = f"{self.path}: checkfront.bookings[{index}]"
        if type(booking) is not dict:
            raise DatasetError(f"{where} must be an object")
        booking_id = booking.get("booking_id")
        if isinstance(booking_id, bool) or not isinstance(booking_id, int):
            raise DatasetError(f"{where}: booking_id must be an integer, not {booking_id!r}")
        if booking_id in self.bookings:
            raise DatasetError(f"{where}: duplicate booking_id {booking_id}")
        status = booking.get("status_id")
        if not isinstance(booking.get("code"), str) or not isinstance(status, str):
            raise DatasetError(f"{where}: code and status_id must be strings")
        booking["status_id"] = self.interned.setdefault("status_id", {}).setdefault(status, status)
        _require_number(where, booking, "created_date")
        _require_number(where, booking, "last_modified", optional=True)
        if not isinstance(booking.setdefault("lines", []), list):
            raise DatasetError(f"{where}: lines must be a list")
        if self.shift_s:
            for key in CF_BOOKING_TIMES:
                if booking.get(key) is not None:
                    booking[key] += self.shift_s
        self.bookings[booking_id] = booking

    # -- the parts of the document that are not record lists
    def sections(self, data: dict[str, Any], *, with_records: bool) -> None:
        """Check the 'salesforce' and 'checkfront' sections (and feed their records if asked)."""
        for section in ("salesforce", "checkfront"):
            if section not in data:
                raise DatasetError(f"{self.path}: missing section {section!r}")
        salesforce = data["salesforce"]
        if not isinstance(salesforce, dict):
            raise DatasetError(f"{self.path}: 'salesforce' must be an object of record lists by object name")
        for name, records in salesforce.items():
            sink = self.sink("salesforce", name)
            if not isinstance(records, list):
                raise DatasetError(f"{self.path}: salesforce.{name} must be a list of records")
            if with_records and sink is not None:
                for index, record in enumerate(records):
                    sink(index, record)
        checkfront = data["checkfront"]
        if not isinstance(checkfront, dict):
            raise DatasetError(f"{self.path}: 'checkfront' must be an object")
        ttl = checkfront.get("session_ttl_s", DEFAULT_SESSION_TTL_S)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise DatasetError(f"{self.path}: checkfront.session_ttl_s must be a positive number of seconds")
        self.session_ttl_s = float(ttl)
        for key in _CF_ARRAYS:
            records = checkfront.get(key, [])
            if not isinstance(records, list):
                raise DatasetError(f"{self.path}: checkfront.{key} must be a list")
            sink = self.sink("checkfront", key)
            if with_records and sink is not None:
                for index, record in enumerate(records):
                    sink(index, record)

    def install(self, store: SandboxStore) -> DatasetInfo:
        next_numbers = {
            name: (_id_number(self.max_ids[name], schema.key_prefix) or 0) + 1
            for name, schema in SCHEMAS.items()
        }
        with store.lock:
            sf = store.salesforce
            for name, table in self.tables.items():
                sf.tables[name].clear()
                sf.tables[name].update(table)
                sf.counters[name] = itertools.count(next_numbers[name])
            sf.last_modstamp = parse_ms(self.max_stamp) / 1000 if self.max_stamp else 0.0
            cf = store.checkfront
            pairs: tuple[tuple[dict[Any, Any], dict[Any, Any]], ...] = (
                (self.items, cf.items),
                (self.sessions, cf.booking_sessions),
                (self.bookings, cf.bookings),
            )
            for mine, theirs in pairs:
                theirs.clear()
                theirs.update(mine)
            cf.session_ttl_s = self.session_ttl_s
        counts = {name: len(table) for name, table in self.tables.items()}
        counts.update(items=len(self.items), booking_sessions=len(self.sessions), bookings=len(self.bookings))
        return DatasetInfo(self.path, VERSION, self.anchor, self.shift_s, self.generator, counts)


def _stream(path: Path, now: float, shift_to_now: bool) -> _Loader:
    """Read a file as `save_dataset` lays it out: header line, then one record per line.

    Only a small skeleton (the file without its record lines) is parsed as a whole, so memory
    stays at the records themselves. Raises _NotStreamable for any other layout.
    """
    with path.open("rb") as handle:
        first = handle.readline().rstrip(b"\r\n")
        if not first.startswith(b'{"format":') or not first.endswith(b","):
            raise _NotStreamable
        try:
            head = orjson.loads(first[:-1] + b"}")
        except orjson.JSONDecodeError:
            raise _NotStreamable from None
        anchor, generator = _check_header(path, head)
        loader = _Loader(path, anchor, generator, round(now - anchor) if shift_to_now else 0)
        skeleton = [first]
        section = ""
        sink: Callable[[int, Any], None] | None = None
        in_array = False
        index = 0
        loads = orjson.loads
        for raw in handle:
            line = raw.rstrip(b"\r\n")
            if in_array and line[:1] == b"{":
                try:
                    record = loads(line[:-1] if line[-1:] == b"," else line)
                except orjson.JSONDecodeError:
                    raise _NotStreamable from None
                if sink is not None:
                    sink(index, record)
                index += 1
                continue
            skeleton.append(line)
            if in_array:
                if line[:1] != b"]":
                    raise _NotStreamable
                in_array = False
            elif line.startswith(b'"salesforce":{'):
                section = "salesforce"
            elif line.startswith(b'"checkfront":{'):
                section = "checkfront"
            match = _ARRAY_OPEN.fullmatch(line)
            if match is not None and not in_array:
                sink = loader.sink(section, match.group(1).decode())
                in_array, index = True, 0
    try:
        document = orjson.loads(b"\n".join(skeleton))
    except orjson.JSONDecodeError:
        raise _NotStreamable from None
    loader.sections(document, with_records=False)
    return loader


def _parse_whole(path: Path, now: float, shift_to_now: bool) -> _Loader:
    """Any other valid JSON layout: parsed whole by the standard library (memory: file + objects)."""
    try:
        with path.open("rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the dataset ({exc.strerror or exc})") from None
    if not text.strip():
        raise DatasetError(f"{path}: the file is empty, not a dataset")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    del text
    anchor, generator = _check_header(path, data)
    loader = _Loader(path, anchor, generator, round(now - anchor) if shift_to_now else 0)
    loader.sections(data, with_records=True)
    return loader


def load_dataset(path: Path | str, store: SandboxStore, *, shift_to_now: bool = True) -> DatasetInfo:
    """Replace the store's contents with a dataset file, validated (DatasetError says what is wrong).

    With `shift_to_now` every timestamp moves by (now - anchor), whole seconds, so ages relative to
    the store's clock are the ages the file was written with.
    """
    path = Path(path)
    now = store.clock.now()
    try:
        loader = _stream(path, now, shift_to_now)
    except _NotStreamable:
        loader = _parse_whole(path, now, shift_to_now)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the dataset ({exc.strerror or exc})") from None
    return loader.install(store)
