"""``harness table --plan``: before any training, the smallest effect a grid will be able to see.

The number of scored clips follows from the dataset and the protocol; the discordance (the share
of clips on which two models disagree) is not known before training, so the plan gives the MDE
for a range of it, with the seeds disagreeing on different clips (the best case for averaging
seeds) and on the same clips (seeds add nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from harness.report.power import ALPHA, POWER, mde_planned
from harness.report.stats import fmt_mde

DISCORDANCES = (0.1, 0.2, 0.3, 0.4)


@dataclass
class PlanTable:
    """MDE (points) per scored subset and assumed discordance."""

    dataset: str
    split: str
    seeds: int
    subsets: dict[str, int]  # subset -> scored clips per seed
    discordances: Sequence[float] = DISCORDANCES
    name: str = "plan"

    @property
    def title(self) -> str:
        return (f"Plan: minimum detectable effect (points; {int(100 * POWER)} % power, two-sided {int(100 * ALPHA)} %) "
                f"of a variant against its baseline, {self.seeds} seed(s), split {self.split}")

    def headers(self) -> list[str]:
        return ["Subset", "Clips", *[f"ψ={d:g}: seeds differ / same" for d in self.discordances]]

    def _mde(self, n: int, d: float, rho: float) -> float:
        return 100 * mde_planned(n, d, seeds=self.seeds, seed_correlation=rho)

    def display_rows(self) -> list[list[str]]:
        return [[subset, str(n), *[f"{fmt_mde(self._mde(n, d, 0.0))} / {fmt_mde(self._mde(n, d, 1.0))}" for d in self.discordances]]
                for subset, n in self.subsets.items()]

    def records(self) -> list[dict[str, Any]]:
        return [{"subset": subset, "clips": n, "seeds": self.seeds, "split": self.split, "dataset": self.dataset,
                 "discordance": d, "mde_pct_seeds_differ": self._mde(n, d, 0.0), "mde_pct_seeds_same": self._mde(n, d, 1.0)}
                for subset, n in self.subsets.items() for d in self.discordances]

    def notes(self) -> list[str]:
        return [f"Dataset: {self.dataset}. Clips: scored per seed ({'all folds pooled, each clip once' if self.split == 'loco' else 'one run'}).",
                "ψ: share of clips on which one seed's variant and baseline disagree (unknown before training; "
                "`harness table` prints the observed one as MDE). 'seeds differ': the seeds disagree on "
                "different clips, so averaging them halves the noise per seed added; 'same': they disagree on "
                "the same clips and extra seeds add nothing. The truth lies between.",
                "Normal approximation of McNemar's power (Connor 1987), as in the significance tables. ∞: too few "
                "clips for any effect that discordance allows."]

    def commands(self) -> list[str]:
        return []


def build_plan(ds: Any, split: str = "fold1", seeds: int = 2, unseen: str = "official",
               discordances: Sequence[float] = DISCORDANCES) -> PlanTable:
    """Count the clips each subset of ``split`` scores on ``ds`` and tabulate the MDEs."""
    from harness.data.splits import LOCO, loco_specs, make_split

    if split == LOCO:
        subsets = {"unseen (pooled)": sum(len(make_split(ds, s).unseen) for s in loco_specs(ds))}
    else:
        sp = make_split(ds, split, unseen)
        subsets = {"overall": len(sp.official_evaluate), "unseen": len(sp.unseen)}
    return PlanTable(str(ds.root), split, seeds, subsets, tuple(discordances))
