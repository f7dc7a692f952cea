"""What every architecture returns, so losses and the runner never special-case a model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelOutput:
    """Forward result of every registered architecture.

    ``embedding`` is the triplet embedding: the output of the last convolution block,
    flattened (and concatenated over sub-bands for sub-band models), shape ``(B, D)``.
    ``band_logits`` holds the per-sub-band classifier outputs ``(B, bands, classes)`` of
    SubSpectralNet-style models, ``None`` for the others.
    """

    logits: torch.Tensor
    embedding: torch.Tensor
    band_logits: torch.Tensor | None = None


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: Kaiming normal for convolutions, Xavier normal for dense layers."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the counting rule of the paper's Table 2."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def implementation(model: nn.Module) -> dict[str, str | None]:
    """Which implementation a model's forward ran and, where a faster one was asked for but did not
    run, why: the model's own ``implementation()`` where it has one, else plain torch modules."""
    report = getattr(model, "implementation", None)
    return dict(report()) if callable(report) else {"implementation": "torch modules", "fallback": None}
