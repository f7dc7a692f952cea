"""Teacher logits for knowledge distillation: computed once, stored in the teacher's run folder.

A teacher is any complete stored run. Its logits on a student's training clips are computed
from its final checkpoint with its own architecture, feature setting (e.g. 200 mels teaching a
40-mel student: logits are per clip, not per feature) and normalisation, and stored as
``teacher_logits.npz`` (``filenames``, ``logits``) in its folder, keyed by file name; later
students read them (and only compute the clips not stored yet). Several teachers form an
ensemble: the mean of their logits.

Misaligned teachers are refused with one line naming the first offending clip or the mismatch:
a different dataset identity or dataset options, a teacher that saw one of the student's scored
clips in training, and stored logits lacking a training clip when the teacher's checkpoint is gone.
``--teacher best:ARCH`` names the best complete stored run of ARCH on the student's dataset and
split; it is replaced by that run's id before the student is hashed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness.errors import ConfigError, DataError
from harness.features.cache import load_features
from harness.features.logmel import band_stats
from harness.registry import create_architecture
from harness.results.migrate import read_record
from harness.results.store import ResultsStore, file_lock, save_npz
from harness.runner.config import RunConfig, implementation_options
from harness.runner.device import arch_options_for

LOGITS_FILE = "teacher_logits.npz"
BEST = "best:"


def best_run(store: ResultsStore, arch: str, cfg: RunConfig) -> str | None:
    """The complete stored run of ``arch`` on ``cfg``'s dataset and split with the best score, or None."""
    index = store.load_index()
    if index.empty:
        return None
    ok = ((index["status"] == "complete") & (index["arch"] == arch) & (index["split"].astype(str) == str(cfg.split))
          & (index["dataset_identity"].astype(str) == cfg.dataset_identity))
    runs = index[ok].assign(score=lambda d: pd.to_numeric(d["acc_score"], errors="coerce"))
    runs = runs.sort_values(["score", "run_id"], ascending=[False, True])
    return None if runs.empty else str(runs["run_id"].iloc[0])


def resolve_teachers(cfg: RunConfig, store: ResultsStore) -> RunConfig:
    """``cfg`` (bound to its dataset) with every ``best:ARCH`` teacher replaced by a run id."""
    if not any(t.startswith(BEST) for t in cfg.teachers):
        return cfg
    out = []
    for t in cfg.teachers:
        if t.startswith(BEST):
            arch = t[len(BEST):]
            found = best_run(store, arch, cfg)
            if found is None:
                raise ConfigError(f"--teacher {t}: no complete stored {arch} run on this dataset and split {cfg.split} "
                                  f"in {store.root}; train one first (harness run --arch {arch} …)")
            t = found
        out.append(t)
    return replace(cfg, teachers=out)


def _teacher_config(store: ResultsStore, run_id: str) -> RunConfig:
    folder = store.run_dir(run_id)
    summary = store.summary(run_id)
    if not (folder / "config.json").exists():
        raise ConfigError(f"--teacher {run_id}: no such run in {store.root / 'runs'}")
    if summary is None or summary.get("status") != "complete":
        raise ConfigError(f"--teacher {run_id}: the run is not complete; finish it first (harness run … with its options)")
    try:
        return RunConfig.from_dict(read_record(folder / "config.json")["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"--teacher {run_id}: unreadable run record ({type(exc).__name__}: {exc})", folder / "config.json") from exc


def _stored(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            return dict(zip(z["filenames"].astype(str), np.asarray(z["logits"], dtype=np.float32)))
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"unreadable teacher logits ({exc}); delete the file to recompute them", path) from exc


@torch.no_grad()
def _compute(ds, tcfg: RunConfig, folder: Path, rows: np.ndarray, device: torch.device, batch: int = 64) -> np.ndarray:
    """The teacher's logits on ``rows`` of ``ds``, from its checkpoint and its own feature setting."""
    from harness.runner.rows import build_rows

    feats = load_features(ds, tcfg.feature_config(), progress=False)
    train_rows, _ = build_rows(ds, tcfg)
    mean, std = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in band_stats(feats, np.sort(train_rows)))
    options, _ = arch_options_for(tcfg.arch_options, implementation_options(tcfg.arch), device)
    model = create_architecture(tcfg.arch, n_mels=tcfg.n_mels, n_frames=feats.shape[-1], in_channels=feats.shape[1],
                                n_classes=len(ds.classes), **options).to(device)
    state = torch.load(folder / "checkpoint.pt", map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    model.eval()
    out = []
    for i in range(0, len(rows), batch):
        x = torch.from_numpy(np.ascontiguousarray(feats[np.sort(rows[i:i + batch])])).to(device)
        order = np.argsort(np.argsort(rows[i:i + batch]))  # back from sorted (one memory-map read) to the given order
        logits = model((x.float() - mean) / std).logits.float().cpu().numpy()
        out.append(logits[order])
    return np.concatenate(out) if out else np.zeros((0, len(ds.classes)), np.float32)


def teacher_logits(store: ResultsStore, run_id: str, ds, cfg: RunConfig, student_train: np.ndarray,
                   student_scored: np.ndarray, device: torch.device) -> np.ndarray:
    """``(len(student_train), classes)`` logits of teacher ``run_id`` on the student's training rows."""
    tcfg = _teacher_config(store, run_id)
    if tcfg.dataset_identity != ds.identity:
        raise ConfigError(f"--teacher {run_id} was trained on dataset identity {tcfg.dataset_identity[:10] or '?'}, "
                          f"the student trains on {ds.identity[:10]}: a teacher must come from the same dataset")
    if (tcfg.dataset and tcfg.dataset != cfg.dataset) or dict(tcfg.data_options) != dict(cfg.data_options):
        raise ConfigError(f"--teacher {run_id} read the dataset as {tcfg.dataset} {tcfg.data_options}, the student as "
                          f"{cfg.dataset} {cfg.data_options}: a teacher must see the same clips and classes")
    from harness.runner.rows import build_rows

    names = ds.clips["filename"].to_numpy().astype(str)
    seen = np.intersect1d(build_rows(ds, tcfg)[0], student_scored)
    if len(seen):
        raise ConfigError(f"--teacher {run_id} trained on {str(names[np.sort(seen)[0]])!r}, a clip the student is scored on "
                          f"({len(seen)} such clips): its logits would leak the test labels")
    folder = store.run_dir(run_id)
    path = folder / LOGITS_FILE
    with file_lock(folder / ".teacher.lock"):
        stored = _stored(path)
        missing = [r for r in student_train if names[r] not in stored]
        if missing:
            if not (folder / "checkpoint.pt").exists():
                raise DataError(f"--teacher {run_id} has no logits for training clip {str(names[missing[0]])!r} "
                                f"({len(missing)} missing) and no checkpoint to compute them", path)
            new = _compute(ds, tcfg, folder, np.asarray(missing), device)
            stored.update(zip(names[missing], new))
            keys = sorted(stored)
            save_npz(path, filenames=np.asarray(keys), logits=np.stack([stored[k] for k in keys]).astype(np.float32))
    return np.stack([stored[n] for n in names[student_train]]).astype(np.float32)


def ensemble_logits(store: ResultsStore, run_ids: list[str], ds, cfg: RunConfig, student_train: np.ndarray,
                    student_scored: np.ndarray, device: torch.device) -> np.ndarray:
    """The mean of every teacher's logits on the student's training rows."""
    return np.mean([teacher_logits(store, r, ds, cfg, student_train, student_scored, device) for r in run_ids], axis=0)
