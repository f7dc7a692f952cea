"""Pieces every loss shares: the (sub-band) cross-entropy and the mixup refusal."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.model import ModelOutput


class ASCLoss(nn.Module):
    """Base of the registered losses: declares which batch sampler it needs and whether mixup is allowed."""

    #: None: plain shuffled batches; "cross-domain" / "any-domain": PairedBatchSampler.
    pairing: str | None = None
    supports_mixup: bool = True
    name: str = "loss"

    def check_augmentations(self, augmentations: "list[str] | tuple[str, ...] | set[str]") -> None:
        """Raise a one-line ConfigError if this loss cannot train with the given augmentations."""
        if "mixup" in augmentations and not self.supports_mixup:
            raise ConfigError(mixup_refusal(self.name))


def mixup_refusal(loss_name: str) -> str:
    return (f"loss {loss_name!r} cannot be combined with mixup: mixed labels are not discrete, so no "
            "anchor has a well-defined same-scene positive (paper §4.3); use --aug spec or none")


def cross_entropy_terms(out: ModelOutput, target: torch.Tensor, band_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Global cross-entropy plus, for sub-band models, SubSpectralNet's per-band terms.

    SubSpectralNet trains on the equally weighted sum of the cross-entropy of the global
    output and of every band's sub-classifier; ``band_weight`` scales the band terms
    (1.0 = the original). ``target`` is (B,) class indices or (B, classes) soft labels.
    Returns ``ce`` (global term), ``band_ce`` (sum over bands, sub-band models only) and
    ``total`` (what goes into the loss).
    """
    ce = F.cross_entropy(out.logits, target)
    terms = {"ce": ce, "total": ce}
    if out.band_logits is not None and band_weight:
        bands = out.band_logits.shape[1]
        flat = out.band_logits.reshape(-1, out.band_logits.shape[-1])
        tgt = target.repeat_interleave(bands, dim=0)
        band_ce = F.cross_entropy(flat, tgt) * bands  # mean per band, summed over bands
        terms["band_ce"] = band_ce
        terms["total"] = ce + band_weight * band_ce
    return terms


def check_band_weight(band_weight: float) -> float:
    if float(band_weight) < 0:
        raise ConfigError(f"band_weight must be >= 0, got {band_weight!r}")
    return float(band_weight)
