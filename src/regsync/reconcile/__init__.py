"""Reconciliation: find where Salesforce registrations and Checkfront bookings disagree, and report it."""

from __future__ import annotations

from regsync.reconcile.rules import (
    CODES,
    RULES,
    Mismatch,
    ReconcileSettings,
    Rule,
    evaluate,
    pending_registrations,
)
from regsync.reconcile.run import ReconcileResult, run_reconcile

__all__ = [
    "CODES",
    "RULES",
    "Mismatch",
    "ReconcileResult",
    "ReconcileSettings",
    "Rule",
    "evaluate",
    "pending_registrations",
    "run_reconcile",
]
