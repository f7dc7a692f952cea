"""Tables 1 and 2 from the results index, beside the paper's numbers, in five output formats.

A cell is the mean ± sample standard deviation over seeds of the runs that fill it; a cell with
no run is printed as missing together with the ``harness run`` line that fills it, so a table
never looks complete when it is not. Only ``status == "complete"`` rows of one dataset, preset,
split and unseen protocol are used, and the table says which.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness.data.recorded import RecordedDataset
from harness.data.registry import DATASETS, DEFAULT_DATA, opens_by_name
from harness.errors import ConfigError
from harness.metrics import METRICS as METRIC_NAMES
from harness.metrics import unseen_name
from harness.report.paper import METRICS, Paper, PaperParams, load_paper
from harness.grids.variants import PAPER_VARIANTS, VARIANTS, Variant
from harness.results.store import INDEX_COLUMNS, ResultsStore

FORMATS = ("text", "markdown", "latex", "csv", "json")
DEFAULT_MELS = (40, 200)
DEFAULT_SEEDS = (0, 1)  # the paper trains every configuration twice
MISSING = "missing"
METRIC_LABEL = {"overall": "Overall", "unseen": "Unseen"}
#: ``Selection.split`` of tables that pool the runs of every cross-validation fold.
FOLDS = "all folds"


# -- the index and the choice of runs -----------------------------------------------------------
def load_index(results: str | Path) -> pd.DataFrame:
    """``results/index.csv`` with every contract column present (empty when nothing is stored)."""
    df = ResultsStore(results).load_index(liveness=True)
    for col in INDEX_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    return df


@dataclass
class Selection:
    """Which dataset / preset / split / unseen protocol a table's numbers come from, and why."""

    dataset: str | None = None  # the dataset folder as recorded by the runner
    dataset_kind: str | None = None  # the dataset plugin that read it
    dataset_identity: str | None = None
    preset: str = "quick"
    split: str = "fold1"
    unseen_protocol: str = "official"
    unseen_domains: str = ""
    unseen_clips: int | None = None  # filled in from a stored predictions.npz when one exists
    notes: list[str] = field(default_factory=list)
    folds: tuple[str, ...] = ()  # the pooled cross-validation splits (fold:K) when split == FOLDS
    run_epochs: int | None = None  # runs of this many epochs instead of the preset's (``harness table --epochs``)

    @property
    def recorded(self) -> RecordedDataset:
        """The selected runs' dataset as recorded (what it is, how it compares with the paper)."""
        return RecordedDataset(self.dataset_kind, self.dataset)

    @property
    def beside_paper(self) -> bool:
        """Whether the paper's numbers belong beside these (see :attr:`RecordedDataset.beside_paper`)."""
        return self.recorded.beside_paper

    @property
    def score_last(self) -> int:
        """How many final epochs each run's score averages (the preset's, as the runs were filtered by it)."""
        from harness.runner.config import PRESETS

        return min(int(PRESETS.get(self.preset, PRESETS["paper"])["score_last"]), self.epochs)

    @property
    def epochs(self) -> int:
        from harness.runner.config import PRESETS

        return self.run_epochs or int(PRESETS.get(self.preset, PRESETS["paper"])["epochs"])

    @property
    def data_arg(self) -> str:
        """What to pass as ``harness run --data`` to add runs to this selection."""
        return self.recorded.data_arg

    def describe(self) -> str:
        """One line: what the numbers were measured on, and how that compares with the paper."""
        ident = f"identity {str(self.dataset_identity)[:10]}" if self.dataset_identity else "no runs yet"
        where = f"{self.dataset}, {ident}" if self.dataset else ident
        domains = self.unseen_domains or "none recorded"
        clips = f", {self.unseen_clips} clips scored" if self.unseen_clips is not None else ""
        kind = self.recorded.describe()
        proto = f"protocol {self.unseen_protocol}"
        if self.recorded.comparable_with_paper:
            proto += " (the paper's protocol is all: every clip of the unseen city)"
        split = f"{self.split} ({', '.join(self.folds)})" if self.folds else self.split
        return (f"Numbers from: {kind} ({where}); preset {self.preset}; split {split}; "
                f"unseen {domains}, {proto}{clips}.")


def _norm_aug(aug: Any) -> str:
    from harness.runner.config import normalize_aug

    try:
        return normalize_aug(str(aug))
    except ConfigError:
        return str(aug)


def _prepare(index: pd.DataFrame) -> pd.DataFrame:
    df = index.copy()
    df["aug"] = df["aug"].fillna("none").map(_norm_aug)
    for col in ("n_mels", "seed"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("dataset", "dataset_kind", "dataset_identity", "preset", "split", "unseen_protocol", "unseen_domains"):
        df[col] = df[col].astype("string").fillna("")
    return df


def _pick(df: pd.DataFrame, column: str, wanted: str | None, what: str, notes: list[str]) -> tuple[pd.DataFrame, str | None]:
    """Keep the rows whose ``column`` is ``wanted``; if not given, the value with most runs (said in a note)."""
    values = df[column].value_counts()
    if wanted is not None:
        return df[df[column] == wanted], wanted
    if values.empty:
        return df, None
    chosen = str(values.index[0])
    others = [f"{v} ({n} run{'' if n == 1 else 's'})" for v, n in values.items() if v != chosen]
    if others:
        notes.append(f"the index also holds {what} {', '.join(others)}; chose {chosen} ({values.iloc[0]} runs) — pick with --{what}")
    return df[df[column] == chosen], chosen


def _one_precision(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Runs of one training precision (bf16 changes the numbers): the one with most runs (runs
    stored before the option count as fp32); the others are named in a note."""
    prec = df["precision"].astype(object).fillna("fp32").replace("", "fp32") if "precision" in df else pd.Series("fp32", df.index)
    counts = prec.value_counts()
    if len(counts) <= 1:
        return df
    chosen = str(counts.index[0])
    others = ", ".join(f"{v} ({n})" for v, n in counts.items() if v != chosen)
    notes.append(f"the index also holds runs at precision {others}; this table uses {chosen} ({counts.iloc[0]} runs)")
    return df[prec == chosen]


def _match_dataset(df: pd.DataFrame, dataset: str) -> pd.Series:
    """Rows of ``dataset``: the name of a plugin that makes its own folder (runs it read), a dataset
    folder, or (a prefix of) a dataset identity."""
    if opens_by_name(dataset):
        return df["dataset_kind"] == dataset
    path = Path(dataset).expanduser()
    if path.exists() or "/" in dataset:
        target = str(path.resolve())
        # astype(bool): on an empty index map() gives an object Series, which pandas would take for column names
        return df["dataset"].map(lambda p: bool(p) and str(Path(p).expanduser().resolve()) == target).astype(bool)
    return df["dataset_identity"].astype(str).str.startswith(dataset).astype(bool)


def _paper_hyperparameters(df: pd.DataFrame, preset: str, notes: list[str], epochs: int | None = None) -> pd.DataFrame:
    """Drop runs whose epochs / batch / lr / α / γ differ from the preset (``epochs``: from this
    number of epochs instead): they fill no Table 1 cell."""
    from harness.runner.config import PRESETS

    if preset not in PRESETS or df.empty:
        return df
    keep = pd.Series(True, index=df.index)
    for col, value in {**PRESETS[preset], **({"epochs": epochs} if epochs else {})}.items():
        if col not in df.columns or not isinstance(value, (int, float)):  # e.g. score_last: not an index column; aug: a variant axis
            continue
        got = pd.to_numeric(df[col], errors="coerce")
        keep &= got.isna() | np.isclose(got.fillna(value), value)
    triplet = df["loss"].astype(str).str.startswith("triplet")
    for col, value in (("alpha", 0.2), ("gamma", 10.0)):
        got = pd.to_numeric(df[col], errors="coerce")
        keep &= ~triplet | got.isna() | np.isclose(got.fillna(value), value)
    dropped = df[~keep]
    if len(dropped):
        notes.append(f"{len(dropped)} complete run(s) left out because their epochs, batch size, lr, α or γ differ "
                     f"from preset {preset} and the paper (e.g. {dropped['run_id'].iloc[0]})")
    return df[keep]


def select_runs(index: pd.DataFrame, *, dataset: str | None = None, preset: str | None = None,
                unseen: str | None = None, split: str | None = None,
                epochs: int | None = None) -> tuple[pd.DataFrame, Selection]:
    """The complete runs that fill Table 1 and a :class:`Selection` saying where they come from.

    ``split``: one split (``fold1``, ``fold:3``, …), or None: cross-validation runs (``fold:K``)
    of every fold pooled when there are any, else ``fold1``.
    """
    notes: list[str] = []
    df = _prepare(index)
    stale = df[df["status"] == "stale"]
    if len(stale):
        notes.append(f"{len(stale)} run(s) marked running whose process is gone (stale; the same `harness run` "
                     f"resumes them): {', '.join(map(str, stale['run_id'].head(3)))}{' …' if len(stale) > 3 else ''}")
    complete = df[df["status"] == "complete"]
    if split is None:
        if complete["split"].str.startswith("fold:").any():
            split = FOLDS
        elif (complete["split"] == "fold1").any() or complete.empty:
            split = "fold1"
        else:  # a dataset whose default protocol is neither (a manifest's given split): the newest run's
            split = str(complete.sort_values("created")["split"].iloc[-1])
    # "loco" selects every leave-one-domain-out fold (splits loco:<domain>) at once; FOLDS every
    # cross-validation fold (fold:K).
    prefix = {"loco": "loco:", FOLDS: "fold:"}.get(split)
    on_split = complete["split"].str.startswith(prefix) if prefix else complete["split"] == split
    if (~on_split).any():
        notes.append(f"{int((~on_split).sum())} complete run(s) on other splits left out (this table uses {split})")
    runs = complete[on_split]
    if dataset is not None:
        runs = runs[_match_dataset(runs, dataset)]
        anywhere = df[_match_dataset(df, dataset)]
        if anywhere.empty and not opens_by_name(dataset) and not Path(dataset).expanduser().exists() and "/" not in dataset:
            known = sorted({f"{r.dataset_kind}:{r.dataset_identity[:10]}" for r in df.itertuples() if r.dataset_identity})
            raise ConfigError(f"no run in the results index used dataset {dataset!r}; known: {', '.join(known) or 'none'}")
    runs, identity = _pick(runs, "dataset_identity", None, "dataset", notes)
    runs, chosen_preset = _pick(runs, "preset", preset, "preset", notes)
    runs, protocol = _pick(runs, "unseen_protocol", unseen, "unseen", notes)
    runs = _one_precision(runs, notes)
    sel = Selection(split=split, notes=notes)
    if len(runs):
        latest = runs.sort_values("created").iloc[-1]
        sel.dataset, sel.dataset_kind = str(latest["dataset"]) or None, str(latest["dataset_kind"]) or None
        sel.dataset_identity, sel.unseen_domains = identity, str(latest["unseen_domains"])
    elif dataset is not None and not opens_by_name(dataset):
        seen = df[_match_dataset(df, dataset)]
        if len(seen):
            sel.dataset, sel.dataset_kind = str(seen["dataset"].iloc[-1]), str(seen["dataset_kind"].iloc[-1])
            sel.dataset_identity = str(seen["dataset_identity"].iloc[-1])
        else:
            sel.dataset, sel.dataset_kind = str(Path(dataset).expanduser().resolve()), None
    sel.preset = chosen_preset or preset or ("quick" if sel.data_arg == DEFAULT_DATA else "paper")
    sel.unseen_protocol = protocol or unseen or "official"
    if len(runs) == 0:
        notes.append("no complete runs match; every cell is missing (commands below)")
    sel.run_epochs = epochs
    runs = _paper_hyperparameters(runs, sel.preset, notes, epochs)
    key = ["arch", "loss", "aug", "n_mels", "seed", "split"]
    dup = runs.duplicated(key, keep=False)
    if dup.any():
        notes.append(f"{int(dup.sum())} runs share a configuration, seed and split (different options outside the index); "
                     "the most recent of each is used")
        runs = runs.sort_values("created").drop_duplicates(key, keep="last")
    if split == FOLDS:
        sel.folds = tuple(sorted(set(runs["split"]), key=_fold_key))
    return runs, sel


def _fold_key(split: str) -> tuple[int, str]:
    k = split.partition(":")[2]
    return (int(k), "") if k.isdigit() else (1 << 30, k)


def runs_of(runs: pd.DataFrame, variant: Variant, n_mels: int) -> pd.DataFrame:
    """The selected runs that fill ``variant`` at ``n_mels``, by seed."""
    m = (runs["arch"] == variant.arch) & (runs["loss"] == variant.loss) & (runs["aug"] == variant.aug) & (runs["n_mels"] == n_mels)
    return runs[m].sort_values("seed")


# -- Table 1 ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One (variant, n_mels, metric) cell: per-seed percent accuracies and the paper's value."""

    variant: Variant
    n_mels: int
    metric: str  # overall | unseen
    values: tuple[float, ...]  # percent, one per seed
    seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    paper: float | None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (ddof=1); None for fewer than two runs."""
        return float(np.std(self.values, ddof=1)) if self.n >= 2 else None

    @property
    def diff(self) -> float | None:
        return None if self.mean is None or self.paper is None else self.mean - self.paper


@dataclass(frozen=True)
class MissingRun:
    variant: str
    n_mels: int
    seed: int
    command: str


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _cell_text(cell: Cell) -> str:
    if cell.n == 0:
        return MISSING
    return f"{cell.mean:.2f} ± {cell.std:.2f}" if cell.std is not None else f"{cell.mean:.2f}"


@dataclass
class Table1:
    """The paper's Table 1 measured on the selected runs."""

    selection: Selection
    cells: dict[tuple[str, int, str], Cell]
    variants: tuple[Variant, ...]
    mels: tuple[int, ...]
    seeds: tuple[int, ...]
    missing: list[MissingRun]
    paper: Paper
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # the selected runs behind the cells
    name: str = "table1"
    metric: str = "acc"  # harness.metrics name: acc, macro_acc, log_loss

    @property
    def unit(self) -> str:
        return "" if self.metric == "log_loss" else " %"

    @property
    def title(self) -> str:
        what = {"acc": "accuracy (%)", "macro_acc": "class-averaged accuracy (%)", "log_loss": "log loss"}[self.metric]
        return f"Table 1: {what} — mean ± sample std over seeds, the paper's value, difference"

    def headers(self) -> list[str]:
        h = ["Variant", "Mels"]
        for metric in METRICS:
            label = METRIC_LABEL[metric]
            h += [f"{label}{self.unit} (ours)", f"{label}{self.unit} (paper)", f"{label} Δ"]
        return h + ["Runs"]

    def display_rows(self) -> list[list[str]]:
        rows = []
        for v in self.variants:
            for mels in self.mels:
                cells = [self.cells[(v.name, mels, m)] for m in METRICS]
                row = [v.name + (" (extra)" if v.extra else ""), str(mels)]
                for c in cells:
                    row += [_cell_text(c), _fmt(c.paper), _fmt(c.diff, signed=True)]
                rows.append(row + [f"{cells[0].n}/{len(self.seeds) * max(1, len(self.selection.folds))}"])
        for name, ref in self.paper.table1.items():
            if ref.harness_variant:
                continue
            for mels in self.mels:
                if any(ref.get(m, mels) is not None for m in METRICS):
                    row = [f"{name} (paper only)", str(mels)]
                    for m in METRICS:
                        row += ["—", _fmt(ref.get(m, mels)), "—"]
                    rows.append(row + ["—"])
        return rows

    def records(self) -> list[dict[str, Any]]:
        sel = self.selection
        base = {"dataset": sel.dataset, "dataset_kind": sel.dataset_kind, "dataset_identity": sel.dataset_identity,
                "preset": sel.preset, "split": sel.split, "unseen_protocol": sel.unseen_protocol}
        out = []
        for (name, mels, metric), c in self.cells.items():
            need = [m.command for m in self.missing if m.variant == name and m.n_mels == mels]
            status = "missing" if c.n == 0 else ("partial" if need else "complete")
            out.append({"variant": name, "extra": c.variant.extra, "arch": c.variant.arch, "loss": c.variant.loss,
                        "aug": c.variant.aug, "n_mels": mels, "metric": metric, "mean_pct": c.mean, "std_pct": c.std,
                        "n": c.n, "seeds": ";".join(map(str, c.seeds)), "run_ids": ";".join(c.run_ids),
                        "paper_pct": c.paper, "diff_pct": c.diff, "status": status,
                        "commands": "; ".join(need), **base})
        for name, ref in self.paper.table1.items():
            if not ref.harness_variant:
                for (metric, mels), value in ref.values.items():
                    if mels in self.mels:
                        out.append({"variant": name, "extra": False, "n_mels": mels, "metric": metric, "n": 0,
                                    "paper_pct": value, "status": "paper-only", **base})
        return out

    def notes(self) -> list[str]:
        p = self.paper.protocol
        unit = "" if self.metric == "log_loss" else ", in percent"
        paper = (f"; the paper averages {p.get('runs_per_config', 2)} runs of {p.get('epochs', 200)} epochs. Δ = ours − paper"
                 if self.metric == "acc" else "; the paper reports accuracy only")
        if not self.selection.beside_paper:
            paper = f"; the paper's values are left out: they are on {DATASETS.paper_dataset()}, not this dataset"
        over = f"seeds × {len(self.selection.folds)} folds (folds pooled)" if self.selection.folds else "seeds"
        return [self.selection.describe(),
                f"Cells: mean ± sample std (ddof=1) over {over} of each run's {self.metric} and {unseen_name(self.metric)} "
                f"score (their mean over the scoring window, the last {self.selection.score_last} of "
                f"{self.selection.epochs} epochs){unit}{paper}.",
                *self.selection.notes]

    def commands(self) -> list[str]:
        return [m.command for m in self.missing]


def build_table1(index: pd.DataFrame, *, dataset: str | None = None, preset: str | None = None,
                 unseen: str | None = None, mels: Sequence[int] = DEFAULT_MELS, seeds: Sequence[int] = DEFAULT_SEEDS,
                 include_extra: bool = True, paper: Paper | None = None, results: str | Path | None = None,
                 split: str | None = None, metric: str = "acc", variants: Sequence[Variant] | None = None,
                 table: type["Table1"] | None = None, epochs: int | None = None) -> "Table1":
    """Fill Table 1 (or ``table`` over ``variants``) from ``index``; with ``results`` the unseen clip
    count is read from a stored run.

    ``split`` as :func:`select_runs`; ``metric`` other than ``acc`` is read from each run's
    ``summary.json`` scores (needs ``results``).
    """
    if metric not in METRIC_NAMES:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRIC_NAMES)}")
    if metric != "acc" and results is None:
        raise ConfigError(f"metric {metric!r} is read from the run folders: give the results folder")
    paper = paper or load_paper()
    runs, sel = select_runs(index, dataset=dataset, preset=preset, unseen=unseen, split=split, epochs=epochs)
    if variants is None:
        variants = VARIANTS if include_extra else PAPER_VARIANTS
    cells: dict[tuple[str, int, str], Cell] = {}
    missing: list[MissingRun] = []
    for v in variants:
        for m in mels:
            rows = runs_of(runs, v, m)
            scale = 1.0 if metric == "log_loss" else 100.0
            for which, col in (("overall", metric), ("unseen", unseen_name(metric))):
                vals = (pd.to_numeric(rows["acc_score" if which == "overall" else "unseen_score"], errors="coerce")
                        if metric == "acc" else _stored_scores(Path(results), rows, col))
                ok = vals.notna()
                cells[(v.name, m, which)] = Cell(
                    v, m, which, tuple(scale * float(x) for x in vals[ok]), tuple(int(s) for s in rows["seed"][ok]),
                    tuple(str(r) for r in rows["run_id"][ok]),
                    paper.accuracy(v.paper_key, which, m) if metric == "acc" and sel.beside_paper else None)
            have = {(int(s), sp) for s, sp in zip(rows["seed"], rows["split"])}
            for s in seeds:
                for sp in sel.folds or (sel.split,):
                    if (s, sp) not in have:
                        missing.append(MissingRun(v.name, m, s, v.command(m, s, sel.preset, sel.data_arg,
                                                                          sel.unseen_protocol, results,
                                                                          split=None if sp == FOLDS else sp,
                                                                          epochs=sel.run_epochs)))
    if results is not None and len(runs):
        sel.unseen_clips = _unseen_clips(Path(results), runs)
    return (table or Table1)(sel, cells, tuple(variants), tuple(mels), tuple(seeds), missing, paper, runs, metric=metric)


@dataclass
class MethodsTable(Table1):
    """A grid's rows without the paper's columns (the paper has none of these rows)."""

    name: str = "methods"

    @property
    def title(self) -> str:
        what = {"acc": "accuracy (%)", "macro_acc": "class-averaged accuracy (%)", "log_loss": "log loss"}[self.metric]
        return f"Methods for unseen domains: {what} — mean ± sample std over seeds"

    def headers(self) -> list[str]:
        return ["Variant", "Mels", *(f"{METRIC_LABEL[m]}{self.unit}" for m in METRICS), "Runs"]

    def display_rows(self) -> list[list[str]]:
        rows = []
        for v in self.variants:
            for mels in self.mels:
                cells = [self.cells[(v.name, mels, m)] for m in METRICS]
                rows.append([v.name, str(mels), *(_cell_text(c) for c in cells),
                             f"{cells[0].n}/{len(self.seeds) * max(1, len(self.selection.folds))}"])
        return rows

    def records(self) -> list[dict[str, Any]]:
        return [r for r in super().records() if r.get("status") != "paper-only"]

    def notes(self) -> list[str]:
        unit = "" if self.metric == "log_loss" else ", in percent"
        return [self.selection.describe(),
                f"Cells: mean ± sample std (ddof=1) over seeds of each run's {self.metric} and {unseen_name(self.metric)} "
                f"score (their mean over the scoring window, the last {self.selection.score_last} of "
                f"{self.selection.epochs} epochs){unit}. Every method in its default settings (`harness list`); "
                "KD rows are taught by the best complete stored SubSpectralNet run.",
                *self.selection.notes]


def _stored_scores(results: Path, rows: pd.DataFrame, key: str) -> pd.Series:
    """``scores[key]`` of each run's summary.json (NaN where absent: a run from before the metric existed)."""
    out = []
    for run_dir in rows["run_dir"]:
        try:
            scores = json.loads((results / str(run_dir) / "summary.json").read_text()).get("scores") or {}
        except (OSError, ValueError):
            scores = {}
        out.append(scores.get(key, np.nan))
    return pd.Series(out, index=rows.index, dtype=float)


def _unseen_clips(results: Path, runs: pd.DataFrame) -> int | None:
    for run_dir in runs["run_dir"].dropna():
        path = results / str(run_dir) / "predictions.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return int(np.asarray(z["unseen"]).sum()) if "unseen" in z.files else None
    return None


# -- Table 2 ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table2Row:
    network: str
    arch: str | None
    n_mels: int | None
    params: int | None
    macs: int | None
    paper: PaperParams | None

    @property
    def diff(self) -> int | None:
        return None if self.params is None or self.paper is None else self.params - self.paper.params

    @property
    def agrees(self) -> bool | None:
        return None if self.params is None or self.paper is None else self.paper.agrees_with(self.params)


def _config_fields(item: Any) -> tuple[str | None, str, int]:
    """(label, arch, n_mels) from a TABLE2_CONFIGS entry: an object/dict with arch and n_mels, or a tuple."""
    if isinstance(item, dict):
        return item.get("label") or item.get("name") or item.get("network"), item["arch"], int(item["n_mels"])
    if hasattr(item, "arch") and hasattr(item, "n_mels"):
        label = getattr(item, "label", None) or getattr(item, "name", None) or getattr(item, "network", None)
        return label, str(item.arch), int(item.n_mels)
    ints = [x for x in item if isinstance(x, (int, np.integer)) and not isinstance(x, bool)]
    strs = [x for x in item if isinstance(x, str)]
    if len(ints) != 1 or not 1 <= len(strs) <= 2:
        raise ConfigError(f"harness.complexity.TABLE2_CONFIGS entry {item!r} is not (arch, n_mels) or (label, arch, n_mels)")
    known = {v.arch for v in VARIANTS}
    arch = next((s for s in strs if s in known), strs[-1])
    label = next((s for s in strs if s != arch), None)
    return label, arch, int(ints[0])


@dataclass
class Table2:
    """Parameters and MACs of the compared networks beside the paper's printed counts."""

    rows: list[Table2Row]
    n_frames: int
    paper: Paper
    name: str = "table2"

    @property
    def title(self) -> str:
        return "Table 2: trainable parameters (and MACs per clip) beside the paper's printed counts"

    def headers(self) -> list[str]:
        return ["Network", "Mels", "Params (ours)", "Params (paper)", "Δ params", "Agrees", "MACs (ours)"]

    def display_rows(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            out.append([r.network, "—" if r.n_mels is None else str(r.n_mels),
                        "—" if r.params is None else f"{r.params:,}",
                        r.paper.printed if r.paper else "—",
                        "—" if r.diff is None else f"{r.diff:+,}",
                        {True: "yes", False: "no", None: "—"}[r.agrees],
                        "—" if r.macs is None else f"{r.macs / 1e6:,.1f} M"])
        return out

    def records(self) -> list[dict[str, Any]]:
        return [{"network": r.network, "arch": r.arch, "n_mels": r.n_mels, "params": r.params, "macs": r.macs,
                 "n_frames": self.n_frames, "paper_printed": r.paper.printed if r.paper else None,
                 "paper_params": r.paper.params if r.paper else None, "diff_params": r.diff, "agrees": r.agrees}
                for r in self.rows]

    def notes(self) -> list[str]:
        return [f"Ours: trainable parameters and multiply-accumulates of one {self.n_frames}-frame stereo clip "
                "(harness.complexity.measure). Δ = ours − the paper's number read at its printed resolution.",
                f"The paper: {self.paper.table2_note}."]

    def commands(self) -> list[str]:
        return []


def build_table2(paper: Paper | None = None, n_frames: int = 500) -> Table2:
    """Measure each Table 2 network with ``harness.complexity`` (no training needed)."""
    paper = paper or load_paper()
    try:
        from harness import complexity
    except ImportError as exc:
        raise ConfigError(f"Table 2 needs harness.complexity, which cannot be imported ({exc})") from exc
    configs = getattr(complexity, "TABLE2_CONFIGS", None)
    entries = [_config_fields(c) for c in configs] if configs else [
        (r.network, r.arch, r.n_mels) for r in paper.table2 if r.arch is not None and r.n_mels is not None]
    rows, used = [], set()
    for label, arch, n_mels in entries:
        ref = paper.params(arch, n_mels)
        m = complexity.measure(arch, n_mels, n_frames=n_frames)
        rows.append(Table2Row(label or (ref.network if ref else arch), arch, n_mels, int(m.params), int(m.macs), ref))
        used.add((arch, n_mels))
    for ref in paper.table2:
        if (ref.arch, ref.n_mels) not in used:
            rows.append(Table2Row(f"{ref.network} (paper only)", ref.arch, ref.n_mels, None, None, ref))
    return Table2(rows, n_frames, paper)


# -- rendering ----------------------------------------------------------------------------------
class Renderable(Protocol):
    name: str

    @property
    def title(self) -> str: ...
    def headers(self) -> list[str]: ...
    def display_rows(self) -> list[list[str]]: ...
    def records(self) -> list[dict[str, Any]]: ...
    def notes(self) -> list[str]: ...
    def commands(self) -> list[str]: ...


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "−": "-", "α": r"$\alpha$", "γ": r"$\gamma$"}


def latex_escape(text: str) -> str:
    out = re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], str(text))
    for k, v in _LATEX_UNICODE.items():
        out = out.replace(k, v)
    return out


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _text(t: Renderable, fmt: str) -> str:
    grid = tabulate(t.display_rows(), headers=t.headers(), tablefmt="github" if fmt == "markdown" else "simple",
                    disable_numparse=True)
    cmds = t.commands()
    if fmt == "markdown":
        parts = [f"### {t.title}", "", grid, ""] + [f"- {n}" for n in t.notes()]
        if cmds:
            parts += ["", f"Missing runs ({len(cmds)}), produced by:", "", "```sh", *cmds, "```"]
        return "\n".join(parts)
    parts = [t.title, "=" * len(t.title), grid, ""] + [f"* {n}" for n in t.notes()]
    if cmds:
        parts += ["", f"Missing runs ({len(cmds)}), produced by:", *[f"  {c}" for c in cmds]]
    return "\n".join(parts)


def _latex(t: Renderable) -> str:
    rows = [[latex_escape(c) for c in row] for row in t.display_rows()]
    body = tabulate(rows, headers=[latex_escape(h) for h in t.headers()], tablefmt="latex_raw", disable_numparse=True)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(t.title)}}}", r"\small",
             rf"\resizebox{{\textwidth}}{{!}}{{", body, "}", r"\end{table}"]
    lines += [f"% {n}" for n in t.notes()] + [f"% missing: {c}" for c in t.commands()]
    return "\n".join(lines)


def render(tables: Iterable[Renderable], fmt: str = "text") -> str:
    """One string with every table in ``fmt`` (text, markdown, latex, csv, json)."""
    tables = list(tables)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        doc = {t.name: {"title": t.title, "notes": t.notes(), "missing_commands": t.commands(), "rows": t.records()}
               for t in tables}
        return json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n"
    if fmt == "csv":
        frames = [pd.DataFrame(t.records()).assign(table=t.name) for t in tables]
        frames = [f for f in frames if len(f)]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["table"])
        return df[["table"] + [c for c in df.columns if c != "table"]].to_csv(index=False)
    if fmt == "latex":
        return "\n\n".join(_latex(t) for t in tables) + "\n"
    return "\n\n".join(_text(t, fmt) for t in tables) + "\n"
