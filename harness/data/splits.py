"""Train / evaluate splits, always by recording location (``TauDataset.meta.location``).

Clips of one location sound alike; a location on both sides of a split inflates accuracy,
so every function here guarantees that no location is on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.data.tau import TauDataset
from harness.errors import ConfigError

UNSEEN_PROTOCOLS = ("official", "all")
SPEC_HELP = "fold1, leave-one-city-out:<city>, leave-one-domain-out:<domain> or loco:<domain>"
LOCO = "loco"  # ``--split loco`` in ``harness grid``: one ``loco:<domain>`` run per domain


def _index(mask: np.ndarray | pd.Series) -> np.ndarray:
    out = np.flatnonzero(np.asarray(mask)).astype(np.int64)
    out.setflags(write=False)
    return out


def _frozen(idx: np.ndarray) -> np.ndarray:
    out = np.unique(np.asarray(idx, dtype=np.int64))
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices into ``ds.meta``.

    Overall accuracy is scored on ``official_evaluate``, unseen-domain accuracy on ``unseen``.
    """

    name: str
    train: np.ndarray
    evaluate: np.ndarray
    official_evaluate: np.ndarray
    unseen: np.ndarray
    unseen_domains: tuple[str, ...]
    unseen_protocol: str  # "official" | "all"

    def describe(self) -> str:
        domains = ", ".join(self.unseen_domains) or "none"
        return (
            f"{self.name}: train {len(self.train)}, evaluate {len(self.evaluate)} "
            f"(official {len(self.official_evaluate)}), unseen {len(self.unseen)} "
            f"[{domains}; protocol {self.unseen_protocol}]"
        )


def _parse_spec(ds: TauDataset, spec: str) -> str | None:
    """The held-out domain of a spec, ``None`` for fold1."""
    spec = spec.strip()
    if spec == "fold1":
        return None
    kind, sep, value = spec.partition(":")
    if kind not in ("leave-one-city-out", "leave-one-domain-out", LOCO) or not sep:
        raise ConfigError(f"unknown split {spec!r}; valid: {SPEC_HELP}")
    if kind == "leave-one-city-out" and ds.domain_kind != "city":
        raise ConfigError(
            f"split {spec!r}: domains of {ds.layout} are devices, use leave-one-domain-out:<device>"
        )
    valid = sorted(ds.meta["domain"].unique())
    value = value.strip().lower()
    if value not in valid:
        raise ConfigError(f"split {spec!r}: unknown {ds.domain_kind} {value!r}; valid: {', '.join(valid)}")
    return value


def domains(ds: TauDataset) -> list[str]:
    """Every domain of the dataset, sorted: the folds of ``--split loco``."""
    return sorted(str(d) for d in ds.meta["domain"].unique())


def loco_specs(ds: TauDataset) -> list[str]:
    return [f"{LOCO}:{d}" for d in domains(ds)]


def _loco(ds: TauDataset, held: str) -> Split:
    """One fold of leave-one-domain-out: train on the other domains' official training rows, test on
    every clip of ``held`` at a location training never sees (all of them when locations belong to
    one domain, as cities do), whatever its fold. Only ``held`` is unseen here, so pooling the folds
    scores each clip once; the official evaluate rows are scored too, for the overall accuracy.
    """
    meta = ds.meta
    fold, domain, location = (meta[c].to_numpy() for c in ("fold", "domain", "location"))
    train = (fold == "train") & (domain != held)
    fresh = ~np.isin(location, list(set(location[train])))
    held_rows = (domain == held) & fresh
    official = fold == "evaluate"
    return Split(name=f"{LOCO}:{held}", train=_index(train), evaluate=_index(official | held_rows),
                 official_evaluate=_index(official), unseen=_index(held_rows), unseen_domains=(held,),
                 unseen_protocol="all")


def make_split(ds: TauDataset, spec: str = "fold1", unseen: str = "official") -> Split:
    """Build a split from the official fold1 files.

    ``loco:<d>`` is one fold of the leave-one-domain-out protocol (see :func:`_loco`; its unseen
    protocol is always ``all``). ``leave-one-*-out:<d>`` removes domain ``d`` from training and adds to evaluate every row of
    ``d`` whose location is not used in training (all of them for a 2019 city; for a 2020 device
    its rows at training locations are dropped from both sides). ``unseen="all"`` adds the unused
    rows of unseen domains (again only at locations not used in training) to ``evaluate`` and
    ``unseen``; ``official_evaluate`` never changes.
    """
    if unseen not in UNSEEN_PROTOCOLS:
        raise ConfigError(f"unseen protocol {unseen!r} is not one of {', '.join(UNSEEN_PROTOCOLS)}")
    held = _parse_spec(ds, spec)
    if spec.strip().startswith(f"{LOCO}:"):
        return _loco(ds, held)
    meta = ds.meta
    fold = meta["fold"].to_numpy()
    domain = meta["domain"].to_numpy()
    location = meta["location"].to_numpy()

    train = fold == "train"
    official = fold == "evaluate"
    if held is not None:
        train &= domain != held
    train_locations = set(location[train])
    fresh = ~np.isin(location, list(train_locations))  # rows at locations training never sees
    evaluate = official.copy()
    if held is not None:
        evaluate |= (domain == held) & fresh
    unseen_domains = tuple(sorted(set(domain[evaluate]) - set(domain[train])))
    is_unseen = np.isin(domain, list(unseen_domains))
    if unseen == "all":
        evaluate |= (fold == "unused") & is_unseen & fresh
    name = "fold1" if held is None else f"{spec.partition(':')[0]}:{held}"
    return Split(
        name=name,
        train=_index(train),
        evaluate=_index(evaluate),
        official_evaluate=_index(official),
        unseen=_index(evaluate & is_unseen),
        unseen_domains=unseen_domains,
        unseen_protocol=unseen,
    )


@dataclass(frozen=True, eq=False)
class InnerSplit:
    """Validation carved out of a training split; unpacks as ``train, val``."""

    train: np.ndarray
    val: np.ndarray
    held_out_domain: str | None

    def __iter__(self):
        return iter((self.train, self.val))


def _pick_domain(meta: pd.DataFrame, rows: np.ndarray, hold_out_domain: str, seed: int) -> str:
    counts = meta["domain"].iloc[rows].value_counts().sort_index()
    if len(counts) < 2:
        raise ConfigError(f"cannot hold out a domain for validation: training has only {', '.join(counts.index)}")
    if hold_out_domain != "auto":
        if hold_out_domain not in counts.index:
            raise ConfigError(
                f"hold-out domain {hold_out_domain!r} is not in training; valid: {', '.join(counts.index)}"
            )
        return hold_out_domain
    # Never the dominant domain (device 'a' holds 3/4 of 2020 training): pick among the smaller half.
    small = sorted(counts.index[counts <= counts.median()])
    return str(small[np.random.default_rng(seed).integers(len(small))])


def _choose_locations(table: pd.DataFrame, fraction: float, rng: np.random.Generator) -> set[str]:
    """Whole locations for validation, about ``fraction`` of the rows of every scene.

    Each scene keeps at least one location on each side when it has two or more.
    """
    chosen: set[str] = set()
    for _scene, group in table.groupby("scene", sort=True):
        sizes = group.groupby("location").size().sort_index()
        target = fraction * int(sizes.sum())
        taken, picked = 0, 0
        for pos in rng.permutation(len(sizes)):
            size = int(sizes.iloc[pos])
            if picked + 1 >= len(sizes):
                break  # leave at least one location of the scene in training
            if picked and abs(taken + size - target) >= abs(taken - target):
                break
            chosen.add(sizes.index[pos])
            taken, picked = taken + size, picked + 1
            if taken >= target:
                break
    return chosen


def inner_validation(
    ds: TauDataset,
    train_idx: np.ndarray,
    fraction: float = 0.2,
    seed: int = 0,
    hold_out_domain: str | None = None,
) -> InnerSplit:
    """Split training rows into train and validation by whole locations, stratified by scene.

    With ``hold_out_domain`` (a domain or ``"auto"``) that domain leaves training entirely and its
    rows at locations not left in training go to validation too, so validation has an unseen domain.
    Deterministic in ``seed`` and independent of the order of ``train_idx``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction {fraction} must be in [0, 1)")
    rows = np.unique(np.asarray(train_idx, dtype=np.int64))
    if len(rows) == 0:
        raise ConfigError("cannot carve validation from an empty training split")
    meta = ds.meta
    held = None if hold_out_domain is None else _pick_domain(meta, rows, hold_out_domain, seed)
    sub = meta.iloc[rows][["scene", "location", "domain"]].reset_index(drop=True)
    is_held = (sub["domain"] == held).to_numpy()
    # Locations recorded only in the held-out domain go to validation whole.
    held_only = set(sub["location"]) - set(sub.loc[~is_held, "location"])
    others = sub[~sub["location"].isin(held_only)]
    rng = np.random.default_rng(seed)
    val_locations = _choose_locations(others, fraction, rng) if fraction > 0 else set()
    at_val = sub["location"].isin(val_locations | held_only).to_numpy()
    val = rows[at_val]
    train = rows[~at_val & ~is_held]
    if len(val) == 0:
        raise ConfigError(f"validation is empty: fraction {fraction} of {len(rows)} rows gives no whole location")
    if len(train) == 0:
        raise ConfigError("no training rows are left after carving validation")
    return InnerSplit(train=_frozen(train), val=_frozen(val), held_out_domain=held)


def locations_overlap(ds: TauDataset, a: np.ndarray, b: np.ndarray) -> set[str]:
    """Locations present in both row sets (empty for every split made here)."""
    loc = ds.meta["location"].to_numpy()
    return set(loc[np.asarray(a, dtype=np.int64)]) & set(loc[np.asarray(b, dtype=np.int64)])
