"""What every plugin promises the runner, so the runner never special-cases one.

* An **architecture** factory returns an ``nn.Module`` whose forward returns :class:`ModelOutput`.
* A **loss** factory returns a :class:`Loss`, which declares as class attributes what training it
  needs: its batch sampler (``pairing``), whether it accepts soft labels (``supports_mixup``) and
  whether it distils from stored runs (``needs_teacher``).
* An **augmentation** factory takes an :class:`AugmentContext` and returns an :class:`Augmentation`.

``harness.registry`` checks these when a plugin registers (its class, or the return annotation of
its factory) and again on what the factory builds, so a plugin that breaks its contract is named
in a one-line error instead of failing inside a training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from harness.errors import ConfigError
from harness.features.logmel import FeatureConfig

# -- architectures -------------------------------------------------------------------------------


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


# -- losses --------------------------------------------------------------------------------------

#: The batch samplers a loss may ask for: None = plain shuffled batches; "cross-domain" /
#: "any-domain" = the PairedBatchSampler (every anchor has a positive of another / any domain).
PAIRINGS = (None, "cross-domain", "any-domain")


class Loss(nn.Module):
    """Base of the registered losses: ``forward(out, target, domain[, teacher=]) -> {"loss", "ce", …}``.

    ``target`` is ``(B,)`` int64 or ``(B, classes)`` soft labels (mixup); ``domain`` ``(B,)`` int64.
    A loss with ``needs_teacher`` gets the teacher logits of the batch's clips as ``teacher=``.
    A subclass may set ``pairing`` per instance (one class serving several samplers) as long as
    the value is one of :data:`PAIRINGS`.
    """

    pairing: str | None = None
    supports_mixup: bool = True
    needs_teacher: bool = False
    name: str = "loss"

    def check_augmentations(self, augmentations: "list[str] | tuple[str, ...] | set[str]") -> None:
        """Raise a one-line ConfigError if this loss cannot train with the given augmentations."""
        if "mixup" in augmentations and not self.supports_mixup:
            raise ConfigError(mixup_refusal(self.name))


def mixup_refusal(loss_name: str) -> str:
    return (f"loss {loss_name!r} cannot be combined with mixup: mixed labels are not discrete, so no "
            "anchor has a well-defined same-scene positive (paper §4.3); use --aug spec or none")


def loss_declaration_problem(loss: Any) -> str | None:
    """Why a loss class or instance breaks its declaration, or None."""
    if loss.pairing not in PAIRINGS:
        return f"pairing must be one of {', '.join(map(repr, PAIRINGS))}, not {loss.pairing!r}"
    for flag in ("supports_mixup", "needs_teacher"):
        if not isinstance(getattr(loss, flag), bool):
            return f"{flag} must be True or False, not {getattr(loss, flag)!r}"
    return None


# -- augmentations -------------------------------------------------------------------------------


@dataclass
class AugmentContext:
    """The run facts a plugin may need; passed to every factory as ``ctx``.

    Augmentations work on normalised feature batches ``(B, channels, n_mels, n_frames)`` on the
    training device, after the batch is gathered from the cached features: a run with cached
    features stays a cached-feature run whatever it augments. One that models a change of the
    waveform (a device impulse response, a time shift) applies its equivalent in the feature
    domain. Each draws from the global torch RNG, which the runner reseeds every epoch, so a
    resumed run augments exactly like an uninterrupted one.
    """

    n_classes: int
    n_mels: int
    n_frames: int
    sample_rate: int  # the clips' rate; the front end may resample (``features.rate``)
    features: FeatureConfig
    mean: torch.Tensor  # (channels, n_mels, 1) training-split band means the batch was normalised with
    std: torch.Tensor  # (channels, n_mels, 1) training-split band standard deviations
    ir_folder: Path | None = None  # --dir-irs: where device impulse responses come from (None: generated set)

    @property
    def hop_seconds(self) -> float:
        rate = self.features.rate(self.sample_rate)
        return self.features.hop_length(rate) / rate


class Augmentation:
    """Base of the registered augmentations: ``aug(x, y) -> (x, y)`` on the normalised batch.

    ``order`` places it in the pipeline (lower first: filters and shifts of the signal, then
    statistics mixing, masking, and label mixing last); ``mixes_labels`` is True when it turns
    labels into soft targets (mixup), which losses with ``supports_mixup = False`` refuse.
    """

    name: str = "augmentation"
    order: int = 50
    mixes_labels: bool = False

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def augmentation_declaration_problem(aug: Any) -> str | None:
    """Why an augmentation class or instance breaks its declaration, or None."""
    if not isinstance(aug.order, int) or isinstance(aug.order, bool):
        return f"order must be an integer, not {aug.order!r}"
    if not isinstance(aug.mixes_labels, bool):
        return f"mixes_labels must be True or False, not {aug.mixes_labels!r}"
    return None


# -- the contract of each kind -------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """What a registry's factories must build: instances of ``base`` whose declared attributes
    ``problem`` finds nothing wrong with."""

    base: type
    title: str  # how messages name ``base``
    problem: Callable[[Any], str | None] | None = None  # (class or instance) -> why it breaks the declaration

    def violation(self, obj: Any) -> str | None:
        """Why ``obj`` (a class, or what a factory built) breaks the contract, or None."""
        cls = obj if isinstance(obj, type) else type(obj)
        if not issubclass(cls, self.base):
            return f"{cls.__module__}.{cls.__qualname__} is not a {self.title}"
        return self.problem(obj) if self.problem else None


ARCHITECTURE = Contract(nn.Module, "torch.nn.Module")
LOSS = Contract(Loss, "harness.contracts.Loss", loss_declaration_problem)
AUGMENTATION = Contract(Augmentation, "harness.contracts.Augmentation", augmentation_declaration_problem)
