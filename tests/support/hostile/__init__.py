"""Hostile input as a countable harness: every input surface driven by hypothesis, every outcome classified.

Why: "the normalizers reject bad records" is only worth something with a number behind it and a
definition of what may happen. Every input here ends in exactly one of

* accepted    — normalized (or parsed), and nothing in it lost or changed on the way: the rows equal
                what was sent and the warehouse's columns can hold them;
* quarantined — `RecordRejected` with a non-empty reason; the loaders file it with its raw payload,
                so its record key and payload must be storable too;
* rejected    — a typed error with a message: the clients' `ApiError` family for a response, the
                lenient parser's `ValueError`, the SOQL helpers' own refusals (`ConfigError`,
                `ValueError`).

Anything else — another exception, a dropped record, a changed value, a query whose structure an
id or a date could alter — is a failure, described in the report.

Surfaces (`SURFACES`): Salesforce registrations, their Attendee JSON payload and Sessions;
Checkfront booking sessions, booking index entries and booking details; raw bodies through the
lenient JSON parser (vendor-style breakage: stray quotes, trailing and missing commas); whole HTTP
answers through the Checkfront client, the Salesforce client and its login; SOQL literals, id
lists and date windows through `regsync.extract.soql`. `end_to_end` seeds a small sandbox with
hostile records, pulls it with `run_pull` and checks that the run ends `partial`, that exactly the
hostile records are quarantined with payload and reason, and that every good record arrived.

One module per surface: `salesforce` and `checkfront` (records), `bodies` (the lenient parser),
`clients` (HTTP answers), `soql`; `values` holds the hostile values they share, `outcomes` what
each outcome must mean, `surfaces` the judge, `report` and `run` the count, `end_to_end` the pull.

Tests import the strategies from their surface's module and `outcome_of` from here
(tests/reliability/test_hostile_input.py), so hypothesis shrinks a failure there; `run_hostile`
counts. Needs hypothesis (a dev dependency).
"""

from tests.support.hostile.end_to_end import check_end_to_end
from tests.support.hostile.outcomes import OUTCOMES, HostileFailure
from tests.support.hostile.report import HostileReport, summary
from tests.support.hostile.run import run_hostile
from tests.support.hostile.surfaces import SURFACES, Surface, outcome_of

__all__ = [
    "OUTCOMES",
    "SURFACES",
    "HostileFailure",
    "HostileReport",
    "Surface",
    "check_end_to_end",
    "outcome_of",
    "run_hostile",
    "summary",
]
