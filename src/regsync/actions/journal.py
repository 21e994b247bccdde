"""The action journal: each write is committed as planned, then sent, then its answer, so a crash is recoverable."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from regsync.warehouse.actions_tables import actions
from regsync.warehouse.state import utcnow

SUBMIT = "submit_registration"
END = "end_booking_session"
KINDS = (SUBMIT, END)
STATES = ("planned", "sent", "succeeded", "failed", "skipped")
UNRESOLVED = ("planned", "sent")

a = actions


def idempotency_key(kind: str, target_id: str) -> str:
    return f"{kind}:{target_id}"


def holds_key() -> ColumnElement[bool]:
    """The SQL twin of actions_tables.HOLDS_KEY: an action that keeps its target from being planned."""
    return or_(a.c.state.in_(("planned", "sent", "succeeded")), and_(a.c.state == "failed", ~a.c.retriable))


@dataclass(frozen=True)
class Action:
    """One journal row, as recovery needs it."""

    action_id: str
    kind: str
    target_id: str
    state: str
    request: Any


def plan_action(
    engine: Engine, kind: str, target_id: str, *, reason: str, request: Any, run_id: str | None
) -> str | None:
    """Commit a planned action; None when another live action already holds this kind and target."""
    action_id = str(uuid.uuid4())
    try:
        with engine.begin() as connection:
            connection.execute(
                a.insert().values(
                    action_id=action_id,
                    idempotency_key=idempotency_key(kind, target_id),
                    kind=kind,
                    target_id=target_id,
                    state="planned",
                    reason=reason,
                    request=request,
                    retriable=False,
                    run_id=run_id,
                    planned_at=utcnow(),
                )
            )
    except IntegrityError:
        return None
    return action_id


def record_skipped(engine: Engine, rows: Iterable[tuple[str, str, str]], *, run_id: str | None) -> int:
    """Journal (kind, target id, reason) triples that the re-read ruled out; they were never sent."""
    now = utcnow()
    values = [
        {
            "action_id": str(uuid.uuid4()),
            "idempotency_key": idempotency_key(kind, target_id),
            "kind": kind,
            "target_id": target_id,
            "state": "skipped",
            "reason": reason,
            "retriable": False,
            "run_id": run_id,
            "planned_at": now,
            "finished_at": now,
        }
        for kind, target_id, reason in rows
    ]
    if values:
        with engine.begin() as connection:
            connection.execute(a.insert(), values)
    return len(values)


def mark_sent(engine: Engine, action_id: str) -> None:
    """Commit that the request is about to go out (from here on only a re-read can tell what happened)."""
    with engine.begin() as connection:
        connection.execute(
            update(a)
            .where(a.c.action_id == action_id, a.c.state == "planned")
            .values(state="sent", sent_at=utcnow())
        )


def record_result(
    engine: Engine,
    action_id: str,
    state: str,
    *,
    response: Any = None,
    error: str | None = None,
    retriable: bool = False,
) -> None:
    """Commit how a sent (or recovered) action ended: succeeded, or failed with the API's message.

    A failed action may still become succeeded when the confirming read finds its target done.
    """
    if state not in ("succeeded", "failed"):
        raise ValueError(f"an action ends succeeded or failed, not {state!r}")
    values = {
        "state": state,
        "error": error,
        "retriable": retriable and state == "failed",
        "finished_at": utcnow(),
    }
    if response is not None:
        values["response"] = response
    with engine.begin() as connection:
        connection.execute(
            update(a)
            .where(a.c.action_id == action_id, a.c.state.in_((*UNRESOLVED, "failed")))
            .values(**values)
        )


def record_confirmations(engine: Engine, confirmations: Mapping[str, Mapping[str, Any]]) -> None:
    """Attach what the confirming read found to each action."""
    if not confirmations:
        return
    now = utcnow()
    with engine.begin() as connection:
        for action_id, found in confirmations.items():
            connection.execute(
                update(a).where(a.c.action_id == action_id).values(confirmation=dict(found), confirmed_at=now)
            )


def unresolved(engine: Engine, kinds: Iterable[str]) -> list[Action]:
    """Actions a crashed run left planned or sent, oldest first."""
    query = (
        select(a.c.action_id, a.c.kind, a.c.target_id, a.c.state, a.c.request)
        .where(a.c.state.in_(UNRESOLVED), a.c.kind.in_(list(kinds)))
        .order_by(a.c.planned_at, a.c.action_id)
    )
    with engine.connect() as connection:
        return [Action(*row) for row in connection.execute(query)]


def unconfirmed_submits(engine: Engine) -> list[Action]:
    """Submits journaled succeeded that no confirming read has looked at, oldest first.

    A run that dies (or stops on an error) after a send but before its batch's confirming read
    leaves them so; so does the recovery of a submit left "sent".
    """
    query = (
        select(a.c.action_id, a.c.kind, a.c.target_id, a.c.state, a.c.request)
        .where(a.c.kind == SUBMIT, a.c.state == "succeeded", a.c.confirmed_at.is_(None))
        .order_by(a.c.planned_at, a.c.action_id)
    )
    with engine.connect() as connection:
        return [Action(*row) for row in connection.execute(query)]


def list_actions(
    engine: Engine,
    state: str | None = None,
    since: datetime | None = None,
    target: str | None = None,
    *,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Journal rows, newest first, filtered by state, planned at or after `since`, and target id."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown action state {state!r} (known: {', '.join(STATES)})")
    query = select(a).order_by(a.c.planned_at.desc(), a.c.action_id).limit(limit)
    if state is not None:
        query = query.where(a.c.state == state)
    if since is not None:
        query = query.where(a.c.planned_at >= since)
    if target is not None:
        query = query.where(a.c.target_id == target)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]
