"""Leave-one-domain-out: the folds of ``harness grid --split loco`` pooled into one answer.

Each fold (split ``loco:<domain>``) is an ordinary run that scores every clip of its held-out
domain; pooled over folds, every clip of the dataset is scored exactly once, by a model that never
trained on its domain. Unseen-domain accuracy is then an accuracy over all those clips (each fold's
score weighted by its number of clips), and a variant is compared with its baseline row clip by
clip, each clip with its own fold's two models (:mod:`harness.report.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from harness.errors import DataError
from harness.report.stats import (SIGNIFICANCE_NOTES, StatsTable, adjust_holm, compare_frames, correct_by_clip,
                                  fmt_mde, fmt_p, read_predictions)
from harness.report.tables import Selection, runs_of
from harness.grids.variants import VARIANTS, Variant, get_variant

LOCO = "loco"


def held_out(split: str) -> str:
    kind, _, domain = str(split).partition(":")
    if kind != LOCO or not domain:
        raise DataError(f"split {split!r} is not a leave-one-domain-out fold (loco:<domain>)")
    return domain


def pooled_clips(rows: pd.DataFrame, results: Path, cache: dict[str, dict[str, np.ndarray]] | None = None
                 ) -> dict[int, pd.DataFrame]:
    """Per seed, every held-out clip of the variant's folds: ``correct``, ``label``, ``domain`` by file name.

    A clip scored by two folds of one seed would be counted twice: that is refused.
    """
    cache = {} if cache is None else cache
    per_seed: dict[int, list[pd.DataFrame]] = {}
    for r in rows.itertuples():
        key = str(r.run_dir)
        if key not in cache:
            cache[key] = read_predictions(results / key)
        df = correct_by_clip(cache[key], "unseen")
        df["domain"] = held_out(r.split)
        per_seed.setdefault(int(r.seed), []).append(df)
    out = {}
    for seed, frames in per_seed.items():
        df = pd.concat(frames)
        if not df.index.is_unique:
            twice = df.index[df.index.duplicated()][0]
            raise DataError(f"clip {twice!r} is scored by two leave-one-domain-out folds of seed {seed}", results)
        out[seed] = df
    return out


@dataclass
class LocoRow:
    """One variant's pooled unseen-domain accuracy over the folds, per seed and per domain."""

    variant: Variant
    n_mels: int
    seeds: tuple[int, ...]
    pooled: tuple[float, ...]  # percent per seed: Σ fold score · fold clips / Σ fold clips
    clips: tuple[int, ...]  # held-out clips pooled, per seed
    folds: tuple[int, ...]  # folds done, per seed
    by_domain: dict[str, float]  # percent, mean over seeds of each fold's score

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.pooled)) if self.pooled else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.pooled, ddof=1)) if len(self.pooled) > 1 else None


@dataclass
class LocoTable:
    """Unseen-domain accuracy pooled over every held-out domain, with each domain's own."""

    selection: Selection
    rows: list[LocoRow]
    domains: tuple[str, ...]
    name: str = "loco"

    @property
    def title(self) -> str:
        return "Leave-one-domain-out: unseen-domain accuracy (%) pooled over every held-out domain"

    def headers(self) -> list[str]:
        return ["Variant", "Mels", "Unseen % (pooled)", "Clips", "Folds", *self.domains]

    def display_rows(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            cell = "missing" if r.mean is None else (f"{r.mean:.2f} ± {r.std:.2f}" if r.std is not None else f"{r.mean:.2f}")
            folds = "/".join(str(f) for f in r.folds) if r.folds else "0"
            out.append([r.variant.name, str(r.n_mels), cell, "/".join(map(str, r.clips)) or "0",
                        f"{folds} of {len(self.domains)}",
                        *[f"{r.by_domain[d]:.2f}" if d in r.by_domain else "—" for d in self.domains]])
        return out

    def records(self) -> list[dict[str, Any]]:
        return [{"variant": r.variant.name, "n_mels": r.n_mels, "seeds": ";".join(map(str, r.seeds)),
                 "unseen_pooled_pct": r.mean, "std_pct": r.std, "unseen_pooled_per_seed": ";".join(repr(v) for v in r.pooled),
                 "clips_per_seed": ";".join(map(str, r.clips)), "folds_per_seed": ";".join(map(str, r.folds)),
                 **{f"unseen_{d}_pct": r.by_domain.get(d) for d in self.domains},
                 "dataset_identity": self.selection.dataset_identity, "preset": self.selection.preset}
                for r in self.rows]

    def notes(self) -> list[str]:
        sel = self.selection
        return [f"Numbers from: {sel.dataset_kind or 'unknown'} dataset ({sel.dataset}, identity "
                f"{str(sel.dataset_identity)[:10]}); preset {sel.preset}; every domain held out in turn "
                "(train on the other domains' official training rows, score all clips of the held-out one).",
                "Unseen % (pooled): per seed, the accuracy over every held-out clip of every fold (each fold's "
                f"unseen_score, the mean of its last {sel.score_last} epochs, weighted by its clips), then mean ± "
                "sample std over seeds. Domain columns: each fold's unseen_score, mean over seeds.",
                "Clips / Folds: per seed; a seed with fewer folds than domains is an unfinished grid.",
                *sel.notes]

    def commands(self) -> list[str]:
        return []


@dataclass
class LocoStatsTable(StatsTable):
    """Each variant against its baseline row on every held-out clip, pooled over folds."""

    name: str = "loco_stats"

    @property
    def title(self) -> str:
        return "Leave-one-domain-out significance: each variant against its baseline row, pooled over held-out domains"

    def headers(self) -> list[str]:
        return ["Variant", "vs", "Mels", "Seeds", "Clips", "Δ acc %", "95% CI", "b / c", "Domains + / −",
                "p (paired)", "p (Holm)", "MDE %"]

    def display_rows(self) -> list[list[str]]:
        out = []
        for c in self.comparisons:
            up = sum(v > 0 for v in c.by_domain.values())
            down = sum(v < 0 for v in c.by_domain.values())
            out.append([c.variant, c.baseline, str(c.n_mels), ",".join(map(str, c.seeds)), str(c.n_clips),
                        f"{c.diff:+.2f}", f"[{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]", f"{c.pooled.b} / {c.pooled.c}",
                        f"{up} / {down} of {len(c.by_domain)}", fmt_p(c.paired.p_value), fmt_p(c.p_holm),
                        fmt_mde(c.mde)])
        return out

    def records(self) -> list[dict[str, Any]]:
        return [{**rec, "statistic": c.paired.statistic, **{f"diff_{d}_pct": v for d, v in c.by_domain.items()}}
                for rec, c in zip(super().records(), self.comparisons)]

    def notes(self) -> list[str]:
        out = ["Final-epoch predictions of every fold, each held-out clip compared between the variant's and the "
               "baseline's model of its own fold; Δ is over the clips both scored (so it can differ from the "
               "accuracy table's last-epochs means). Domains + / −: held-out domains where the variant is ahead / behind.",
               *SIGNIFICANCE_NOTES,
               "The paired test asks whether the variant beats the baseline on these held-out clips; the "
               "Domains column shows whether that holds domain by domain.",
               f"95% CI: paired percentile bootstrap over clips ({self.n_resamples} resamples, fixed seed)."]
        if self.skipped:
            out.append("Not tested (no seed with both runs): " + "; ".join(self.skipped))
        return out


def dataset_domains(selection: Selection) -> tuple[str, ...] | None:
    """Every domain of the selected runs' dataset (the folds a complete grid has), if it is readable here."""
    from harness.data.registry import open_dataset
    from harness.data.splits import domains
    from harness.errors import HarnessError

    if not selection.dataset:
        return None
    try:
        ds = open_dataset(selection.dataset, dataset=selection.dataset_kind, progress=False)
    except (HarnessError, OSError):
        return None
    return tuple(domains(ds)) if ds.identity == selection.dataset_identity else None


def build_loco(runs: pd.DataFrame, selection: Selection, results: str | Path, *, mels: Sequence[int] = (40,),
               variants: Sequence[Variant] = VARIANTS, n_resamples: int = 2000, seed: int = 0,
               all_domains: Sequence[str] | None = None) -> tuple[LocoTable, LocoStatsTable]:
    """The pooled accuracy table and the pooled significance table of the selected ``loco:*`` runs.

    ``all_domains``: the dataset's domains, so that unfinished folds show as such; else the
    domains some run held out (said in a note).
    """
    results = Path(results)
    cache: dict[str, dict[str, np.ndarray]] = {}
    seen = {held_out(s) for s in runs["split"]} if len(runs) else set()
    domains = tuple(sorted(set(all_domains or ()) | seen))
    if all_domains is None and seen:
        selection.notes.append("the dataset is not readable here: Folds counts only the domains some run held out")
    present = [v for v in variants if any(len(runs_of(runs, v, m)) for m in mels)]
    rows, clips = [], {}
    for v in present:
        for m in mels:
            sel = runs_of(runs, v, m)
            if not len(sel):
                continue
            per_seed = pooled_clips(sel, results, cache)
            clips[(v.name, m)] = per_seed
            pooled, counts, folds = [], [], []
            for s in sorted(per_seed):
                fold_rows = sel[sel["seed"] == s]
                n = {held_out(r.split): int((per_seed[s]["domain"] == held_out(r.split)).sum()) for r in fold_rows.itertuples()}
                score = {held_out(r.split): float(r.unseen_score) for r in fold_rows.itertuples()}
                pooled.append(100 * sum(score[d] * n[d] for d in n) / sum(n.values()))
                counts.append(sum(n.values()))
                folds.append(len(n))
            by_domain = (sel.assign(domain=sel["split"].map(held_out)).groupby("domain")["unseen_score"].mean() * 100).to_dict()
            rows.append(LocoRow(v, m, tuple(sorted(per_seed)), tuple(pooled), tuple(counts), tuple(folds), by_domain))
    comparisons, skipped = [], []
    for v in present:
        if v.baseline is None:
            continue
        base = get_variant(v.baseline)
        for m in mels:
            if (v.name, m) not in clips:
                continue
            if (base.name, m) not in clips:
                skipped.append(f"{v.name} vs {base.name} at {m} mels")
                continue
            c = compare_frames(clips[(v.name, m)], clips[(base.name, m)], "unseen", names=(v.name, base.name),
                               n_mels=m, n_resamples=n_resamples, seed=seed,
                               where=f"{results}/runs ({v.name} vs {base.name}, {m} mels)")
            if c is None:
                skipped.append(f"{v.name} vs {base.name} at {m} mels")
            else:
                comparisons.append(c)
    adjust_holm(comparisons)
    return LocoTable(selection, rows, domains), LocoStatsTable(selection, comparisons, skipped, n_resamples)
