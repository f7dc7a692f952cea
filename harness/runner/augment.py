"""Batch augmentation on the training device: mixup (timm) and SpecAugment (torchaudio).

Both draw from the global RNGs (numpy for timm's mixup λ, torch for the masks), which the
runner reseeds at every epoch, so a resumed run augments exactly like an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.transforms as T
from timm.data import Mixup


@dataclass
class BatchAugment:
    """Applied to normalised batches ``(B, C, F, T)``; masked values become 0 (the band mean)."""

    mixup: bool
    spec: bool
    n_classes: int
    n_mels: int
    n_frames: int
    mixup_alpha: float = 0.4
    freq_masks: int = 2
    freq_mask_width: int | None = None
    time_masks: int = 2
    time_mask_width: int | None = None

    def __post_init__(self) -> None:
        self._mixup = (
            Mixup(mixup_alpha=self.mixup_alpha, cutmix_alpha=0.0, prob=1.0, mode="batch",
                  label_smoothing=0.0, num_classes=self.n_classes)
            if self.mixup else None
        )
        fw = self.freq_mask_width or max(1, self.n_mels // 8)
        tw = self.time_mask_width or max(1, self.n_frames // 10)
        # iid_masks: every clip and channel gets its own masks, as SpecAugment does per utterance.
        self._freq = T.FrequencyMasking(fw, iid_masks=True)
        self._time = T.TimeMasking(tw, iid_masks=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.spec:
            for _ in range(self.freq_masks):
                x = self._freq(x)
            for _ in range(self.time_masks):
                x = self._time(x)
        if self._mixup is not None:
            if x.shape[0] % 2:  # timm mixes a batch with its mirror image: needs an even size
                x, y = x[:-1], y[:-1]
            x, y = self._mixup(x, y)
        return x, y
