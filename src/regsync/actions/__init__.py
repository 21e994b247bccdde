"""Write-backs: submit pending registrations and end stale booking sessions, journaled and guarded.

Names are imported lazily so that `regsync.config` can import `regsync.actions.settings` without
pulling in the clients (which import `regsync.config` themselves).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regsync.actions.apply import ActionsReport, plan, run_actions
    from regsync.actions.candidates import Candidate, Explanation, Plan
    from regsync.actions.journal import END, KINDS, SUBMIT, list_actions
    from regsync.actions.settings import ActionSettings

_HOMES = {
    "ActionsReport": "apply",
    "plan": "apply",
    "run_actions": "apply",
    "Candidate": "candidates",
    "Explanation": "candidates",
    "Plan": "candidates",
    "END": "journal",
    "KINDS": "journal",
    "SUBMIT": "journal",
    "list_actions": "journal",
    "ActionSettings": "settings",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
