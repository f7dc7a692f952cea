"""Cross-entropy (with SubSpectralNet's per-band terms for sub-band models)."""

from __future__ import annotations

import torch

from harness.contracts import Loss, ModelOutput
from harness.registry import register_loss
from losses.base import check_band_weight, cross_entropy_terms


class CrossEntropy(Loss):
    pairing = None
    supports_mixup = True

    def __init__(self, band_weight: float = 1.0):
        super().__init__()
        self.name = "ce"
        self.band_weight = check_band_weight(band_weight)

    def forward(self, out: ModelOutput, target: torch.Tensor, domain: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        terms = cross_entropy_terms(out, target, self.band_weight)
        terms["loss"] = terms.pop("total")
        return terms


@register_loss("ce", "cross-entropy; sub-band models add each band's CE, equally weighted (SubSpectralNet); mixup allowed")
def ce(band_weight: float = 1.0) -> CrossEntropy:
    return CrossEntropy(band_weight)
