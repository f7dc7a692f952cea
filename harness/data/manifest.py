"""Dataset plugin ``csv``: any labelled audio collection described by a manifest CSV.

``--data`` is the manifest itself (``…/anything.csv``) or a folder holding ``manifest.csv``;
file names are relative to the manifest's folder. Columns (comma-separated, header required):

- ``filename`` and ``label`` (required): the audio file and its class name;
- ``domain`` (optional): what the cross-domain triplet loss pairs across and accuracy is broken
  down by (recording device, site, speaker, …); without it there is one domain, ``none``;
- ``group`` (optional): clips that must never be on both sides of a split (one source recording,
  one session); default: each clip alone;
- ``fold`` (optional, positive integers): official cross-validation folds, ``--split fold:K``;
- ``split`` (optional, ``train`` / ``test``, or ``unused``): an official holdout, ``--split given``.

``classes=a,b,c`` declares the label set (and its order): any other label is an error.
With neither ``fold`` nor ``split`` the harness makes ``folds`` (default 5) grouped folds:
whole groups, balanced by class, deterministic. Audio of one format is read as stored; mixed
rates, channel counts or lengths are converted to the most common rate and channel count and
the longest clip's length (shorter clips padded by ``pad``), unless ``sample_rate``,
``channels`` or ``seconds`` are given.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data.audio import scan_headers
from harness.data.csvmeta import check_filenames, check_values, integers, read_metadata
from harness.data.dataset import AudioSpec, Dataset, Protocols, clip_table, fingerprint, stat_files
from harness.data.registry import register_dataset
from harness.errors import ConfigError, DataError

MANIFEST = "manifest.csv"
REQUIRED = ("filename", "label")
OPTIONAL = ("domain", "group", "fold", "split")
SPLIT_VALUES = {"train": "train", "test": "evaluate", "unused": "unused"}
HOLDOUT = "given"


def _manifest_path(root: Path) -> Path:
    return root if root.suffix.lower() == ".csv" else root / MANIFEST


def _detect(root: Path) -> bool:
    path = _manifest_path(root)
    if not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header = [c.strip() for c in f.readline().strip().split(",")]
    return all(c in header for c in REQUIRED)


def grouped_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold number (1..k) of every row: whole groups, each to the fold with fewest clips of its main class.

    Groups are visited largest first (ties in a seeded random order), so folds end up balanced
    by size and by class. Deterministic in ``seed``.
    """
    table = pd.DataFrame({"label": labels, "group": groups})
    sizes = table.groupby("group").size()
    main = table.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    order = np.random.default_rng(seed).permutation(len(sizes))
    visit = sorted(order, key=lambda i: -int(sizes.iloc[i]))
    per_class = np.zeros((k, int(labels.max()) + 1), np.int64)
    total = np.zeros(k, np.int64)
    fold_of: dict[object, int] = {}
    for i in visit:
        g, n, c = sizes.index[i], int(sizes.iloc[i]), int(main.iloc[i])
        f = int(np.lexsort((np.arange(k), total, per_class[:, c]))[0])
        fold_of[g] = f
        per_class[f, c] += n
        total[f] += n
    return np.array([fold_of[g] + 1 for g in groups], np.int64)


@register_dataset("csv", "any labelled audio: a manifest CSV (filename, label; optional domain, group, fold, split); "
                  "given folds / split or grouped folds made here", detect=_detect,
                  looks_for=f"a .csv manifest or {MANIFEST} with columns filename,label")
def manifest(root: Path, classes: str | None = None, folds: int = 5, sample_rate: int | None = None, channels: int | None = None,
             seconds: float | None = None, pad: str = "zero", check_audio: bool = True) -> Dataset:
    path = _manifest_path(root)
    base = path.parent
    meta = read_metadata(path, REQUIRED, OPTIONAL, what="manifest")
    check_filenames(meta["filename"], path)
    has = {c: c in meta.columns for c in OPTIONAL}
    for col in ("domain", "group", "fold", "split"):
        if has[col]:
            meta[col] = meta[col].str.strip()
            empty = meta.index[meta[col] == ""]
            if len(empty):
                raise DataError(f"line {int(empty[0]) + 2}: empty {col!r}", path)
    if has["fold"] and has["split"]:
        raise DataError("has both a fold and a split column; give one protocol", path)
    labels = meta["label"].tolist()
    if classes:  # declared label set, in this order: anything else in the manifest is an error
        declared = [c.strip() for c in str(classes).split(",") if c.strip()]
        check_values(meta, "label", declared, path)
        names = [c for c in declared if c in set(labels)]
    else:
        names = sorted(set(labels))
    if len(names) < 2:
        raise DataError(f"needs at least two labels, found {', '.join(names)}", path)
    group = meta["group"] if has["group"] else meta["filename"]
    if has["fold"]:
        fold = integers(meta, "fold", path, 1, None).astype(str)
        spread = pd.DataFrame({"g": group, "f": fold}).groupby("g")["f"].nunique()
        if (spread > 1).any():
            raise DataError(f"group {spread.index[spread > 1][0]!r} is in more than one fold", path)
        protocols = Protocols(folds=tuple(sorted(set(fold), key=int)))
    elif has["split"]:
        check_values(meta, "split", SPLIT_VALUES, path)
        fold = meta["split"].map(SPLIT_VALUES)
        protocols = Protocols(holdout=HOLDOUT)
    else:
        if int(folds) != folds or folds < 2:
            raise ConfigError(f"csv: folds must be an integer >= 2, got {folds!r}")
        index = {c: i for i, c in enumerate(names)}
        codes = np.array([index[x] for x in labels])
        fold = pd.Series(grouped_folds(codes, group.to_numpy(), int(folds))).astype(str)
        protocols = Protocols(folds=tuple(str(k) for k in range(1, int(folds) + 1) if (fold == str(k)).any()))
    clips, classes_t = clip_table(meta["filename"], labels, meta["domain"] if has["domain"] else None, group, fold,
                                  classes=names)
    if len(protocols.folds) == 1:
        raise DataError("all clips are in one fold: cross-validation needs two or more", path)
    stats = stat_files(base, clips["filename"].tolist(), path.name)
    spec = _audio_spec(base, clips["filename"].tolist(), check_audio, sample_rate, channels, seconds, pad)
    options = {k: v for k, v in (("classes", classes), ("folds", folds if not (has["fold"] or has["split"]) and folds != 5 else None),
                                 ("sample_rate", sample_rate), ("channels", channels), ("seconds", seconds),
                                 ("pad", pad if pad != "zero" else None)) if v is not None}
    salt = f"csv:{path.name}"
    return Dataset(
        name="csv", root=base, clips=clips, classes=classes_t,
        domain_kind="domain" if has["domain"] else "none", audio=spec, protocols=protocols,
        identity=fingerprint(base, [path.name], stats, mtimes=False, salt=salt),
        stamp=fingerprint(base, [path.name], stats, mtimes=True, salt=salt),
        title=f"manifest {path.name} ({len(clips)} clips)", options=options,
    )


def _audio_spec(root: Path, filenames: list[str], check_audio: bool, sample_rate: int | None, channels: int | None,
                seconds: float | None, pad: str) -> AudioSpec:
    """As stored when every file has one format (and nothing is overridden); else a converted target."""
    infos = scan_headers(root, filenames if check_audio else filenames[:1])
    rates = Counter(r for r, _, _ in infos)
    chans = Counter(c for _, c, _ in infos)
    rate = int(sample_rate or rates.most_common(1)[0][0])
    ch = int(channels or chans.most_common(1)[0][0])
    longest = max(n * rate / r for r, _, n in infos)
    samples = int(round(seconds * rate)) if seconds else int(round(longest))
    uniform = len({(r, c, n) for r, c, n in infos}) == 1
    exact = uniform and (rate, ch, samples) == infos[0] and pad == "zero"
    return AudioSpec(rate, ch, samples, exact=exact, pad=pad)
