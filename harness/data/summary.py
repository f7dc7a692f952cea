"""What ``harness data info`` prints about any dataset: its format, protocols and clip counts."""

from __future__ import annotations

import pandas as pd

from harness.data.dataset import Dataset


def describe(ds: Dataset) -> pd.DataFrame:
    """Clip counts, rows ``(fold, class)``, one column per domain plus ``total``."""
    clips = ds.clips
    folds = list(dict.fromkeys(sorted(clips["fold"].unique(), key=_fold_order)))
    table = pd.crosstab([clips["fold"], clips["class"]], clips["domain"])
    index = pd.MultiIndex.from_product([folds, list(ds.classes)], names=["fold", "class"])
    domains = sorted(clips["domain"].unique())
    table = table.reindex(index=index, columns=domains, fill_value=0).astype("int64")
    table.columns.name = ds.domain_kind
    table["total"] = table.sum(axis=1)
    return table


def _fold_order(fold: str) -> tuple[int, int, str]:
    named = {"train": 0, "evaluate": 1, "unused": 2}
    if fold in named:
        return (0, named[fold], fold)
    return (1, int(fold), fold) if str(fold).isdigit() else (2, 0, str(fold))


def summary_text(ds: Dataset) -> str:
    """A few lines: what was loaded, its audio format, protocols and unseen domains."""
    clips = ds.clips
    counts = clips["fold"].value_counts()
    folds = sorted(counts.index, key=_fold_order)
    kind = ds.domain_kind
    lines = [
        f"dataset: {ds.name} — {ds.title}" + (" (SYNTHETIC data, not real recordings)" if ds.is_synthetic else ""),
        f"root: {ds.root}",
        f"audio: {ds.audio.describe()}",
        f"clips: {len(clips)} (" + ", ".join(f"fold {f}: {int(counts[f])}" for f in folds) + ")",
        f"classes ({len(ds.classes)}): {', '.join(ds.classes)}",
        f"groups (never split): {clips['group'].nunique()}; domain = {kind} ({clips['domain'].nunique()})",
        f"splits (--split): {', '.join(ds.protocols.split_names(kind))} (default {ds.protocols.default_split})",
    ]
    if ds.protocols.unseen_note:
        lines.append(ds.protocols.unseen_note)
    for name, mapping in ds.protocols.groupings.items():
        groups = sorted(set(mapping.values()))
        lines.append(f"domain grouping {name!r}: " + "; ".join(
            f"{g}: {', '.join(sorted(d for d, v in mapping.items() if v == g))}" for g in groups))
    lines.append(f"identity: {ds.identity[:16]}")
    return "\n".join(lines)
