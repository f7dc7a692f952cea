"""Building blocks shared by the DCASE baseline, SubSpectralNet and the factorized CNN.

All three models use the same two-block CNN trunk (conv → BN → ReLU → max-pool → dropout,
twice); they differ only in the first pooling, the kind of convolution and whether the input
is cut into sub-bands. Keeping the trunk here makes "FCNN = SubSpectralNet with factorized
convolutions" literally true in code.

The factorized block has several implementations of the same function (``conv_impl``), all with
the same parameters and state_dict keys, so a checkpoint trained with one loads into any other:

``reference``      the plain definition: Conv (k,1) then depthwise Conv (1,k), NCHW.
``channels-last``  the same two convolutions on channels-last tensors (oneDNN's NHWC kernels).
``dense``          the rank-1 kernel materialised as one dense k×k conv plus the exact bias map
                   (k× the multiply-accumulates of the factorized form).
``fused``          conv → BatchNorm → ReLU → max-pool (→ the dropout after the first pool) of a
                   trunk block as one step: C kernels registered as PyTorch custom operators
                   (:mod:`architectures.fused`). CPU, float32/float64.
``auto``           ``fused`` where it applies, else ``reference``.

Whether a trunk block runs fused is decided when the model is built (the kernels are built then);
where it cannot run at call time (a CUDA tensor, another dtype, forward hooks on the block's
modules as ptflops installs, TorchScript or torch.compile tracing) the block computes the
reference definition instead, so the choice never changes what a model computes (beyond float
rounding), only how fast. :meth:`SubBandNet.implementation` reports what ran and why.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from architectures import fused
from harness.errors import ConfigError
from harness.contracts import ModelOutput

#: Implementations of :class:`FactorizedConv2d` (see the module docstring).
FACTORIZED_IMPLS: tuple[str, ...] = ("auto", "reference", "channels-last", "dense", "fused")
#: What ``fcnn`` uses unless told otherwise.
DEFAULT_IMPL = "auto"
#: Labels of what a trunk block ran (anything else is the reason the modules ran instead).
FUSED, DENSE = "fused", "dense convolutions"


class FactorizedConv2d(nn.Module):
    """A k×k convolution whose kernel is rank-1 per (output, input) channel pair.

    ``freq``: Conv (k,1), Cin→Cout, bias; ``time``: depthwise Conv (1,k) on Cout channels, bias.
    Output channel o sees ``freq.weight[o, i, :, 0] ⊗ time.weight[o, 0, 0, :]`` for input i,
    the paper's "conv2D with a rank-1 matrix kernel" (§3.1). ``impl`` picks how it is computed
    (module docstring); the reference implementation is the ground truth for the others.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7, impl: str = "reference"):
        super().__init__()
        self.impl = check_impl(impl)
        k = check_kernel(kernel_size)
        self.kernel_size = k
        self.freq = nn.Conv2d(in_channels, out_channels, (k, 1), padding=(k // 2, 0), bias=True)
        self.time = nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, k // 2), groups=out_channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # "fused" works on a whole conv → BN → ReLU → pool block (Trunk); on its own the conv is
        # computed as defined.
        if self.impl == "channels-last":  # NCHW again outside, so what follows (dropout masks) is unchanged
            return self.time(self.freq(x.contiguous(memory_format=torch.channels_last))).contiguous()
        if self.impl == "dense":
            k = self.kernel_size
            return F.conv2d(x, self.dense_kernel(), None, padding=k // 2) + self.bias_map(x.shape[-1])
        return self.time(self.freq(x))

    def dense_kernel(self) -> torch.Tensor:
        """The equivalent dense (Cout, Cin, k, k) kernel: outer product of column and row."""
        col = self.freq.weight[:, :, :, 0]  # (Cout, Cin, k)
        row = self.time.weight[:, 0, 0, :]  # (Cout, k)
        return col[:, :, :, None] * row[:, None, None, :]

    def dense_bias(self) -> torch.Tensor:
        """The equivalent bias away from the time edges: b_time + b_freq · Σ row.

        Within k//2 frames of either end, zero padding cuts part of the row, so the first
        conv's bias contributes less there (see :meth:`bias_map`).
        """
        return self.time.bias + self.freq.bias * self.time.weight[:, 0, 0, :].sum(-1)

    def bias_map(self, n_frames: int) -> torch.Tensor:
        """The exact bias contribution per (channel, frame), edges included: shape (Cout, 1, T)."""
        k = self.kernel_size
        const = self.freq.bias.view(1, -1, 1, 1).expand(1, -1, 1, n_frames)
        return F.conv2d(const, self.time.weight, self.time.bias, padding=(0, k // 2), groups=const.shape[1])[0]


def check_impl(impl: str) -> str:
    if impl not in FACTORIZED_IMPLS:
        raise ConfigError(f"unknown factorized conv impl {impl!r}; known: {', '.join(FACTORIZED_IMPLS)}")
    return impl


def check_kernel(kernel_size: int) -> int:
    """'same' padding needs an odd kernel."""
    k = int(kernel_size)
    if k < 1 or k % 2 == 0:
        raise ConfigError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
    return k


def parse_channels(channels: Any, default: tuple[int, int]) -> tuple[int, int]:
    """Channel widths of the two conv blocks from an option: None, [c1, c2] or "c1,c2"."""
    if channels is None:
        return default
    if isinstance(channels, str):
        channels = [c for c in channels.replace("x", ",").split(",") if c.strip()]
    try:
        c1, c2 = (int(c) for c in channels)
    except (TypeError, ValueError):
        raise ConfigError(f"channels must be two integers like [32, 64] or '32,64', got {channels!r}") from None
    if c1 < 1 or c2 < 1:
        raise ConfigError(f"channels must be positive, got {channels!r}")
    return c1, c2


def conv_bn_relu(cin: int, cout: int, k: int, factorized: bool, impl: str = "reference") -> nn.Sequential:
    """One convolution block: 'same' conv (dense or factorized), BatchNorm, ReLU."""
    conv: nn.Module = (FactorizedConv2d(cin, cout, k, impl=impl) if factorized
                       else nn.Conv2d(cin, cout, k, padding=k // 2, bias=True))
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Trunk(nn.Module):
    """Two conv blocks with pooling: pool1 as given, then (4, all remaining frames).

    The second time pooling always collapses the whole remaining time axis, which is
    (4, 100) at 500 frames as in the DCASE baseline, and keeps the flattened size (hence
    the parameter count) independent of the clip length.
    """

    def __init__(self, n_mels: int, n_frames: int, in_channels: int, channels: tuple[int, int],
                 kernel_size: int, pool1: tuple[int, int], dropout: float, factorized: bool,
                 impl: str = "reference", what: str = "model"):
        super().__init__()
        k = check_kernel(kernel_size)
        f1, t1 = n_mels // pool1[0], n_frames // pool1[1]
        f2 = f1 // 4
        if t1 < 1:
            raise ConfigError(f"{what} needs at least {pool1[1]} frames (first pooling {pool1}), got n_frames={n_frames}")
        if f2 < 1:
            raise ConfigError(f"{what} needs at least {pool1[0] * 4} mel bins per input (pooling {pool1[0]} then 4), got {n_mels}")
        c1, c2 = channels
        self.block1 = conv_bn_relu(in_channels, c1, k, factorized, impl)
        self.pool1 = nn.MaxPool2d(pool1)
        self.drop1 = nn.Dropout(dropout)
        self.block2 = conv_bn_relu(c1, c2, k, factorized, impl)
        self.pool2 = nn.MaxPool2d((4, t1))
        self.drop2 = nn.Dropout(dropout)
        self.out_features = c2 * f2
        self.n_frames, self.time_pool, self.what = n_frames, pool1[1], what
        # Fused or not, decided here (None: fused; else why not); what ran is collected in forward.
        self.plan1 = fused.plan(self.block1, self.pool1) if factorized else DENSE
        self.plan2 = fused.plan(self.block2, self.pool2) if factorized else DENSE
        self.ran: set[str] = set()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding before dropout, dropped-out features for the dense layers), both (B, D).

        The embedding is taken before dropout so triplet distances are not randomised by it.
        """
        if x.shape[-1] // self.time_pool != self.n_frames // self.time_pool:
            raise ConfigError(f"{self.what} was built for n_frames={self.n_frames}, got input with {x.shape[-1]} frames")
        if self.plan1 is None and (why := fused.obstacle(self.block1, self.pool1, x)) is None:
            self.ran.add(FUSED)  # dropout included; channels-last for the next conv
            x = fused.fused_block(self.block1, self.pool1, x, dropout=self.drop1, channels_last=True)
        else:
            self.ran.add(self.plan1 or why)
            x = self.drop1(self.pool1(self.block1(x)))
        if self.plan2 is None and (why := fused.obstacle(self.block2, self.pool2, x)) is None:
            self.ran.add(FUSED)
            emb = fused.fused_block(self.block2, self.pool2, x).flatten(1)
        else:
            self.ran.add(self.plan2 or why)
            emb = self.pool2(self.block2(x)).flatten(1)
        return emb, self.drop2(emb)


def band_starts(n_mels: int, band_size: int, band_hop: int) -> list[int]:
    """First mel bin of every sub-band (bins past the last full band are not used)."""
    if band_size < 1 or band_hop < 1:
        raise ConfigError(f"band_size and band_hop must be positive, got {band_size} and {band_hop}")
    if n_mels < band_size:
        raise ConfigError(f"sub-band size {band_size} exceeds n_mels={n_mels}")
    return list(range(0, n_mels - band_size + 1, band_hop))


def global_widths(d_in: int, floor: int = 64) -> list[int]:
    """Hidden widths of SubSpectralNet's global classifier: 2^⌊log2 d⌋ halving down to 64."""
    widths, h = [], 1 << (max(d_in, 1).bit_length() - 1)
    while h >= floor:
        widths.append(h)
        h //= 2
    return widths


class SubBandNet(nn.Module):
    """SubSpectralNet (dense convs) or the FCNN (factorized convs).

    Each sub-band has its own trunk, a Linear→32 (+ReLU) whose output goes to the global
    classifier, and its own Linear→classes sub-classifier (the band logits).
    """

    def __init__(self, n_mels: int, n_frames: int, in_channels: int, n_classes: int, *,
                 channels: tuple[int, int], kernel_size: int, band_size: int, band_hop: int,
                 band_features: int, dropout: float, factorized: bool, impl: str = "reference",
                 what: str = "model"):
        super().__init__()
        self.starts = band_starts(n_mels, band_size, band_hop)
        self.band_size = band_size
        self.trunks = nn.ModuleList(
            Trunk(band_size, n_frames, in_channels, channels, kernel_size, (2, 5), dropout, factorized, impl, what)
            for _ in self.starts)
        d = self.trunks[0].out_features
        self.band_fc = nn.ModuleList(nn.Sequential(nn.Linear(d, band_features), nn.ReLU(inplace=True))
                                     for _ in self.starts)
        self.band_heads = nn.ModuleList(nn.Sequential(nn.Dropout(dropout), nn.Linear(band_features, n_classes))
                                        for _ in self.starts)
        layers: list[nn.Module] = []
        width = band_features * len(self.starts)
        for h in global_widths(width):
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.global_head = nn.Sequential(*layers)

    def implementation(self) -> dict[str, Any]:
        """What the trunk blocks ran (before any forward: what was planned at build) and, where the
        fused kernels did not run although asked for, why."""
        planned = {t.plan1 or FUSED for t in self.trunks} | {t.plan2 or FUSED for t in self.trunks}
        ran = set().union(*(t.ran for t in self.trunks)) or planned
        reasons = sorted(r for r in ran if r not in (FUSED, DENSE))
        impl = "fused" if ran == {FUSED} else "torch modules" if FUSED not in ran else "fused, partly torch modules"
        return {"implementation": impl, "fallback": "; ".join(reasons) or None}

    def forward(self, x: torch.Tensor) -> ModelOutput:
        embs, feats, band_logits = [], [], []
        for start, trunk, fc, head in zip(self.starts, self.trunks, self.band_fc, self.band_heads):
            emb, h = trunk(x[:, :, start:start + self.band_size])
            h = fc(h)
            embs.append(emb)
            feats.append(h)
            band_logits.append(head(h))
        logits = self.global_head(torch.cat(feats, dim=1))
        return ModelOutput(logits, torch.cat(embs, dim=1), torch.stack(band_logits, dim=1))


def check_input(n_mels: int, n_frames: int, in_channels: int, n_classes: int) -> None:
    """Reject impossible shapes with one line before building anything."""
    for name, v in (("n_mels", n_mels), ("n_frames", n_frames), ("in_channels", in_channels), ("n_classes", n_classes)):
        if int(v) < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")


def check_dropout(dropout: float) -> float:
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)
