"""Score a stored run again at reduced precision (fp16, int8) and add the result to its record.

The DCASE complexity limit counts parameter memory at the precision a model is evaluated in, so
the accuracy that goes with a memory figure must be measured at that precision. The run's data,
split and normalisation are rebuilt exactly as trained (the run id must match: the data has not
changed); int8 activation scales are calibrated on a seeded sample of the run's **training** clips.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from harness.data.registry import open_dataset
from harness.errors import ConfigError, DataError
from harness.features.cache import load_features
from harness.inference.quantize import convert, forward, param_bytes
from harness.inference.trained import open_run
from harness.metrics import Predictions, compute
from harness.results.store import ResultsStore
from harness.runner.config import RunConfig
from harness.runner.rows import build_rows

#: Training clips that calibrate int8 activation scales (a seeded sample of the training split).
CALIBRATION_CLIPS = 256
EVAL_PRECISIONS = ("fp16", "int8")
#: What each precision's entry keeps of the metrics (``harness.metrics.compute``).
KEPT = ("acc", "macro_acc", "log_loss", "unseen_acc")


def parse_precisions(text: str | None, flag: str) -> list[str]:
    """``"fp16,int8"`` → ``["fp16", "int8"]``; anything else is a one-line error naming ``flag``."""
    out = [p.strip() for p in (text or "").split(",") if p.strip()]
    bad = [p for p in out if p not in EVAL_PRECISIONS]
    if bad or (text is not None and not out):
        raise ConfigError(f"{flag} takes {' and/or '.join(EVAL_PRECISIONS)} (comma-separated), got {text!r}")
    return list(dict.fromkeys(out))


@dataclass
class Rescoring:
    """A stored run ready to be scored again: its final model, the features of its rows, its masks."""

    run_id: str
    cfg: RunConfig
    model: torch.nn.Module
    x_train: torch.Tensor  # stored features (float16) of the training rows, for int8 calibration
    x_eval: torch.Tensor  # of the scored rows
    mean: torch.Tensor
    std: torch.Tensor
    predictions: Callable[[np.ndarray], Predictions]  # logits of the scored rows -> what metrics read

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


def reopen(results: Path, run: str, progress: bool) -> tuple[Rescoring, dict[str, Any]]:
    """The run's model (final weights, CPU, plain modules: quantization swaps them, fused kernels
    would not see it) and its rows, rebuilt from the data exactly as when it trained; nothing of
    training (optimiser, sampler, teachers, augmentation) is built."""
    trained = open_run(results, run)
    summary = ResultsStore(results).summary(trained.run_id) or {}
    cfg = replace(trained.config, device="cpu").resolved()  # options typed again: the id is recomputed as made
    ds = open_dataset(cfg.data, dataset=cfg.dataset, progress=progress, **cfg.data_options, **cfg.data_paths)
    cfg = cfg.for_dataset(ds)
    if cfg.run_id() != trained.run_id:
        raise DataError(f"the data of run {trained.run_id} has changed since it was trained (it would now be "
                        f"{cfg.run_id()}); it cannot be scored again", ds.root)
    train_rows, ev = build_rows(ds, cfg)
    train_rows = np.sort(train_rows)
    feats = load_features(ds, cfg.feature_config(), progress=progress)
    pre = trained.preprocessing
    shape = (-1, int(pre.features["n_mels"]), 1)
    labels, domains = ds.labels[ev.rows], ds.domains[ev.rows]

    def predictions(logits: np.ndarray) -> Predictions:
        return Predictions(logits, labels, domains, ev.official, ev.unseen, ds.classes, ds.protocols.groupings)

    return Rescoring(
        run_id=trained.run_id, cfg=cfg, model=trained.model(conv_impl="reference"),
        x_train=torch.from_numpy(np.ascontiguousarray(feats[train_rows])),
        x_eval=torch.from_numpy(np.ascontiguousarray(feats[ev.rows])),
        mean=torch.tensor(pre.mean, dtype=torch.float32).reshape(shape),
        std=torch.tensor(pre.std, dtype=torch.float32).reshape(shape),
        predictions=predictions), summary


def score_at(run: Rescoring, precision: str, clips: int = CALIBRATION_CLIPS) -> dict[str, Any]:
    """Convert the run's model to ``precision`` (int8: calibrated on training clips only) and score it."""
    calibration, n_cal = [], 0
    if precision == "int8":
        rng = np.random.default_rng([run.cfg.seed, 8])
        pick = np.sort(rng.choice(len(run.x_train), min(clips, len(run.x_train)), replace=False))
        calibration = [run.normalize(run.x_train[torch.as_tensor(pick[i:i + 64])]) for i in range(0, len(pick), 64)]
        n_cal = len(pick)
    model = convert(run.model, precision, calibration)
    with torch.no_grad():
        logits = torch.cat([forward(model, run.normalize(run.x_eval[i:i + 256]), precision).logits.float()
                            for i in range(0, len(run.x_eval), 256)]).numpy()
    metrics = compute(run.predictions(logits))
    return {**{k: metrics[k] for k in KEPT}, "param_bytes": param_bytes(model), "calibration_clips": n_cal}


def evaluate_run(run: str, results: str | Path, precisions: list[str], progress: bool = True) -> dict[str, Any]:
    """Score a stored run at fp32 and at each precision; its ``summary.json`` gains ``quantized[precision]``
    (fp32 too: the float model scored by the same path, the reference the others are read against)."""
    results = Path(results)
    rescoring, summary = reopen(results, run, progress)
    out = dict(summary.get("quantized") or {})
    for precision in ["fp32", *precisions]:
        out[precision] = score_at(rescoring, precision)
    summary = {**summary, "quantized": out}
    ResultsStore(results).write_summary(rescoring.run_id, summary)
    return summary
