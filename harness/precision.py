"""Training precision: float32, or bfloat16 autocast, chosen per run and recorded in it.

``bf16`` runs the forward pass under ``torch.autocast(dtype=torch.bfloat16)`` on the CPU as on
the GPU; parameters, gradients, the loss and Adam's state stay float32. ``auto`` picks bf16 only
where the hardware has native bf16 arithmetic and the training benchmark measured it faster
(``AUTO_BF16``), else fp32. The CPU's bf16 support is read from its feature flags (Linux
``/proc/cpuinfo``: ``amx_bf16``, ``avx512_bf16``), not guessed from its model name.
"""

from __future__ import annotations

import contextlib
import functools
from typing import ContextManager

import torch

from harness.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "auto")

#: Whether ``auto`` trains in bf16 on each kind of native bf16 hardware: only where bf16 was
#: measured faster and its accuracy within the seed noise of fp32 (README, "Precision and the
#: fused kernels"). A CPU without either flag: fp32.
AUTO_BF16 = {
    "cuda": True,          # bf16 autocast was the GPU default before the option existed
    "amx_bf16": True,      # same bf16 arithmetic as below (fp32 accumulation); AMX tiles only do bf16/int8
    "avx512_bf16": True,   # within noise of fp32 and faster for every model (README)
}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where the OS does not list them)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_bf16() -> str | None:
    """The CPU's best native bf16 unit: ``amx_bf16``, ``avx512_bf16`` or None."""
    flags = cpu_flags()
    for name in ("amx_bf16", "avx512_bf16"):
        if name in flags:
            return name
    return None


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(``fp32`` or ``bf16``, why) for a requested precision on a device."""
    check_precision(precision)
    if precision != "auto":
        return precision, "requested"
    if device.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        unit = "cuda"
    else:
        unit = cpu_bf16()
        ok = unit is not None
    if not ok:
        return "fp32", f"auto: no native bf16 on this {device.type.upper()}"
    if not AUTO_BF16.get(unit, False):
        return "fp32", f"auto: {unit} present, bf16 not yet shown faster at fp32's accuracy on it"
    return "bf16", f"auto: native bf16 ({unit})"


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context a forward pass runs in at this precision."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
