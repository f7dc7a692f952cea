"""One Optuna trial = one ordinary ``harness run`` scored on the inner validation split.

The run goes into the results store like any other (its run id differs by α/γ/lr), so a trial
is inspectable with ``harness table`` and a trial killed mid-run resumes from the run's last
checkpoint when Optuna retries it with the same parameters. The trial value is the mean of the
objective metric over the last ``score_last`` epochs (the run summary's ``scores``, the window
mean of every per-epoch metric), so it is scored exactly as the paper scores runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from harness.errors import TrainingError
from harness.runner.config import RunConfig
from harness.tuning.interrupt import INTERRUPTS
from harness.tuning.space import SearchSpace
from harness.tuning.storage import worker_attrs

#: Tuning defaults: shorter runs than ``quick`` (30 epochs), scored on their last epochs, so the
#: default 50-trial search fits the time benchmarks/tune.py measures against.
TUNE_EPOCHS = 8
TUNE_SCORE_LAST = 3
TUNE_LOSS = "triplet-city"

#: ``--objective`` → the per-epoch metric (``harness.metrics``) it maximises; its trial value is
#: the metric's mean over the scoring window (``summary["scores"]``).
OBJECTIVES = {"overall": "acc", "unseen": "unseen_acc", "macro": "macro_acc", "unseen-macro": "unseen_macro_acc"}
#: Objectives that hold one training domain out of the tuning train split.
HOLD_OUT = ("unseen", "unseen-macro")


def tuning_config(cfg: RunConfig, objective: str) -> RunConfig:
    """The search's base config: scored on inner validation; ``unseen`` holds one training city out."""
    return replace(cfg, evaluate_on="validation", hold_out_domain="auto" if objective in HOLD_OUT else None)


def stored_history(results: str | Path, run_id: str) -> pd.DataFrame:
    """Epochs a run already has on disk (from an interrupted or an identical earlier trial)."""
    path = Path(results) / "runs" / run_id / "epochs.csv"
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=["epoch"])


@dataclass
class Objective:
    """Callable objective: suggest, train with per-epoch report/prune, return the score."""

    base: RunConfig
    space: SearchSpace
    objective: str
    results: str
    progress: bool = False
    track: Any = None  # harness.tracking.TrackSpec; each trial is logged as a child of the study's run

    def config(self, params: dict[str, float]) -> RunConfig:
        return replace(self.base, **params)

    def __call__(self, trial: optuna.Trial) -> float:
        from harness.runner.train import run

        metric = OBJECTIVES[self.objective]
        cfg = self.config(self.space.suggest(trial))
        run_id = cfg.resolved().run_id()
        for key, value in {"run_id": run_id, **worker_attrs()}.items():
            trial.set_user_attr(key, value)
        history = stored_history(self.results, run_id)
        for _, row in history.iterrows():  # a resumed run: its earlier epochs count too
            if metric in row and not math.isnan(row[metric]):
                trial.report(float(row[metric]), int(row["epoch"]))

        def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
            value = float(metrics[metric])
            if math.isnan(value):
                raise TrainingError(f"objective {self.objective!r}: no {metric} on the validation rows of run {run_id}")
            with INTERRUPTS.shielded():
                trial.report(value, epoch)
                prune = trial.should_prune()
            if prune:
                raise optuna.TrialPruned(f"{metric} {value:.4f} at epoch {epoch}")

        try:
            with INTERRUPTS.trial():
                tracker = self.track.with_tags(**{"optuna.trial": str(trial.number)}).build() if self.track else None
                summary = run(cfg, self.results, progress=self.progress, on_epoch=on_epoch, tracker=tracker)
        except TrainingError as exc:  # recorded, then Optuna marks the trial FAIL and goes on
            trial.set_user_attr("error", str(exc))
            raise
        value = (summary.get("scores") or {}).get(metric)
        if value is None or math.isnan(float(value)):
            raise TrainingError(f"objective {self.objective!r}: run {run_id} has no {metric} score")
        return float(value)
