"""Parameters and multiply-accumulates per clip, the two columns of the paper's Table 2.

MACs come from ptflops' PyTorch backend with its default module set (convolutions and
dense layers plus BatchNorm, ReLU and pooling), the counting that reproduces the reference
figures (baseline ≈ 148 M, FCNN-40 ≈ 145 M per 10-s clip); ``macs_conv_linear`` keeps the
convolution and dense layers only, for readers who count those alone.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.model import count_parameters
from harness.registry import create_architecture

#: (architecture, n_mels) of the five parameter rows of the paper's Table 2, in its order.
TABLE2_CONFIGS: list[tuple[str, int]] = [
    ("dcase-baseline", 40),
    ("subspectralnet", 40),
    ("fcnn", 40),
    ("subspectralnet", 200),
    ("fcnn", 200),
]

#: Modules ptflops counts that are neither convolutions nor dense layers.
_NOT_CONV_LINEAR = [nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d,
                    nn.AdaptiveAvgPool2d, nn.Dropout]


@dataclass(frozen=True)
class Complexity:
    """Trainable parameters and MACs for one clip of ``(in_channels, n_mels, n_frames)``."""

    params: int
    macs: int
    macs_conv_linear: int | None = None


class _LogitsOnly(nn.Module):
    """ptflops expects a tensor from forward; our models return a ModelOutput."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def _ptflops_macs(model: nn.Module, shape: tuple[int, ...], ignore: list[Any]) -> int:
    from ptflops import get_model_complexity_info

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, _ = get_model_complexity_info(model, shape, as_strings=False, print_per_layer_stat=False,
                                            ost=io.StringIO(), backend="pytorch", ignore_modules=ignore)
    return int(macs)


def measure(arch: str, n_mels: int, n_frames: int = 500, in_channels: int = 2, **options: Any) -> Complexity:
    """Build ``arch`` and count its parameters and per-clip MACs (batch of one, eval mode)."""
    model = create_architecture(arch, n_mels=n_mels, n_frames=n_frames, in_channels=in_channels, **options)
    wrapped = _LogitsOnly(model).eval()
    shape = (in_channels, n_mels, n_frames)
    return Complexity(
        params=count_parameters(model),
        macs=_ptflops_macs(wrapped, shape, []),
        macs_conv_linear=_ptflops_macs(wrapped, shape, _NOT_CONV_LINEAR),
    )
