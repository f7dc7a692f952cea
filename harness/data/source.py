"""Resolve ``--data``: the synthetic default (generated on first use) or a TAU folder."""

from __future__ import annotations

from pathlib import Path


def open_dataset(data: str | Path = "synthetic", *, progress: bool = True):
    """Return a loaded ``TauDataset`` for ``"synthetic"`` or a path to a TAU-layout folder."""
    from harness.data import synth, tau

    if str(data) == "synthetic":
        return tau.load_dataset(synth.default_dataset(progress=progress))
    return tau.load_dataset(Path(data).expanduser())
