"""One metrics function for every evaluation: overall, unseen-domain, per-domain and per-scene accuracy."""

from __future__ import annotations

import numpy as np


def accuracy_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    domains: np.ndarray,
    official: np.ndarray,
    unseen: np.ndarray,
    classes: list[str],
) -> dict[str, float]:
    """Accuracy on the official rows (``acc``), on unseen-domain rows (``unseen_acc``), per domain and scene.

    Per-domain accuracy uses every scored row of that domain (so Milan's includes the extra
    unused segments under the ``all`` protocol); per-scene uses the official rows.
    """
    correct = logits.argmax(axis=1) == labels
    scored = official | unseen
    out = {
        "acc": float(correct[official].mean()) if official.any() else float("nan"),
        "unseen_acc": float(correct[unseen].mean()) if unseen.any() else float("nan"),
    }
    for d in sorted(set(domains[scored].tolist())):
        m = scored & (domains == d)
        out[f"acc_city_{d}"] = float(correct[m].mean())
    for i, scene in enumerate(classes):
        m = official & (labels == i)
        if m.any():
            out[f"acc_scene_{scene}"] = float(correct[m].mean())
    return out
