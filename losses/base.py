"""Pieces the built-in losses share: the (sub-band) cross-entropy and the band weight check."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.contracts import ModelOutput
from harness.errors import ConfigError


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
