"""``harness grid``: train every Table 1 configuration that is not stored yet.

Locally, runs go to a pool of worker processes (``--jobs N|auto``; several small runs share one
GPU, spread over the GPUs when there are several: :mod:`harness.packing`), each with its share of
the CPU threads and its own device. Across
machines, the queue is an Optuna study with a ``GridSampler`` over the run ids in a shared
RDB storage (``--storage postgresql://…``): every worker asks the study for the next grid
point nobody has taken, and heartbeats hand a dead worker's run to another. Runs are
idempotent (the run id is a hash of the configuration) and resume from their last epoch, so
a point that two workers happen to take, or that a killed worker left, costs nothing extra.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from harness.errors import ConfigError, HarnessError, Terminated
from harness.packing import AUTO, Plan, activation_bytes, gpus_for, plan_workers, run_bytes
from harness.processes import end_without_teardown, stop_signal
from harness.progress import progress as progress_bar
from harness.grids.variants import Variant
from harness.results.store import ResultsStore
from harness.runner.config import RunConfig
from harness.signals import Interrupts, ignored, starting_workers


@dataclass
class GridPoint:
    variant: Variant
    cfg: RunConfig  # resolved and bound to the dataset (RunConfig.for_dataset)

    @property
    def run_id(self) -> str:
        return self.cfg.run_id()

    def label(self) -> str:
        split = "" if self.cfg.split == "fold1" else f" · {self.cfg.split}"
        return f"{self.variant.name} · {self.cfg.n_mels} mels · seed {self.cfg.seed}{split}"


def grid_points(rows: list[tuple[Variant, RunConfig]], mels: list[int | None], seeds: list[int],
                splits: list[str] | None = None) -> list[GridPoint]:
    """Every (variant, mels, seed, split) as a resolved run configuration, in a stable order;
    ``rows`` pairs each variant with its run configuration (``harness grid`` builds them from the
    grid file) already bound to the dataset (:meth:`RunConfig.for_dataset`), so run ids are final
    here; ``splits`` (cross-validation folds ``fold:K``, loco folds) default to each row's split. Seeds vary
    slowest, so an interrupted fold grid has whole seeds of every fold and variant. A ``mels`` of
    None keeps each row's own band count (its front end's).
    """
    points = []
    for seed in seeds:
        for n_mels in mels:
            for split in splits or [None]:
                for variant, base in rows:
                    cfg = replace(base, n_mels=n_mels or base.n_mels, seed=seed, split=split or base.split).resolved()
                    points.append(GridPoint(variant, cfg))
    return points


def pending(points: list[GridPoint], store: ResultsStore) -> list[GridPoint]:
    """The points without a completed run in the store."""
    return [p for p in points if (store.summary(p.run_id) or {}).get("status") != "complete"]


#: The device this worker process trains on (from its plan slot; None: the run's own setting).
_WORKER_DEVICE: str | None = None


def _init_worker(threads: int, slots: Any = None) -> None:
    global _WORKER_DEVICE
    torch.set_num_threads(threads)
    WORKER.install(on_request=end_without_teardown)  # stopped: leave at once once the run is reported
    if slots is not None:
        import queue

        try:
            _WORKER_DEVICE = slots.get_nowait()
        except queue.Empty:  # more processes than slots (a replaced worker): the run's own device
            _WORKER_DEVICE = None


#: A pool worker's interrupt state: SIGINT/SIGTERM stop its run (marked failed) and start no other.
WORKER = Interrupts()
#: Seconds the workers get to mark their runs failed after a stop, before they are killed.
STOP_WAIT = 8.0


def _pool_run(cfg: RunConfig, results: str) -> dict[str, Any]:
    """A pool worker's run: none starts once a stop was asked for; a stopped one is reported, not raised."""
    if WORKER.requested:
        return {"run_id": cfg.run_id(), "status": "not started", "error": "the grid was stopped first"}
    try:
        with WORKER.trial():
            return _run_one(cfg, results)
    except KeyboardInterrupt as exc:  # the run marked itself failed; resumable
        return {"run_id": cfg.run_id(), "status": "failed",
                "error": "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"}


def _quiet_cancelled_futures() -> None:
    """Python 3.11's pool, finding a stopped worker gone, sets an error on futures the stop already
    cancelled and its manager thread prints the ``InvalidStateError`` as a traceback: not an error
    of the run, so that one exception is not printed (any other thread error still is)."""
    from concurrent.futures import InvalidStateError

    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not isinstance(args.exc_value, InvalidStateError):
            previous(args)

    threading.excepthook = hook


def stop_pool(pool: ProcessPoolExecutor, futures: list[Future], results: str | Path, signum: int) -> None:
    """After Ctrl-C or SIGTERM: no queued run starts, the running ones are stopped (marked failed by
    their workers, or killed after ``STOP_WAIT`` and their rows failed here), the workers exit."""
    _quiet_cancelled_futures()
    with ignored():
        for f in futures:
            f.cancel()
        procs = list((getattr(pool, "_processes", None) or {}).values())  # the pool has no public handle on them
        stop_signal([p.pid for p in procs if p.pid], signum)
        deadline = time.monotonic() + STOP_WAIT
        wait_futures([f for f in futures if not f.cancelled()], timeout=STOP_WAIT)
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)
        fail_dead_rows(ResultsStore(results), {f.run_id for f in futures if not f.cancelled()})  # type: ignore[attr-defined]


def fail_dead_rows(store: ResultsStore, run_ids: set[str]) -> None:
    """Runs whose worker was killed keep their ``running`` rows: marked failed (resumable) here."""
    try:
        df = store.load_index()
        for _, row in df[df["run_id"].isin(run_ids) & (df["status"] == "running")].iterrows():
            if not store.is_running(str(row["run_id"])):
                store.update_index({**row.to_dict(), "status": "failed"})
    except (HarnessError, OSError):
        pass  # best effort: the row then reads stale, and the run resumes all the same


def _run_one(cfg: RunConfig, results: str) -> dict[str, Any]:
    from harness.runner.train import run

    if _WORKER_DEVICE is not None:
        cfg = replace(cfg, device=_WORKER_DEVICE)
    try:
        return run(cfg, results, progress=False)
    except HarnessError as exc:
        return {"run_id": cfg.run_id(), "status": "failed", "error": str(exc)}


def run_local(points: list[GridPoint], results: str | Path, *, jobs: int = 1, progress: bool = True,
              plan: Plan | None = None) -> list[dict[str, Any]]:
    """Run the points in ``jobs`` worker processes (or as ``plan`` says: :func:`worker_plan`), each
    worker on its own device slot; failures are reported, not fatal."""
    if not points:
        return []
    plan = plan or plan_workers(jobs, points[0].cfg.device, len(points))
    jobs = max(1, min(plan.jobs, len(points)))
    ctx = get_context("spawn")
    slots = ctx.Queue()
    for slot in plan.slots[:jobs]:
        slots.put(slot)
    out = []
    bar = progress_bar(total=len(points), desc="grid", unit="run", enabled=progress)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(plan.threads, slots)) as pool:
        with starting_workers():  # the pool starts its workers as the first runs are submitted
            futures = {pool.submit(_pool_run, p.cfg, str(results)): p for p in points}
        for fut, p in futures.items():
            fut.run_id = p.run_id  # type: ignore[attr-defined]  # which row to fail should its worker be killed
        try:
            for fut in as_completed(futures):
                point, summary = futures[fut], fut.result()
                out.append(summary)
                state = summary.get("status")
                acc = summary.get("acc_score")
                note = f"{100 * acc:.2f}%" if state == "complete" and acc is not None else summary.get("error", state)
                tqdm.write(f"{point.label()}: {note}")
                sys.stdout.flush()  # a line per finished run, also when the output goes to a log file
                bar.update(1)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): stop within seconds, start nothing
            bar.close()
            stop_pool(pool, list(futures), results, signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
            raise
    bar.close()
    return out


def worker_plan(points: list[GridPoint], jobs: int | str, sizes: dict[tuple[str, Any], tuple[int, tuple[int, ...], int]]) -> Plan:
    """The workers for ``points``; ``sizes`` maps (dataset identity, feature config) to the feature
    array's bytes, one clip's shape and the class count, for ``--jobs auto``'s memory estimate on CUDA."""
    device = points[0].cfg.device if points else "cpu"
    per_run = None
    if jobs == AUTO and gpus_for(device) is not None:
        per_run, done = 0, set()
        for p in points:
            key = (p.cfg.dataset_identity, p.cfg.feature_config())
            what = json.dumps([repr(key), p.cfg.arch, p.cfg.batch_size, p.cfg.arch_options], sort_keys=True, default=str)
            if what in done:
                continue
            done.add(what)
            nbytes, shape, classes = sizes[key]
            params, saved = activation_bytes(p.cfg.arch, p.cfg.arch_options, shape, classes, int(p.cfg.batch_size))
            per_run = max(per_run, run_bytes(nbytes, params, saved))
    return plan_workers(jobs, device, len(points), per_run=per_run)


def grid_study_name(points: list[GridPoint]) -> str:
    digest = hashlib.sha256("\n".join(sorted(p.run_id for p in points)).encode()).hexdigest()[:10]
    return f"grid-{digest}"


def run_distributed(points: list[GridPoint], results: str | Path, storage_url: str, *, progress: bool = True) -> int:
    """Work through the grid as one worker of an Optuna study shared by any number of machines."""
    import optuna

    from harness.tuning.storage import open_storage

    by_id = {p.run_id: p for p in points}
    storage = open_storage(storage_url, Path(results) / "studies")
    sampler = optuna.samplers.GridSampler({"run_id": sorted(by_id)}, seed=0)
    study = optuna.create_study(study_name=grid_study_name(points), storage=storage, sampler=sampler,
                                direction="maximize", load_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        point = by_id[trial.suggest_categorical("run_id", sorted(by_id))]
        trial.set_user_attr("label", point.label())
        summary = _run_one(point.cfg, str(results))
        if summary.get("status") != "complete":
            raise RuntimeError(summary.get("error", "run failed"))
        return float(summary["acc_score"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, catch=(RuntimeError,), show_progress_bar=progress)
    return len(study.trials)


def bind_teachers(points: list[GridPoint], store: ResultsStore) -> tuple[list[GridPoint], list[GridPoint]]:
    """``points`` with every ``best:ARCH`` teacher replaced by a stored run id, and the points whose
    teacher is not stored yet (they wait: their run id depends on which run teaches)."""
    from harness.runner.teacher import BEST, resolve_teachers

    ready, waiting = [], []
    for p in points:
        if not any(t.startswith(BEST) for t in p.cfg.teachers):
            ready.append(p)
            continue
        try:
            ready.append(GridPoint(p.variant, resolve_teachers(p.cfg, store)))
        except ConfigError:
            waiting.append(p)
    return ready, waiting


def fold_splits(ds, folds: str | None) -> list[str] | None:
    """``--folds all`` / ``--folds 1,3``: the ``fold:K`` splits to run (None: just ``--split``)."""
    from harness.errors import ConfigError

    if not folds:
        return None
    known = ds.protocols.folds
    if not known:
        raise ConfigError(f"--folds: {ds.name} has no cross-validation folds (its protocol: {ds.protocols.default_split})")
    wanted = list(known) if folds == "all" else [f.strip() for f in folds.split(",") if f.strip()]
    bad = [f for f in wanted if f not in known]
    if bad:
        raise ConfigError(f"--folds: unknown fold {bad[0]!r}; {ds.name} has folds {', '.join(known)}")
    return [f"fold:{f}" for f in wanted]


def select_variants(variants: tuple[Variant, ...], names: list[str] | None, extra: bool) -> list[Variant]:
    """``--variants`` (by name, case-insensitive) and ``--no-extra`` applied to a grid's rows."""
    if names:
        by_name = {v.name.lower(): v for v in variants}
        unknown = [n for n in names if n.strip().lower() not in by_name]
        if unknown:
            raise ConfigError(f"unknown variant {unknown[0]!r}; this grid has: {', '.join(v.name for v in variants)}")
        return [by_name[n.strip().lower()] for n in names]
    return [v for v in variants if extra or not v.extra]
