"""Host→device copies that do not put the host back in step with a CUDA GPU.

A plain ``tensor.to("cuda")`` from ordinary (pageable) host memory waits until the copy is done,
and with it everything queued on the stream before: one such copy per training step makes the
host idle while the GPU finishes the previous step, and the GPU idle while the host prepares the
next. Copies here go through page-locked (pinned) memory with ``non_blocking=True``: the host
queues the copy and goes on; PyTorch's pinned-memory cache keeps the buffer alive until the copy
has run. On the CPU nothing crosses and the tensors are returned as they are.
"""

from __future__ import annotations

import numpy as np
import torch

#: Rows gathered per pinned chunk when features are uploaded (bounds the pinned memory in use).
CHUNK_BYTES = 64 * 2**20
#: Chunks in flight before the upload waits for the copies (pinned memory at most this × a chunk).
IN_FLIGHT = 4


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; a CPU→CUDA copy is queued without waiting for the stream."""
    if device.type != "cuda" or t.device == device:
        return t.to(device)
    if t.device.type != "cpu":
        return t.to(device, non_blocking=True)
    return t.pin_memory().to(device, non_blocking=True)


def upload_rows(feats: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """``feats[rows]`` as one tensor on ``device``, gathered from the (memory-mapped) array.

    On CUDA the rows are gathered chunk by chunk into pinned memory and copied while the next
    chunk is read, so the host never holds a second full copy of the features; on the CPU this
    is the gathered array itself.
    """
    rows = np.asarray(rows)
    if device.type != "cuda":
        return torch.from_numpy(np.ascontiguousarray(feats[rows])).to(device)
    row_bytes = max(1, int(np.prod(feats.shape[1:])) * feats.dtype.itemsize)
    per = max(1, CHUNK_BYTES // row_bytes)
    dtype = torch.from_numpy(np.empty(0, dtype=feats.dtype)).dtype
    out = torch.empty((len(rows), *feats.shape[1:]), dtype=dtype, device=device)
    stream = torch.cuda.current_stream(device)
    for n, start in enumerate(range(0, len(rows), per)):
        host = torch.from_numpy(np.ascontiguousarray(feats[rows[start:start + per]])).pin_memory()
        out[start:start + len(host)].copy_(host, non_blocking=True)
        if n % IN_FLIGHT == IN_FLIGHT - 1:
            stream.synchronize()  # lets the pinned cache reuse the chunks already copied
    stream.synchronize()
    return out
