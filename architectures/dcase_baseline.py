"""The DCASE 2019 Task 1A baseline CNN (stereo input): 117,686 parameters at 40 mels."""

from __future__ import annotations

from typing import Any

from torch import nn

from architectures.blocks import Trunk, check_dropout, check_input, parse_channels
from harness.contracts import ModelOutput
from harness.model import init_weights
from harness.registry import register_architecture


class DcaseBaseline(nn.Module):
    """Conv 7×7 → pool (5,5) → conv 7×7 → pool (4, rest) → Linear 100 → Linear classes."""

    def __init__(self, n_mels: int, n_frames: int, in_channels: int, n_classes: int,
                 channels: tuple[int, int], kernel_size: int, hidden: int, dropout: float):
        super().__init__()
        self.trunk = Trunk(n_mels, n_frames, in_channels, channels, kernel_size, (5, 5), dropout,
                           factorized=False, what="dcase-baseline")
        self.head = nn.Sequential(nn.Linear(self.trunk.out_features, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, x) -> ModelOutput:
        emb, h = self.trunk(x)
        return ModelOutput(self.head(h), emb, None)


@register_architecture("dcase-baseline", "DCASE 2019 Task 1A baseline: two 7×7 conv blocks, dense 100 (117,686 params at 40 mels)")
def dcase_baseline(n_mels: int, n_frames: int, in_channels: int = 2, n_classes: int = 10, *,
                   channels: Any = (32, 64), kernel_size: int = 7, hidden: int = 100,
                   dropout: float = 0.3) -> nn.Module:
    check_input(n_mels, n_frames, in_channels, n_classes)
    model = DcaseBaseline(n_mels, n_frames, in_channels, n_classes, parse_channels(channels, (32, 64)),
                          kernel_size, int(hidden), check_dropout(dropout))
    init_weights(model)
    return model
