"""The generator plants what it says and its truth follows docs/rules.md; dataset files round-trip."""

from __future__ import annotations

import json
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from regsync.reconcile.rules import CODES
from regsync.sandbox.dataset import DatasetError, format_ms, load_dataset, parse_ms, save_dataset
from regsync.sandbox.generator import (
    DEFAULT_ANCHOR,
    UNPLANTED_CODES,
    GeneratorConfig,
    PlantedMismatch,
    PlantRates,
    Thresholds,
    Truth,
    compute_truth,
    populate,
    truth_path,
    write_dataset,
)
from regsync.sandbox.generator.catalogue import IdMinter
from regsync.sandbox.store import (
    ATTENDEE,
    EVENT,
    REGISTRATION,
    SCHEMAS,
    SESSION,
    SESSION_ATTENDEE,
    SandboxStore,
    is_sf_id,
    make_sf_id,
    parse_sf_datetime,
    sf_datetime,
)

N = 2000
KINDS = PlantRates.kinds()


@pytest.fixture(scope="module")
def generated() -> tuple[SandboxStore, Truth]:
    """N registrations with every kind planted, at the fixed default anchor."""
    store = SandboxStore()
    truth = populate(GeneratorConfig(registrations=N, seed=11), store, shift_to_now=False)
    return store, truth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    path = tmp_path_factory.mktemp("dataset") / "small.json"
    truth = write_dataset(GeneratorConfig(registrations=400, seed=5), path)
    return path, truth


def registrations(store: SandboxStore) -> list[dict[str, Any]]:
    return list(store.salesforce.tables[REGISTRATION].values())


def payload(record: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(record["conference360__Attendee_JSON__c"])


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = write_dataset(GeneratorConfig(registrations=300, seed=42), tmp_path / "a.json")
    second = write_dataset(GeneratorConfig(registrations=300, seed=42), tmp_path / "b.json")
    write_dataset(GeneratorConfig(registrations=300, seed=43), tmp_path / "c.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.truth.json").read_bytes() == (tmp_path / "b.truth.json").read_bytes()
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()
    assert first.to_json() == second.to_json()


def test_populate_shifted_to_now_is_the_fixed_anchor_data_moved_in_time() -> None:
    config = GeneratorConfig(registrations=200, seed=3)
    fixed, moved = SandboxStore(), SandboxStore()
    populate(config, fixed, shift_to_now=False)
    truth = populate(config, moved)
    shift = truth.anchor - DEFAULT_ANCHOR
    assert abs(truth.anchor - moved.clock.now()) < 5
    before = fixed.salesforce.tables[REGISTRATION]
    after = moved.salesforce.tables[REGISTRATION]
    assert list(before) == list(after)  # same ids in the same order
    for record_id, record in before.items():
        shifted = after[record_id]
        assert parse_ms(shifted["CreatedDate"]) - parse_ms(record["CreatedDate"]) == shift * 1000
        assert shifted["conference360__Attendee_JSON__c"] == record["conference360__Attendee_JSON__c"]


# ---------------------------------------------------------------------------------------------
# What is planted, and the truth computed over it
# ---------------------------------------------------------------------------------------------


def test_every_kind_is_planted_at_roughly_its_rate(generated: tuple[SandboxStore, Truth]) -> None:
    _, truth = generated
    rates = PlantRates()
    assert set(truth.planted) == set(KINDS)
    for kind in KINDS:
        expected = getattr(rates, kind) * N
        assert truth.planted[kind] > 0, kind
        assert abs(truth.planted[kind] - expected) <= max(2, 0.2 * expected), (kind, truth.planted)
    assert Counter(case.kind for case in truth.cases) == Counter(truth.planted)
    assert len(registrations(generated[0])) == N


def test_truth_is_exactly_what_the_planted_cases_expect(generated: tuple[SandboxStore, Truth]) -> None:
    _, truth = generated
    pending, stale, mismatches = truth.expected_by_cases()
    assert set(truth.pending_registrations) == pending
    assert set(truth.stale_booking_sessions) == stale
    assert set(truth.mismatches) == mismatches
    codes = Counter(m.code for m in truth.mismatches)
    assert set(codes) == set(CODES) - set(UNPLANTED_CODES)  # a planted case of every other code
    assert codes["DUPLICATE_REGISTRATION"] == 2 * truth.planted["duplicate"]
    assert truth.mismatches == sorted(truth.mismatches, key=PlantedMismatch.sort_key)
    assert truth.pending_registrations == sorted(truth.pending_registrations)


@pytest.mark.parametrize(
    ("kind", "pending", "stale", "codes"),
    [
        ("pending", 1, 0, []),
        ("overdue", 1, 0, ["DRAFT_BOOKING_PAID"]),
        ("session_missing", 0, 0, ["BOOKING_SESSION_MISSING"]),
        ("seats_mismatch", 0, 0, ["ATTENDEE_COUNT_MISMATCH"]),
        ("sessions_mismatch", 0, 0, ["ATTENDEE_SESSIONS_MISMATCH"]),
        ("completed_unpaid", 0, 0, ["COMPLETED_BOOKING_UNPAID"]),
        ("amount_mismatch", 0, 0, ["AMOUNT_MISMATCH"]),
        ("booking_without_registration", 0, 0, ["BOOKING_WITHOUT_REGISTRATION"]),
        ("duplicate", 0, 0, ["DUPLICATE_REGISTRATION", "DUPLICATE_REGISTRATION"]),
        ("stale_session", 0, 1, []),
        ("protected_session", 0, 0, []),
        ("unreferenced_session", 0, 0, []),
    ],
)
def test_a_single_defect_shows_up_alone(kind: str, pending: int, stale: int, codes: list[str]) -> None:
    """One kind at 2 %, nothing else: each case yields exactly its own finding, clean rows none."""
    store = SandboxStore()
    rates = PlantRates.only(**{kind: 0.02})
    truth = populate(GeneratorConfig(registrations=500, seed=9, rates=rates), store, shift_to_now=False)
    cases = truth.cases
    assert len(cases) == 10
    assert len(truth.pending_registrations) == pending * len(cases)
    assert len(truth.stale_booking_sessions) == stale * len(cases)
    # session_missing's To Process variant is BOOKING_CODE_MISSING (docs/rules.md)
    variant = {"BOOKING_CODE_MISSING": "BOOKING_SESSION_MISSING"}
    assert sorted(variant.get(m.code, m.code) for m in truth.mismatches) == sorted(codes * len(cases))
    for case in cases:  # each finding is about that very case
        assert set(case.pending) <= set(truth.pending_registrations)
        assert set(case.stale_booking_sessions) <= set(truth.stale_booking_sessions)
        assert set(case.mismatches) <= set(truth.mismatches)
    if kind == "protected_session":
        carts = store.checkfront.booking_sessions
        for case in cases:
            cart = carts[case.booking_session_id]
            assert cart["ended"] is None
            assert truth.anchor - cart["modified"] > Thresholds().stale_session_ttl_s


def test_a_clean_population_has_no_findings() -> None:
    store = SandboxStore()
    truth = populate(
        GeneratorConfig(registrations=1500, seed=2, rates=PlantRates.none()), store, shift_to_now=False
    )
    assert truth.pending_registrations == []
    assert truth.stale_booking_sessions == []
    assert truth.mismatches == []
    statuses = Counter(r["conference360__Status__c"] for r in registrations(store))
    assert statuses["Completed"] > 1000
    assert statuses["Draft"] > 0
    assert statuses["To Process"] > 0
    assert statuses["Failed"] > 0
    assert any(r["IsDeleted"] for r in registrations(store))


def test_combined_defects_follow_the_definitions_not_the_plan() -> None:
    """Truth is recomputed from the data: stack a second defect on a case and the truth follows."""
    store = SandboxStore()
    truth = populate(
        GeneratorConfig(registrations=300, seed=4, rates=PlantRates.only(seats_mismatch=0.02)),
        store,
        shift_to_now=False,
    )
    case = truth.cases[0]
    record = store.salesforce.tables[REGISTRATION][case.registration_ids[0]]
    record["conference360__Amount__c"] += 5  # now also off the booking total
    again = compute_truth(store, now=truth.anchor)
    found = {m.code for m in again.mismatches if m.registration_id == record["Id"]}
    assert found == {"ATTENDEE_COUNT_MISMATCH", "AMOUNT_MISMATCH"}


def test_truth_moves_with_time(generated: tuple[SandboxStore, Truth]) -> None:
    """Recomputed a day later, pending drafts become overdue and in-flight drafts are evaluated."""
    store, truth = generated
    later = compute_truth(store, now=truth.anchor + 86400)
    overdue = {m.registration_id for m in later.mismatches if m.code == "DRAFT_BOOKING_PAID"}
    assert set(truth.pending_registrations) <= set(later.pending_registrations)
    assert overdue >= set(truth.pending_registrations)
    assert compute_truth(store, now=truth.anchor).mismatches == truth.mismatches


# ---------------------------------------------------------------------------------------------
# The shape of the data
# ---------------------------------------------------------------------------------------------


def test_ids_are_valid_salesforce_ids_with_the_right_prefixes(generated: tuple[SandboxStore, Truth]) -> None:
    store, _ = generated
    for name, table in store.salesforce.tables.items():
        assert table, name
        prefix = SCHEMAS[name].key_prefix
        for record_id, record in table.items():
            assert record["Id"] == record_id
            assert is_sf_id(record_id), record_id
            assert record_id.startswith(prefix)
            assert set(record) == set(SCHEMAS[name].fields)
    minter = IdMinter("a16")
    for number in (1, 61, 62, 3843, 3844, 238_327, 999_999, 5_000_000):
        assert minter(number) == make_sf_id("a16", number)


def test_new_inserts_get_fresh_ids(generated: tuple[SandboxStore, Truth]) -> None:
    store = SandboxStore()
    populate(GeneratorConfig(registrations=50, seed=1), store)
    before = set(store.salesforce.tables[ATTENDEE])
    record = store.insert_sf(ATTENDEE, {"Name": "New Person"})
    assert record["Id"] not in before
    assert parse_sf_datetime(record["SystemModstamp"]) > max(
        parse_sf_datetime(r["SystemModstamp"]) for r in store.records(REGISTRATION)
    )


def test_records_link_up_as_the_rules_expect(generated: tuple[SandboxStore, Truth]) -> None:
    store, _ = generated
    tables = store.salesforce.tables
    cf = store.checkfront
    item_of_session = {s["Id"]: s["Checkfront_Item_Id__c"] for s in tables[SESSION].values()}
    assert all(int(item) in cf.items for item in item_of_session.values())
    events = {s["conference360__Event__c"] for s in tables[SESSION].values()}
    assert events == set(tables[EVENT])
    bookings = {b["code"]: b for b in cf.bookings.values()}
    checked = 0
    for record in registrations(store):
        body = payload(record)
        assert body["id"] == record["Id"]
        assert 1 <= len(body["attendeeList"]) <= 3
        for attendee in body["attendeeList"]:
            assert attendee["id"] in tables[ATTENDEE]
            assert all(s in item_of_session for s in attendee["sessionIds"])
        session_id = body["sessionId"]
        assert len(session_id) == 26
        assert set(session_id) <= set("0123456789abcdefghijklmnopqrstuv")
        code = record["Checkfront_Booking_Code__c"]
        if record["conference360__Status__c"] == "Completed":
            assert code is not None
        if code is not None:
            assert len(code) == 11
            assert code[:4].isalpha()
            assert code[4] == "-"
            assert code[5:].isdigit()
            booking = bookings[code]
            assert booking["session_id"] == session_id
            for line in booking["lines"]:
                assert isinstance(line["total"], str)
                assert line["total"].count(".") == 1
                item, day = line["slip"].split(".")[:2]
                assert int(item) == line["item_id"]
                assert day.startswith(line["date"])
            checked += 1
    assert checked > N / 2
    # Session Attendees only for registrations that completed, and all Registered.
    completed_attendees = {
        a["id"]
        for r in registrations(store)
        if r["conference360__Status__c"] == "Completed" and not r["IsDeleted"]
        for a in payload(r)["attendeeList"]
    }
    for sa in tables[SESSION_ATTENDEE].values():
        assert sa["conference360__Attendee__c"] in completed_attendees
        assert sa["conference360__Registration_Status__c"] == "Registered"


def test_booking_sessions_look_like_checkfront_carts(generated: tuple[SandboxStore, Truth]) -> None:
    store, truth = generated
    cf = store.checkfront
    package_lines = 0
    for cart in cf.booking_sessions.values():
        assert cart["created"] <= cart["modified"] <= truth.anchor
        if cart["booking_code"] is not None:
            assert cart["ended"] is not None
        for line_id, line in cart["lines"].items():
            if "." in line_id:
                package_lines += 1
                assert isinstance(line["optin"], bool)
                assert line["slip"].endswith("X1-1")
            else:
                assert line["optin"] is None
                assert line["slip"] == f"{line['item_id']}.{line['date']}X1-adults.{line['qty']}"
    assert package_lines > 0
    for item in cf.items.values():
        assert item["unit"] == "D"
        assert set(item) >= {"item_id", "sku", "name", "stock", "params", "packages"}


def test_modstamps_are_old_enough_ordered_and_tied(generated: tuple[SandboxStore, Truth]) -> None:
    store, truth = generated
    newest = format_ms(round((truth.anchor - 300) * 1000))
    for name in SCHEMAS:
        for record in store.records(name):
            assert record["CreatedDate"] <= record["LastModifiedDate"] <= record["SystemModstamp"]
            assert record["SystemModstamp"] <= newest, (name, record["Id"])
    stamps = Counter(r["SystemModstamp"] for r in registrations(store))
    runs = [count for count in stamps.values() if count >= 3]
    assert runs, "no ties in SystemModstamp"
    assert max(runs) <= 50
    assert store.salesforce.last_modstamp == max(
        parse_sf_datetime(r["SystemModstamp"]) for name in SCHEMAS for r in store.records(name)
    )


def test_formats_agree_with_the_store() -> None:
    for ms in (0, 1, 999, 1_767_225_599_999, 1_767_225_600_000, 4_102_444_800_123):
        assert format_ms(ms) == sf_datetime(ms / 1000)
        assert parse_ms(format_ms(ms)) == ms
    assert parse_ms("2026-01-01T01:00:00+01:00") == 1_767_225_600_000


# ---------------------------------------------------------------------------------------------
# Dataset files
# ---------------------------------------------------------------------------------------------


def test_dataset_file_is_private_versioned_json(dataset: tuple[Path, Truth]) -> None:
    path, truth = dataset
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(truth_path(path).stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["format"] == "regsync-sandbox-dataset"
    assert data["version"] == 1
    assert data["anchor"] == "2026-01-01T00:00:00Z"
    assert data["generator"]["registrations"] == 400
    assert data["generator"]["seed"] == 5
    assert set(data["salesforce"]) == set(SCHEMAS)
    assert data["checkfront"]["session_ttl_s"] == 2592000
    written = json.loads(truth_path(path).read_text())
    assert written["format"] == "regsync-sandbox-truth"
    assert written["version"] == 1
    assert Truth.load(truth_path(path)).mismatches == truth.mismatches
    assert written["planted"] == truth.planted


def test_dataset_round_trip_gives_the_same_records(dataset: tuple[Path, Truth], tmp_path: Path) -> None:
    path, truth = dataset
    reference = SandboxStore()
    populate(GeneratorConfig(registrations=400, seed=5), reference, shift_to_now=False)
    loaded = SandboxStore()
    info = load_dataset(path, loaded, shift_to_now=False)
    assert info.shift_s == 0
    assert info.anchor == DEFAULT_ANCHOR
    assert info.counts[REGISTRATION] == 400
    for name in SCHEMAS:
        assert loaded.salesforce.tables[name] == reference.salesforce.tables[name], name
    assert loaded.checkfront.items == reference.checkfront.items
    assert loaded.checkfront.booking_sessions == reference.checkfront.booking_sessions
    assert loaded.checkfront.bookings == reference.checkfront.bookings
    assert loaded.salesforce.last_modstamp == reference.salesforce.last_modstamp
    again = compute_truth(loaded, now=DEFAULT_ANCHOR)
    assert again.mismatches == truth.mismatches
    assert again.pending_registrations == truth.pending_registrations
    assert again.stale_booking_sessions == truth.stale_booking_sessions
    # Saving the loaded store writes the same bytes.
    save_dataset(loaded, tmp_path / "copy.json", anchor=DEFAULT_ANCHOR, generator=info.generator)
    assert (tmp_path / "copy.json").read_bytes() == path.read_bytes()


def test_loading_shifted_to_now_keeps_ages(dataset: tuple[Path, Truth]) -> None:
    path, truth = dataset
    store = SandboxStore()
    info = load_dataset(path, store)
    now = store.clock.now()
    assert abs(info.shift_s - (now - DEFAULT_ANCHOR)) <= 1
    reference = SandboxStore()
    populate(GeneratorConfig(registrations=400, seed=5), reference, shift_to_now=False)
    for record_id, record in reference.salesforce.tables[REGISTRATION].items():
        age = DEFAULT_ANCHOR - parse_sf_datetime(record["CreatedDate"])
        loaded = store.salesforce.tables[REGISTRATION][record_id]
        assert abs((now - parse_sf_datetime(loaded["CreatedDate"])) - age) < 2
    for cart_id, cart in reference.checkfront.booking_sessions.items():
        moved = store.checkfront.booking_sessions[cart_id]
        assert abs((now - moved["modified"]) - (DEFAULT_ANCHOR - cart["modified"])) < 2
    assert abs(store.salesforce.last_modstamp - (now - 300)) < 2
    live = compute_truth(store)
    assert live.pending_registrations == truth.pending_registrations
    assert live.stale_booking_sessions == truth.stale_booking_sessions
    assert live.mismatches == truth.mismatches


def test_any_json_layout_loads_the_same_as_the_streamed_one(
    dataset: tuple[Path, Truth], tmp_path: Path
) -> None:
    """A re-indented file (not one record per line) takes the whole-file path, same result."""
    path, _ = dataset
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(path.read_text()), indent=2))
    streamed, parsed = SandboxStore(), SandboxStore()
    load_dataset(path, streamed, shift_to_now=False)
    load_dataset(pretty, parsed, shift_to_now=False)
    for name in SCHEMAS:
        assert parsed.salesforce.tables[name] == streamed.salesforce.tables[name]
    assert parsed.checkfront.bookings == streamed.checkfront.bookings
    assert parsed.checkfront.booking_sessions == streamed.checkfront.booking_sessions
    assert parsed.salesforce.last_modstamp == streamed.salesforce.last_modstamp


def test_a_broken_record_line_is_reported_with_its_position(
    dataset: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, _ = dataset
    lines = path.read_bytes().split(b"\n")
    target = next(i for i, line in enumerate(lines) if line.startswith(b'{"Id":"a16'))
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(b"\n".join([*lines[:target], lines[target][:40], *lines[target + 1 :]]))
    with pytest.raises(DatasetError, match=r"not valid JSON \(.*line \d+ column \d+"):
        load_dataset(truncated, SandboxStore())
    wrong = tmp_path / "wrong.json"
    record = orjson.loads(lines[target].rstrip(b","))
    record["SystemModstamp"] = "soon"
    lines[target] = orjson.dumps(record) + b","
    wrong.write_bytes(b"\n".join(lines))
    with pytest.raises(DatasetError, match=rf"\[0\] \({record['Id']}\): SystemModstamp 'soon'"):
        load_dataset(wrong, SandboxStore())


def test_loaded_store_mints_ids_after_the_loaded_ones(dataset: tuple[Path, Truth]) -> None:
    path, _ = dataset
    store = SandboxStore()
    load_dataset(path, store)
    for name in (REGISTRATION, ATTENDEE, SESSION_ATTENDEE):
        existing = set(store.salesforce.tables[name])
        new_id = store.salesforce.new_id(name)
        assert new_id not in existing
        assert new_id > max(existing)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def minimal() -> dict[str, Any]:
    return {
        "format": "regsync-sandbox-dataset",
        "version": 1,
        "anchor": "2026-01-01T00:00:00Z",
        "generator": None,
        "salesforce": {},
        "checkfront": {"session_ttl_s": 2592000, "items": [], "booking_sessions": [], "bookings": []},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="something-else"), "not a regsync sandbox dataset"),
        (lambda d: d.update(version=2), "dataset version 2 is not supported"),
        (lambda d: d.pop("salesforce"), "missing section 'salesforce'"),
        (lambda d: d.pop("checkfront"), "missing section 'checkfront'"),
        (lambda d: d.update(anchor="yesterday"), "anchor 'yesterday'"),
        (lambda d: d["salesforce"].update(Contact=[]), "unknown object 'Contact'"),
        (lambda d: d["salesforce"].update({REGISTRATION: {}}), "must be a list of records"),
        (
            lambda d: d["salesforce"].update({EVENT: [{"Id": "a0E0U0000000001UAA", "Foo__c": 1}]}),
            "unknown field 'Foo__c'",
        ),
        (lambda d: d["salesforce"].update({EVENT: [{"Id": "nope"}]}), "is not an 18-character id"),
        (
            lambda d: d["salesforce"].update(
                {EVENT: [{"Id": "a0E0U0000000001UAA", "CreatedDate": "last week"}]}
            ),
            "CreatedDate 'last week' is not a datetime",
        ),
        (lambda d: d["checkfront"].update(bookings=[{"booking_id": "x"}]), "booking_id must be an integer"),
        (lambda d: d["checkfront"].update(booking_sessions=[{"id": "abc"}]), "created must be epoch seconds"),
    ],
)
def test_a_broken_file_names_what_is_wrong(tmp_path: Path, change: Any, message: str) -> None:
    data = minimal()
    change(data)
    path = write_json(tmp_path / "broken.json", data)
    with pytest.raises(DatasetError, match=r"broken\.json") as raised:
        load_dataset(path, SandboxStore())
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_a_file_that_is_not_a_dataset_says_so(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "data.json"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, SandboxStore())


def test_a_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(tmp_path / "nowhere.json", SandboxStore())


def test_a_minimal_hand_written_file_loads(tmp_path: Path) -> None:
    data = minimal()
    data["salesforce"][EVENT] = [
        {"Id": "a0E0U0000000001UAA", "Name": "Gala", "CreatedDate": "2025-12-01T10:00:00.000+0000"}
    ]
    store = SandboxStore()
    info = load_dataset(write_json(tmp_path / "hand.json", data), store, shift_to_now=False)
    record = store.salesforce.tables[EVENT]["a0E0U0000000001UAA"]
    assert set(record) == set(SCHEMAS[EVENT].fields)
    assert record["IsDeleted"] is False
    assert record["SystemModstamp"] is None
    assert info.counts[EVENT] == 1
    assert info.generator is None
