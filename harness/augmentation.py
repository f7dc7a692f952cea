"""What every augmentation plugin receives and returns, so the runner never special-cases one.

Augmentations work on normalised feature batches ``(B, channels, n_mels, n_frames)`` on the
training device, after the batch is gathered from the cached features: a run with cached
features stays a cached-feature run whatever it augments. One that models a change of the
waveform (a device impulse response, a time shift) applies its equivalent in the feature
domain. Each draws from the global torch RNG, which the runner reseeds every epoch, so a
resumed run augments exactly like an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from harness.features.logmel import FeatureConfig


@dataclass
class AugmentContext:
    """The run facts a plugin may need; passed to every factory as ``ctx``."""

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
    """Base of the registered augmentations.

    ``order`` places it in the pipeline (lower first: filters and shifts of the signal, then
    statistics mixing, masking, and label mixing last); ``mixes_labels`` is True when it turns
    labels into soft targets (mixup), which losses that need discrete labels refuse.
    """

    name: str = "augmentation"
    order: int = 50
    mixes_labels: bool = False

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError
