"""Reconciliation: find where Salesforce registrations and Checkfront bookings disagree, and report it."""

from regsync.reconcile.rules import (
    CODES,
    RULES,
    Mismatch,
    ReconcileSettings,
    Rule,
    evaluate,
    pending_registrations,
)

# `run` (and with it pandas) is imported on first use only: every regsync command imports config,
# which imports these rules, and a cron run of `regsync sync` should not pay for pandas.


def __getattr__(name: str) -> object:
    if name in ("ReconcileResult", "run_reconcile"):
        from regsync.reconcile import run

        return getattr(run, name)
    raise AttributeError(name)


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
