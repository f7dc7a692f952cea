"""Dataset plugin ``synthetic``: generated scenes in TAU 2019 layout, and the default dataset it makes itself.

A folder written by :func:`harness.data.synthetic.tau2019.generate` (recognised by its
``synthetic.json``) is read by the TAU loader unchanged. Without a folder, ``--data synthetic``
(the harness's default data) opens the embedded default: generated into the cache on first use
(``<cache>/datasets/synthetic-<config key>/…``), reused after.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.dataset import Dataset
from harness.data.registry import register_dataset
from harness.data.synthetic.tau2019 import DATASET_DIRNAME, generate, marker_record
from harness.data.synthetic.world import SynthConfig
from harness.data.synthetic.writer import SYNTHETIC_MARKER, generate_once, write_marker
from harness.data.tau import load_dataset, meta_sources
from harness.paths import cache_dir

NAME = "synthetic"
#: The cache folder of every default dataset: one per config key (generator version included).
_CACHE_PREFIX = "synthetic-"


def default_config() -> SynthConfig:
    """The embedded default dataset (calibrated: see :mod:`harness.data.synthetic.world`)."""
    return SynthConfig()


def default_root(cfg: SynthConfig | None = None) -> Path:
    cfg = cfg or default_config()
    return cache_dir() / "datasets" / f"{_CACHE_PREFIX}{cfg.key()}" / DATASET_DIRNAME


def default_dataset(progress: bool = True, cfg: SynthConfig | None = None) -> Path:
    """The default synthetic dataset, generated into the cache on first use and reused after."""
    root = default_root(cfg)
    if (root / "meta.csv").is_file() and not (root / SYNTHETIC_MARKER).is_file():  # generated before the marker existed
        write_marker(root, marker_record(cfg or default_config()))
    return generate_once(root, lambda out: generate(cfg or default_config(), out, progress=progress))


def is_default_root(path: str | Path) -> bool:
    """Whether a recorded dataset folder is a default one (``datasets/synthetic-<key>/…`` in some
    cache) rather than one written with ``harness data synth --out``."""
    parts = Path(path).parts
    return any(a == "datasets" and b.startswith(_CACHE_PREFIX) for a, b in zip(parts, parts[1:]))


def _detect(root: Path) -> bool:
    return (root / SYNTHETIC_MARKER).is_file() and meta_sources(root) is not None


@register_dataset(NAME, "generated scenes in TAU 2019 layout (the default without --data); domain = city",
                  detect=_detect, looks_for=f"TAU 2019 layout + {SYNTHETIC_MARKER}", synthetic=True, paper_layout=True,
                  default_root=lambda progress: default_dataset(progress=progress), is_default_root=is_default_root)
def synthetic(root: Path, check_audio: bool = True) -> Dataset:
    return load_dataset(root, check_audio=check_audio, name=NAME, synthetic=True,
                        title="synthetic dataset in TAU 2019 layout (generated audio, not TAU)")
