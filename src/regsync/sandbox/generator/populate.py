"""One generation run end to end: the catalogue, the planned stories, then the truth of the result."""

from __future__ import annotations

import itertools
from pathlib import Path

from regsync.sandbox.dataset import save_dataset
from regsync.sandbox.generator.build import DatasetBuilder
from regsync.sandbox.generator.config import GeneratorConfig, PlantRates
from regsync.sandbox.generator.plant import Planter
from regsync.sandbox.generator.truth import Truth, compute_truth, gc_paused, truth_path, write_truth
from regsync.sandbox.store import SandboxStore


def _generate(builder: DatasetBuilder, planter: Planter) -> None:
    """Every story of the plan, oldest first, in the order the seed's rng is drawn in."""
    builder.make_events()
    builder.open_event_pools()
    clean = {name for name, _ in builder.CLEAN}
    for created, _, kind, variant in planter.plan():
        if kind in clean:
            builder.build_clean(created, kind)
        else:
            planter.plant(created, kind, variant)
    builder.tie_stamps()
    builder.fit_stock()


def populate(config: GeneratorConfig, store: SandboxStore, *, shift_to_now: bool = True) -> Truth:
    """Replace the store's contents with generated data; return its truth at the data's 'now'.

    The data is generated against `config.anchor`; with `shift_to_now` every timestamp then moves
    by whole seconds to the store's clock, so ages are as generated whenever this runs.
    """
    anchor = config.anchor_epoch
    shift_s = round(store.clock.now() - anchor) if shift_to_now else 0
    with store.lock, gc_paused():
        for table in store.salesforce.tables.values():
            table.clear()
        cf = store.checkfront
        cf.items.clear()
        cf.booking_sessions.clear()
        cf.bookings.clear()
        cf.session_ttl_s = float(config.session_ttl_s)
        builder = DatasetBuilder(config, store, shift_s)
        planter = Planter(builder)
        _generate(builder, planter)
        for name, number in builder.numbers.items():
            store.salesforce.counters[name] = itertools.count(number + 1)
        store.salesforce.last_modstamp = (builder.base_ms + builder.max_stamp) / 1000
    truth = compute_truth(store, config.thresholds, anchor + shift_s)
    truth.planted = {kind: planter.planted[kind] for kind in PlantRates.kinds()}
    truth.cases = planter.cases
    return truth


def write_dataset(config: GeneratorConfig, path: Path | str) -> Truth:
    """Generate into a dataset file (docs/dataset.md) and its truth beside it (<stem>.truth.json)."""
    store = SandboxStore()
    truth = populate(config, store, shift_to_now=False)
    save_dataset(store, path, anchor=config.anchor_epoch, generator=config.to_json())
    write_truth(truth, truth_path(path))
    return truth
