"""The fused FCNN trunk block: C kernels (``fcnn_block.c``), their build (:mod:`.build`) and the
PyTorch custom operators with their autograd formulas (:mod:`.ops`)."""

from architectures.fused.build import kernel_error, kernels
from architectures.fused.ops import dropout_exact, fused_block, obstacle, plan

__all__ = ["dropout_exact", "fused_block", "kernel_error", "kernels", "obstacle", "plan", "status"]


def status() -> dict:
    """Whether the fused kernels are usable here and, if not, why (builds them on first call)."""
    ok = kernels() is not None
    return {"available": ok, "reason": None if ok else kernel_error(),
            "dropout_replay": dropout_exact() if ok else False}
