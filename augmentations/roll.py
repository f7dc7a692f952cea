"""Time roll: a circular shift of each clip by a random time, as the DCASE 2024 baseline does.

The baseline rolls the waveform by a uniform integer shift in [-max_s, +max_s]; here the cached
features are rolled by whole frames (shift rounded to the hop), which is the same apart from the
one frame at the seam.
"""

from __future__ import annotations

import torch

from harness.contracts import AugmentContext, Augmentation
from harness.errors import ConfigError
from harness.registry import register_augmentation
from harness.transfer import to_device


def roll_frames(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Clip i rolled by ``shifts[i]`` frames along the last axis (``torch.roll`` per clip, in one gather)."""
    n = x.shape[-1]
    idx = (torch.arange(n, device=x.device)[None, :] - to_device(shifts, x.device)[:, None]) % n  # (B, T)
    return torch.gather(x, -1, idx.view(x.shape[0], *([1] * (x.dim() - 2)), n).expand_as(x))


class Roll(Augmentation):
    name = "roll"
    order = 20

    def __init__(self, max_s: float, hop_s: float, n_frames: int):
        if not float(max_s) >= 0:
            raise ConfigError(f"roll: max_s must be >= 0 seconds, got {max_s!r}")
        self.max_s = float(max_s)
        self.max_frames = min(int(round(self.max_s / hop_s)), n_frames)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.max_frames == 0:
            return x, y
        shifts = torch.randint(-self.max_frames, self.max_frames + 1, (x.shape[0],))
        return roll_frames(x, shifts), y


@register_augmentation("roll", "time roll: circular shift of each clip by a uniform random time in [-max_s, +max_s] seconds")
def roll(ctx: AugmentContext, max_s: float = 0.1) -> Roll:
    return Roll(max_s, ctx.hop_seconds, ctx.n_frames)
