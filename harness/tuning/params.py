"""The best trial's α, γ (and lr) put to use: ``harness run --params-from STUDY`` and ``harness tune --final``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.runner.config import RunConfig
from harness.tuning.storage import JOURNAL_NAME, is_url, open_storage, redact
from harness.tuning.study import TuneSpec, open_study, study_dir


def locate_study(ref: str, results_dir: str | Path) -> tuple[BaseStorage, str]:
    """A study given as a name under ``results/studies/``, a journal file or folder, or ``URL#name``."""
    if is_url(ref):
        url, _, name = ref.rpartition("#") if "#" in ref else (ref, "", "")
        return _named(open_storage(url, results_dir), name, redact(url))
    path = Path(ref).expanduser()
    if path.is_dir() and (path / JOURNAL_NAME).is_file():
        path = path / JOURNAL_NAME
    if path.is_file():
        return _named(open_storage(str(path), path.parent), "", str(path), fallback=path.parent.name)
    journal = study_dir(results_dir, ref) / JOURNAL_NAME
    if not journal.is_file():
        raise ConfigError(f"no study {ref!r}: {journal} does not exist (run `harness tune` first, or give a journal path or URL#study)")
    return open_storage(str(journal), journal.parent), ref


def _named(storage: BaseStorage, name: str, where: str, fallback: str = "") -> tuple[BaseStorage, str]:
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name:
        if name not in names:
            raise ConfigError(f"no study {name!r} in {where} (it has: {', '.join(names) or 'none'})")
        return storage, name
    if len(names) == 1:
        return storage, names[0]
    if fallback in names:
        return storage, fallback
    raise ConfigError(f"{where} holds {len(names)} studies ({', '.join(names) or 'none'}); name one as {where}#STUDY")


def best_params(study: str, cfg: RunConfig, results_dir: str | Path) -> RunConfig:
    """``cfg`` with α, γ (and lr, if it was tuned) of the study's best complete trial."""
    storage, name = locate_study(study, results_dir)
    return apply_best(optuna.load_study(study_name=name, storage=storage), cfg)


def apply_best(loaded: optuna.Study, cfg: RunConfig) -> RunConfig:
    """``cfg`` with the tuned values of ``loaded``'s best complete trial; one-line errors if none."""
    name = loaded.study_name
    if not loaded.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise ConfigError(f"study {name!r} has no complete trial yet; run `harness tune` on it first")
    tuned_loss = loaded.user_attrs.get("harness_config", {}).get("loss")
    if tuned_loss and tuned_loss != cfg.loss:
        raise ConfigError(f"study {name!r} tuned --loss {tuned_loss}, but this run uses --loss {cfg.loss}; pass --loss {tuned_loss}")
    return replace(cfg, **loaded.best_trial.params)


def final_run(spec: TuneSpec, *, progress: bool = True) -> dict[str, Any]:
    """Re-train the best setting on the whole training split and score it on the evaluate split.

    The only place in tuning where evaluate labels are read."""
    from harness.runner.train import run

    cfg = apply_best(open_study(spec), spec.base)
    cfg = replace(cfg, evaluate_on="evaluate", hold_out_domain=None)
    tracker = spec.track.with_tags(**{"harness.final": "true"}).build() if spec.track else None
    return run(cfg, Path(spec.results), progress=progress, tracker=tracker)
