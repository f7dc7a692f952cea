"""The rows of the paper's Table 1 as harness run configurations.

One list serves ``harness grid`` (what to train), ``harness table`` (which runs fill which cell)
and the statistics (which row each variant is tested against), so they cannot disagree.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError


@dataclass(frozen=True)
class Variant:
    """A Table 1 row: ``(arch, loss, aug)`` plus the paper's row name and the row it improves on."""

    name: str
    arch: str
    loss: str
    aug: str
    paper_key: str | None  # row name in paper.json; None for rows the paper does not have
    extra: bool = False  # True: the harness's own addition, not a row of the paper
    baseline: str | None = None  # the variant it is tested against in the statistics

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.arch, self.loss, self.aug)

    def command(self, n_mels: int, seed: int, preset: str = "paper", data: str | None = "synthetic",
                unseen: str = "official", results: str | Path | None = None, split: str | None = None) -> str:
        """The ``harness run`` line that produces this row's run for one feature size and seed, into
        ``results`` when given (shell-quoted: paste it as it is)."""
        parts = ["harness", "run", "--arch", self.arch, "--loss", self.loss, "--aug", self.aug,
                 "--mels", str(int(n_mels)), "--seed", str(int(seed)), "--preset", preset]
        if data and data != "synthetic":
            parts += ["--data", str(data)]
        if unseen != "official":
            parts += ["--unseen", unseen]
        if split and split != "fold1":
            parts += ["--split", split]
        if results is not None:
            parts += ["--results", str(results)]
        return " ".join(shlex.quote(p) for p in parts)


VARIANTS: tuple[Variant, ...] = (
    Variant("SubSpectralNet", "subspectralnet", "ce", "none", "SubSpectralNet"),
    Variant("FCNN", "fcnn", "ce", "none", "FCNN", baseline="SubSpectralNet"),
    Variant("FCNN-mixup", "fcnn", "ce", "mixup", "FCNN-mixup", baseline="FCNN"),
    Variant("FCNN-spec", "fcnn", "ce", "spec", "FCNN-spec", baseline="FCNN"),
    Variant("FCNN-mixup-spec", "fcnn", "ce", "mixup,spec", "FCNN-mixup-spec", baseline="FCNN"),
    Variant("FCNN-triplet", "fcnn", "triplet-city", "none", "FCNN-triplet", baseline="FCNN"),
    Variant("FCNN-triplet-spec", "fcnn", "triplet-city", "spec", "FCNN-triplet-spec", baseline="FCNN"),
    Variant("DCASE baseline", "dcase-baseline", "ce", "none", None, extra=True),
    Variant("FCNN-triplet-random", "fcnn", "triplet-random", "none", None, extra=True, baseline="FCNN"),
)

PAPER_VARIANTS = tuple(v for v in VARIANTS if not v.extra)
EXTRA_VARIANTS = tuple(v for v in VARIANTS if v.extra)


def get_variant(name: str) -> Variant:
    """The variant called ``name`` (case-insensitive)."""
    for v in VARIANTS:
        if v.name.lower() == name.lower():
            return v
    raise ConfigError(f"unknown Table 1 variant {name!r}; known: {', '.join(v.name for v in VARIANTS)}")


def variant_for(arch: str, loss: str, aug: str) -> Variant | None:
    """The variant a run of ``(arch, loss, aug)`` belongs to, or None when it fills no row."""
    for v in VARIANTS:
        if v.key == (arch, loss, aug):
            return v
    return None
