"""What a trained model expects as input: its preprocessing contract, stored beside every run.

A model alone cannot score a clip: it needs the same log-mel settings, the same rounding to the
feature cache's storage type and the training split's normalisation statistics. The runner writes
them to ``preprocessing.json`` in the run folder, so predictions and exported models need neither
the training data nor the feature cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.atomic import write_json
from harness.errors import DataError
from harness.features.logmel import FeatureConfig, LogMelExtractor
from harness.results.records import load_record

FILE = "preprocessing.json"
VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """Audio format, log-mel settings, normalisation statistics and class names of one trained model."""

    features: dict[str, Any]  # FeatureConfig.to_dict()
    sample_rate: int
    channels: int
    clip_samples: int
    n_frames: int
    mean: list[list[float]]  # (channels, n_mels): per channel and band, from the training split only
    std: list[list[float]]
    classes: list[str]

    @classmethod
    def build(cls, cfg: FeatureConfig, ds: Any, n_frames: int, mean: np.ndarray, std: np.ndarray,
              classes: list[str]) -> "Preprocessing":
        a = ds.audio
        c = cfg.channels(a.channels)  # the front end may down-mix: statistics are per model input channel
        return cls(features=cfg.to_dict(), sample_rate=int(a.sample_rate), channels=int(a.channels),
                   clip_samples=int(a.clip_samples), n_frames=int(n_frames),
                   mean=np.asarray(mean, np.float32).reshape(c, -1).tolist(),
                   std=np.asarray(std, np.float32).reshape(c, -1).tolist(), classes=list(classes))

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(**self.features)

    def extractor(self) -> LogMelExtractor:
        return LogMelExtractor(self.feature_config, self.sample_rate)

    def input_shape(self) -> tuple[int, int, int]:
        """One clip's model input: ``(channels, n_mels, n_frames)``."""
        return self.feature_config.channels(self.channels), int(self.features["n_mels"]), self.n_frames

    def normalize(self, logmel: np.ndarray) -> torch.Tensor:
        """``(B, channels, n_mels, n_frames)`` float32 log-mel -> the model's input.

        Rounds to the feature cache's storage type first, so a clip scores exactly as it did
        when the run evaluated it from the cache.
        """
        x = torch.from_numpy(np.asarray(logmel, np.float32)).to(getattr(torch, self.features["dtype"])).float()
        mean = torch.tensor(self.mean, dtype=torch.float32)[:, :, None]
        std = torch.tensor(self.std, dtype=torch.float32)[:, :, None]
        return (x - mean) / std

    def to_dict(self) -> dict[str, Any]:
        n_mels = int(self.features["n_mels"])
        return {
            "format": VERSION,
            **asdict(self),
            "input": {
                "shape": ["batch", self.channels, n_mels, self.n_frames], "dtype": "float32",
                "recipe": ("read the WAV as float32 in [-1, 1], (channels, clip_samples) at sample_rate; log-mel with "
                           "`features` (torchaudio mel filterbank, magnitude spectrum, natural log of mel + log_eps, "
                           "centred reflect-padded STFT, first clip_samples // hop frames); round to features.dtype; "
                           "x = (x - mean[c][m]) / std[c][m] per channel c and mel band m"),
            },
            "output": {"logits": "(batch, len(classes)) unnormalised scores in the order of `classes`; softmax gives probabilities"},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        names = ("features", "sample_rate", "channels", "clip_samples", "n_frames", "mean", "std", "classes")
        return cls(**{k: d[k] for k in names})

    def write(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def read(cls, path: str | Path) -> "Preprocessing":
        path = Path(path)
        try:
            return cls.from_dict(load_record(path, "preprocessing contract"))
        except (KeyError, TypeError) as exc:
            raise DataError(f"unreadable preprocessing contract ({type(exc).__name__}: {exc})", path) from exc
