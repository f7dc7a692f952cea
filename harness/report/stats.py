"""Is a variant's gain over its baseline row more than seed and clip noise?

Tests are paired on the stored per-clip predictions (``predictions.npz``, the final epoch) of two
runs with the same seed, dataset and feature size, matched clip by clip by file name:

* McNemar's test per seed: exact two-sided binomial test on the discordant pairs (b = clips only
  the variant gets right, c = clips only the baseline gets right), and its mid-p version.
* Combined over seeds: the exact paired sign-flip test on each clip's difference summed over
  seeds (``harness.report.power``), which is McNemar's exact test with one seed. Seeds share the
  test clips, so a clip is one observation however many seeds score it (summing discordant pairs
  over seeds as if they were independent clips would overstate the evidence). Its minimum
  detectable effect is reported beside it, and the p-values are Holm-adjusted over the table.
* A paired bootstrap 95 % interval of the accuracy difference: resample clips (with replacement)
  of the per-clip difference averaged over seeds, percentile method, fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.errors import DataError
from harness.report.power import PairedTest, holm, sign_flip_test
from harness.report.tables import Selection, runs_of
from harness.grids.variants import VARIANTS, Variant, get_variant

SUBSETS = {"overall": "official", "unseen": "unseen"}  # subset name -> predictions.npz mask


@dataclass(frozen=True)
class McNemar:
    """Discordant counts and two-sided p-values (exact binomial and mid-p)."""

    b: int  # variant right, baseline wrong
    c: int  # variant wrong, baseline right

    @property
    def p_exact(self) -> float:
        n = self.b + self.c
        return 1.0 if n == 0 else float(sps.binomtest(self.b, n, 0.5).pvalue)

    @property
    def p_mid(self) -> float:
        """2·P(X < k) + P(X = k) for k = min(b, c): the exact p less the observed table's probability."""
        n = self.b + self.c
        if n == 0:
            return 1.0
        k = min(self.b, self.c)
        return float(2 * sps.binom.cdf(k, n, 0.5) - sps.binom.pmf(k, n, 0.5))


def read_predictions(run_dir: Path, keys: Sequence[str] = ("filenames", "labels", "logits", "official", "unseen")) -> dict[str, np.ndarray]:
    """The named arrays of a run's ``predictions.npz`` (leaving the large embeddings unread)."""
    path = Path(run_dir) / "predictions.npz"
    if not path.exists():
        raise DataError("run has no predictions.npz (incomplete run?)", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            absent = [k for k in keys if k not in z.files]
            if absent:
                raise DataError(f"predictions.npz lacks array {absent[0]!r}", path)
            return {k: np.asarray(z[k]) for k in keys}
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable predictions.npz ({exc})", path) from exc


def correct_by_clip(pred: dict[str, np.ndarray], subset: str) -> pd.DataFrame:
    """Per-clip ``correct`` (bool) and ``label`` of one run on ``subset``, indexed by file name."""
    mask = pred[SUBSETS[subset]].astype(bool)
    ok = pred["logits"].argmax(axis=1) == pred["labels"]
    return pd.DataFrame({"correct": ok[mask], "label": pred["labels"][mask]},
                        index=pd.Index(pred["filenames"][mask].astype(str), name="filename"))


def pair(a: pd.DataFrame, b: pd.DataFrame, where: str) -> pd.DataFrame:
    """Align two runs' per-clip correctness on their common clips; labels must agree."""
    if not (a.index.is_unique and b.index.is_unique):
        raise DataError("duplicate file names in predictions.npz", where)
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    if not np.array_equal(a["label"].to_numpy(), b["label"].to_numpy()):
        raise DataError("the two runs' predictions disagree on clip labels; are they from the same dataset?", where)
    return pd.DataFrame({"variant": a["correct"].to_numpy(bool), "baseline": b["correct"].to_numpy(bool)}, index=common)


def mcnemar(df: pd.DataFrame) -> McNemar:
    v, b = df["variant"].to_numpy(bool), df["baseline"].to_numpy(bool)
    return McNemar(int((v & ~b).sum()), int((~v & b).sum()))


def bootstrap_ci(diff: np.ndarray, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(diff)`` resampling clips; exact when ``diff`` is constant."""
    diff = np.asarray(diff, dtype=float)
    if diff.size == 0:
        return (float("nan"), float("nan"))
    if np.ptp(diff) == 0:
        return (float(diff[0]), float(diff[0]))
    res = sps.bootstrap((diff,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                        vectorized=True, batch=500, rng=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


@dataclass
class Comparison:
    """One variant against its baseline row for one feature size and subset, over the paired seeds."""

    variant: str
    baseline: str
    n_mels: int
    subset: str
    seeds: tuple[int, ...]
    n_clips: int
    acc_variant: float  # percent, mean over seeds
    acc_baseline: float
    ci: tuple[float, float]  # percent, of acc_variant - acc_baseline
    per_seed: tuple[McNemar, ...]
    pooled: McNemar  # discordant counts summed over seeds
    paired: PairedTest  # the exact sign-flip test on per-clip differences summed over seeds
    p_holm: float = float("nan")  # paired.p_value, Holm-adjusted over the table's comparisons of this subset
    by_domain: dict[str, float] = field(default_factory=dict)  # percent Δ per held-out domain (pooled folds)

    @property
    def diff(self) -> float:
        return self.acc_variant - self.acc_baseline

    @property
    def mde(self) -> float:
        """Percent: the smallest difference the paired test detects at 80 % power, two-sided 5 %."""
        return 100 * self.paired.mde()


def clip_differences(variant: dict[int, pd.DataFrame], baseline: dict[int, pd.DataFrame],
                     where: str) -> dict[int, pd.DataFrame]:
    """Per seed with both, the clips both runs scored: ``variant`` and ``baseline`` correctness (and ``domain``)."""
    out = {}
    for s in sorted(set(variant) & set(baseline)):
        df = pair(variant[s], baseline[s], where)
        if "domain" in variant[s].columns:
            df["domain"] = variant[s]["domain"].reindex(df.index).to_numpy()
        if len(df):
            out[s] = df
    return out


def compare_frames(variant: dict[int, pd.DataFrame], baseline: dict[int, pd.DataFrame], subset: str, *,
                   names: tuple[str, str] = ("variant", "baseline"), n_mels: int = 0, n_resamples: int = 2000,
                   seed: int = 0, where: str = "predictions") -> Comparison | None:
    """Paired tests of per-seed per-clip correctness (:func:`correct_by_clip` frames); None when nothing pairs.

    A clip scored by only some seeds (an unfinished leave-one-domain-out grid) enters with those seeds.
    """
    paired = clip_differences(variant, baseline, where)
    if not paired:
        return None
    per_seed = tuple(mcnemar(df) for df in paired.values())
    pooled = McNemar(sum(m.b for m in per_seed), sum(m.c for m in per_seed))
    diffs = pd.concat({k: df["variant"].astype(int) - df["baseline"].astype(int) for k, df in paired.items()}, axis=1)
    s = diffs.sum(axis=1, min_count=1).to_numpy(int)  # per clip, summed over the seeds that scored it
    k = diffs.notna().sum(axis=1).to_numpy()
    test = sign_flip_test(s, n_seeds=k)
    lo, hi = bootstrap_ci(s / k, n_resamples=n_resamples, seed=seed)
    acc_v = 100 * float(np.mean([df["variant"].mean() for df in paired.values()]))
    acc_b = 100 * float(np.mean([df["baseline"].mean() for df in paired.values()]))
    by_domain: dict[str, float] = {}
    if all("domain" in df.columns for df in paired.values()):
        dom = pd.concat([df["domain"] for df in paired.values()]).groupby(level=0).first().reindex(diffs.index)
        by_domain = {str(d): 100 * float(np.mean((s / k)[(dom == d).to_numpy()])) for d in sorted(dom.unique())}
    return Comparison(names[0], names[1], n_mels, subset, tuple(paired), len(diffs), acc_v, acc_b,
                      (100 * lo, 100 * hi), per_seed, pooled, test, by_domain=by_domain)


def compare(variant_preds: dict[int, dict[str, np.ndarray]], baseline_preds: dict[int, dict[str, np.ndarray]],
            subset: str, **kw: Any) -> Comparison | None:
    """:func:`compare_frames` on runs' stored predictions keyed by seed."""
    return compare_frames({s: correct_by_clip(p, subset) for s, p in variant_preds.items()},
                          {s: correct_by_clip(p, subset) for s, p in baseline_preds.items()}, subset, **kw)


def adjust_holm(comparisons: list[Comparison]) -> None:
    """Holm over the comparisons of each subset: many variants tested against their baselines at once."""
    for subset in {c.subset for c in comparisons}:
        family = [c for c in comparisons if c.subset == subset]
        for c, p in zip(family, holm([c.paired.p_value for c in family])):
            c.p_holm = float(p)


def fmt_p(p: float) -> str:
    if p != p:
        return "—"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def fmt_mde(v: float) -> str:
    """NaN: no disagreement to measure; ∞: too few clips for any effect the discordance allows."""
    return "—" if v != v else ("∞" if v == float("inf") else f"{v:.2f}")


SIGNIFICANCE_NOTES = (
    "b = clips only the variant classifies correctly, c = only the baseline (summed over seeds). p per seed: exact "
    "two-sided McNemar. p (paired): exact two-sided sign-flip test of the per-clip differences summed over seeds "
    "(McNemar's exact test when there is one seed; a clip counts once however many seeds score it).",
    "p (Holm): the paired p adjusted by Holm's step-down method over all comparisons of the same subset in this "
    "table (many variants tested at once); read significance from it.",
    "MDE: minimum detectable effect, the accuracy difference (points) the paired test would detect with 80 % power "
    "at two-sided 5 %, from the number of clips and the observed discordance (normal approximation of McNemar's "
    "power, Connor 1987). A non-significant Δ means little when the MDE is larger than the effect of interest.",
)


@dataclass
class StatsTable:
    """Every variant against its baseline row, in the same formats as Tables 1-2."""

    selection: Selection
    comparisons: list[Comparison]
    skipped: list[str] = field(default_factory=list)
    n_resamples: int = 2000
    name: str = "stats"

    @property
    def title(self) -> str:
        return "Significance: each variant against its baseline row (paired on per-clip predictions)"

    def headers(self) -> list[str]:
        return ["Variant", "vs", "Mels", "Subset", "Seeds", "Clips", "Δ acc %", "95% CI", "b / c",
                "p per seed", "p (paired)", "p (Holm)", "MDE %"]

    def display_rows(self) -> list[list[str]]:
        return [[c.variant, c.baseline, str(c.n_mels), c.subset, ",".join(map(str, c.seeds)), str(c.n_clips),
                 f"{c.diff:+.2f}", f"[{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]", f"{c.pooled.b} / {c.pooled.c}",
                 ", ".join(fmt_p(m.p_exact) for m in c.per_seed), fmt_p(c.paired.p_value), fmt_p(c.p_holm),
                 fmt_mde(c.mde)]
                for c in self.comparisons]

    def records(self) -> list[dict[str, Any]]:
        return [{"variant": c.variant, "baseline": c.baseline, "n_mels": c.n_mels, "subset": c.subset,
                 "seeds": ";".join(map(str, c.seeds)), "n_clips": c.n_clips, "acc_variant_pct": c.acc_variant,
                 "acc_baseline_pct": c.acc_baseline, "diff_pct": c.diff, "ci_low_pct": c.ci[0], "ci_high_pct": c.ci[1],
                 "b": c.pooled.b, "c": c.pooled.c, "p_paired": c.paired.p_value, "p_holm": c.p_holm,
                 "discordance": c.paired.discordance, "mde_pct": c.mde,
                 "p_exact_per_seed": ";".join(repr(m.p_exact) for m in c.per_seed),
                 "b_per_seed": ";".join(str(m.b) for m in c.per_seed), "c_per_seed": ";".join(str(m.c) for m in c.per_seed),
                 "dataset_identity": self.selection.dataset_identity, "preset": self.selection.preset,
                 "unseen_protocol": self.selection.unseen_protocol}
                for c in self.comparisons]

    def notes(self) -> list[str]:
        out = ["Accuracies here are of the final epoch's stored predictions (Table 1 averages the last "
               f"{self.selection.score_last} epochs), so Δ can differ from Table 1's.", *SIGNIFICANCE_NOTES,
               f"95% CI: paired percentile bootstrap over clips of the seed-averaged per-clip difference "
               f"({self.n_resamples} resamples, fixed seed)."]
        if self.skipped:
            out.append("Not tested (no seed with both runs): " + "; ".join(self.skipped))
        return out

    def commands(self) -> list[str]:
        return []


def build_stats(runs: pd.DataFrame, selection: Selection, results: str | Path, *, mels: Sequence[int] = (40, 200),
                variants: Sequence[Variant] = VARIANTS, n_resamples: int = 2000, seed: int = 0) -> StatsTable:
    """Compare every variant that has a baseline row with it, per feature size, overall and unseen."""
    results = Path(results)
    cache: dict[str, dict[str, np.ndarray]] = {}

    def preds(rows: pd.DataFrame) -> dict[int, dict[str, np.ndarray]]:
        """Per seed; the runs of several cross-validation folds are pooled into one set of
        out-of-fold predictions (their test clips are disjoint), so tests are paired over folds."""
        parts: dict[int, list[dict[str, np.ndarray]]] = {}
        for r in rows.sort_values("split").itertuples():
            key = str(r.run_dir)
            if key not in cache:
                cache[key] = read_predictions(results / key)
            parts.setdefault(int(r.seed), []).append(cache[key])
        return {s: p[0] if len(p) == 1 else {k: np.concatenate([x[k] for x in p]) for k in p[0]}
                for s, p in parts.items()}

    comparisons, skipped = [], []
    for v in variants:
        if v.baseline is None:
            continue
        base = get_variant(v.baseline, tuple(variants))
        for m in mels:
            pv, pb = preds(runs_of(runs, v, m)), None
            if pv:
                pb = preds(runs_of(runs, base, m))
            if not pv or not set(pv) & set(pb or {}):
                skipped.append(f"{v.name} vs {base.name} at {m} mels")
                continue
            for subset in SUBSETS:
                c = compare(pv, pb, subset, names=(v.name, base.name), n_mels=m, n_resamples=n_resamples, seed=seed,
                            where=f"{results}/runs ({v.name} vs {base.name}, {m} mels)")
                if c is not None:
                    comparisons.append(c)
    adjust_holm(comparisons)
    return StatsTable(selection, comparisons, skipped, n_resamples)
