"""Every input surface (`SURFACES`) and the judge (`outcome_of`): one input, one allowed outcome or a HostileFailure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from regsync.errors import ApiError, RecordRejected
from regsync.warehouse import tables
from regsync.warehouse.archive import quarantine_row, record_key
from tests.support.hostile.bodies import broken_bodies, probe_lenient_json
from tests.support.hostile.checkfront import (
    booking_details,
    booking_sessions,
    index_entries,
    probe_booking_detail,
    probe_booking_session,
    probe_index_entry,
)
from tests.support.hostile.clients import (
    checkfront_answers,
    probe_checkfront_answer,
    probe_salesforce_answer,
    probe_salesforce_login,
    salesforce_answers,
    token_answers,
)
from tests.support.hostile.outcomes import (
    NOW,
    OUTCOMES,
    HostileFailure,
    Outcome,
    require_reason,
    show,
    unstorable,
)
from tests.support.hostile.salesforce import (
    attendee_payloads,
    probe_registration,
    probe_sf_session,
    registrations,
    sf_sessions,
)
from tests.support.hostile.soql import (
    probe_soql_in_list,
    probe_soql_literal,
    probe_soql_window,
    soql_id_lists,
    soql_values,
    soql_windows,
)


@dataclass(frozen=True)
class Surface:
    """One input surface: what generates its inputs, what judges them, how a rejected one is filed."""

    name: str
    strategy: st.SearchStrategy[Any]
    probe: Callable[[Any], Outcome]
    key_fields: tuple[str, ...] = ()


SURFACES: dict[str, Surface] = {
    s.name: s
    for s in (
        Surface("salesforce.registration", registrations, probe_registration, ("Id",)),
        Surface("salesforce.attendee_json", attendee_payloads, probe_registration, ("Id",)),
        Surface("salesforce.session", sf_sessions, probe_sf_session, ("Id",)),
        Surface("checkfront.booking_session", booking_sessions, probe_booking_session, ("id",)),
        Surface("checkfront.booking_index", index_entries, probe_index_entry, ("booking_id", "code")),
        Surface("checkfront.booking_detail", booking_details, probe_booking_detail, ("booking_id", "code")),
        Surface("body.lenient_json", broken_bodies, probe_lenient_json),
        Surface("client.checkfront", checkfront_answers(), probe_checkfront_answer),
        Surface("client.salesforce", salesforce_answers(), probe_salesforce_answer),
        Surface("client.salesforce_login", token_answers(), probe_salesforce_login),
        Surface("soql.literal", soql_values, probe_soql_literal),
        Surface("soql.in_list", soql_id_lists, probe_soql_in_list),
        Surface("soql.window", soql_windows, probe_soql_window),
    )
}


def _check_quarantinable(surface: Surface, record: Any, reason: str) -> None:
    """A rejected record is filed with key, payload and reason: the row must be storable."""
    require_reason(surface.name, reason, record)
    key = record_key(record, *surface.key_fields) if surface.key_fields else "?"
    row = quarantine_row(f"hostile.{surface.name}", key, record, reason, run_id=None, at=NOW)
    problems = unstorable(tables.quarantine, row)
    if not row["payload"] or not row["reason"].strip():
        problems.append("empty payload or reason")
    if problems:
        raise HostileFailure(f"{surface.name}: rejected but not quarantinable: {'; '.join(problems)}")


def outcome_of(surface: str | Surface, value: Any) -> Outcome:
    """The outcome of one input on one surface; HostileFailure for anything the contract forbids."""
    chosen = SURFACES[surface] if isinstance(surface, str) else surface
    try:
        outcome = chosen.probe(value)
    except HostileFailure:
        raise
    except RecordRejected as exc:
        _check_quarantinable(chosen, value, str(exc))
        return "quarantined"
    except ApiError as exc:
        require_reason(chosen.name, str(exc), value)
        return "rejected"
    except Exception as exc:
        raise HostileFailure(
            f"{chosen.name}: {type(exc).__name__}: {str(exc)[:160]} for {show(value)}"
        ) from exc
    if outcome not in OUTCOMES:
        raise HostileFailure(f"{chosen.name}: probe answered {outcome!r}")
    return outcome
