"""The count of a hostile run: inputs tried per surface, how each ended, the first failures described."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.hostile.outcomes import OUTCOMES

MAX_FAILURE_EXAMPLES = 10


@dataclass
class HostileReport:
    """How many inputs were tried where, how each ended, and the first failures described."""

    examples: int
    seed: int
    inputs_tried: int = 0
    accepted: int = 0
    quarantined: int = 0
    rejected: int = 0
    failures: int = 0
    by_surface: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, surface: str, outcome: str, detail: str | None = None) -> None:
        counts = self.by_surface.setdefault(surface, dict.fromkeys(("tried", *OUTCOMES, "failures"), 0))
        counts["tried"] += 1
        self.inputs_tried += 1
        if outcome in OUTCOMES:
            counts[outcome] += 1
            setattr(self, outcome, getattr(self, outcome) + 1)
            return
        counts["failures"] += 1
        self.failures += 1
        if detail and len(self.failure_examples) < MAX_FAILURE_EXAMPLES:
            self.failure_examples.append(detail[:600])

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "seed": self.seed,
            "inputs_tried": self.inputs_tried,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "rejected": self.rejected,
            "failures": self.failures,
            "by_surface": {name: dict(counts) for name, counts in self.by_surface.items()},
            "failure_examples": list(self.failure_examples),
            "seconds": round(self.seconds, 2),
        }


def summary(report: HostileReport) -> str:
    """One line per surface, for a terminal."""
    lines = [f"hostile: {report.inputs_tried} inputs, {report.failures} failure(s) in {report.seconds:.1f}s"]
    for name, counts in report.by_surface.items():
        lines.append(f"  {name:28} " + " ".join(f"{k}={v}" for k, v in counts.items()))
    return "\n".join([*lines, *report.failure_examples])
