"""Optuna tuning of the triplet margin α and weight γ (and optionally lr): the public API.

Trials are ordinary runs scored on an inner validation split carved from the training split by
location; the evaluate split is read only by ``final_run`` (``harness tune --final``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.tuning.params import apply_best, best_params, locate_study
from harness.tuning.space import SearchSpace, parse_range
from harness.tuning.storage import fail_dead_trials, open_storage
from harness.tuning.study import TuneSpec, default_study_name, open_study, optimize

__all__ = ["SearchSpace", "TuneSpec", "apply_best", "best_params", "default_study_name", "fail_dead_trials", "final_run",
           "locate_study", "open_storage", "open_study", "optimize", "parse_range"]


def final_run(spec: TuneSpec, *, progress: bool = True) -> dict[str, Any]:
    """Re-train the best setting on the whole training split and score it on the evaluate split.

    The only place in tuning where evaluate labels are read."""
    from harness.runner.train import run

    cfg = apply_best(open_study(spec), spec.base)
    cfg = replace(cfg, evaluate_on="evaluate", hold_out_domain=None)
    tracker = spec.track.with_tags(**{"harness.final": "true"}).build() if spec.track else None
    return run(cfg, Path(spec.results), progress=progress, tracker=tracker)
