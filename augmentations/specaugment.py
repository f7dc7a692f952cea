"""SpecAugment's frequency and time masking (torchaudio); masked values become 0, the band mean."""

from __future__ import annotations

import torch
import torchaudio.transforms as T

from harness.contracts import AugmentContext, Augmentation
from harness.errors import ConfigError
from harness.registry import register_augmentation


class SpecAugment(Augmentation):
    name = "spec"
    order = 70

    def __init__(self, n_mels: int, n_frames: int, freq_masks: int, freq_width: float, time_masks: int, time_width: float):
        for key, value in (("freq_masks", freq_masks), ("time_masks", time_masks)):
            if int(value) != value or value < 0:
                raise ConfigError(f"spec: {key} must be a whole number >= 0, got {value!r}")
        for key, value in (("freq_width", freq_width), ("time_width", time_width)):
            if not 0 < float(value) <= 1:
                raise ConfigError(f"spec: {key} is a fraction of the bands/frames in (0, 1], got {value!r}")
        self.freq_masks, self.time_masks = int(freq_masks), int(time_masks)
        # iid_masks: every clip and channel gets its own masks, as SpecAugment does per utterance.
        self._freq = T.FrequencyMasking(max(1, int(n_mels * float(freq_width) + 1e-9)), iid_masks=True)
        self._time = T.TimeMasking(max(1, int(n_frames * float(time_width) + 1e-9)), iid_masks=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(self.freq_masks):
            x = self._freq(x)
        for _ in range(self.time_masks):
            x = self._time(x)
        return x, y


@register_augmentation("spec", "SpecAugment masking (torchaudio): masks of up to width × bands / frames, per clip and channel")
def spec(ctx: AugmentContext, freq_masks: int = 2, freq_width: float = 0.125, time_masks: int = 2,
         time_width: float = 0.1) -> SpecAugment:
    return SpecAugment(ctx.n_mels, ctx.n_frames, freq_masks, freq_width, time_masks, time_width)
