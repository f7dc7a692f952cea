"""The shared training loop: any registered (architecture, loss) on any split, CPU or GPU.

Every epoch's randomness (batch order, dropout, augmentation) is a pure function of
``(seed, epoch)``: the runner reseeds all RNGs at each epoch start. With a checkpoint
written atomically after every epoch, a run killed at any point resumes from its last
complete epoch and ends with exactly the metrics of an uninterrupted run (on the CPU).

The step loop never waits for the device: a batch's indices come from one upload per epoch, the
loss terms are summed on the device and read back once, at the epoch's end (where a non-finite
term stops the run). On a GPU the host can therefore queue steps ahead of the kernels.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from harness.atomic import atomic_path, write_json
from harness.contracts import AugmentContext, ModelOutput
from harness.data.registry import open_dataset
from harness.complexity import measure_per_second
from harness.errors import ConfigError, HarnessError, StorageError, Terminated, TrainingError
from harness.features.cache import load_features
from harness.features.logmel import band_stats
from harness.metrics import Predictions, compute, window_scores
from harness.model import count_parameters
from harness.precision import autocast, grad_scaler
from harness.progress import progress
from harness.registry import create_architecture, create_loss
from harness.results.migrate import SCHEMA as RECORD_SCHEMA
from harness.results.store import LOCK_FILE, ResultsStore, file_lock, save_npz
from harness.runner.augment import BatchAugment
from harness.runner.config import RunConfig, implementation_options
from harness.runner.contract import FILE as PREPROCESSING_FILE
from harness.runner.contract import Preprocessing
from harness.runner.device import arch_options_for, fused_optimizer, implementation_record, summary_fields
from harness.runner.environment import environment_record, resolve_device
from harness.runner.optim import build_optimizer, build_scheduler
from harness.runner.rows import build_rows, check_rows, domains_label
from harness.runner.teacher import ensemble_logits, resolve_teachers
from harness.sampling import PairedBatchSampler
from harness.transfer import to_device, upload_rows

EpochCallback = Callable[[int, dict[str, float]], None]

#: Why a run stopped, written into its folder when it fails after its index row exists.
FAILURE_FILE = "failure.json"


class Tracker(Protocol):
    """Where a run is reported as it trains (TensorBoard, MLflow: ``harness.tracking``).

    ``start`` gets the run folder, the record (``config.json``'s content) and the epochs already
    done (a resumed or a stored run); ``log_epoch`` each new ``epochs.csv`` row; ``finish`` the
    status (complete, failed, stopped) and the summary, once the record on disk is final.
    """

    def start(self, run_dir: Path, record: dict[str, Any], history: list[dict[str, Any]]) -> None: ...
    def log_epoch(self, epoch: int, row: dict[str, Any]) -> None: ...
    def finish(self, status: str, summary: dict[str, Any]) -> None: ...


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process instead of handing it back to the OS (glibc only).

    glibc serves blocks above 32 MiB with mmap and unmaps them on free, so every step's
    large activations are page-faulted in again from zero; on CPU that costs more than the
    arithmetic on them (an 82 MB elementwise op: about 75 ms instead of 15 ms). Serving
    them from the heap and never trimming it makes the memory reusable. Changes speed and
    resident memory (it stays at its peak), never results. Returns whether it applied.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (macOS, musl): leave the allocator alone
        _ALLOCATOR_TUNED = False
    return _ALLOCATOR_TUNED


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Holds what one run needs; ``fit`` trains, evaluates and stores it."""

    tracker: Tracker | None = None  # set by ``run``
    t_train: torch.Tensor | None = None  # teacher logits per training row (distillation losses), set by ``prepare``

    def __init__(self, cfg: RunConfig, store: ResultsStore, *, progress: bool = True,
                 on_epoch: EpochCallback | None = None, verbose: bool | None = None):
        self.cfg, self.store, self.progress, self.on_epoch = cfg, store, progress, on_epoch
        self.verbose = progress if verbose is None else verbose
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.ds = open_dataset(cfg.data, dataset=cfg.dataset, progress=progress, announce=self.verbose,
                               **cfg.data_options, **cfg.data_paths)
        needs_teacher = create_loss(cfg.loss, **cfg.loss_options).needs_teacher  # declared: harness.contracts.Loss
        if needs_teacher and not cfg.teachers:
            raise ConfigError(f"--loss {cfg.loss} distils from stored runs: give --teacher RUN_ID (repeat for an ensemble)")
        if cfg.teachers and not needs_teacher:
            raise ConfigError(f"--teacher is only used by a distillation loss (kd, kd-triplet-city), not --loss {cfg.loss}")
        self.cfg = cfg = resolve_teachers(cfg.for_dataset(self.ds), store)
        self.run_id = cfg.run_id()
        self.dir = store.run_dir(self.run_id)

    # -- data ------------------------------------------------------------------------------
    def prepare(self) -> None:
        cfg, ds = self.cfg, self.ds
        train_rows, self.ev = build_rows(ds, cfg)
        self.train_rows = np.sort(train_rows)  # sorted: one sequential read of the memory map
        check_rows(ds, cfg, self.train_rows, self.ev)
        feature_cfg = cfg.feature_config()
        feats = load_features(ds, feature_cfg, progress=self.progress)
        self.n_frames = feats.shape[-1]
        mean, std = band_stats(feats, self.train_rows)
        self.preprocessing = Preprocessing.build(feature_cfg, ds, self.n_frames, mean, std, list(ds.classes))
        self.features = feature_cfg
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        # Features stay float16 and resident on the training device; batches are gathered there.
        self.x_train = upload_rows(feats, self.train_rows, self.device)
        self.x_eval = upload_rows(feats, self.ev.rows, self.device)
        self.labels = ds.labels
        self.domain_names = ds.domains
        codes, self.domain_vocab = pd.factorize(ds.clips["domain"])
        self.domain_codes = codes
        self.y_train = torch.as_tensor(self.labels[self.train_rows], device=self.device)
        self.d_train = torch.as_tensor(codes[self.train_rows], device=self.device)
        self.y_eval = torch.as_tensor(self.labels[self.ev.rows], device=self.device)
        self.t_train = None  # teacher logits per training row (distillation losses)
        if cfg.teachers:
            logits = ensemble_logits(self.store, cfg.teachers, ds, cfg, self.train_rows, self.ev.rows, self.device)
            self.t_train = torch.as_tensor(logits, device=self.device)

    # -- model -----------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        options, why = arch_options_for(cfg.arch_options, implementation_options(cfg.arch), self.device)
        self.model: nn.Module = create_architecture(
            cfg.arch, n_mels=cfg.n_mels, n_frames=self.n_frames, in_channels=self.x_train.shape[1],
            n_classes=len(self.ds.classes), **options).to(self.device)
        self.impl_why = why
        self.loss_fn = create_loss(cfg.loss, **cfg.loss_options)
        ctx = AugmentContext(n_classes=len(self.ds.classes), n_mels=cfg.n_mels, n_frames=self.n_frames,
                             sample_rate=self.ds.audio.sample_rate, features=self.features, mean=self.mean, std=self.std,
                             ir_folder=Path(cfg.dir_irs).expanduser() if cfg.dir_irs else None)
        self.augment = BatchAugment(sorted(cfg.augmentations), cfg.aug_options, ctx)
        if self.augment.mixes_labels and not self.loss_fn.supports_mixup:
            raise ConfigError(
                f"--aug {cfg.aug} cannot be combined with --loss {cfg.loss}: mixup makes labels "
                "non-discrete, so no triplet has a well-defined same-scene positive (paper, §4.3)")
        self.optimizer = build_optimizer(cfg, self.model.parameters(), fused=fused_optimizer(self.device))
        self.scaler = grad_scaler(cfg.precision, self.device)
        pairing = self.loss_fn.pairing
        self.sampler = (
            PairedBatchSampler(self.labels[self.train_rows], self.domain_codes[self.train_rows], cfg.batch_size,
                               cross_domain=pairing == "cross-domain", seed=cfg.seed,
                               scene_names=list(self.ds.classes), domain_names=list(self.domain_vocab))
            if pairing else None)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.steps_per_epoch())

    def steps_per_epoch(self) -> int:
        if self.sampler is not None:
            return len(self.sampler)
        return -(-len(self.train_rows) // self.cfg.batch_size)

    def batches(self, epoch: int) -> list[np.ndarray]:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            return [np.asarray(b) for b in self.sampler]
        rng = np.random.default_rng([self.cfg.seed, epoch])
        perm = rng.permutation(len(self.train_rows))
        return [perm[i:i + self.cfg.batch_size] for i in range(0, len(perm), self.cfg.batch_size)]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std

    def autocast(self):
        return autocast(self.cfg.precision, self.device)

    def implementation(self) -> dict[str, Any]:
        """What the model computes with on this device, and why (``config.json``)."""
        return implementation_record(self.model, self.device, getattr(self, "impl_why", None))

    # -- one epoch -------------------------------------------------------------------------
    def epoch_indices(self, epoch: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """The epoch's batches as one index tensor on the device (one copy) and each batch's slice of it."""
        batches = self.batches(epoch)
        flat = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        bounds, start = [], 0
        for b in batches:
            bounds.append((start, start + len(b)))
            start += len(b)
        return to_device(torch.from_numpy(flat.astype(np.int64, copy=False)), self.device), bounds

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        seed_everything(epoch_seed(cfg.seed, epoch))
        self.model.train()
        sums: dict[str, torch.Tensor] = {}  # Σ term × batch size, on the device: read once, at the end
        n = 0
        order, bounds = self.epoch_indices(epoch)
        lr = self.optimizer.param_groups[0]["lr"]  # the rate of the epoch's first step, for epochs.csv
        # plain=False: the per-batch bar only on a terminal; a log file gets the per-epoch line alone
        bar = progress(bounds, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                       enabled=self.progress, plain=False)
        live = isinstance(bar, tqdm)  # a terminal bar: its loss is read back at most once a second
        shown = time.monotonic()
        for lo, hi in bar:
            idx_t = order[lo:hi]
            x = self.normalize(self.x_train[idx_t])
            y, d = self.y_train[idx_t], self.d_train[idx_t]
            x, y_aug = self.augment(x, y)
            d = d[: x.shape[0]]
            extra = {} if self.t_train is None else {"teacher": self.t_train[idx_t[: x.shape[0]]]}
            with self.autocast():
                out = self.model(x)
                out = ModelOutput(out.logits.float(), out.embedding.float(),
                                  None if out.band_logits is None else out.band_logits.float())
                terms = self.loss_fn(out, y_aug, d, **extra)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                terms["loss"].backward()
                self.optimizer.step()
            else:  # fp16: scaled loss; steps with inf/NaN gradients are skipped and the scale lowered
                self.scaler.scale(terms["loss"]).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            if self.scheduler is not None:
                self.scheduler.step()
            b = x.shape[0]
            n += b
            for name, value in terms.items():
                term = value.detach().double() * b  # float64, as the host sum was: same digits on the CPU
                sums[name] = term if name not in sums else sums[name] + term
            if live and time.monotonic() - shown >= 1.0:
                shown = time.monotonic()
                bar.set_postfix(loss=f"{float(sums['loss']) / n:.3f}")
        bar.close()
        names = list(sums)
        totals = torch.stack([sums[k] for k in names]).tolist() if names else []  # the epoch's one read-back
        for name, total in zip(names, totals):
            if not math.isfinite(total):  # a non-finite term in any step makes its sum non-finite
                raise TrainingError(
                    f"non-finite {name} loss at epoch {epoch}; stopped, the checkpoint of epoch {epoch - 1} "
                    f"is kept in {self.dir} (try a lower --lr or --gamma)")
        return {**{f"train_{'loss' if k == 'loss' else k}": v / max(n, 1) for k, v in zip(names, totals)}, "lr": lr}

    @torch.no_grad()
    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        logits, embs = [], []
        step = max(2 * self.cfg.batch_size, 64)
        for i in range(0, len(self.ev.rows), step):
            with self.autocast():
                out = self.model(self.normalize(self.x_eval[i:i + step]))
            logits.append(out.logits.float())
            embs.append(out.embedding.float())
        return torch.cat(logits).cpu().numpy(), torch.cat(embs).cpu().numpy()  # one read-back per epoch

    def evaluate(self, logits: np.ndarray) -> dict[str, float]:
        rows = self.ev.rows
        return compute(Predictions(logits, self.labels[rows], self.domain_names[rows], self.ev.official,
                                   self.ev.unseen, self.ds.classes, self.ds.protocols.groupings))

    # -- checkpoints -----------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        return self.dir / "checkpoint.pt"

    def save_checkpoint(self, epoch: int, history: list[dict[str, Any]], wall: float) -> None:
        state = {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                 "history": history, "wall_s": wall, "run_id": self.run_id}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        with atomic_path(self.ckpt_path) as tmp, open(tmp, "wb") as fh:
            torch.save(state, fh)  # through a Python file: a full disk is an OSError, not torch's RuntimeError
        with atomic_path(self.dir / "epochs.csv") as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)

    def load_checkpoint(self) -> tuple[int, list[dict[str, Any]], float]:
        if not self.ckpt_path.exists():
            return 0, [], 0.0
        try:
            state = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state.get("scheduler") or {})
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except Exception as exc:  # a checkpoint from another code version or a damaged file
            raise TrainingError(f"cannot resume from checkpoint ({exc}); re-run with --force to start over", self.ckpt_path) from exc
        return int(state["epoch"]), list(state["history"]), float(state.get("wall_s", 0.0))

    # -- the run ---------------------------------------------------------------------------
    def summary_row(self, status: str, history: list[dict[str, Any]], wall: float) -> dict[str, Any]:
        cfg = self.cfg
        window = min(cfg.score_last, len(history))
        scores = window_scores(history, window)
        return {
            "run_id": self.run_id, "status": status, "arch": cfg.arch, "loss": cfg.loss, "aug": cfg.aug,
            "n_mels": cfg.n_mels, "seed": cfg.seed, "alpha": getattr(self.loss_fn, "alpha", None),
            "gamma": getattr(self.loss_fn, "gamma", None), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "lr": cfg.lr, "preset": cfg.preset, "split": cfg.split, "dataset": self.data_path(),
            "dataset_kind": self.ds.name, "dataset_identity": self.ds.identity, "unseen_protocol": self.ev.protocol,
            "unseen_domains": domains_label(self.ev.unseen_domains, self.ds.domain_kind),
            "acc_score": scores.get("acc"), "unseen_score": scores.get("unseen_acc"), "score_window": window,
            "acc_final": history[-1]["acc"] if history else None,
            "unseen_final": history[-1]["unseen_acc"] if history else None,
            "epochs_done": len(history), "scores": scores,
            "params": count_parameters(self.model), "wall_s": round(wall, 2), "device": str(self.device),
            "precision": cfg.precision, **summary_fields(self.implementation()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "run_dir": f"runs/{self.run_id}",
        }

    def data_path(self) -> str:
        """Where the data was read from, as ``--data`` takes it again: the folder, or the manifest file itself."""
        given = Path(self.cfg.data).expanduser()
        return str(given.resolve()) if given.is_file() else str(self.ds.root)

    def complexity(self) -> dict[str, Any]:
        """Parameter memory and MACs per second of audio on this run's front end, counted as the DCASE challenge does."""
        c = measure_per_second(self.cfg.arch, self.cfg.feature_config(), self.ds.audio.sample_rate, self.ds.audio.channels,
                               n_classes=len(self.ds.classes), options=self.cfg.arch_options)
        return {"eval_precision": "fp32", "param_bytes": c.param_bytes("fp32"), "macs_per_s_1s": c.macs_1s,
                "macs_per_s_10s": round(c.macs_per_s_10s)}

    def fit(self) -> dict[str, Any]:
        """Train from the last checkpoint on; ``prepare`` and ``build`` must have run (they check
        everything a run can be refused for, before its folder exists)."""
        cfg = self.cfg
        write_json(self.dir / "config.json", {"schema": RECORD_SCHEMA, "config": cfg.to_dict(), "run_id": self.run_id,
                                              "dataset": self.ds.record(),
                                              "split": {"unseen_protocol": self.ev.protocol,
                                                        "unseen_domains": list(self.ev.unseen_domains),
                                                        "train": len(self.train_rows), "scored": len(self.ev.rows)},
                                              "environment": environment_record(self.device),
                                              "precision": {"precision": cfg.precision, "why": cfg.precision_reason},
                                              "implementation": self.implementation()})
        self.preprocessing.write(self.dir / PREPROCESSING_FILE)
        start, history, wall = self.load_checkpoint()
        (self.dir / FAILURE_FILE).unlink(missing_ok=True)
        self.store.update_index(self.summary_row("running", history, wall))
        if start and self.verbose:
            tqdm.write(f"resuming from epoch {start} of {cfg.epochs} ({self.ckpt_path})")
        self.wall = wall
        if self.tracker is not None:
            self.tracker.start(self.dir, json.loads((self.dir / "config.json").read_text()), history)
        try:
            return self._train(start, history, wall)
        except BaseException as exc:  # any failure, interrupt or pruning: the row must not stay "running"
            self.mark_failed(exc, history, self.wall)
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                raise TrainingError(f"out of GPU memory at batch size {cfg.batch_size}; try a smaller --batch-size") from exc
            raise

    def mark_failed(self, exc: BaseException, history: list[dict[str, Any]], wall: float) -> None:
        """Record why the run stopped (``failure.json`` in its folder) and mark its index row failed.
        Best effort: when the store itself is what failed, the row is left to look stale."""
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, KeyboardInterrupt):
            reason = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        try:
            write_json(self.dir / FAILURE_FILE, {"error": reason, "type": type(exc).__name__,
                                                 "epochs_done": len(history), "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        except HarnessError:
            pass
        try:
            self.store.update_index(self.summary_row("failed", history, wall))
        except (HarnessError, OSError):
            pass

    def _train(self, start: int, history: list[dict[str, Any]], wall: float) -> dict[str, Any]:
        cfg = self.cfg
        self.wall = wall
        last = None  # the last epoch's predictions: the model has not changed since, so they are reused below
        for epoch in range(start + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            metrics = self.train_epoch(epoch)
            lr = metrics.pop("lr")
            last = self.predict()
            metrics.update(self.evaluate(last[0]))
            seconds = time.perf_counter() - t0
            wall += seconds
            entry = {"epoch": epoch, **metrics, "seconds": round(seconds, 3), "lr": lr}
            self.save_checkpoint(epoch, [*history, entry], wall)
            history.append(entry)  # only once stored: a failed run's record counts the epochs it kept
            self.wall = wall
            if self.verbose:
                unseen = metrics["unseen_acc"]
                unseen = f"unseen {100 * unseen:.2f}%  " if unseen == unseen else ""  # NaN: no unseen domain
                tqdm.write(f"epoch {epoch}/{cfg.epochs}  loss {metrics['train_loss']:.3f}  "
                           f"acc {100 * metrics['acc']:.2f}%  macro {100 * metrics['macro_acc']:.2f}%  {unseen}"
                           f"({seconds:.1f}s)")
            if self.tracker is not None:
                self.tracker.log_epoch(epoch, history[-1])
            if self.on_epoch is not None:
                self.on_epoch(epoch, metrics)
        logits, embs = last if last is not None else self.predict()
        rows = self.ev.rows
        save_npz(self.dir / "predictions.npz", filenames=self.ds.clips["filename"].to_numpy()[rows].astype(str),
                 labels=self.labels[rows], domains=self.domain_names[rows], classes=np.asarray(self.ds.classes),
                 logits=logits.astype(np.float32), embeddings=embs.astype(np.float16),
                 official=self.ev.official, unseen=self.ev.unseen)
        summary = {**self.summary_row("complete", history, wall), **self.complexity()}
        self.store.write_summary(self.run_id, summary)
        return summary


def pruned(exc: BaseException) -> bool:
    """Whether ``exc`` is an Optuna study pruning the run. Only a process that imported optuna can
    have raised its exception, so a plain ``harness run`` never imports it to ask."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(exc, optuna.TrialPruned)


def run(cfg: RunConfig, results: str | Path, *, force: bool = False, progress: bool = True,
        on_epoch: EpochCallback | None = None, verbose: bool | None = None,
        tracker: Tracker | None = None) -> dict[str, Any]:
    """Train and evaluate one configuration; a completed identical run is returned as stored.

    ``progress`` shows bars; ``verbose`` (default: same as ``progress``) prints a line per epoch.
    ``tracker`` is told of the run as it goes; a stored run is reported to it from its record.
    """
    cfg = cfg.resolved()
    store = ResultsStore(results)
    trainer = Trainer(cfg, store, progress=progress, on_epoch=on_epoch, verbose=verbose)
    done = store.summary(trainer.run_id)
    if done is not None and done.get("status") == "complete" and not force:
        return {**done, "reused": True}
    # Everything a run can be refused for (data, split, model, loss, combination) is checked
    # before its folder exists, so a refused run leaves nothing behind.
    trainer.prepare()
    trainer.build()
    try:
        trainer.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError.from_os(exc, trainer.dir) from exc
    with file_lock(trainer.dir / LOCK_FILE, blocking=False):
        done = store.summary(trainer.run_id)  # another process may have finished it meanwhile
        if done is not None and done.get("status") == "complete" and not force:
            if tracker is not None:
                history = pd.read_csv(trainer.dir / "epochs.csv").to_dict("records")
                tracker.start(trainer.dir, json.loads((trainer.dir / "config.json").read_text()), history)
                tracker.finish("complete", done)
            return {**done, "reused": True}
        if force:
            for name in ("checkpoint.pt", "epochs.csv", "summary.json", "predictions.npz", FAILURE_FILE):
                (trainer.dir / name).unlink(missing_ok=True)
        if tracker is None:
            return trainer.fit()
        trainer.tracker = tracker
        try:
            summary = trainer.fit()
        except BaseException as exc:  # stopped: interrupted, or pruned by a tuning study
            stopped = isinstance(exc, KeyboardInterrupt) or pruned(exc)
            tracker.finish("stopped" if stopped else "failed", {"run_id": trainer.run_id, "status": "failed"})
            raise
        tracker.finish("complete", summary)
        return summary

