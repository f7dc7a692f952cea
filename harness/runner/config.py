"""``RunConfig``: every option of ``harness run``, resolved, validated and hashed into a run id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from harness.errors import ConfigError

AUGMENTATIONS = ("none", "mixup", "spec", "mixup,spec")

#: Presets fill the options a user did not set. ``paper`` is the paper's set-up (Adam, lr 0.001,
#: 200 epochs, score = mean accuracy of the last 10 epochs); ``quick`` is the default on the
#: synthetic data: a few minutes on 2 CPU cores.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"epochs": 200, "batch_size": 32, "lr": 1e-3, "score_last": 10},
    "quick": {"epochs": 30, "batch_size": 32, "lr": 1e-3, "score_last": 5},
}

#: Fields that do not change what a run computes, so they stay out of the run id.
NOT_HASHED = ("device", "data", "preset", "precision_reason")


@dataclass
class RunConfig:
    """One training run. ``None`` means "take it from the preset"."""

    arch: str = "fcnn"
    loss: str = "ce"
    aug: str = "none"
    n_mels: int = 40
    alpha: float | None = None
    gamma: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    data: str = "synthetic"
    split: str = "fold1"
    unseen: str = "official"
    device: str = "auto"
    #: fp32 | bf16 | auto (``harness.precision``); resolved to fp32 or bf16 by ``resolved()``.
    precision: str = "auto"
    precision_reason: str = ""
    preset: str = "quick"
    score_last: int | None = None  # score = mean accuracy of the last N epochs (preset: 10 paper, 5 quick)
    mixup_alpha: float = 0.4
    freq_masks: int = 2
    freq_mask_width: int | None = None  # None: n_mels // 8
    time_masks: int = 2
    time_mask_width: int | None = None  # None: n_frames // 10
    #: "evaluate" scores on the test side of ``split``; "validation" on an inner validation
    #: split carved from train by location (what tuning uses: evaluate labels are never read).
    evaluate_on: str = "evaluate"
    val_fraction: float = 0.2
    hold_out_domain: str | None = None
    arch_options: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, Any] = field(default_factory=dict)
    #: Filled in by the runner: the dataset's identity hash (the audio, not its path).
    dataset_identity: str = ""

    def resolved(self) -> "RunConfig":
        """A copy with preset defaults filled in and every value checked."""
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        cfg = replace(self, **{k: v for k, v in PRESETS[self.preset].items() if getattr(self, k) is None})
        cfg.aug = normalize_aug(cfg.aug)
        if cfg.split.startswith("loco:"):
            cfg.unseen = "all"  # a loco fold scores every clip of its held-out domain
        cfg.validate()
        if cfg.precision == "auto" or not cfg.precision_reason:
            from harness.precision import resolve_precision
            from harness.runner.environment import resolve_device

            cfg.precision, cfg.precision_reason = resolve_precision(cfg.precision, resolve_device(cfg.device))
        return cfg

    def validate(self) -> None:
        checks = [
            (self.n_mels > 0, f"--mels must be positive, got {self.n_mels}"),
            (self.epochs is None or self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_size is None or self.batch_size >= 2, f"--batch-size must be at least 2, got {self.batch_size}"),
            (self.lr is None or self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.alpha is None or self.alpha >= 0, f"--alpha (triplet margin) must be >= 0, got {self.alpha}"),
            (self.gamma is None or self.gamma >= 0, f"--gamma (triplet weight) must be >= 0, got {self.gamma}"),
            (self.unseen in ("official", "all"), f"--unseen must be 'official' or 'all', got {self.unseen!r}"),
            (self.evaluate_on in ("evaluate", "validation"), f"evaluate_on must be 'evaluate' or 'validation', got {self.evaluate_on!r}"),
            (0 < self.val_fraction < 1, f"--val-fraction must be in (0, 1), got {self.val_fraction}"),
            (self.score_last is None or self.score_last >= 1, f"--score-last must be at least 1, got {self.score_last}"),
            (self.mixup_alpha > 0, f"--mixup-alpha must be positive, got {self.mixup_alpha}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if not (self.split == "fold1" or self.split.startswith(("leave-one-city-out:", "leave-one-domain-out:", "loco:"))):
            raise ConfigError(f"--split must be 'fold1', 'leave-one-city-out:CITY', 'leave-one-domain-out:DOMAIN' "
                              f"or 'loco:DOMAIN', got {self.split!r}")

    @property
    def augmentations(self) -> set[str]:
        return set() if self.aug == "none" else set(self.aug.split(","))

    def hashed_fields(self) -> dict[str, Any]:
        # fp32 stays out of the hash, so runs stored before the option existed keep their ids
        skip = NOT_HASHED + (("precision",) if self.precision == "fp32" else ())
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def run_id(self) -> str:
        """Readable prefix + hash of everything that changes the result (not device or path)."""
        blob = json.dumps(self.hashed_fields(), sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        aug = self.aug.replace(",", "+")
        arch = self.arch.replace("/", "_")
        prec = "" if self.precision == "fp32" else f"-{self.precision}"
        return f"{arch}-{self.loss}-{aug}-m{self.n_mels}{prec}-s{self.seed}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def normalize_aug(aug: str) -> str:
    """Accept ``spec,mixup`` as ``mixup,spec``; reject unknown augmentations in one line."""
    parts = sorted({p.strip() for p in aug.split(",") if p.strip()} - {"none"})
    unknown = [p for p in parts if p not in ("mixup", "spec")]
    if unknown:
        raise ConfigError(f"unknown augmentation {unknown[0]!r} in --aug {aug!r}; choose from {', '.join(AUGMENTATIONS)}")
    return ",".join(parts) if parts else "none"
