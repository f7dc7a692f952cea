"""Complexity against a challenge budget: parameter memory and MACs per second of audio.

Printed with Table 2 (``harness table --table 2``). Each network is measured on its own front
end, on 1-s and 10-s clips, counted as the DCASE challenge counts (``harness.complexity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.complexity import (BUDGET_CONFIGS, FRONT_END_INPUT, Budget, ChallengeComplexity, load_budget,
                                measure_per_second)
from harness.features.logmel import feature_preset


@dataclass(frozen=True)
class BudgetRow:
    network: str
    arch: str
    features: str
    n_mels: int
    counts: ChallengeComplexity


@dataclass
class BudgetTable:
    rows: list[BudgetRow]
    budget: Budget
    precision: str
    name: str = "budget"
    extra_notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return (f"Complexity against the {self.budget.name} budget: parameter memory at {self.precision}, "
                "MACs per second of audio")

    def headers(self) -> list[str]:
        return ["Network", "Front end", "Mels", "Params", f"Param memory ({self.precision})",
                "MACs/s (1-s clips)", "MACs/s (10-s clips)", f"Verdict ({self.budget.name})"]

    def display_rows(self) -> list[list[str]]:
        return [[r.network, r.features, str(r.n_mels), f"{r.counts.params:,}",
                 f"{r.counts.param_bytes(self.precision):,} B", f"{r.counts.macs_1s / 1e6:,.2f} M",
                 f"{r.counts.macs_per_s_10s / 1e6:,.2f} M", self.budget.verdict(r.counts, self.precision)]
                for r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [{"network": r.network, "arch": r.arch, "features": r.features, "n_mels": r.n_mels,
                 "params": r.counts.params, "precision": self.precision,
                 "param_bytes": r.counts.param_bytes(self.precision), "macs_1s": r.counts.macs_1s,
                 "macs_per_s_10s": r.counts.macs_per_s_10s, "budget": self.budget.name,
                 "budget_param_bytes": self.budget.param_bytes, "budget_macs_per_second": self.budget.macs_per_second,
                 "verdict": self.budget.verdict(r.counts, self.precision)} for r in self.rows]

    def notes(self) -> list[str]:
        return [f"Budget {self.budget.name}: {self.budget.param_bytes:,} B of parameters, "
                f"{self.budget.macs_per_second / 1e6:g} M MACs per second of audio ({self.budget.source}).",
                "Counted as the challenge counts (torchinfo, as NeSsi): convolution weights × output positions, "
                "batch norm and dense layers once per parameter; the verdict uses the 1-s figure, the limit's "
                "definition. dcase2019 = the paper's front end (48 kHz stereo, 20 ms hop); dcase2024 = the DCASE "
                "2024 baseline's (32 kHz mono, 500-sample hop, 65 frames per second).",
                *self.extra_notes]

    def commands(self) -> list[str]:
        return []


def build_budget_table(budget: str = "dcase2024", precision: str = "fp32") -> BudgetTable:
    spec = load_budget(budget)
    rows = []
    for label, arch, features, n_mels in BUDGET_CONFIGS:
        rate, channels = FRONT_END_INPUT[features]
        counts = measure_per_second(arch, feature_preset(features, n_mels), rate, channels)
        rows.append(BudgetRow(label, arch, features, n_mels, counts))
    return BudgetTable(rows, spec, precision)
