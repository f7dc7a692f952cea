"""The paper's own numbers (``harness/report/paper.json``, package data), kept apart from anything the harness measures.

Every report prints these beside the harness's figures, so they live in one labelled file that a
reader can check against the paper rather than being scattered through the code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from harness.errors import DataError

METRICS = ("overall", "unseen")


def paper_path() -> Traversable:
    """The packaged ``paper.json``: package data, so every install has it (editable, wheel, sdist)."""
    return resources.files("harness.report") / "paper.json"


@dataclass(frozen=True)
class PaperAccuracy:
    """One Table 1 row: percent accuracy keyed by metric ('overall'|'unseen') and n_mels."""

    variant: str
    values: dict[tuple[str, int], float]
    harness_variant: bool = True
    note: str = ""

    def get(self, metric: str, n_mels: int) -> float | None:
        return self.values.get((metric, int(n_mels)))


@dataclass(frozen=True)
class PaperParams:
    """One Table 2 row: the count as printed and as a number (thousands resolution)."""

    network: str
    arch: str | None
    n_mels: int | None
    printed: str
    params: int
    harness_variant: bool = True
    note: str = ""

    def agrees_with(self, count: int) -> bool:
        """True when the printed figure is ``count`` truncated or rounded to its unit."""
        unit = 1_000_000 if self.printed.endswith("M") else 1_000
        shown = self.params // unit
        return count // unit == shown or round(count / unit) == shown


@dataclass(frozen=True)
class Paper:
    """The paper's Tables 1-2 and protocol, as loaded from ``paper.json``."""

    path: Path | Traversable
    citation: str
    protocol: dict[str, Any]
    table1_units: str
    table1: dict[str, PaperAccuracy] = field(default_factory=dict)
    table2: list[PaperParams] = field(default_factory=list)
    table2_note: str = ""

    def accuracy(self, variant: str | None, metric: str, n_mels: int) -> float | None:
        row = self.table1.get(variant or "")
        return row.get(metric, n_mels) if row else None

    def params(self, arch: str, n_mels: int) -> PaperParams | None:
        for row in self.table2:
            if row.arch == arch and row.n_mels == int(n_mels):
                return row
        return None


def load_paper(path: str | Path | None = None) -> Paper:
    """Read and check ``paper.json``; a missing or malformed file is a one-line ``DataError``."""
    path = Path(path) if path is not None else paper_path()
    if not path.is_file():
        raise DataError("the paper's numbers are missing; reinstall the package (it ships harness/report/paper.json)", str(path))
    try:
        raw = json.loads(path.read_text())
        t1 = {}
        for row in raw["table1"]["rows"]:
            values = {
                (metric, int(mels)): float(v)
                for metric in METRICS
                for mels, v in row.get(metric, {}).items()
                if v is not None
            }
            t1[row["variant"]] = PaperAccuracy(row["variant"], values, bool(row.get("harness_variant", True)), row.get("note", ""))
        t2 = [
            PaperParams(r["network"], r.get("arch"), None if r.get("n_mels") is None else int(r["n_mels"]),
                        str(r["printed"]), int(r["params"]), bool(r.get("harness_variant", True)), r.get("note", ""))
            for r in raw["table2"]["rows"]
        ]
        return Paper(path, raw["source"]["citation"], dict(raw["protocol"]), raw["table1"]["units"], t1, t2,
                     raw["table2"].get("note", ""))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"malformed paper.json ({type(exc).__name__}: {exc})", path) from exc
