"""The rows of the paper's Table 1 as harness run configurations.

One list serves ``harness grid`` (what to train), ``harness table`` (which runs fill which cell)
and the statistics (which row each variant is tested against), so they cannot disagree.
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from harness.data.registry import DEFAULT_DATA
from harness.errors import ConfigError
from harness.runner.config import RunConfig, normalize_aug


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
    #: Further ``harness run`` keys of a grid file's row (``lr``, ``arch-opt``, ...).
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.arch, self.loss, self.aug)

    def command(self, n_mels: int, seed: int, preset: str = "paper", data: str | None = None,
                unseen: str = "official", results: str | Path | None = None, split: str | None = None,
                epochs: int | None = None) -> str:
        """The ``harness run`` line that produces this row's run for one feature size and seed, on
        ``data`` (default: the default data) into ``results`` when given (shell-quoted: paste it as it is)."""
        parts = ["harness", "run", "--arch", self.arch, "--loss", self.loss, "--aug", self.aug,
                 "--mels", str(int(n_mels)), "--seed", str(int(seed)), "--preset", preset]
        if epochs:
            parts += ["--epochs", str(int(epochs))]
        if data and data != DEFAULT_DATA:
            parts += ["--data", str(data)]
        if unseen != "official":
            parts += ["--unseen", unseen]
        if split and split != "fold1":
            parts += ["--split", split]
        for key, value in self.settings.items():  # a grid row's further run keys, e.g. teacher, arch-opt
            items = ([f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items()]
                     if isinstance(value, dict) else value if isinstance(value, list) else [value])
            for item in items:
                parts += [f"--{key}", str(item)]
        if results is not None:
            parts += ["--results", str(results)]
        return " ".join(shlex.quote(p) for p in parts)


#: Keys of a grid file's ``[[variant]]`` row that describe the row rather than configure its runs.
ROW_KEYS = ("name", "paper", "baseline", "extra")
#: The run keys every row has; missing ones take ``harness run``'s defaults.
RUN_DEFAULTS = {"arch": RunConfig.arch, "loss": RunConfig.loss, "aug": "none"}


def read_variants(rows: Any, source: str) -> tuple[Variant, ...]:
    """The ``[[variant]]`` rows of a grid file (their run keys are checked by ``harness grid``)."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ConfigError("'variant' must be a list of tables: [[variant]] name = ... arch = ...", source)
    out = []
    for i, row in enumerate(rows, 1):
        name = row.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"variant {i} has no name (name = \"...\")", source)
        if not isinstance(row.get("extra", False), bool):
            raise ConfigError(f"variant {name!r}: extra must be true or false", source)
        run = {**RUN_DEFAULTS, **{k: v for k, v in row.items() if k not in ROW_KEYS}}
        if not all(isinstance(run[k], str) for k in RUN_DEFAULTS):
            raise ConfigError(f"variant {name!r}: arch, loss and aug must be strings", source)
        settings = {k: v for k, v in run.items() if k not in RUN_DEFAULTS}
        out.append(Variant(name, run["arch"], run["loss"], normalize_aug(run["aug"]), row.get("paper"), row.get("extra", False),
                           row.get("baseline"), settings))
    names = [v.name.lower() for v in out]
    dup = next((v.name for v in out if names.count(v.name.lower()) > 1), None)
    if dup:
        raise ConfigError(f"variant {dup!r} is listed twice", source)
    for v in out:
        if v.baseline and v.baseline.lower() not in names:
            raise ConfigError(f"variant {v.name!r}: baseline {v.baseline!r} is not a variant of this grid", source)
    return tuple(out)


#: Table 1's rows live in the grid file shipped with the package, the file a user copies to
#: define an ablation of their own (``harness grid --dump-config``).
TABLE1_GRID = files("harness") / "grids" / "table1.toml"

VARIANTS: tuple[Variant, ...] = read_variants(tomllib.loads(TABLE1_GRID.read_text())["variant"], str(TABLE1_GRID))
PAPER_VARIANTS = tuple(v for v in VARIANTS if not v.extra)
EXTRA_VARIANTS = tuple(v for v in VARIANTS if v.extra)
#: FCNN with today's tools for unseen domains, each against FCNN + CE (``--table methods``).
METHODS_GRID = files("harness") / "grids" / "methods.toml"
METHOD_VARIANTS: tuple[Variant, ...] = read_variants(tomllib.loads(METHODS_GRID.read_text())["variant"], str(METHODS_GRID))
#: The shipped grid files ``harness grid --table NAME`` runs and ``harness table --table NAME`` prints.
#: The DCASE 2024 comparison on each TAU 2022 Mobile subset (``--table subsets``).
SUBSETS_GRID = files("harness") / "grids" / "dcase2024.toml"
GRIDS = {"1": TABLE1_GRID, "methods": METHODS_GRID, "subsets": SUBSETS_GRID}


def get_variant(name: str, variants: tuple[Variant, ...] = VARIANTS) -> Variant:
    """The variant called ``name`` (case-insensitive) among ``variants``."""
    for v in variants:
        if v.name.lower() == name.lower():
            return v
    raise ConfigError(f"unknown variant {name!r}; known: {', '.join(v.name for v in variants)}")
