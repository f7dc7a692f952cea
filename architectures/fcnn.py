"""The paper's factorized CNN: SubSpectralNet with every 7×7 conv replaced by (7,1) then depthwise (1,7).

113,160 parameters at 40 mels (channels 2→64→64), 870,600 at 200 mels (2→32→64), the
channel sizes of the paper's §4.2.

``conv_impl`` picks how the factorized blocks are computed (``architectures.blocks``): ``auto``
(default: the fused CPU kernels where they apply, else the plain definition), ``reference``,
``channels-last``, ``dense`` or ``fused``. All give the same function and the same parameters,
so checkpoints load across them; ``benchmarks/train.py`` measures them.
"""

from __future__ import annotations

from torch import nn

from architectures.blocks import DEFAULT_IMPL, SubBandNet, check_dropout, check_impl, check_input, parse_channels
from harness.model import init_weights
from harness.registry import register_architecture


def default_channels(n_mels: int) -> tuple[int, int]:
    """§4.2: (64, 64) for 40 log-mels, (32, 64) for 200; the first below 200 mels, the second from 200 on."""
    return (64, 64) if n_mels < 200 else (32, 64)


@register_architecture("fcnn", "Factorized CNN (the paper): SubSpectralNet with rank-1 (7,1)+(1,7) convs; channels (64,64) <200 mels, (32,64) at 200; conv_impl=auto|reference|channels-last|dense|fused")
def fcnn(n_mels: int, n_frames: int, in_channels: int = 2, n_classes: int = 10, *,
         channels: tuple[int, int] | None = None, kernel_size: int = 7, band_size: int = 20, band_hop: int = 10,
         band_features: int = 32, dropout: float = 0.3, conv_impl: str = DEFAULT_IMPL) -> nn.Module:
    check_input(n_mels, n_frames, in_channels, n_classes)
    check_impl(conv_impl)
    model = SubBandNet(n_mels, n_frames, in_channels, n_classes,
                       channels=parse_channels(channels, default_channels(n_mels)),
                       kernel_size=kernel_size, band_size=int(band_size), band_hop=int(band_hop),
                       band_features=int(band_features), dropout=check_dropout(dropout), factorized=True,
                       impl=conv_impl, what="fcnn")
    init_weights(model)
    return model


#: Options that choose how, not what, the model computes: recorded in config.json, not hashed
#: into the run id (every implementation is checked against ``reference`` by the tests).
fcnn.implementation_options = ("conv_impl",)
