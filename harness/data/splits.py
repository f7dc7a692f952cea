"""Train / evaluate splits of any :class:`~harness.data.dataset.Dataset`, always by group.

Clips of one group (a TAU recording location, an ESC-50 or UrbanSound8K source recording) sound
alike; a group on both sides of a split inflates accuracy, so every function here guarantees
that no group is on both sides. Split specs:

- the dataset's official holdout (``fold1`` for TAU): fold ``train`` against fold ``evaluate``;
- ``fold:K`` on cross-validation data: test on fold K, train on the other folds;
- ``leave-one-domain-out:D`` (``leave-one-city-out:D`` where domains are cities): domain D leaves
  training and its clips at groups training never sees become unseen test clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.data.dataset import Dataset
from harness.errors import ConfigError

UNSEEN_PROTOCOLS = ("official", "all")
SPEC_HELP = ("the official holdout (fold1 on TAU), fold:K on cross-validation data, leave-one-domain-out:<domain> "
             "or loco:<domain>")
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
    """Row indices into ``ds.clips``.

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


def _parse_spec(ds: Dataset, spec: str) -> tuple[str, str | None]:
    """``(kind, value)``: ``("holdout", None)``, ``("fold", K)`` or ``("domain", D)``."""
    spec = spec.strip()
    valid = ", ".join(ds.protocols.split_names(ds.domain_kind))
    if ds.protocols.holdout and spec == ds.protocols.holdout:
        return "holdout", None
    kind, sep, value = spec.partition(":")
    value = value.strip()
    if kind == "fold" and sep:
        if not ds.protocols.folds:
            raise ConfigError(f"split {spec!r}: {ds.name} has no cross-validation folds; valid: {valid}")
        if value not in ds.protocols.folds:
            raise ConfigError(f"split {spec!r}: unknown fold {value!r}; {ds.name} has folds {', '.join(ds.protocols.folds)}")
        return "fold", value
    if kind in ("leave-one-city-out", "leave-one-domain-out", LOCO) and sep:
        if not ds.has_domains:
            raise ConfigError(f"split {spec!r}: {ds.name} declares no domain column; valid: {valid}")
        if kind == "leave-one-city-out" and ds.domain_kind != "city":
            raise ConfigError(f"split {spec!r}: domains of {ds.name} are {ds.domain_kind}s, use leave-one-domain-out:<{ds.domain_kind}>")
        domains = sorted(ds.clips["domain"].unique())
        match = value if value in domains else value.lower()
        if match not in domains:
            shown = ", ".join(domains[:20]) + (f", … ({len(domains)} in all)" if len(domains) > 20 else "")
            raise ConfigError(f"split {spec!r}: unknown {ds.domain_kind} {value!r}; valid: {shown}")
        return ("loco" if kind == LOCO else "domain"), match
    raise ConfigError(f"unknown split {spec!r} for {ds.name}; valid: {valid}")


def domains(ds: Dataset) -> list[str]:
    """Every domain of the dataset, sorted: the folds of ``--split loco``."""
    return sorted(str(d) for d in ds.clips["domain"].unique())


def loco_specs(ds: Dataset) -> list[str]:
    return [f"{LOCO}:{d}" for d in domains(ds)]


def _loco(ds: Dataset, held: str) -> Split:
    """One fold of leave-one-domain-out: train on the other domains' official training rows (every
    fold's rows on cross-validation data), test on every clip of ``held`` at a group training never
    sees, whatever its fold. Only ``held`` is unseen here, so pooling the folds scores each clip
    once; the official evaluate rows (holdout data) are scored too, for the overall accuracy.
    """
    clips = ds.clips
    fold, domain, group = (clips[c].to_numpy().astype(str) for c in ("fold", "domain", "group"))
    train = ((fold == "train") if ds.protocols.holdout else np.ones(len(fold), bool)) & (domain != held)
    fresh = ~np.isin(group, list(set(group[train])))
    held_rows = (domain == held) & fresh
    official = (fold == "evaluate") if ds.protocols.holdout else held_rows
    return Split(name=f"{LOCO}:{held}", train=_index(train), evaluate=_index(official | held_rows),
                 official_evaluate=_index(official), unseen=_index(held_rows), unseen_domains=(held,),
                 unseen_protocol="all")


def make_split(ds: Dataset, spec: str | None = None, unseen: str = "official") -> Split:
    """Build a split (default: the dataset's default protocol).

    ``loco:<d>`` is one fold of the leave-one-domain-out protocol (see :func:`_loco`; its unseen
    protocol is always ``all``).
    On holdout data, ``leave-one-*-out:<d>`` removes domain ``d`` from training and adds to
    evaluate every row of ``d`` whose group is not used in training; on cross-validation data it
    trains on every other domain and tests on ``d``'s clips at unseen groups. ``unseen="all"``
    adds the ``unused`` rows of unseen domains (at groups training never sees) to ``evaluate``
    and ``unseen``; ``official_evaluate`` never changes.
    """
    if unseen not in UNSEEN_PROTOCOLS:
        raise ConfigError(f"unseen protocol {unseen!r} is not one of {', '.join(UNSEEN_PROTOCOLS)}")
    spec = spec or ds.protocols.default_split
    kind, value = _parse_spec(ds, spec)
    if kind == "loco":
        return _loco(ds, value)
    clips = ds.clips
    fold = clips["fold"].to_numpy().astype(str)
    domain = clips["domain"].to_numpy().astype(str)
    group = clips["group"].to_numpy()

    if kind == "fold":
        train, official = fold != value, fold == value
    elif ds.protocols.holdout:
        train, official = fold == "train", fold == "evaluate"
    else:  # leave-one-domain-out on cross-validation data: every fold takes part
        train, official = np.ones(len(fold), bool), np.zeros(len(fold), bool)
    if kind == "domain":
        train &= domain != value
    fresh = ~np.isin(group, list(set(group[train])))  # rows at groups training never sees
    if kind == "domain" and not ds.protocols.holdout:
        official = (domain == value) & fresh
    evaluate = official.copy()
    if kind == "domain":
        evaluate |= (domain == value) & fresh
    if ds.has_domains:
        unseen_domains = tuple(sorted(set(domain[evaluate]) - set(domain[train])))
    else:
        unseen_domains = ()
    is_unseen = np.isin(domain, list(unseen_domains))
    if unseen == "all":
        evaluate |= (fold == "unused") & is_unseen & fresh
    name = {"holdout": spec.strip(), "fold": f"fold:{value}"}.get(kind, f"{spec.partition(':')[0]}:{value}")
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


def _pick_domain(clips: pd.DataFrame, rows: np.ndarray, hold_out_domain: str, seed: int) -> str:
    counts = clips["domain"].iloc[rows].value_counts().sort_index()
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


def _choose_groups(table: pd.DataFrame, fraction: float, rng: np.random.Generator) -> set[str]:
    """Whole groups for validation, about ``fraction`` of the rows of every class.

    Each class keeps at least one group on each side when it has two or more.
    """
    chosen: set[str] = set()
    for _class, rows in table.groupby("class", sort=True):
        sizes = rows.groupby("group").size().sort_index()
        target = fraction * int(sizes.sum())
        taken, picked = 0, 0
        for pos in rng.permutation(len(sizes)):
            size = int(sizes.iloc[pos])
            if picked + 1 >= len(sizes):
                break  # leave at least one group of the class in training
            if picked and abs(taken + size - target) >= abs(taken - target):
                break
            chosen.add(sizes.index[pos])
            taken, picked = taken + size, picked + 1
            if taken >= target:
                break
    return chosen


def inner_validation(
    ds: Dataset,
    train_idx: np.ndarray,
    fraction: float = 0.2,
    seed: int = 0,
    hold_out_domain: str | None = None,
) -> InnerSplit:
    """Split training rows into train and validation by whole groups, stratified by class.

    With ``hold_out_domain`` (a domain or ``"auto"``) that domain leaves training entirely and its
    rows at groups not left in training go to validation too, so validation has an unseen domain.
    Deterministic in ``seed`` and independent of the order of ``train_idx``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction {fraction} must be in [0, 1)")
    rows = np.unique(np.asarray(train_idx, dtype=np.int64))
    if len(rows) == 0:
        raise ConfigError("cannot carve validation from an empty training split")
    clips = ds.clips
    held = None if hold_out_domain is None else _pick_domain(clips, rows, hold_out_domain, seed)
    sub = clips.iloc[rows][["class", "group", "domain"]].reset_index(drop=True)
    is_held = (sub["domain"] == held).to_numpy()
    # Groups recorded only in the held-out domain go to validation whole.
    held_only = set(sub["group"]) - set(sub.loc[~is_held, "group"])
    others = sub[~sub["group"].isin(held_only)]
    rng = np.random.default_rng(seed)
    val_groups = _choose_groups(others, fraction, rng) if fraction > 0 else set()
    at_val = sub["group"].isin(val_groups | held_only).to_numpy()
    val = rows[at_val]
    train = rows[~at_val & ~is_held]
    if len(val) == 0:
        raise ConfigError(f"validation is empty: fraction {fraction} of {len(rows)} rows gives no whole group")
    if len(train) == 0:
        raise ConfigError("no training rows are left after carving validation")
    return InnerSplit(train=_frozen(train), val=_frozen(val), held_out_domain=held)

