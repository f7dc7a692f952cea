"""Training precision: float32, bfloat16 or (CUDA) float16 autocast, chosen per run and recorded in it.

``bf16`` runs the forward pass under ``torch.autocast(dtype=torch.bfloat16)`` on the CPU as on
the GPU; parameters, gradients, the loss and Adam's state stay float32. ``fp16`` is the same with
float16, CUDA only: float16's 5-bit exponent underflows small gradients, so the loss is scaled by
``torch.amp.GradScaler`` (:func:`grad_scaler`), which no CPU training path here uses. ``auto``
picks bf16 only where the hardware has native bf16 arithmetic and the training benchmark measured
it faster (``AUTO_BF16``); on a GPU without native bf16 but with float16 tensor cores it picks
fp16 (:func:`cuda_precision`), else fp32. The CPU's bf16 support is read from its feature flags
(Linux ``/proc/cpuinfo``: ``amx_bf16``, ``avx512_bf16``), not guessed from its model name.
"""

from __future__ import annotations

import contextlib
import functools
from typing import ContextManager

import torch

from harness.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
#: The first CUDA compute capability with float16 tensor cores (Volta); older GPUs gain nothing from fp16.
FP16_CAPABILITY = (7, 0)

#: Whether ``auto`` trains in bf16 on each kind of native bf16 hardware: only where bf16 was
#: measured faster and its accuracy within the seed noise of fp32 (docs/precision.md, "Accuracy parity,
#: fp32 against bf16"). A CPU without either flag: fp32.
AUTO_BF16 = {
    "cuda": True,          # bf16 autocast was the GPU default before the option existed
    "amx_bf16": True,      # same bf16 arithmetic as below (fp32 accumulation); AMX tiles only do bf16/int8
    "avx512_bf16": True,   # within noise of fp32 and faster for every model (docs/precision.md)
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


def cuda_precision(capability: tuple[int, int], native_bf16: bool) -> tuple[str, str]:
    """(precision, why) that ``auto`` picks on a GPU of this compute capability: bf16 where the GPU
    has native bf16 (Ampere, sm 8.0, and later), fp16 with loss scaling where it has float16 tensor
    cores but no bf16 (Volta, Turing), fp32 on older GPUs."""
    if native_bf16 and AUTO_BF16.get("cuda", False):
        return "bf16", f"auto: native bf16 (cuda sm_{capability[0]}{capability[1]})"
    if tuple(capability) >= FP16_CAPABILITY:
        return "fp16", f"auto: no native bf16 on cuda sm_{capability[0]}{capability[1]}; fp16 tensor cores, loss scaling"
    return "fp32", f"auto: cuda sm_{capability[0]}{capability[1]} has neither native bf16 nor fp16 tensor cores"


def cuda_capabilities(device: torch.device) -> tuple[tuple[int, int], bool]:
    """The GPU's compute capability and whether it has native (not emulated) bf16."""
    capability = torch.cuda.get_device_capability(device)
    with torch.cuda.device(device):  # is_bf16_supported asks about the current device
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # a torch without the argument: native from sm 8.0
            native = capability >= (8, 0)
    return tuple(capability), bool(native)  # type: ignore[return-value]


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(``fp32``, ``bf16`` or ``fp16``, why) for a requested precision on a device."""
    check_precision(precision)
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 trains on CUDA only (float16 with loss scaling); on {device.type} "
                          "use bf16 or fp32")
    if precision != "auto":
        return precision, "requested"
    if device.type == "cuda":
        return cuda_precision(*cuda_capabilities(device))
    unit = cpu_bf16()
    if unit is None:
        return "fp32", f"auto: no native bf16 on this {device.type.upper()}"
    if not AUTO_BF16.get(unit, False):
        return "fp32", f"auto: {unit} present, bf16 not yet shown faster at fp32's accuracy on it"
    return "bf16", f"auto: native bf16 ({unit})"


#: The autocast dtype of each reduced precision.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context a forward pass runs in at this precision."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def grad_scaler(precision: str, device: torch.device) -> "torch.amp.GradScaler | None":
    """The loss scaler fp16 training needs on CUDA (None at any other precision or off CUDA: a stored
    fp16 run scored again on the CPU trains nothing)."""
    if precision != "fp16" or device.type != "cuda":
        return None
    return torch.amp.GradScaler(device.type)
