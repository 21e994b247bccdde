"""Column types that mean the same on SQLite and PostgreSQL: aware UTC datetimes, exact money."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_CENT = Decimal("0.01")
# SQLAlchemy's SQLite DATETIME storage format (its default), and the same written positionally.
_SQLITE_STORAGE = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """process_bind_param then SQLite DATETIME's own formatting, fused: the same text, one call."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    value = value.astimezone(UTC)
    return _SQLITE_DATETIME % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


@functools.lru_cache(maxsize=4096)  # a report's rows share a few first_seen / last_seen times
def _sqlite_utc_moment(text: str) -> datetime:
    """SQLite DATETIME's parsing then process_result_value, fused: the aware UTC moment of the text."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _sqlite_utc_result(value: str | None) -> datetime | None:
    return None if value is None else _sqlite_utc_moment(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def _sqlite_text(self, dialect: Dialect) -> bool:
        """SQLite with SQLAlchemy's default DATETIME text, the format the fused processors assume."""
        return (
            dialect.name == "sqlite"
            and getattr(self.impl_instance, "_storage_format", None) == _SQLITE_STORAGE
        )

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, the naive UTC text in one step (every datetime written or compared passes here)."""
        if self._sqlite_text(dialect):
            return _sqlite_utc_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """On SQLite, the stored text to an aware UTC datetime in one step (and once per distinct text)."""
        if self._sqlite_text(dialect):
            return _sqlite_utc_result
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Exact money: Decimal in Python, integer cents in the database (exact and fast on both)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return _cents(value)

    def bind_processor(self, dialect: Dialect) -> Any:
        """`_cents` itself when the integer column converts nothing more (one call a value, not two)."""
        if self.impl_instance.bind_processor(dialect) is None:
            return _cents
        return super().bind_processor(dialect)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else (Decimal(value) / 100).quantize(_CENT)


def _cents(value: Decimal | None) -> int | None:
    """Money's bind value: a Decimal as integer cents, rounded half-even."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        raise TypeError(f"money must be a Decimal, not {type(value).__name__}")
    return int((value.quantize(_CENT, rounding=ROUND_HALF_EVEN) * 100).to_integral_value())
