"""The batch augmentation pipeline: the registered augmentations a run names, in their order."""

from __future__ import annotations

from typing import Any

import torch

from harness.contracts import AugmentContext, Augmentation
from harness.registry import create_augmentation


class BatchAugment:
    """Applies ``--aug``'s plugins, each built with its ``--aug-opt`` options, lowest ``order`` first."""

    def __init__(self, names: list[str], options: dict[str, dict[str, Any]], ctx: AugmentContext):
        built: list[Augmentation] = [create_augmentation(n, ctx, **options.get(n, {})) for n in names]
        self.steps = sorted(built, key=lambda a: (a.order, a.name))

    @property
    def mixes_labels(self) -> bool:
        return any(a.mixes_labels for a in self.steps)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for step in self.steps:
            x, y = step(x, y)
        return x, y
