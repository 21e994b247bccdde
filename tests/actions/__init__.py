"""Builders for write-back tests: booking sessions idle for a given time (other rows: tests.reconcile)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.reconcile import NOW, cart

HOUR = 3600


def idle_cart(ident: str, idle_s: float, state: str = "alive") -> dict[str, Any]:
    """A booking session read at NOW whose cart last changed `idle_s` seconds before."""
    return {**cart(ident, state), "age_s": int(idle_s), "last_activity_at": NOW - timedelta(seconds=idle_s)}
