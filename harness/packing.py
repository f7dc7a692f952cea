"""How many runs share the machine (``harness grid --jobs N|auto``) and on which device each worker trains.

Runs are packed as worker processes, not as CUDA streams in one process. The models are tiny
(61k-1.1M parameters): one run leaves a modern GPU mostly idle because the host, issuing the
kernels of a small model one by one from Python, is the bottleneck, and streams in one process
share that one Python thread (and its GIL). Separate processes each drive the GPU from their own
core; each has its own CUDA context, so one run's out-of-memory error or crash ends that run
only, and a run's RNG streams and cuDNN state are its own, exactly as when it runs alone. What a
process costs, a CUDA context (a few hundred MiB) and its own copy of the features, is small
against a GPU's memory and is counted by ``--jobs auto``.

``--jobs auto``: on the CPU, :func:`cpu_jobs` (as ``harness tune``'s default: at most two
processes). On CUDA, per GPU, as many workers as fit in its free memory (read when the grid
starts) at the estimated footprint of the grid's largest run (:func:`run_bytes`), at most one per
CPU core left to drive them and at most :data:`MAX_PER_GPU`; with ``--device auto`` the workers
are spread over every visible GPU (``CUDA_VISIBLE_DEVICES`` selects them), with ``--device
cuda:K`` they all train on GPU K.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

AUTO = "auto"
#: Workers per GPU at most: the check script (``benchmarks/gpu_check.py``) measures packing up to 8.
MAX_PER_GPU = 8
#: A process's CUDA context and PyTorch's loaded kernels, on top of what the run allocates.
CONTEXT_BYTES = 768 * 2**20
#: Share of a GPU's free memory the workers may plan to use (the rest: allocator fragmentation,
#: cuDNN workspaces, other users of a shared GPU).
HEADROOM = 0.8


def jobs_type(text: str) -> int | str:
    """``--jobs``: a positive integer or ``auto`` (an argparse type: a bad value is a usage error)."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}")
    return value


def cpu_jobs(cores: int | None = None) -> int:
    """Worker processes on a CPU: two where there are two cores or more (one torch thread per process
    was measured faster than one process with two threads), else one."""
    return max(1, min(2, cores or os.cpu_count() or 1))


def gpu_jobs(free: Sequence[int], per_run: int, cores: int, runs: int) -> list[int]:
    """Workers on each GPU, given its free bytes, one run's estimated bytes, the CPU cores and the runs to do.

    Memory: ``HEADROOM`` of the free memory over ``per_run``; at most ``MAX_PER_GPU``; every GPU
    keeps at least one worker (a run that does not fit fails with its own out-of-memory error,
    as it would alone). Cores: one per worker, one left for the grid's own process. Runs: no more
    workers than runs; the workers are dealt to the GPUs with the most room first.
    """
    if not free:
        return []
    room = [max(1, min(MAX_PER_GPU, int(f * HEADROOM) // max(per_run, 1))) for f in free]
    budget = max(len(free), min(sum(room), max(1, cores - 1), max(runs, 1)))
    out = [0] * len(free)
    while sum(out) < budget:
        open_ = [i for i in range(len(free)) if out[i] < room[i]]
        if not open_:
            break
        i = max(open_, key=lambda k: (room[k] - out[k], -k))
        out[i] += 1
    return [max(1, n) for n in out]


def activation_bytes(arch: str, arch_options: dict[str, Any], clip_shape: tuple[int, int, int], n_classes: int,
                     batch_size: int) -> tuple[int, int]:
    """(parameters, bytes of the tensors one training step keeps for its backward pass), measured by
    running the model's forward on PyTorch's meta device (shapes only: no memory, no arithmetic)."""
    from harness.registry import create_architecture
    from harness.runner.config import implementation_options
    from harness.runner.device import arch_options_for

    options, _ = arch_options_for(arch_options, implementation_options(arch), torch.device("cuda"))
    channels, n_mels, n_frames = clip_shape
    with torch.device("meta"):
        model = create_architecture(arch, n_mels=n_mels, n_frames=n_frames, in_channels=channels,
                                    n_classes=n_classes, **options)
        x = torch.empty(batch_size, channels, n_mels, n_frames)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t
        seen[id(base)] = base.numel() * base.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(x)
    return sum(p.numel() for p in model.parameters()), sum(seen.values())


def run_bytes(feature_bytes: int, params: int, saved_bytes: int) -> int:
    """One run's GPU footprint: context, its resident features, parameters with gradients and Adam's
    two moments (16 bytes each at fp32), the step's saved activations twice (the backward pass's
    gradients of the same size)."""
    return CONTEXT_BYTES + int(feature_bytes) + 16 * int(params) + 2 * int(saved_bytes)


def _free_memory() -> list[int]:
    return [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]


def cuda_free_memory() -> list[int]:
    """Free bytes on each visible GPU, read in a child process so that this one holds no CUDA context
    (it would take memory from the workers for the whole grid)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_free_memory).result()


@dataclass
class Plan:
    """Worker processes, the device each trains on, torch threads per worker, and why so many."""

    slots: list[str]
    threads: int
    why: str

    @property
    def jobs(self) -> int:
        return len(self.slots)


def gpus_for(device: str) -> list[int] | None:
    """The GPU indices a grid on ``device`` may use (None: it trains on the CPU)."""
    if device == "cpu" or not torch.cuda.is_available():
        return None
    if device == "auto":
        return list(range(torch.cuda.device_count()))
    index = torch.device(device).index
    return [index or 0]


def plan_workers(jobs: int | str, device: str, runs: int, *, per_run: int | None = None,
                 cores: int | None = None, free: Sequence[int] | None = None) -> Plan:
    """Where ``jobs`` workers (a number or ``auto``) train. ``per_run``: one run's estimated GPU bytes
    (needed for ``auto`` on CUDA); ``free``: free bytes per used GPU (default: read from the GPUs)."""
    cores = cores or os.cpu_count() or 1
    gpus = gpus_for(device)
    if gpus is None:
        n = cpu_jobs(cores) if jobs == AUTO else int(jobs)
        n = max(1, min(n, max(runs, 1)))
        why = f"auto: {n} on the CPU" if jobs == AUTO else f"--jobs {jobs}"
        return Plan([device] * n, max(1, cores // n), why)
    if jobs == AUTO:
        free = list(free) if free is not None else [cuda_free_memory()[g] for g in gpus]
        counts = gpu_jobs(free, per_run or CONTEXT_BYTES, cores, runs)
        per_gpu = ", ".join(f"{c} on cuda:{g} ({f / 2**30:.1f} GiB free)" for g, c, f in zip(gpus, counts, free))
        why = f"auto: {per_gpu}; {(per_run or 0) / 2**30:.2f} GiB estimated per run"
    else:
        n = max(1, min(int(jobs), max(runs, 1)))
        counts = [n // len(gpus) + (i < n % len(gpus)) for i in range(len(gpus))]
        why = f"--jobs {jobs}"
    # dealt round-robin, so the first workers to start are on different GPUs
    slots = [f"cuda:{g}" for k in range(max(counts)) for g, c in zip(gpus, counts) if k < c]
    return Plan(slots, max(1, cores // len(slots)), why)
