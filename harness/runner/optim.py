"""The optimiser and the learning-rate schedule of a run, from torch's own classes.

The schedule is stepped after every batch (as the DCASE 2024 baseline's warm-up + cosine is):
``warmup_epochs`` of linear warm-up from ``lr / warm-up steps`` to ``lr`` (``LinearLR``), then
``constant``, ``cosine`` (``CosineAnnealingLR`` down to 0 at the last step) or ``step`` (×0.1 at
half and three quarters of the run, ``MultiStepLR``), chained with ``SequentialLR``. Its state
is in every checkpoint, so a resumed run continues the same sequence.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch.optim import lr_scheduler

from harness.runner.config import RunConfig


def build_optimizer(cfg: RunConfig, params: Iterable[torch.nn.Parameter], *, fused: bool = False) -> torch.optim.Optimizer:
    """``fused``: PyTorch's single-kernel CUDA implementation (``harness.runner.device``); the same
    update up to float rounding."""
    kw = {"lr": cfg.lr, "weight_decay": cfg.weight_decay or 0.0}
    if fused:
        kw["fused"] = True
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, **kw)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=0.9, **kw)
    return torch.optim.Adam(params, **kw)


def build_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> lr_scheduler.LRScheduler | None:
    """None for a constant rate without warm-up (the paper's set-up: nothing to step or store)."""
    total = max(1, int(cfg.epochs) * int(steps_per_epoch))
    warm = min(int(round((cfg.warmup_epochs or 0.0) * steps_per_epoch)), total - 1)
    rest = total - warm
    if cfg.schedule == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=rest, eta_min=0.0)
    elif cfg.schedule == "step":
        main = lr_scheduler.MultiStepLR(optimizer, milestones=[rest // 2, (3 * rest) // 4], gamma=0.1)
    elif warm:
        main = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        return None
    if not warm:
        return main
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm)
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warm])
