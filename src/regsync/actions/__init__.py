"""Write-backs: submit pending registrations and end stale booking sessions, journaled and guarded."""

from __future__ import annotations

from regsync.actions.apply import ActionsReport, plan, run_actions
from regsync.actions.candidates import Candidate, Explanation, Plan
from regsync.actions.journal import END, KINDS, SUBMIT, list_actions
from regsync.settings.actions import ActionSettings

__all__ = [
    "END",
    "KINDS",
    "SUBMIT",
    "ActionSettings",
    "ActionsReport",
    "Candidate",
    "Explanation",
    "Plan",
    "list_actions",
    "plan",
    "run_actions",
]
