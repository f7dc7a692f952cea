"""Metrics keyed on the data, computed from per-clip predictions.

One object, :class:`Predictions` (what ``predictions.npz`` stores), and one function,
:func:`compute`, used by the runner every epoch and by tables, reports and tuning afterwards:

- ``acc``, ``macro_acc`` (mean of the per-class accuracies: class-averaged, as the DCASE 2022+
  challenges rank), ``log_loss`` (multi-class cross-entropy of the softmax, natural log) on the
  official test rows;
- ``seen_acc`` / ``unseen_acc`` (and ``unseen_macro_acc``, ``unseen_log_loss``): official rows of
  domains seen in training / rows of unseen domains;
- ``acc_class_<class>`` (official rows), ``acc_domain_<domain>`` (every scored row), and
  ``acc_<grouping>_<group>`` for every domain grouping a dataset declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_softmax

#: Metrics a table or a tuning objective can name, and whether higher is better.
METRICS: dict[str, bool] = {"acc": True, "macro_acc": True, "log_loss": False}


@dataclass(frozen=True)
class Predictions:
    """Per-clip predictions of one evaluation (rows = scored clips)."""

    logits: np.ndarray  # (N, classes) float
    labels: np.ndarray  # (N,) int
    domains: np.ndarray  # (N,) str
    official: np.ndarray  # (N,) bool: row of the official test split (overall metrics)
    unseen: np.ndarray  # (N,) bool: row of an unseen domain
    classes: tuple[str, ...]
    groupings: dict[str, dict[str, str]] = field(default_factory=dict)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def macro_accuracy(correct: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present of each class's accuracy."""
    present = np.unique(labels)
    return float(np.mean([correct[labels == c].mean() for c in present])) if len(present) else float("nan")


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    if not len(labels):
        return float("nan")
    lp = log_softmax(np.asarray(logits, np.float64), axis=1)
    return float(-lp[np.arange(len(labels)), labels].mean())


def compute(p: Predictions) -> dict[str, float]:
    """Every metric of the module docstring; NaN where a subset is empty."""
    correct = p.logits.argmax(axis=1) == p.labels
    official, unseen = p.official, p.unseen
    seen = official & ~unseen
    out = {
        "acc": _mean(correct[official]),
        "macro_acc": macro_accuracy(correct[official], p.labels[official]),
        "log_loss": log_loss(p.logits[official], p.labels[official]),
        "seen_acc": _mean(correct[seen]),
        "unseen_acc": _mean(correct[unseen]),
        "unseen_macro_acc": macro_accuracy(correct[unseen], p.labels[unseen]),
        "unseen_log_loss": log_loss(p.logits[unseen], p.labels[unseen]),
    }
    for i, name in enumerate(p.classes):
        m = official & (p.labels == i)
        if m.any():
            out[f"acc_class_{name}"] = _mean(correct[m])
    scored = official | unseen
    for d in sorted(set(p.domains[scored].tolist())):
        out[f"acc_domain_{d}"] = _mean(correct[scored & (p.domains == d)])
    for grouping, mapping in p.groupings.items():
        group_of = np.array([mapping.get(d, "") for d in p.domains])
        for g in sorted(set(mapping.values())):
            m = scored & (group_of == g)
            if m.any():
                out[f"acc_{grouping}_{g}"] = _mean(correct[m])
    return out


def unseen_name(metric: str) -> str:
    """The unseen-domain counterpart of a metric: ``acc`` → ``unseen_acc``."""
    return f"unseen_{metric}"


#: Per-epoch columns that are not evaluation metrics.
NOT_SCORED = ("epoch", "seconds", "lr")


def window_scores(history: list[dict[str, float]], window: int) -> dict[str, float]:
    """Mean of every evaluation metric over the last ``window`` epochs (NaN epochs skipped).

    A run's score is this mean (the paper scores the mean of its last 10 epochs), so the window
    is recorded beside it (``score_window``).
    """
    tail = history[-window:] if window else []
    keys = [k for k in (tail[-1] if tail else {}) if k not in NOT_SCORED and not k.startswith("train_")]
    out = {}
    for k in keys:
        vals = [float(h[k]) for h in tail if k in h and h[k] is not None and not np.isnan(float(h[k]))]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out
