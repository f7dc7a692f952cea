"""A trained model converted to the precision it is evaluated in (fp16, int8), and its parameter memory.

The training precision (fp32, bf16 autocast) is ``harness.precision``; this is what a finished
model is scored and counted at afterwards.

The DCASE complexity limit is on parameter memory, so a model is evaluated at reduced
precision: fp16 casts every parameter and the input; int8 is PyTorch's eager-mode post-training
quantization (``torch.ao.quantization``): batch norm is folded into the convolution before it,
every convolution and dense layer runs in int8 with per-channel weights and activation scales
calibrated on training clips only, and what cannot be quantized stays in float32 between them.
Eager mode, rather than FX graph mode, works on every architecture: it needs no traceable graph.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn import intrinsic as nni

from harness.errors import ConfigError, TrainingError

PRECISIONS = ("fp32", "fp16", "int8")
#: Module types run in int8 (after batch norm and ReLU are fused into them where they follow).
_QUANTIZED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear, nni.ConvReLU2d, nni.ConvReLU1d, nni.LinearReLU)


def _fuse_conv_bn(model: nn.Module) -> None:
    """Fold each Conv → BatchNorm (→ ReLU) run inside a Sequential into one module (eval mode)."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = [n for n, _ in seq.named_children()]
        mods = list(seq.children())
        groups, i = [], 0
        while i < len(mods) - 1:
            if type(mods[i]) in (nn.Conv1d, nn.Conv2d) and type(mods[i + 1]) in (nn.BatchNorm1d, nn.BatchNorm2d):
                n = 3 if i + 2 < len(mods) and type(mods[i + 2]) is nn.ReLU else 2
                groups.append(names[i:i + n])
                i += n
            else:
                i += 1
        if groups:
            tq.fuse_modules(seq, groups, inplace=True)


def _wrap_quantizable(model: nn.Module, qconfig: tq.QConfig, prefix: str = "") -> list[tuple[str, tq.QuantWrapper]]:
    """Put every quantizable layer between a QuantStub and a DeQuantStub; returns them by name."""
    out = []
    for name, child in list(model.named_children()):
        if isinstance(child, _QUANTIZED_TYPES):  # not descended into: a fused ConvReLU2d is one layer
            wrapper = tq.QuantWrapper(child)
            wrapper.qconfig = qconfig
            setattr(model, name, wrapper)
            out.append((prefix + name, wrapper))
        else:
            out.extend(_wrap_quantizable(child, qconfig, f"{prefix}{name}."))
    return out


@contextmanager
def _naming_failures(model: nn.Module, precision: str) -> Iterator[None]:
    """Turn an exception inside the converted model into a one-line error naming the innermost layer."""
    stack: list[str] = []
    handles = []

    def enter(name: str):
        return lambda _m, _a: stack.append(name)  # returns None: the input is unchanged

    def leave(_m, _a, _o) -> None:
        stack.pop()

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave))
    try:
        yield
    except (RuntimeError, NotImplementedError, TypeError, AssertionError) as exc:
        layer = stack[-1] if stack else "(model)"
        module = dict(model.named_modules()).get(layer)
        kind = type(module.module if isinstance(module, tq.QuantWrapper) else module).__name__
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"layer {layer.removesuffix('.module')} ({kind}) cannot run at {precision}: {reason[:200]}") from None
    finally:
        for h in handles:
            h.remove()


def convert(model: nn.Module, precision: str, calibration: Iterable[torch.Tensor] = ()) -> nn.Module:
    """A copy of ``model`` for evaluation at ``precision`` (the original is untouched).

    ``calibration``: batches of normalised **training** clips, fed once through the int8 model
    to set its activation scales (not used for fp32 / fp16).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    m = copy.deepcopy(model).cpu().eval()
    if precision == "fp32":
        return m
    if precision == "fp16":
        return m.half()
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notes on quantized tensors, once per layer
        _fuse_conv_bn(m)
        layers = _wrap_quantizable(m, tq.get_default_qconfig(torch.backends.quantized.engine))
        if not layers:
            raise ConfigError(f"{type(model).__name__} has no convolution or dense layer to quantize to int8")
        tq.prepare(m, inplace=True)
        n = 0
        with torch.no_grad(), _naming_failures(m, "int8 (calibration)"):
            for x in calibration:
                m(x.float().cpu())
                n += len(x)
        if n == 0:
            raise TrainingError("int8 quantization needs calibration clips from the training split; none were given")
        for name, wrapper in layers:  # one at a time, so a layer PyTorch cannot quantize is named
            try:
                tq.convert(wrapper, inplace=True)
            except (RuntimeError, ValueError, TypeError, NotImplementedError, AssertionError) as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConfigError(f"layer {name} ({type(wrapper.module).__name__}) cannot be quantized to int8: "
                                  f"{reason[:200]}") from None
    return m


@torch.no_grad()
def forward(model: nn.Module, x: torch.Tensor, precision: str):
    """Run a converted model on a float batch; names the failing layer in one line if it cannot run."""
    x = x.cpu()
    x = x.half() if precision == "fp16" else x.float()
    with _naming_failures(model, precision), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(x)


def param_bytes(model: nn.Module) -> int:
    """Bytes of parameter storage of a converted model, as it holds them.

    Float modules: each parameter at its dtype. Quantized layers: int8 weights plus their
    float32 bias (quantized per-channel scales and zero points are not parameters and are
    not counted, as the challenge counts parameters).
    """
    total = 0
    for module in model.modules():
        weight_fn = getattr(module, "weight", None)
        if callable(weight_fn) and hasattr(module, "_packed_params") or type(module).__module__.startswith(
                "torch.ao.nn.quantized") and callable(weight_fn):
            w = weight_fn()
            total += w.numel() * w.element_size()
            bias_fn = getattr(module, "bias", None)
            b = bias_fn() if callable(bias_fn) else bias_fn
            if b is not None:
                total += b.numel() * b.element_size()
            continue
        for p in module.parameters(recurse=False):
            total += p.numel() * p.element_size()
    return total
