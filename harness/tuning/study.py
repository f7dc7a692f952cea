"""Create or continue a study and run its trials, in this process or in ``--n-jobs`` processes.

``--trials N`` is the size of the study, not of this session: workers stop once N trials are
finished (complete or pruned) or running, so re-running the same command continues the search
and several commands (or machines) on one storage share the N trials between them. Parallel
trials run in separate processes rather than Optuna's threads: Python's GIL does not serialise
their single-threaded parts (batching, metrics, bookkeeping; benchmarks/tune.py compares one and
two processes), and Ctrl-C then reaches every trial, which is marked FAIL (see
``harness.tuning.interrupt``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from harness.errors import ConfigError, HarnessError, Terminated, TrainingError
from harness.processes import end_without_teardown, stop_signal
from harness.runner.config import RunConfig
from harness.signals import ignored, sigterm_raises, starting_workers
from harness.tuning.interrupt import INTERRUPTS
from harness.tuning.objective import OBJECTIVES, Objective
from harness.tuning.space import SearchSpace
from harness.tuning.storage import JOURNAL_NAME, fail_dead_trials, is_url, open_storage, redact

PRUNERS = ("median", "hyperband", "none")
#: A worker's exit status after Ctrl-C and after SIGTERM (the shell's 128 + signal number).
INTERRUPTED_EXIT, TERMINATED_EXIT = 130, 143
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Study user attributes that must match when a study is continued.
CHECKED_ATTRS = ("harness_config", "objective", "space")


@dataclass
class TuneSpec:
    """Everything a worker process needs to join the study (picklable for spawn)."""

    base: RunConfig
    space: SearchSpace
    objective: str
    results: str
    study_name: str
    trials: int
    storage: str | None = None
    timeout: float | None = None
    sampler_seed: int = 0
    pruner: str = "median"
    warmup: int = 2
    n_jobs: int = 1
    threads: int | None = None
    progress: bool = False
    started: float = field(default_factory=time.time)
    track: Any = None  # harness.tracking.TrackSpec: where each trial's run is reported

    def __post_init__(self) -> None:
        if self.study_name and not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.study_name):
            raise ConfigError(f"--study {self.study_name!r}: use letters, digits and _ . + - only (it names a folder)")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        if self.trials < 0:
            raise ConfigError(f"--trials must be >= 0, got {self.trials}")
        if self.n_jobs < 1:
            raise ConfigError(f"--n-jobs must be >= 1, got {self.n_jobs}")
        if self.warmup < 0:
            raise ConfigError(f"--prune-warmup must be >= 0, got {self.warmup}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")

    @property
    def study_dir(self) -> Path:
        return study_dir(self.results, self.study_name)

    @property
    def dashboard_target(self) -> str:
        """What ``optuna-dashboard`` opens: the journal file, or the database URL (password hidden)."""
        if self.storage and is_url(self.storage):
            return redact(self.storage)
        path = Path(self.storage) if self.storage else self.study_dir / JOURNAL_NAME
        return str(path / JOURNAL_NAME if path.is_dir() else path)

    @property
    def deadline(self) -> float | None:
        return None if self.timeout is None else self.started + self.timeout


def default_jobs(device: str) -> int:
    """Parallel trial processes: one per two cores on a CPU (one torch thread each measured
    faster than one process with two threads), one on a GPU."""
    from harness.runner.environment import resolve_device

    return 1 if resolve_device(device).type != "cpu" else max(1, min(2, os.cpu_count() or 1))


def study_dir(results: str | Path, name: str) -> Path:
    return Path(results) / "studies" / name


def default_study_name(cfg: RunConfig, objective: str) -> str:
    """``<arch>-<loss>-<aug>-m<mels>-<objective>-<dataset hash>``: one study per question asked."""
    name = f"{cfg.arch}-{cfg.loss}-{cfg.aug}-m{cfg.n_mels}-{objective}-{cfg.dataset_identity[:8]}"
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name.replace(",", "+"))


def study_attrs(spec: TuneSpec) -> dict[str, Any]:
    """What the study measures: the trials' shared config without the tuned values. Without the
    dataset identity too: it hashes file mtimes, so each machine of a shared study has its own."""
    skip = {*spec.space.names, "dataset_identity"}
    fixed = {k: v for k, v in spec.base.resolved().hashed_fields().items() if k not in skip}
    fixed["loss_options"] = {k: v for k, v in fixed["loss_options"].items() if k not in skip}
    attrs = {"harness_config": fixed, "objective": spec.objective, "space": spec.space.to_dict()}
    return json.loads(json.dumps(attrs, default=str))  # as the storage gives them back: tuples are lists


class TrialSeededTPE(optuna.samplers.TPESampler):
    """Seeded TPE whose random draws for trial ``n`` depend only on (seed, n) and the trials before
    it: workers that start together never try the same point (one run id, one lock), a continued
    study goes on instead of replaying its start-up points, and a one-worker search is reproducible.
    (Re-seeds TPE's two private generators; Optuna has no public per-trial seed.)"""

    def __init__(self, seed: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(seed=seed, constant_liar=True)
        self._harness_seed = seed

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        tpe, startup = np.random.SeedSequence([self._harness_seed, trial.number]).generate_state(2)
        self._rng.rng.seed(int(tpe))
        self._random_sampler._rng.rng.seed(int(startup))
        super().before_trial(study, trial)


def make_pruner(name: str, epochs: int, warmup: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(spec: TuneSpec, *, create: bool = False) -> optuna.Study:
    """Load (or with ``create``, create or continue) the study, with the spec's sampler and pruner."""
    storage = open_storage(spec.storage, spec.study_dir)
    epochs = spec.base.resolved().epochs or 1
    pruner = make_pruner(spec.pruner, epochs, spec.warmup)
    if create:
        study = optuna.create_study(study_name=spec.study_name, storage=storage, direction="maximize",
                                    load_if_exists=True, pruner=pruner)
        check_attrs(study, study_attrs(spec))
    else:
        study = optuna.load_study(study_name=spec.study_name, storage=storage, pruner=pruner)
    study.sampler = TrialSeededTPE(spec.sampler_seed)
    return study


def check_attrs(study: optuna.Study, attrs: dict[str, Any]) -> None:
    """Record what a new study measures; refuse to mix a different question into an old one."""
    old = study.user_attrs
    for key in CHECKED_ATTRS:
        if key not in old:
            study.set_user_attr(key, attrs[key])
            continue
        if old[key] != attrs[key]:
            if isinstance(old[key], dict) and isinstance(attrs[key], dict):
                diff = sorted(k for k in set(old[key]) | set(attrs[key]) if old[key].get(k) != attrs[key].get(k))
                what = ", ".join(f"{k} {old[key].get(k)!r} → {attrs[key].get(k)!r}" for k in diff[:3])
            else:
                what = f"{old[key]!r} → {attrs[key]!r}"
            raise ConfigError(f"study {study.study_name!r} was run with other settings ({key}: {what}); "
                              "pass --study NEW_NAME to start another study")


def counts(study: optuna.Study) -> dict[TrialState, int]:
    out = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        out[t.state] += 1
    return out


# -- workers ---------------------------------------------------------------------------------------
@dataclass
class StopOnFailures:
    """Optuna callback: stop this worker after ``limit`` failed trials in a row (a broken setting
    fails every trial; the search should not burn the rest of the budget on it)."""

    limit: int = 3
    streak: int = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.streak = self.streak + 1 if trial.state == TrialState.FAIL else 0
        if self.streak >= self.limit:
            print(f"stopping: {self.streak} trials in a row failed (last: {trial.user_attrs.get('error', '?')})",
                  file=sys.stderr)
            study.stop()


class _NoInterruptTraceback(logging.Filter):
    """Optuna logs a trial that failed with its traceback; for Ctrl-C or SIGTERM that is noise (the
    one line saying the trial failed, and why, stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None and issubclass(record.exc_info[0], KeyboardInterrupt):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_interrupts() -> None:
    """On the handlers of Optuna's logger: a logger's own filters would not see its children's records."""
    for handler in optuna.logging.get_logger("optuna").handlers:
        if not any(isinstance(f, _NoInterruptTraceback) for f in handler.filters):
            handler.addFilter(_NoInterruptTraceback())


def run_worker(spec: TuneSpec) -> None:
    """Run trials until the study holds ``spec.trials`` finished or running ones (or time is up)."""
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    quiet_interrupts()
    study = open_study(spec)
    objective = Objective(spec.base, spec.space, spec.objective, spec.results, spec.progress, spec.track)
    callbacks = [MaxTrialsCallback(spec.trials, states=(*FINISHED, TrialState.RUNNING)), StopOnFailures(),
                 INTERRUPTS.stop_callback]
    while not INTERRUPTS.requested:
        c = counts(study)
        finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
        todo = spec.trials - finished - c[TrialState.RUNNING]
        left = None if spec.deadline is None else spec.deadline - time.time()
        if todo <= 0 or (left is not None and left <= 0):
            return
        study.optimize(objective, n_trials=todo, timeout=left, catch=(TrainingError,), callbacks=callbacks,
                       gc_after_trial=True)
        c = counts(study)
        if c[TrialState.COMPLETE] + c[TrialState.PRUNED] == finished or callbacks[1].streak >= callbacks[1].limit:
            break  # failing trials: stop rather than fail forever
    if INTERRUPTS.requested:
        raise INTERRUPTS.exception()


def _worker_main(spec: TuneSpec, worker: int) -> None:
    """Entry point of a spawned worker: one-line errors, quiet Ctrl-C (the trial is already FAIL)."""
    try:
        with INTERRUPTS.installed():
            run_worker(spec)
    except KeyboardInterrupt as exc:  # the trial is FAIL in the storage already: nothing left to tear down
        end_without_teardown(TERMINATED_EXIT if isinstance(exc, Terminated) else INTERRUPTED_EXIT)
        sys.exit(TERMINATED_EXIT if isinstance(exc, Terminated) else INTERRUPTED_EXIT)
    except HarnessError as exc:
        print(f"harness: error: worker {worker}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def _stop(procs: list[mp.process.BaseProcess], signum: int = signal.SIGINT, wait: float = 60.0) -> None:
    """After Ctrl-C or SIGTERM: pass it on (workers ignore a repeat), let them mark their trials
    FAIL (they exit as soon as they have: seconds), and kill what is left after ``wait`` (the next
    start fails those trials as dead workers'). Further signals are ignored meanwhile, so an
    impatient second Ctrl-C cannot orphan a worker."""
    with ignored():
        stop_signal([p.pid for p in procs if p.is_alive() and p.pid], signum)
        deadline = time.time() + wait
        for p in procs:
            p.join(max(0.1, deadline - time.time()))
            if p.is_alive():
                p.kill()
                p.join(5)


def optimize(spec: TuneSpec) -> optuna.Study:
    """Create or continue the study, fail dead workers' trials, run the trials, return the study."""
    study = open_study(spec, create=True)
    failed = fail_dead_trials(study)
    if failed:
        print(f"marked trial(s) {', '.join(map(str, failed))} FAIL: their worker process died; queued again")
    if spec.n_jobs == 1:
        with INTERRUPTS.installed():
            run_worker(spec)
        return study
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(spec, i), name=f"tune-worker-{i}") for i in range(spec.n_jobs)]
    try:
        with sigterm_raises(Terminated):  # this parent runs no trial: SIGTERM acts as Ctrl-C, exit 143
            with starting_workers():
                for p in procs:
                    p.start()
            for p in procs:
                p.join()
    except KeyboardInterrupt as exc:
        _stop(procs, signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
        raise
    codes = [p.exitcode for p in procs if p.exitcode]
    if codes and all(c in (INTERRUPTED_EXIT, TERMINATED_EXIT) for c in codes):
        # the workers were interrupted (the signal reached them, not this process)
        raise Terminated() if TERMINATED_EXIT in codes else KeyboardInterrupt()
    bad = [f"worker {i} exit {p.exitcode}" for i, p in enumerate(procs) if p.exitcode]
    if bad:
        raise TrainingError(f"tuning worker(s) failed ({', '.join(bad)}); see their messages above")
    return study
