"""The DCASE 2024 Task 1 baseline: a simplified CP-Mobile (Schmid et al., DCASE 2023).

Two strided 3×3 convolutions, then inverted-bottleneck blocks (1×1 expand → 3×3 depthwise,
possibly strided → 1×1 project; a residual where the width is kept, average-pooled where the
block strides) in three stages, and a 1×1 convolution to the classes with batch norm and
global average pooling as the classifier. With the public defaults (base 32 channels, ×1.8
per stage, expansion 2.1, blocks 3/2/1) it has 61,148 parameters and 29,419,156 MACs on the
256 × 65 log-mel of one second of audio, counted as the challenge counts them
(``harness.complexity.challenge_count``). Widths are rounded to multiples of 8 the
MobileNet way (torchvision's ``_make_divisible``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.ops.misc import Conv2dNormActivation

from architectures.blocks import check_input
from harness.errors import ConfigError
from harness.contracts import ModelOutput
from harness.registry import register_architecture

#: Block name -> stride (frequency, time); the other blocks have stride 1.
DEFAULT_STRIDES = {"b2": (1, 1), "b3": (1, 2), "b4": (2, 1)}


def _conv(cin: int, cout: int, kernel: int = 1, stride: Any = 1, groups: int = 1, relu: bool = True) -> nn.Module:
    return Conv2dNormActivation(cin, cout, kernel_size=kernel, stride=stride, groups=groups,
                                padding=kernel // 2, norm_layer=nn.BatchNorm2d,
                                activation_layer=nn.ReLU if relu else None, inplace=False)


class InvertedBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, expansion: float, stride: tuple[int, int]):
        super().__init__()
        mid = _make_divisible(cin * expansion, 8)
        self.block = nn.Sequential(_conv(cin, mid), _conv(mid, mid, 3, stride, groups=mid),
                                   _conv(mid, cout, relu=False))
        self.residual = cin == cout
        # A strided block's shortcut is average-pooled to the block's output grid.
        self.shortcut = (nn.AvgPool2d(3, stride, padding=1) if tuple(stride) != (1, 1) else nn.Identity())
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return self.act(y + self.shortcut(x) if self.residual else y)


class CPMobileBaseline(nn.Module):
    def __init__(self, in_channels: int, n_classes: int, base_channels: int, channels_multiplier: float,
                 expansion_rate: float, n_blocks: tuple[int, ...], strides: dict[str, tuple[int, int]]):
        super().__init__()
        base = _make_divisible(base_channels, 8)
        widths = [base] + [_make_divisible(base * channels_multiplier ** s, 8) for s in range(len(n_blocks))]
        self.in_c = nn.Sequential(_conv(in_channels, base // 4, 3, 2), _conv(base // 4, base, 3, 2))
        stages, k = [], 0
        for s, count in enumerate(n_blocks):
            blocks = []
            for i in range(count):
                k += 1
                cin = widths[s] if i == 0 else widths[s + 1]
                blocks.append(InvertedBottleneck(cin, widths[s + 1], expansion_rate, strides.get(f"b{k}", (1, 1))))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Sequential(nn.Conv2d(widths[-1], n_classes, 1, bias=False), nn.BatchNorm2d(n_classes),
                                        nn.AdaptiveAvgPool2d(1))
        self.out_features = widths[-1]
        for m in self.modules():  # the baseline's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.stages(self.in_c(x))
        logits = self.classifier(h).flatten(1)
        # Triplet embedding: the last stage's features, averaged over frequency and time.
        return ModelOutput(logits, h.mean(dim=(2, 3)), None)


def _parse_blocks(n_blocks: Any) -> tuple[int, ...]:
    if isinstance(n_blocks, str):
        n_blocks = [p for p in n_blocks.replace("x", ",").split(",") if p.strip()]
    try:
        blocks = tuple(int(b) for b in n_blocks)
    except (TypeError, ValueError):
        raise ConfigError(f"n_blocks must be integers such as 3,2,1, got {n_blocks!r}") from None
    if not blocks or min(blocks) < 1:
        raise ConfigError(f"n_blocks must be positive integers such as 3,2,1, got {n_blocks!r}")
    return blocks


@register_architecture("dcase2024-baseline",
                       "DCASE 2024 Task 1 baseline, simplified CP-Mobile (61,148 params, 29.4 M MACs per 1 s on its front end)")
def dcase2024_baseline(n_mels: int, n_frames: int, in_channels: int = 1, n_classes: int = 10, *,
                       base_channels: int = 32, channels_multiplier: float = 1.8, expansion_rate: float = 2.1,
                       n_blocks: Any = (3, 2, 1)) -> nn.Module:
    check_input(n_mels, n_frames, in_channels, n_classes)
    for name, value in (("base_channels", base_channels), ("channels_multiplier", channels_multiplier),
                        ("expansion_rate", expansion_rate)):
        if not float(value) > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
    return CPMobileBaseline(in_channels, n_classes, int(base_channels), float(channels_multiplier),
                            float(expansion_rate), _parse_blocks(n_blocks), DEFAULT_STRIDES)
