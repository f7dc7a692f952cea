"""Knowledge distillation (Hinton et al. 2015) from stored teacher runs, alone or with the triplet term.

``loss = (1 − λ)·CE + λ·T²·KL(p_teacher,T ‖ p_student,T) [+ γ·triplet]`` where ``p_·,T`` is the
softmax of the logits divided by the temperature T; the T² keeps the soft term's gradient scale
independent of T. The teacher's logits are computed once per training clip on clean clips
(``harness.runner.teacher``) and handed to the loss batch by batch, so distillation adds no
forward pass. CE includes the per-band terms of sub-band students.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.contracts import Loss, ModelOutput, mixup_refusal
from harness.errors import ConfigError
from harness.registry import register_loss
from losses.base import check_band_weight, cross_entropy_terms
from losses.triplet import TripletLoss


def distillation_term(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · mean over clips of KL(softmax(teacher / T) ‖ softmax(student / T))."""
    t = float(temperature)
    log_p_student = F.log_softmax(student / t, dim=1)
    log_p_teacher = F.log_softmax(teacher / t, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * t * t


class Distillation(Loss):
    """CE and KD, weighted by λ, plus the triplet term of ``triplet`` when given."""

    supports_mixup = False  # the stored teacher logits belong to the unmixed clips
    needs_teacher = True

    def __init__(self, name: str, temperature: float = 2.0, weight: float = 0.5, band_weight: float = 1.0,
                 triplet: TripletLoss | None = None):
        super().__init__()
        if not float(temperature) > 0:
            raise ConfigError(f"{name}: temperature must be > 0, got {temperature!r}")
        if not 0 <= float(weight) <= 1:
            raise ConfigError(f"{name}: weight (λ) must be in [0, 1], got {weight!r}")
        self.name, self.temperature, self.weight = name, float(temperature), float(weight)
        self.band_weight = check_band_weight(band_weight)
        self.triplet = triplet
        self.pairing = triplet.pairing if triplet is not None else None
        if triplet is not None:
            self.alpha, self.gamma = triplet.alpha, triplet.gamma

    def forward(self, out: ModelOutput, target: torch.Tensor, domain: torch.Tensor | None = None, *,
                teacher: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if teacher is None:
            raise ConfigError(f"{self.name} needs teacher logits: give --teacher RUN_ID")
        if target.dim() != 1 or target.is_floating_point():
            raise ConfigError(mixup_refusal(self.name))
        if self.triplet is not None:
            terms = self.triplet(out, target, domain)
            hard = terms["loss"] - self.triplet.gamma * terms["triplet"]  # CE (+ band terms)
        else:
            terms = cross_entropy_terms(out, target, self.band_weight)
            hard = terms.pop("total")
        kd = distillation_term(out.logits, teacher, self.temperature)
        terms["kd"] = kd
        terms["loss"] = (1 - self.weight) * hard + self.weight * kd
        if self.triplet is not None:
            terms["loss"] = terms["loss"] + self.triplet.gamma * terms["triplet"]
        return terms


@register_loss("kd", "(1−λ)·CE + λ·T²·KL(teacher_T ‖ student_T) from --teacher runs' stored logits; T=2, λ=0.5")
def kd(temperature: float = 2.0, weight: float = 0.5, band_weight: float = 1.0) -> Distillation:
    return Distillation("kd", temperature, weight, band_weight)


@register_loss("kd-triplet-city", "kd + γ·cross-city triplet term (α=0.2, γ=10), as triplet-city")
def kd_triplet_city(temperature: float = 2.0, weight: float = 0.5, alpha: float = 0.2, gamma: float = 10.0,
                    band_weight: float = 1.0, normalize: bool = True) -> Distillation:
    return Distillation("kd-triplet-city", temperature, weight, band_weight,
                        TripletLoss("kd-triplet-city", True, alpha, gamma, band_weight, normalize))
