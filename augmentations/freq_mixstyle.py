"""Frequency-MixStyle (Schmid et al., DCASE 2022; the DCASE 2022-2025 Task 1 baselines).

Each clip's per-frequency-band statistics (mean and standard deviation over time, per channel)
carry much of its recording device / city; MixStyle swaps part of them between clips:
``x' = (x - μ_i) / σ_i · (λ σ_i + (1-λ) σ_j) + λ μ_i + (1-λ) μ_j`` with a random partner j
and λ ~ Beta(α, α) per clip. As in the baselines' code the whole batch is mixed with
probability p and the statistics carry no gradient. Labels stay as they are, so it combines
with the triplet loss (anchors keep their scene; only the style of the recording moves).
Applied to normalised features it equals applying it before the normalisation (the per-band
affine map commutes with it).
"""

from __future__ import annotations

import torch

from harness.contracts import AugmentContext, Augmentation
from harness.errors import ConfigError
from harness.registry import register_augmentation
from harness.transfer import to_device

EPS = 1e-6


def mix_band_statistics(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The mixing itself, for given weights ``lam`` (B,) and partners ``perm`` (B,)."""
    mu = x.mean(dim=-1, keepdim=True).detach()
    sig = (x.var(dim=-1, keepdim=True) + eps).sqrt().detach()
    lam = lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    return (x - mu) / sig * sig_mix + mu_mix


class FreqMixStyle(Augmentation):
    name = "freq-mixstyle"
    order = 50

    def __init__(self, p: float, alpha: float):
        if not 0 <= float(p) <= 1:
            raise ConfigError(f"freq-mixstyle: p must be in [0, 1], got {p!r}")
        if not float(alpha) > 0:
            raise ConfigError(f"freq-mixstyle: alpha must be > 0, got {alpha!r}")
        self.p, self.alpha = float(p), float(alpha)
        self._beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if float(torch.rand(())) >= self.p:
            return x, y
        lam = to_device(self._beta.sample((x.shape[0],)), x.device)
        perm = to_device(torch.randperm(x.shape[0]), x.device)
        return mix_band_statistics(x, lam, perm), y


@register_augmentation("freq-mixstyle", "Frequency-MixStyle: mix per-band mean/std over time between random clip pairs, batch prob p, λ ~ Beta(α, α); labels kept")
def freq_mixstyle(ctx: AugmentContext, p: float = 0.4, alpha: float = 0.3) -> FreqMixStyle:
    return FreqMixStyle(p, alpha)
