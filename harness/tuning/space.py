"""The search space: triplet margin α and weight γ (log-uniform), optionally the learning rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import optuna

from harness.errors import ConfigError

ALPHA_RANGE = (0.01, 2.0)
GAMMA_RANGE = (0.1, 100.0)
LR_RANGE = (1e-4, 1e-2)


def parse_range(text: str, option: str) -> tuple[float, float]:
    """``"LO,HI"`` with 0 < LO < HI (the ranges are log-uniform)."""
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{option} expects LO,HI (two numbers), got {text!r}") from None
    if not 0 < lo < hi:
        raise ConfigError(f"{option} needs 0 < LO < HI (log-uniform), got {text!r}")
    return lo, hi


@dataclass(frozen=True)
class SearchSpace:
    """Which hyper-parameters a trial samples, and from where (all log-uniform)."""

    alpha: tuple[float, float] | None = ALPHA_RANGE
    gamma: tuple[float, float] | None = GAMMA_RANGE
    lr: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("nothing to tune: --loss ce has no α/γ; pick a triplet loss or add --tune-lr")

    @property
    def names(self) -> list[str]:
        return [k for k, v in asdict(self).items() if v is not None]

    def suggest(self, trial: optuna.Trial) -> dict[str, float]:
        return {name: trial.suggest_float(name, *getattr(self, name), log=True) for name in self.names}

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in asdict(self).items() if v is not None}
