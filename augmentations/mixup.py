"""Mixup (timm's ``Mixup``): convex combinations of clips and of their one-hot labels."""

from __future__ import annotations

import torch
from timm.data import Mixup as TimmMixup

from harness.contracts import AugmentContext, Augmentation
from harness.errors import ConfigError
from harness.registry import register_augmentation


class Mixup(Augmentation):
    name = "mixup"
    order = 90  # last: it replaces the labels
    mixes_labels = True

    def __init__(self, n_classes: int, alpha: float):
        if not float(alpha) > 0:
            raise ConfigError(f"mixup: alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)
        # timm draws λ from numpy's global RNG, which the runner reseeds every epoch.
        self._mixup = TimmMixup(mixup_alpha=self.alpha, cutmix_alpha=0.0, prob=1.0, mode="batch",
                                label_smoothing=0.0, num_classes=n_classes)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[0] % 2:  # timm mixes a batch with its mirror image: needs an even size
            x, y = x[:-1], y[:-1]
        return self._mixup(x, y)


@register_augmentation("mixup", "mixup of clips and labels, λ ~ Beta(α, α) per batch (timm); labels become soft, so no triplet loss")
def mixup(ctx: AugmentContext, alpha: float = 0.4) -> Mixup:
    return Mixup(ctx.n_classes, alpha)
