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


# -- complexity limits as the DCASE challenge checks them ------------------------------------------

#: Bytes one parameter takes at each evaluation precision.
PRECISION_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}

#: (label, arch, front end, n_mels) of the rows measured against a budget, each on its own front end.
BUDGET_CONFIGS: list[tuple[str, str, str, int]] = [
    ("DCASE 2019 baseline", "dcase-baseline", "dcase2019", 40),
    ("SubSpectralNet", "subspectralnet", "dcase2019", 40),
    ("FCNN", "fcnn", "dcase2019", 40),
    ("SubSpectralNet", "subspectralnet", "dcase2019", 200),
    ("FCNN", "fcnn", "dcase2019", 200),
    ("DCASE 2024 baseline", "dcase2024-baseline", "dcase2024", 256),
]

#: The rate and channels each front end is fed in the budget table (its dataset's audio).
FRONT_END_INPUT = {"dcase2019": (48000, 2), "dcase2024": (44100, 1)}


def challenge_count(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    """(MACs, parameters) of one input of ``shape`` (C, F, T), counted as NeSsi / the DCASE 2024 baseline.

    torchinfo's rule: a convolution's weights times its output positions, a dense or batch-norm
    layer's parameters once each (so batch norm counts 2 MACs per channel); activations and pooling
    are free. Reproduces the baseline's published 29,419,156 MACs and 61,148 parameters.
    """
    import torchinfo

    hook = model.register_forward_hook(lambda _m, _a, out: out.logits)  # torchinfo needs a tensor
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = torchinfo.summary(model.eval(), input_size=(1, *shape), verbose=0, device="cpu")
    finally:
        hook.remove()
    return int(stats.total_mult_adds), int(stats.total_params)


@dataclass(frozen=True)
class ChallengeComplexity:
    """A network's size and compute on its front end, per second of audio."""

    params: int
    macs_1s: int  # MACs of one 1-s clip: what the challenge limits
    macs_per_s_10s: float  # MACs of one 10-s clip / 10

    def param_bytes(self, precision: str) -> int:
        return self.params * PRECISION_BYTES[precision]


def input_shape(features: Any, seconds: float, sample_rate: int, channels: int) -> tuple[int, int, int]:
    """(channels, n_mels, frames) that ``features`` (a FeatureConfig) makes of a clip of ``seconds``."""
    samples = int(round(seconds * sample_rate))
    return features.channels(channels), int(features.n_mels), features.n_frames(sample_rate, samples)


def measure_per_second(arch: str, features: Any, sample_rate: int, channels: int,
                       n_classes: int = 10, options: dict[str, Any] | None = None) -> ChallengeComplexity:
    """Challenge-style counts of ``arch`` on 1-s and 10-s clips through ``features``; ``options`` are
    the architecture's own (a dict, so that an option may share a name with an argument here)."""
    counts = {}
    for seconds in (1, 10):
        shape = input_shape(features, seconds, sample_rate, channels)
        model = create_architecture(arch, n_mels=shape[1], n_frames=shape[2], in_channels=shape[0],
                                    n_classes=n_classes, **(options or {}))
        counts[seconds] = challenge_count(model, shape)
    return ChallengeComplexity(counts[1][1], counts[1][0], counts[10][0] / 10)


@dataclass(frozen=True)
class Budget:
    """A complexity limit, read from a data file (``harness/budgets/<name>.json`` or a path)."""

    name: str
    param_bytes: int
    macs_per_second: int
    description: str = ""
    source: str = ""

    def verdict(self, c: ChallengeComplexity, precision: str) -> str:
        over = []
        if c.param_bytes(precision) > self.param_bytes:
            over.append(f"params {c.param_bytes(precision):,} B > {self.param_bytes:,} B")
        if c.macs_1s > self.macs_per_second:
            over.append(f"MACs {c.macs_1s / 1e6:.1f} M > {self.macs_per_second / 1e6:g} M")
        return "fits" if not over else "over: " + "; ".join(over)


def budget_names() -> list[str]:
    from importlib.resources import files

    return sorted(p.name[:-5] for p in files("harness").joinpath("budgets").iterdir() if p.name.endswith(".json"))


def load_budget(name_or_path: str) -> Budget:
    """A named budget shipped with the package, or a JSON file with ``param_bytes`` and ``macs_per_second``."""
    import json
    from importlib.resources import files
    from pathlib import Path

    from harness.errors import ConfigError

    path = Path(name_or_path)
    if not (path.suffix == ".json" or path.exists()):
        if name_or_path not in budget_names():
            raise ConfigError(f"unknown budget {name_or_path!r}; choose one of {', '.join(budget_names())} or give a JSON file")
        text = files("harness").joinpath("budgets", f"{name_or_path}.json").read_text()
    else:
        from harness.textfile import read_text

        text = read_text(path, what="budget file")
    try:
        d = json.loads(text)
        return Budget(str(d.get("name", path.stem)), int(d["param_bytes"]), int(d["macs_per_second"]),
                      str(d.get("description", "")), str(d.get("source", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"budget {name_or_path}: needs integer param_bytes and macs_per_second ({exc})") from None
