"""Deterministic sandbox data with planted defects, and its ground truth computed from docs/rules.md.

config: what to generate and the words shared by the rest; catalogue and build: the clean dataset;
plant: the defects and what the rules must find in them; truth: the independent reading of
docs/rules.md (compute_truth); populate: one run of all of it.
"""

from regsync.sandbox.generator.config import (
    AMOUNT,
    BOOKING_CODE,
    DEFAULT_ANCHOR,
    PAYLOAD,
    STATUS,
    UNPLANTED_CODES,
    GeneratorConfig,
    PlantRates,
    Thresholds,
)
from regsync.sandbox.generator.populate import populate, write_dataset
from regsync.sandbox.generator.truth import PlantedMismatch, Truth, compute_truth, truth_path, write_truth

__all__ = [
    "AMOUNT",
    "BOOKING_CODE",
    "DEFAULT_ANCHOR",
    "PAYLOAD",
    "STATUS",
    "UNPLANTED_CODES",
    "GeneratorConfig",
    "PlantRates",
    "PlantedMismatch",
    "Thresholds",
    "Truth",
    "compute_truth",
    "populate",
    "truth_path",
    "write_dataset",
    "write_truth",
]
