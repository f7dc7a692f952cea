"""The DCASE 2024 data-efficient comparison: macro accuracy per training subset and per device group.

Built from stored runs on the DCASE 2024 splits (split name ``split<N>``: ``harness grid --table
subsets`` or ``--subset 5,10,25,50,100``), beside the DCASE 2024 baseline's published macro
accuracy per subset (``dcase2024-baseline.json`` here), labelled as published: those come from the
real TAU 2022 audio and the baseline's own 150-epoch recipe, so they are a reference, not a
like-for-like comparison, and never a comparison at all beside synthetic data.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.data.recorded import RecordedDataset

#: The device groups the task reports (the ``device`` grouping of ``tau2022-mobile``).
GROUPS = ("real", "simulated-seen", "unseen")
_SPLIT = re.compile(r"^split(\d+)$")


def load_published() -> dict[str, Any]:
    """The DCASE 2024 baseline's published macro accuracy per subset (shipped with the package)."""
    return json.loads(files("harness").joinpath("report", "dcase2024-baseline.json").read_text())


def _labels() -> dict[tuple[str, str, str, str], str]:
    """Row names of the shipped DCASE 2024 grid, by (arch, loss, aug, features)."""
    from harness.grids.variants import SUBSETS_GRID as path
    from harness.grids.variants import read_variants

    rows = read_variants(tomllib.loads(path.read_text())["variant"], str(path))
    return {(v.arch, v.loss, v.aug, str(v.settings.get("features", "dcase2019"))): v.name for v in rows}


def subset_runs(results: Path, index: pd.DataFrame, dataset: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """One row per complete run on a ``split<N>`` split, with its window scores, on one dataset
    (``dataset``: an identity prefix or a folder; default: the dataset with most such runs)."""
    labels = _labels()
    rows = []
    for _, r in index[index["status"] == "complete"].iterrows():
        m = _SPLIT.match(str(r["split"]))
        if not m:
            continue
        path = results / str(r["run_dir"]) / "summary.json"
        s = json.loads(path.read_text()) if path.is_file() else {}
        cfg_path = results / str(r["run_dir"]) / "config.json"
        record = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        key = (s.get("arch"), s.get("loss"), s.get("aug"), (record.get("config") or {}).get("features", "dcase2019"))
        rows.append({"variant": labels.get(key, " · ".join(map(str, key))), "subset": int(m[1]),
                     "dataset_identity": s.get("dataset_identity"), "dataset": s.get("dataset"),
                     "synthetic": RecordedDataset.from_record({"name": s.get("dataset_kind"), "root": s.get("dataset"),
                                                               **(record.get("dataset") or {})}).synthetic,
                     "dataset_kind": s.get("dataset_kind"), **{f"score_{k}": v for k, v in (s.get("scores") or {}).items()}})
    df = pd.DataFrame(rows)
    if df.empty:
        return df, None
    if dataset:
        keep = df["dataset_identity"].astype(str).str.startswith(dataset) | (df["dataset"].astype(str) == dataset)
        return df[keep], dataset
    top = df["dataset"].value_counts().index[0]
    return df[df["dataset"] == top], str(top)


def _mean(g: pd.DataFrame, key: str) -> float:
    col = f"score_{key}"
    v = g[col].dropna().astype(float) if col in g else pd.Series(dtype=float)
    return float(v.mean()) if len(v) else float("nan")


def _pct(g: pd.DataFrame, key: str) -> str:
    col = f"score_{key}"
    v = 100 * (g[col].dropna().astype(float) if col in g else pd.Series(dtype=float))
    if v.empty:
        return "—"
    return f"{v.mean():.2f}" + (f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else "")


@dataclass
class SubsetTable:
    runs: pd.DataFrame
    dataset: str | None
    published: dict[str, Any]
    name: str = "subsets"
    extra_notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return "DCASE 2024 protocol: macro accuracy (%) per training subset and device group"

    def headers(self) -> list[str]:
        return ["Variant", "Subset %", "Macro acc (ours)", "Real", "Sim. seen", "Unseen", "Log loss", "Runs",
                "DCASE 2024 baseline (published)"]

    def _groups(self) -> list[tuple[tuple[str, int], pd.DataFrame]]:
        if self.runs.empty:
            return []
        return sorted(self.runs.groupby(["variant", "subset"]), key=lambda kv: (kv[0][0], int(kv[0][1])))

    def _published(self, subset: int) -> str:
        value = self.published["values"].get(str(subset))
        return "—" if value is None else f"{value:.2f} ± {self.published['std'][str(subset)]:.2f}"

    def display_rows(self) -> list[list[str]]:
        out = []
        for (variant, subset), g in self._groups():
            loss = _mean(g, "log_loss")
            out.append([variant, str(int(subset)), _pct(g, "macro_acc"), *[_pct(g, f"acc_device_{k}") for k in GROUPS],
                        "—" if np.isnan(loss) else f"{loss:.3f}", str(len(g)), self._published(int(subset))])
        return out

    def records(self) -> list[dict[str, Any]]:
        out = []
        for (variant, subset), g in self._groups():
            rec = {"variant": variant, "subset": int(subset), "runs": len(g), "macro_acc": _mean(g, "macro_acc"),
                   "log_loss": _mean(g, "log_loss"),
                   **{f"acc_{k}": _mean(g, f"acc_device_{k}") for k in GROUPS},
                   "published_macro_acc": self.published["values"].get(str(int(subset)))}
            out.append(rec)
        return out

    def notes(self) -> list[str]:
        kinds = sorted(set(self.runs["dataset_kind"].astype(str))) if not self.runs.empty else []
        synthetic = bool(self.runs["synthetic"].any()) if not self.runs.empty else False
        return [
            f"Ours: runs on {self.dataset or '—'} ({', '.join(kinds) or 'no runs'}); each run's score is the mean over its "
            "scoring window (the last epochs); cells are mean ± std over seeds. Macro acc = class-averaged accuracy on "
            "test.csv; device groups: accuracy on the test clips of real devices (a, b, c), simulated devices seen in "
            "training (s1-s3) and devices never in training (s4-s6); log loss on test.csv.",
            f"Published ({self.published['note']}): {self.published['system']}, {self.published['source']}; on the real "
            "TAU 2022 audio with its own recipe" + (", so not comparable with runs on synthetic data." if synthetic else "."),
            *self.extra_notes,
        ]

    def commands(self) -> list[str]:
        return [] if not self.runs.empty else ["harness grid --table subsets --data PATH"]


def build_subset_table(results: Path, index: pd.DataFrame, dataset: str | None = None) -> SubsetTable:
    runs, chosen = subset_runs(results, index, dataset)
    return SubsetTable(runs, chosen, load_published())
