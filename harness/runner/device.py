"""How a run computes on its device: the convolution implementation, the optimiser kernels and the
cuDNN settings, chosen per device and recorded in the run (``config.json``, ``implementation``).

On CUDA the convolutions run in cuDNN. FCNN's fused trunk kernels (``architectures.fused``) are
C code for the CPU: a model built with ``conv_impl=auto`` would build them and then fall back per
call, so on CUDA the factorized blocks are built with ``conv_impl=reference`` (two cuDNN
convolutions) instead, and ``fused``, asked for by name, is replaced the same way with the reason
recorded. The choice is an implementation option: it never enters the run id.

The optimiser uses PyTorch's fused CUDA kernels (one launch for all parameters instead of several
per tensor: these models have many small tensors), which also lets ``GradScaler`` skip and unscale
steps on the GPU without reading the overflow flag back on the host.

cuDNN picks convolution algorithms by its heuristics (``torch.backends.cudnn.benchmark`` stays
off, so the choice does not depend on timings, which vary with what else shares the GPU); some of
them accumulate with atomics, so two GPU runs of one seed agree to float rounding, not bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.model import implementation

#: The option that chooses how FCNN's factorized blocks are computed (``architectures.blocks``).
CONV_IMPL = "conv_impl"
#: ``conv_impl`` values that mean the CPU's fused kernels.
CPU_ONLY_IMPLS = ("auto", "fused")


def arch_options_for(arch_options: dict[str, Any], implementation_options: tuple[str, ...],
                     device: torch.device) -> tuple[dict[str, Any], str | None]:
    """The architecture options to build with on ``device`` and, where they differ from those
    asked for, why. Only implementation options (outside the run id) are ever changed."""
    asked = arch_options.get(CONV_IMPL)
    if device.type != "cuda" or CONV_IMPL not in implementation_options or asked not in CPU_ONLY_IMPLS:
        return dict(arch_options), None
    why = None if asked == "auto" else f"{CONV_IMPL}={asked}: the fused kernels are CPU code; cuDNN convolutions on cuda"
    return {**arch_options, CONV_IMPL: "reference"}, why


def fused_optimizer(device: torch.device) -> bool:
    """Whether the optimiser runs PyTorch's fused kernels (CUDA) or its default ones (CPU: unchanged)."""
    return device.type == "cuda"


def implementation_record(model: torch.nn.Module, device: torch.device, why: str | None = None) -> dict[str, Any]:
    """What the model's forward ran and why (the ``implementation`` and ``fallback`` of the summary);
    on CUDA also the cuDNN and TF32 settings in effect."""
    if device.type != "cuda":
        return implementation(model)
    cudnn = torch.backends.cudnn
    uses_cudnn = bool(cudnn.is_available() and cudnn.enabled)
    return {
        "implementation": "cuDNN convolutions" if uses_cudnn else "torch CUDA kernels",
        "fallback": why,
        "why": "cuda device: convolutions run in " + ("cuDNN" if uses_cudnn else "PyTorch's own CUDA kernels")
               + "; the fused FCNN kernels are CPU code and never run on a GPU",
        "cudnn_version": cudnn.version() if uses_cudnn else None,
        "cudnn_benchmark": bool(cudnn.benchmark),
        "cudnn_deterministic": bool(cudnn.deterministic),
        "tf32_convolutions": bool(cudnn.allow_tf32),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "optimizer_kernels": "fused" if fused_optimizer(device) else "default",
    }


def summary_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The two fields of the record that go into the results index (``implementation``, ``fallback``)."""
    return {"implementation": record.get("implementation"), "fallback": record.get("fallback")}
