"""A completed run reopened from its folder: configuration, preprocessing contract and weights."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.errors import DataError, HarnessError
from harness.registry import ARCHITECTURES, create_architecture
from harness.results.migrate import read_record
from harness.runner.config import RunConfig
from harness.runner.contract import FILE as PREPROCESSING_FILE
from harness.runner.contract import Preprocessing


@dataclass(frozen=True)
class TrainedRun:
    run_id: str
    dir: Path
    config: RunConfig
    preprocessing: Preprocessing

    def model(self, conv_impl: str | None = None) -> nn.Module:
        """The run's final weights in eval mode on the CPU; ``conv_impl`` where the architecture has one."""
        options = dict(self.config.arch_options)
        if conv_impl is not None and "conv_impl" in ARCHITECTURES.get(self.config.arch)[0].options():
            options["conv_impl"] = conv_impl
        p = self.preprocessing
        model = create_architecture(self.config.arch, n_mels=self.config.n_mels, n_frames=p.n_frames,
                                    in_channels=p.input_shape()[0], n_classes=len(p.classes), **options)
        path = self.dir / "checkpoint.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)["model"]
            model.load_state_dict(state)
        except Exception as exc:  # a damaged file or one from an incompatible code version
            raise DataError(f"cannot load the model weights ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})", path) from exc
        return model.eval()


def find_run(results: Path, name: str) -> Path:
    """The folder of run ``name`` (a run id or a unique prefix of one) under ``results/runs``."""
    runs = Path(results) / "runs"
    if name and (runs / name).is_dir():
        return runs / name
    known = sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    matches = [k for k in known if name and k.startswith(name)]
    if len(matches) == 1:
        return runs / matches[0]
    if len(matches) > 1:
        raise HarnessError(f"run {name!r} is ambiguous: {len(matches)} runs start with it ({', '.join(matches[:3])}, ...)", runs)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" ({len(known)} runs stored; `harness table` or index.csv lists them)"
    raise HarnessError(f"unknown run {name!r}{hint}", runs)


def open_run(results: str | Path, name: str) -> TrainedRun:
    """Reopen a completed run; its contract is rebuilt from the training data for runs stored without one."""
    run_dir = find_run(Path(results), name)
    summary = run_dir / "summary.json"
    status = json.loads(summary.read_text()).get("status") if summary.exists() else "incomplete"
    if status != "complete" or not (run_dir / "checkpoint.pt").exists():
        raise HarnessError(f"run is not complete (status {status}); finish it with `harness run` first", run_dir)
    try:
        record = read_record(run_dir / "config.json")
        config = RunConfig.from_dict(record["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"unreadable run record ({type(exc).__name__}: {exc})", run_dir / "config.json") from exc
    path = run_dir / PREPROCESSING_FILE
    pre = Preprocessing.read(path) if path.exists() else rebuild_preprocessing(config, run_dir)
    return TrainedRun(run_dir.name, run_dir, config, pre)


def rebuild_preprocessing(config: RunConfig, run_dir: Path) -> Preprocessing:
    """Recompute a run's contract from its training data (runs recorded before contracts were stored)."""
    from harness.data.registry import open_dataset
    from harness.features.cache import load_features
    from harness.features.logmel import band_stats
    from harness.results.store import load_predictions
    from harness.runner.rows import build_rows

    ds = open_dataset(config.data, dataset=config.dataset, progress=False, **config.data_options,
                      **config.data_paths)
    if config.dataset_identity and ds.identity != config.dataset_identity:
        raise DataError(f"run {run_dir.name} has no {PREPROCESSING_FILE} and its training data at {config.data} has "
                        "changed since, so its normalisation statistics cannot be recomputed", run_dir)
    train_rows, _ = build_rows(ds, config)
    feature_cfg = config.feature_config()
    feats = load_features(ds, feature_cfg, progress=False)
    mean, std = band_stats(feats, np.sort(train_rows))
    classes = [str(c) for c in load_predictions(run_dir)["classes"]]
    pre = Preprocessing.build(feature_cfg, ds, feats.shape[-1], mean, std, classes)
    pre.write(run_dir / PREPROCESSING_FILE)
    return pre
