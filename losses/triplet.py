"""The paper's large-margin loss: CE + γ · max(‖a−p‖² − ‖a−n‖² + α, 0) (eqs. 4–5).

Every sample of the batch is an anchor. Its positive is drawn uniformly from the batch
members with the same scene and (``cross_domain``) a different city/device, its negative
uniformly from the members of another scene: "all anchor-positive pairs from the same
acoustic scene and different city and all anchor-negative pairs randomly" (§3.2). The
PairedBatchSampler guarantees every anchor a valid positive and negative.

Embeddings are L2-normalised before the distances by default (``normalize=True``). The paper
does not say; its margin α = 0.2 is FaceNet's, which is defined on unit-norm embeddings. On
raw embeddings (a few hundred ReLU outputs) squared distances are in the hundreds, so γ = 10
makes the triplet term swamp the cross-entropy: measured on the synthetic default, FCNN stayed
at chance after the first epoch. ``normalize=False`` gives the raw reading for comparison.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.contracts import Loss, ModelOutput, mixup_refusal
from harness.errors import ConfigError
from harness.registry import register_loss
from losses.base import check_band_weight, cross_entropy_terms


def candidate_masks(target: torch.Tensor, domain: torch.Tensor, cross_domain: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (B, B) masks: [i, j] true if j may be i's positive / negative."""
    same = target[:, None] == target[None, :]
    pos = same & ~torch.eye(len(target), dtype=torch.bool, device=target.device)
    if cross_domain:
        pos &= domain[:, None] != domain[None, :]
    return pos, ~same


def draw(mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One uniformly chosen True column per row (every row must have one)."""
    weights = mask.to(torch.float32)
    if generator is not None and generator.device != weights.device:
        weights = weights.to(generator.device)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1).to(mask.device)


def triplet_margin(emb: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, alpha: float) -> torch.Tensor:
    """Mean over anchors of max(‖a−p‖² − ‖a−n‖² + α, 0), squared Euclidean distances."""
    d_ap = (emb - emb[pos]).pow(2).sum(1)
    d_an = (emb - emb[neg]).pow(2).sum(1)
    return torch.clamp(d_ap - d_an + alpha, min=0).mean()


class TripletLoss(Loss):
    """CE (with band terms for sub-band models) + γ · triplet on ``out.embedding``."""

    supports_mixup = False

    def __init__(self, name: str, cross_domain: bool, alpha: float = 0.2, gamma: float = 10.0,
                 band_weight: float = 1.0, normalize: bool = True):
        super().__init__()
        if float(alpha) < 0 or float(gamma) < 0:
            raise ConfigError(f"{name}: alpha and gamma must be >= 0, got alpha={alpha!r} gamma={gamma!r}")
        self.name = name
        self.cross_domain = cross_domain
        self.pairing = "cross-domain" if cross_domain else "any-domain"
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.band_weight = check_band_weight(band_weight)
        self.normalize = bool(normalize)

    def select(self, target: torch.Tensor, domain: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive and negative index for every anchor; error if a batch cannot supply them.

        The readable check needs the masks on the host: on the CPU that is free, on a GPU it would
        stall every step, so there the check runs on the device (``torch._assert_async``: a failure
        surfaces at the epoch's read-back). The runner's PairedBatchSampler never fails it."""
        pos_mask, neg_mask = candidate_masks(target, domain, self.cross_domain)
        if target.device.type == "cpu":
            self.check(pos_mask, neg_mask, target, domain)
        else:
            torch._assert_async(pos_mask.any(1).all() & neg_mask.any(1).all(),
                                f"{self.name}: an anchor of the batch has no positive or negative; train with the "
                                f"PairedBatchSampler (pairing={self.pairing!r})")
        return draw(pos_mask, generator), draw(neg_mask, generator)

    def check(self, pos_mask: torch.Tensor, neg_mask: torch.Tensor, target: torch.Tensor, domain: torch.Tensor) -> None:
        """Raise a one-line ConfigError naming the first anchor without a positive or a negative."""
        for mask, what in ((pos_mask, "positive (same scene" + (", other domain)" if self.cross_domain else ")")),
                           (neg_mask, "negative (other scene)")):
            missing = (~mask.any(1)).nonzero()
            if len(missing):
                i = int(missing[0])
                raise ConfigError(
                    f"{self.name}: anchor {i} of the batch (scene {int(target[i])}, domain {int(domain[i])}) has no "
                    f"{what}; train with the PairedBatchSampler (pairing={self.pairing!r})")

    def forward(self, out: ModelOutput, target: torch.Tensor, domain: torch.Tensor,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if target.dim() != 1 or target.is_floating_point():
            raise ConfigError(mixup_refusal(self.name))
        terms = cross_entropy_terms(out, target, self.band_weight)
        pos, neg = self.select(target, domain, generator)
        emb = F.normalize(out.embedding, dim=1) if self.normalize else out.embedding
        trip = triplet_margin(emb, pos, neg, self.alpha)
        terms["triplet"] = trip
        terms["loss"] = terms.pop("total") + self.gamma * trip
        return terms


@register_loss("triplet-domain", "CE + γ·triplet; positive = same class, different domain (city, device, source "
               "recording: the dataset's domain column); α=0.2, γ=10")
def triplet_domain(alpha: float = 0.2, gamma: float = 10.0, band_weight: float = 1.0, normalize: bool = True) -> TripletLoss:
    return TripletLoss("triplet-domain", True, alpha, gamma, band_weight, normalize)


@register_loss("triplet-city", "CE + γ·triplet; positive = same scene, different city (the paper's name for triplet-domain); α=0.2, γ=10")
def triplet_city(alpha: float = 0.2, gamma: float = 10.0, band_weight: float = 1.0, normalize: bool = True) -> TripletLoss:
    return TripletLoss("triplet-city", True, alpha, gamma, band_weight, normalize)


@register_loss("triplet-random", "CE + γ·triplet; positive = same scene, any city (ablation of the cross-city sampling)")
def triplet_random(alpha: float = 0.2, gamma: float = 10.0, band_weight: float = 1.0, normalize: bool = True) -> TripletLoss:
    return TripletLoss("triplet-random", False, alpha, gamma, band_weight, normalize)


@register_loss("triplet-device", "CE + γ·triplet; positive = same scene, different device (triplet-domain on TAU 2020 Mobile)")
def triplet_device(alpha: float = 0.2, gamma: float = 10.0, band_weight: float = 1.0, normalize: bool = True) -> TripletLoss:
    return TripletLoss("triplet-device", True, alpha, gamma, band_weight, normalize)
