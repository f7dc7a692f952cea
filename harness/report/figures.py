"""Figures of the report and the measurable version of the paper's Figure 1.

The paper's Figure 1 only sketches that the triplet loss gathers one scene's clips from different
cities; here it is measured on stored evaluate-set embeddings: silhouette by scene vs by city, and
the ratio of same-scene cross-city to same-scene same-city distances (1 = the city is invisible).
Figures are drawn with the object-oriented Agg canvas (no pyplot, no display) and written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.atomic import atomic_path

MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">", "p")


# -- measures -----------------------------------------------------------------------------------
def distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix via one matrix product (BLAS), much faster than pdist on wide embeddings."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)  # centring keeps the subtraction below well conditioned
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(np.maximum(d2, 0.0))


def silhouette(x: np.ndarray | None, labels: np.ndarray, *, dist: np.ndarray | None = None) -> float:
    """Mean silhouette coefficient (Euclidean); a point alone in its cluster scores 0, as in sklearn."""
    labels = np.asarray(labels)
    classes, inv = np.unique(labels, return_inverse=True)
    if len(classes) < 2 or len(classes) >= len(labels):
        return float("nan")
    d = distances(x) if dist is None else dist
    onehot = np.eye(len(classes))[inv]
    sums, counts = d @ onehot, onehot.sum(axis=0)
    own = counts[inv]
    rows = np.arange(len(labels))
    a = sums[rows, inv] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[rows, inv] = np.inf
    b = mean_other.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(s.mean())


def distance_ratio(x: np.ndarray | None, scenes: np.ndarray, cities: np.ndarray, *, dist: np.ndarray | None = None) -> float:
    """Mean same-scene cross-city distance / mean same-scene same-city distance (≈1: city-invariant)."""
    d = distances(x) if dist is None else dist
    i, j = np.triu_indices(len(scenes), k=1)
    scenes, cities = np.asarray(scenes), np.asarray(cities)
    same_scene = scenes[i] == scenes[j]
    same_city = cities[i] == cities[j]
    pair_d = d[i, j]
    cross, within = pair_d[same_scene & ~same_city], pair_d[same_scene & same_city]
    if not len(cross) or not len(within) or within.mean() == 0:
        return float("nan")
    return float(cross.mean() / within.mean())


def pca2(x: np.ndarray) -> np.ndarray:
    """First two principal components (via SVD of the centred data)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    out = u[:, :2] * s[:2]
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))) if out.shape[1] < 2 else out


@dataclass(frozen=True)
class Invariance:
    """City-invariance of one run's embeddings (on ``n`` subsampled clips)."""

    silhouette_scene: float
    silhouette_city: float
    distance_ratio: float
    n: int


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_points`` of ``n`` rows, fixed by ``seed`` (silhouette is O(n²))."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def invariance(emb: np.ndarray, scenes: np.ndarray, cities: np.ndarray, max_points: int = 1500, seed: int = 0) -> Invariance:
    """Silhouettes by scene and by city and the distance ratio, from one distance matrix."""
    idx = subsample(len(scenes), max_points, seed)
    s, c = np.asarray(scenes)[idx], np.asarray(cities)[idx]
    d = distances(np.asarray(emb, dtype=np.float32)[idx])
    return Invariance(silhouette(None, s, dist=d), silhouette(None, c, dist=d), distance_ratio(None, s, c, dist=d), len(idx))


def confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(predicted)), 1)
    return cm


def city_accuracy(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy per city on every scored row (official or unseen), as the runner's acc_domain_<domain>."""
    scored = pred["official"].astype(bool) | pred["unseen"].astype(bool)
    ok = pred["logits"].argmax(axis=1) == pred["labels"]
    domains = pred["domains"].astype(str)
    return {d: float(ok[scored & (domains == d)].mean()) for d in sorted(set(domains[scored]))}


# -- drawing ------------------------------------------------------------------------------------
def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically (temp file + rename)."""
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return Path(path)


def plot_confusion(cm: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), labels=classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    return fig


def plot_city_accuracy(acc: dict[str, dict[str, float]], unseen: Sequence[str], title: str) -> Figure:
    """Grouped bars: cities on x (unseen last, hatched), one bar per variant."""
    cities = sorted({c for per in acc.values() for c in per}, key=lambda c: (c in unseen, c))
    fig = Figure(figsize=(max(6.0, 0.9 * len(cities) + 2), 4.2))
    ax = fig.add_subplot()
    width = 0.8 / max(len(acc), 1)
    for k, (variant, per) in enumerate(acc.items()):
        xs = np.arange(len(cities)) + (k - (len(acc) - 1) / 2) * width
        ys = [100 * per.get(c, np.nan) for c in cities]
        bars = ax.bar(xs, ys, width, label=variant, color=f"C{k % 10}")
        for bar, c in zip(bars, cities):
            if c in unseen:
                bar.set_hatch("//")
    ax.set_xticks(range(len(cities)), labels=[f"{c}\n(unseen)" if c in unseen else c for c in cities], fontsize=8)
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_learning_curves(curves: dict[str, list[pd.DataFrame]], title: str) -> Figure:
    """Overall and unseen accuracy per epoch; thin lines per seed, a thick line for their mean."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, label in zip(axes, ("acc", "unseen_acc"), ("overall", "unseen")):
        for k, (variant, frames) in enumerate(curves.items()):
            color = f"C{k % 10}"
            for f in frames:
                ax.plot(f["epoch"], 100 * f[col], color=color, alpha=0.3, lw=0.8)
            mean = pd.concat(frames).groupby("epoch")[col].mean()
            ax.plot(mean.index, 100 * mean.to_numpy(), color=color, lw=1.8, label=variant)
        ax.set_xlabel("epoch")
        ax.set_title(f"{label} accuracy", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy %")
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


@dataclass(frozen=True)
class Panel:
    """One projection panel: 2-D points with their scene and city labels."""

    title: str
    points: np.ndarray
    scenes: np.ndarray  # class indices
    cities: np.ndarray  # names


def plot_projection(panels: Sequence[Panel], classes: Sequence[str], unseen: Sequence[str], title: str) -> Figure:
    """Colour = scene, marker = city (unseen cities drawn with a black edge), one panel per model."""
    cities = sorted({str(c) for p in panels for c in p.cities})
    marker = {c: MARKERS[i % len(MARKERS)] for i, c in enumerate(cities)}
    fig = Figure(figsize=(6 * len(panels), 5.5))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, p in zip(axes, panels):
        for c in cities:
            m = p.cities == c
            ax.scatter(p.points[m, 0], p.points[m, 1], c=[f"C{s % 10}" for s in p.scenes[m]], marker=marker[c], s=14,
                       linewidths=0.6 if c in unseen else 0, edgecolors="black" if c in unseen else "none", alpha=0.8)
        ax.set_title(p.title, fontsize=9)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    scene_handles = [Patch(color=f"C{i % 10}", label=s) for i, s in enumerate(classes)]
    city_handles = [Line2D([], [], ls="", marker=marker[c], color="gray", label=c + (" (unseen)" if c in unseen else ""))
                    for c in cities]
    fig.legend(handles=scene_handles + city_handles, loc="center right", fontsize=7, frameon=False)
    fig.subplots_adjust(right=0.84)
    fig.suptitle(title, fontsize=11)
    return fig
