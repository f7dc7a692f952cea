"""Which clips a run trains on and which it is scored on, with the masks its metrics need.

Shared by training, distillation (a teacher's rows) and re-scoring a stored run, so all three see
exactly the rows the run was made with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.splits import inner_validation, make_split
from harness.errors import DataError
from harness.runner.config import RunConfig


@dataclass
class EvalSet:
    """The rows a run is scored on, with their masks (official evaluate rows, unseen-domain rows)."""

    rows: np.ndarray
    official: np.ndarray
    unseen: np.ndarray
    unseen_domains: tuple[str, ...]
    protocol: str


def build_rows(ds, cfg: RunConfig) -> tuple[np.ndarray, EvalSet]:
    """Training rows and the scored rows, for the test split or an inner validation split."""
    split = make_split(ds, cfg.split, unseen=cfg.unseen)
    if cfg.evaluate_on == "validation":
        inner = inner_validation(ds, split.train, fraction=cfg.val_fraction, seed=cfg.seed,
                                 hold_out_domain=cfg.hold_out_domain)
        held = (inner.held_out_domain,) if inner.held_out_domain else ()
        val = np.asarray(inner.val)
        unseen_mask = ds.domains[val] == inner.held_out_domain if held else np.zeros(len(val), bool)
        return np.asarray(inner.train), EvalSet(val, np.ones(len(val), bool), unseen_mask, held, "validation")
    rows = np.asarray(split.evaluate)
    official = np.isin(rows, split.official_evaluate)
    unseen = np.isin(rows, split.unseen)
    return np.asarray(split.train), EvalSet(rows, official, unseen, tuple(split.unseen_domains), split.unseen_protocol)


def domains_label(domains: tuple[str, ...], kind: str, limit: int = 12) -> str:
    """The unseen domains as one short field: their names, or their count when there are many."""
    if len(domains) <= limit:
        return ",".join(domains)
    return f"{len(domains)} {kind}s"


def check_rows(ds, cfg: RunConfig, train: np.ndarray, ev: EvalSet) -> None:
    """Refuse a dataset that cannot serve the split, before any training."""
    missing = sorted(set(range(len(ds.classes))) - set(ds.labels[train].tolist()))
    if missing:
        raise DataError(f"split {cfg.split!r} leaves class {ds.classes[missing[0]]!r} with no training clip (empty class)", ds.root)
    if not ev.official.any():
        raise DataError(f"split {cfg.split!r} has no clip to score on", ds.root)
    if cfg.evaluate_on == "evaluate" and ds.protocols.holdout and ds.has_domains and not ev.unseen.any():
        raise DataError(f"split {cfg.split!r} has no unseen {ds.domain_kind} in evaluate: every evaluate "
                        f"{ds.domain_kind} also appears in train", ds.root)
