"""SubSpectralNet (Phaye et al. 2019): one baseline-style CNN per 20-bin sub-band, global classifier.

331,560 parameters at 40 mels (3 bands), 2,541,384 at 200 mels (19 bands); the same conv
widths (32, 64) at both resolutions reproduce Table 2.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from architectures.blocks import SubBandNet, check_dropout, check_input, parse_channels
from harness.model import init_weights
from harness.registry import register_architecture


@register_architecture("subspectralnet", "SubSpectralNet: a 7×7 two-conv CNN per 20-bin sub-band (hop 10) + global classifier")
def subspectralnet(n_mels: int, n_frames: int, in_channels: int = 2, n_classes: int = 10, *,
                   channels: Any = (32, 64), kernel_size: int = 7, band_size: int = 20, band_hop: int = 10,
                   band_features: int = 32, dropout: float = 0.3) -> nn.Module:
    check_input(n_mels, n_frames, in_channels, n_classes)
    model = SubBandNet(n_mels, n_frames, in_channels, n_classes, channels=parse_channels(channels, (32, 64)),
                       kernel_size=kernel_size, band_size=int(band_size), band_hop=int(band_hop),
                       band_features=int(band_features), dropout=check_dropout(dropout), factorized=False,
                       what="subspectralnet")
    init_weights(model)
    return model
