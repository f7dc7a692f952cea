"""``harness report``: one page (Markdown, or self-contained HTML) with Tables 1-2, the statistics, figures and Figure 1 measured.

Everything is recomputed from the results store, so the page can be regenerated at any time and
never holds a number that the store does not.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import __version__
from harness.atomic import write_text
from harness.errors import HarnessError
from harness.report import figures as fg
from harness.report import html
from harness.report.html import REPORT_FORMATS
from harness.report.stats import build_stats, read_predictions
from harness.report.tables import DEFAULT_MELS, DEFAULT_SEEDS, Table1, build_table1, build_table2, load_index, render, runs_of

PRED_KEYS = ("filenames", "labels", "domains", "classes", "logits", "embeddings", "official", "unseen")
CE_VARIANT, TRIPLET_VARIANT = "FCNN", "FCNN-triplet"  # the two panels of the paper's Figure 1
#: Figure kinds in page order, with their section titles.
FIGURE_KINDS = {"projection": "Figure 1 measured: embeddings of CE (FCNN) vs triplet-city (FCNN-triplet)",
                "cities": "Accuracy per city (seen vs unseen)", "curves": "Learning curves",
                "confusion": "Confusion matrices"}


@dataclass
class ReportOptions:
    results: Path
    out: Path | None = None  # default: <results>/report
    dataset: str | None = None
    preset: str | None = None
    unseen: str | None = None
    mels: tuple[int, ...] = DEFAULT_MELS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    stats: bool = True
    table2: bool = True
    max_points: int = 1500  # clips per run for silhouettes (O(n²) distances)
    n_resamples: int = 2000
    format: str = "markdown"  # or "html": one self-contained report.html


@dataclass
class InvarianceTable:
    """The paper's Figure 1 as numbers: how much of the embedding is scene, how much is city."""

    rows: list[tuple[str, int, int, fg.Invariance]] = field(default_factory=list)
    name: str = "invariance"

    @property
    def title(self) -> str:
        return "City invariance of evaluate-set embeddings (the paper's Figure 1, measured)"

    def headers(self) -> list[str]:
        return ["Variant", "Mels", "Seed", "Clips", "Silhouette by scene", "Silhouette by city", "Cross-/same-city distance"]

    def display_rows(self) -> list[list[str]]:
        return [[v, str(m), str(s), str(r.n), f"{r.silhouette_scene:+.3f}", f"{r.silhouette_city:+.3f}", f"{r.distance_ratio:.3f}"]
                for v, m, s, r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [{"variant": v, "n_mels": m, "seed": s, "n_clips": r.n, "silhouette_scene": r.silhouette_scene,
                 "silhouette_city": r.silhouette_city, "distance_ratio": r.distance_ratio} for v, m, s, r in self.rows]

    def notes(self) -> list[str]:
        return ["Silhouette (Euclidean) of the embeddings grouped by scene and by city: a city-invariant embedding "
                "scores high by scene and near or below 0 by city.",
                "Distance ratio = mean distance between same-scene clips of different cities / of the same city; "
                "1 means the city leaves no trace within a scene, above 1 means clips cluster by city."]

    def commands(self) -> list[str]:
        return []


@dataclass
class Report:
    path: Path
    figures: list[Path]
    notes: list[str]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _epochs(run_dir: Path) -> pd.DataFrame | None:
    path = run_dir / "epochs.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path)
    return df if {"epoch", "acc", "unseen_acc"} <= set(df.columns) else None


class _Figures:
    """Collects per-run data for one feature size and draws that size's figures."""

    def __init__(self, opts: ReportOptions, fig_dir: Path, notes: list[str]):
        self.opts, self.dir, self.notes = opts, fig_dir, notes
        self.written: list[tuple[str, int, Path]] = []  # (kind, n_mels, PNG)
        self.invariance = InvarianceTable()
        self.n_mels = 0

    def save(self, kind: str, fig, name: str) -> None:
        self.written.append((kind, self.n_mels, fg.save_figure(fig, self.dir / f"{name}.png")))

    def draw(self, table: Table1, n_mels: int) -> None:
        self.n_mels = n_mels
        results = self.opts.results
        city_acc: dict[str, dict[str, float]] = {}
        curves: dict[str, list[pd.DataFrame]] = {}
        projections: dict[str, tuple[int, dict[str, np.ndarray], fg.Invariance]] = {}
        unseen: set[str] = set(filter(None, table.selection.unseen_domains.split(",")))
        classes: list[str] = []
        for v in table.variants:
            rows = runs_of(table.runs, v, n_mels)
            cm, per_city = None, []
            for r in rows.itertuples():
                run_dir = results / str(r.run_dir)
                ep = _epochs(run_dir)
                if ep is not None:
                    curves.setdefault(v.name, []).append(ep)
                try:
                    p = read_predictions(run_dir, PRED_KEYS)
                except HarnessError as exc:
                    self.notes.append(f"figures skip run {r.run_id}: {exc}")
                    continue
                classes = [str(c) for c in p["classes"]]
                off = p["official"].astype(bool)
                c = fg.confusion(p["labels"][off], p["logits"][off].argmax(axis=1), len(classes))
                cm = c if cm is None else cm + c
                per_city.append(fg.city_accuracy(p))
                unseen |= set(p["domains"][p["unseen"].astype(bool)].astype(str))
                score = fg.invariance(p["embeddings"], p["labels"], p["domains"].astype(str), self.opts.max_points, seed=int(r.seed))
                self.invariance.rows.append((v.name, n_mels, int(r.seed), score))
                if v.name in (CE_VARIANT, TRIPLET_VARIANT) and v.name not in projections:
                    projections[v.name] = (int(r.seed), p, score)
            if cm is not None:
                seeds = ",".join(str(int(s)) for s in rows["seed"])
                self.save("confusion", fg.plot_confusion(cm, classes, f"{v.name}, {n_mels} mels, seeds {seeds} (official evaluate, summed)"),
                          f"confusion-{slug(v.name)}-m{n_mels}")
            if per_city:
                city_acc[v.name] = pd.DataFrame(per_city).mean().to_dict()
        if city_acc:
            self.save("cities", fg.plot_city_accuracy(city_acc, sorted(unseen), f"Accuracy per city, {n_mels} mels (mean over seeds)"),
                      f"city-accuracy-m{n_mels}")
        if curves:
            self.save("curves", fg.plot_learning_curves(curves, f"Learning curves, {n_mels} mels"), f"learning-curves-m{n_mels}")
        if len(projections) == 2:
            self.save("projection", self._projection(projections, classes, sorted(unseen), n_mels), f"embeddings-m{n_mels}")
        elif table.runs is not None and len(table.runs):
            self.notes.append(f"no embedding projection at {n_mels} mels: needs stored {CE_VARIANT} and {TRIPLET_VARIANT} runs")

    def _projection(self, projections: dict[str, tuple[int, dict[str, np.ndarray], fg.Invariance]], classes: list[str],
                    unseen: list[str], n_mels: int):
        panels = []
        for name in (CE_VARIANT, TRIPLET_VARIANT):
            seed, p, score = projections[name]
            idx = fg.subsample(len(p["labels"]), self.opts.max_points, seed)  # the clips the score used
            emb, scenes, cities = p["embeddings"][idx].astype(np.float32), p["labels"][idx], p["domains"][idx].astype(str)
            panels.append(fg.Panel(f"{name} (seed {seed}): silhouette scene {score.silhouette_scene:+.2f}, "
                                   f"city {score.silhouette_city:+.2f}", fg.pca2(emb), scenes, cities))
        return fg.plot_projection(panels, classes, unseen, f"Evaluate-set embeddings, PCA, {n_mels} mels "
                                                           "(colour = scene, marker = city)")


def _figure_section(title: str, paths: list[Path], out: Path) -> list[str]:
    if not paths:
        return []
    lines = [f"### {title}", ""]
    lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in paths]
    return lines + [""]


def _html_groups(figs: _Figures, mels: tuple[int, ...]) -> list[html.Group]:
    """A page section per feature size: its figures and its rows of the invariance table."""
    groups = []
    for m in mels:
        g = html.Group(f"{m} log-mel bands", f"mels-{m}")
        for kind, title in FIGURE_KINDS.items():
            for kk, mm, path in figs.written:
                if kk == kind and mm == m:
                    caption = title if kind != "confusion" else f"Confusion matrix: {path.stem.removeprefix('confusion-')}"
                    g.figures.append((caption, path))
        rows = [r for r in figs.invariance.rows if r[1] == m]
        if rows:
            g.tables.append(InvarianceTable(rows))
        groups.append(g)
    return groups


def build_report(opts: ReportOptions) -> Report:
    """Write ``report.md`` (or ``report.html``), ``tables.json``, ``tables.csv`` and ``figures/*.png`` under ``opts.out``."""
    if opts.format not in REPORT_FORMATS:
        raise HarnessError(f"unknown report format {opts.format!r}; choose one of {', '.join(REPORT_FORMATS)}")
    results = Path(opts.results)
    out = Path(opts.out) if opts.out else results / "report"
    fig_dir = out / "figures"
    notes: list[str] = []
    table1 = build_table1(load_index(results), dataset=opts.dataset, preset=opts.preset, unseen=opts.unseen,
                          mels=opts.mels, seeds=opts.seeds, results=results)
    tables: list[Any] = [table1]
    if opts.stats and len(table1.runs):
        tables.append(build_stats(table1.runs, table1.selection, results, mels=opts.mels, n_resamples=opts.n_resamples))
    if opts.table2:
        try:
            tables.append(build_table2())
        except (HarnessError, ImportError) as exc:
            notes.append(f"Table 2 left out: {exc}")
    figs = _Figures(replace(opts, results=results), fig_dir, notes)
    if len(table1.runs):
        for m in opts.mels:
            figs.draw(table1, m)
        if figs.invariance.rows:
            tables.append(figs.invariance)
    else:
        notes.append("no complete runs in the selection, so no figures; run the commands under Table 1")

    generated = (f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by harness {__version__} from `{results}`. "
                 "Paper values are the paper's own (harness/report/paper.json); every other number is recomputed from the store.")
    write_text(out / "tables.json", render(tables, "json"))
    write_text(out / "tables.csv", render(tables, "csv"))
    figures = [p for _, _, p in figs.written]
    if opts.format == "html":
        page_tables = [t for t in tables if t is not figs.invariance]  # shown per group instead
        text = html.page("ASC harness report", [generated.replace("`", ""), table1.selection.describe()],
                         page_tables, _html_groups(figs, opts.mels), notes)
        write_text(out / "report.html", text)
        return Report(out / "report.html", figures, notes)
    lines = ["# ASC harness report", "", generated, "", table1.selection.describe(), ""]
    for t in tables:
        lines += [render([t], "markdown"), ""]
    if figs.written:
        lines += ["## Figures", ""]
        for kind, title in FIGURE_KINDS.items():
            lines += _figure_section(title, [p for kk, _, p in figs.written if kk == kind], out)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    write_text(out / "report.md", "\n".join(lines))
    return Report(out / "report.md", figures, notes)
