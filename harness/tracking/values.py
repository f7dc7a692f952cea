"""What a run's record becomes in a tracker: named scalars, flat parameters, a confusion figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def epoch_scalars(row: dict[str, Any]) -> dict[str, float]:
    """An ``epochs.csv`` row as named scalars: ``train/<term>`` for every loss term, ``train/lr``,
    ``eval/<metric>`` for every evaluation metric (accuracy overall, unseen, macro, per domain and class; log loss)."""
    out = {}
    for key, value in row.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if key.startswith("train_"):
            tag = f"train/{key[len('train_'):]}"
        elif key == "lr":
            tag = "train/lr"
        elif key == "seconds":
            tag = "time/epoch_seconds"
        else:
            tag = f"eval/{key}"
        out[tag] = float(value)
    return out


def summary_scalars(summary: dict[str, Any]) -> dict[str, float]:
    """A finished run's scores as ``summary/<name>``: the scoring-window means (``acc_score``,
    ``unseen_score`` and every metric under ``scores``), the final epoch's accuracies, wall time and size."""
    values = {k: summary.get(k) for k in ("acc_score", "unseen_score", "acc_final", "unseen_final", "wall_s", "params")}
    values.update({f"score_{k}": v for k, v in (summary.get("scores") or {}).items()})
    return {f"summary/{k}": float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"arch_options": {"conv_impl": "fused"}}`` → ``{"arch_options.conv_impl": "fused"}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def confusion_figure(run_dir: Path):
    """The confusion matrix of a finished run's official evaluate rows, or None before predictions exist."""
    import numpy as np

    from harness.report.figures import confusion, plot_confusion

    path = Path(run_dir) / "predictions.npz"
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as pred:
        rows = pred["official"].astype(bool)
        classes = [str(c) for c in pred["classes"]]
        cm = confusion(pred["labels"][rows], pred["logits"][rows].argmax(axis=1), len(classes))
    return plot_confusion(cm, classes, f"{Path(run_dir).name}: evaluate")
