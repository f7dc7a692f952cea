"""Score a stored run again at reduced precision (fp16, int8) and add the result to its record.

The DCASE complexity limit counts parameter memory at the precision a model is evaluated in, so
the accuracy that goes with a memory figure must be measured at that precision. The run's data,
split and normalisation are rebuilt exactly as trained (the run id must match: the data has not
changed); int8 activation scales are calibrated on a seeded sample of the run's **training** clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import ConfigError, DataError
from harness.inference.quantize import convert, forward, param_bytes
from harness.inference.trained import find_run
from harness.results.records import load_run_config
from harness.results.store import ResultsStore
from harness.runner.config import RunConfig

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


def _trainer(results: Path, run: str, progress: bool):
    """The run's Trainer on the CPU with its final weights, data prepared as when it trained."""
    from harness.runner.train import Trainer

    run_dir = find_run(results, run)
    store = ResultsStore(results)
    summary = store.summary(run_dir.name)
    if summary is None or summary.get("status") != "complete":
        raise ConfigError(f"run {run_dir.name!r} is not complete; finish it with `harness run` first")
    try:
        cfg = RunConfig.from_dict(load_run_config(run_dir)["config"])
    except TypeError as exc:  # keys of another type than the fields take
        raise DataError(f"unreadable run record ({exc})", run_dir / "config.json") from exc
    cfg.device = "cpu"  # quantized kernels are CPU kernels; fp16 is scored on the same device, comparably
    cfg = cfg.resolved()  # options typed again (JSON stores tuples as lists), so the run id is recomputed as made
    if "conv_impl" in cfg.arch_options:  # the plain modules: quantization swaps them, fused kernels would not see it
        cfg.arch_options = {**cfg.arch_options, "conv_impl": "reference"}
    trainer = Trainer(cfg, store, progress=progress, verbose=False)
    if trainer.run_id != run_dir.name:
        raise DataError(f"the data of run {run_dir.name} has changed since it was trained (it would now be "
                        f"{trainer.run_id}); it cannot be scored again", trainer.ds.root)
    trainer.prepare()
    trainer.build()
    state = torch.load(trainer.ckpt_path, map_location="cpu", weights_only=False)
    trainer.model.load_state_dict(state["model"])
    return trainer, summary


def score_at(trainer, precision: str, clips: int = CALIBRATION_CLIPS) -> dict[str, Any]:
    """Convert ``trainer.model`` to ``precision`` (int8: calibrated on training clips only) and score it."""
    calibration, n_cal = [], 0
    if precision == "int8":
        rng = np.random.default_rng([trainer.cfg.seed, 8])
        pick = np.sort(rng.choice(len(trainer.train_rows), min(clips, len(trainer.train_rows)), replace=False))
        calibration = [trainer.normalize(trainer.x_train[torch.as_tensor(pick[i:i + 64])]) for i in range(0, len(pick), 64)]
        n_cal = len(pick)
    model = convert(trainer.model, precision, calibration)
    logits = torch.cat([forward(model, trainer.normalize(trainer.x_eval[i:i + 256]), precision).logits.float()
                        for i in range(0, len(trainer.ev.rows), 256)]).numpy()
    metrics = trainer.evaluate(logits)
    return {**{k: metrics[k] for k in KEPT}, "param_bytes": param_bytes(model), "calibration_clips": n_cal}


def evaluate_run(run: str, results: str | Path, precisions: list[str], progress: bool = True) -> dict[str, Any]:
    """Score a stored run at fp32 and at each precision; its ``summary.json`` gains ``quantized[precision]``
    (fp32 too: the float model scored by the same path, the reference the others are read against)."""
    results = Path(results)
    trainer, summary = _trainer(results, run, progress)
    out = dict(summary.get("quantized") or {})
    for precision in ["fp32", *precisions]:
        out[precision] = score_at(trainer, precision)
    summary = {**summary, "quantized": out}
    trainer.store.write_summary(trainer.run_id, summary)
    return summary
