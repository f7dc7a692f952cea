"""Shared test set-up: every test session gets its own cache, so nothing touches ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    old = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("harness-cache"))
    yield
    if old is None:
        os.environ.pop("HARNESS_CACHE", None)
    else:
        os.environ["HARNESS_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset in TAU 2019 layout (1 s clips at 8 kHz, 400 clips)."""
    from harness.data.synthetic.tau2019 import generate
    from harness.data.synthetic.world import SynthConfig

    root = tmp_path_factory.mktemp("tiny-synth") / "TAU-urban-acoustic-scenes-2019-development"
    cfg = SynthConfig(seed=3, sample_rate=8000, seconds=1.0, locations_per_scene_city=2, segments_per_location=2)
    return generate(cfg, root, progress=False)
