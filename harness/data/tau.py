"""TAU Urban Acoustic Scenes 2019 / 2020 Mobile development sets, read as distributed.

Everything the rest of the harness trusts about the data is checked here once, so a
bad download fails at load time with a one-line :class:`DataError` naming the file,
not hours into training.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from harness.data.audio import read_wav, wav_info
from harness.errors import DataError

SCENES: tuple[str, ...] = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
CITIES_2019: tuple[str, ...] = (
    "barcelona",
    "helsinki",
    "lisbon",
    "london",
    "lyon",
    "milan",
    "paris",
    "prague",
    "stockholm",
    "vienna",
)
DEVICES_2020: tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
FOLDS: tuple[str, ...] = ("train", "evaluate", "unused")

META_HEADER = ("filename", "scene_label", "identifier", "source_label")
FOLD_HEADER = ("filename", "scene_label")
TEST_HEADER = ("filename",)
FOLD_FILES = {"train": "evaluation_setup/fold1_train.csv", "evaluate": "evaluation_setup/fold1_evaluate.csv"}
TEST_FILE = "evaluation_setup/fold1_test.csv"
ZENODO_2019 = "https://zenodo.org/record/2589280"
_SCENE_INDEX = {s: i for i, s in enumerate(SCENES)}
_SYNTHETIC = re.compile(r"\bsynthetic\b", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class TauDataset:
    """A validated TAU development folder; ``meta`` has one row per ``meta.csv`` row, in file order."""

    root: Path
    layout: str  # "tau2019" | "tau2020"
    meta: pd.DataFrame
    sample_rate: int
    channels: int
    clip_samples: int
    is_synthetic: bool
    #: What results are keyed by: the metadata files' contents and every audio file's name and size.
    #: A copy of the dataset on another machine (or the synthetic default regenerated from the same
    #: settings) has the same identity, so run ids, the grid and the tables agree across machines.
    identity: str
    #: ``identity`` plus every audio file's modification time: the feature cache's key, so features
    #: are recomputed when a file is rewritten in place.
    stamp: str = ""

    def path(self, filename: str) -> Path:
        """Absolute path of a ``meta.csv`` filename such as ``audio/bus-lyon-1001-40001-a.wav``."""
        return self.root / filename

    @property
    def domain_kind(self) -> str:
        """What a domain is in this layout: ``city`` (2019) or ``device`` (2020)."""
        return "device" if self.layout == "tau2020" else "city"

    @property
    def seconds(self) -> float:
        return self.clip_samples / self.sample_rate


# --------------------------------------------------------------------------- CSV parsing


def _read_table(path: Path, header: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """TAB-separated rows with their 1-based line numbers; LF or CRLF; header checked exactly."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError("file not found (the TAU metadata package is incomplete)", path) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    except OSError as exc:
        raise DataError(f"cannot be read ({exc.strerror})", path) from None
    lines = text.replace("\r\n", "\n").split("\n")
    found = [f.strip() for f in lines[0].split("\t")] if lines else []
    if tuple(found) != header:
        raise DataError(
            f"wrong header: expected {' TAB '.join(header)!r}, found {' TAB '.join(found)!r}"
            " (TAU metadata is TAB-separated)",
            path,
        )
    rows: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != len(header):
            raise DataError(f"line {number} has {len(fields)} field(s), expected {len(header)}", path)
        if not all(fields):
            raise DataError(f"line {number} has an empty field", path)
        rows.append((number, fields))
    return rows


def _check_filename(filename: str, number: int, path: Path) -> None:
    pure = PurePosixPath(filename)
    if pure.is_absolute() or ".." in pure.parts:
        raise DataError(f"line {number}: filename {filename!r} must be relative to the dataset folder", path)


def _no_duplicates(rows: list[tuple[int, list[str]]], path: Path) -> None:
    first: dict[str, int] = {}
    for number, fields in rows:
        if fields[0] in first:
            raise DataError(f"line {number}: duplicate row for {fields[0]} (first on line {first[fields[0]]})", path)
        first[fields[0]] = number


# --------------------------------------------------------------------------- loading


def _check_root(root: Path) -> Path:
    if not root.is_dir():
        raise DataError(
            "dataset folder not found; download TAU Urban Acoustic Scenes 2019 development from Zenodo "
            f"({ZENODO_2019}) and extract every zip into one folder, or omit --data to use the synthetic "
            "default, or run `harness data synth`",
            root,
        )
    meta = root / "meta.csv"
    if not meta.is_file():
        nested = sorted(p.parent.name for p in root.glob("*/meta.csv"))
        hint = f"; did you mean {root / nested[0]}?" if nested else " (expected meta.csv, evaluation_setup/, audio/)"
        raise DataError(f"meta.csv not found: not a TAU development folder{hint}", meta)
    return meta


def _read_meta(meta_path: Path) -> pd.DataFrame:
    rows = _read_table(meta_path, META_HEADER)
    if not rows:
        raise DataError("no rows", meta_path)
    _no_duplicates(rows, meta_path)
    columns: dict[str, list] = {k: [] for k in ("filename", "scene", "label", "identifier", "source", "city")}
    for number, (filename, scene, identifier, source) in rows:
        _check_filename(filename, number, meta_path)
        if scene not in _SCENE_INDEX:
            raise DataError(
                f"line {number}: unknown scene label {scene!r} (expected one of {', '.join(SCENES)})", meta_path
            )
        city, sep, loc = identifier.rpartition("-")
        if not sep or not city or not loc:
            raise DataError(f"line {number}: identifier {identifier!r} is not <city>-<location id>", meta_path)
        columns["filename"].append(filename)
        columns["scene"].append(scene)
        columns["label"].append(_SCENE_INDEX[scene])
        columns["identifier"].append(identifier)
        columns["source"].append(source)
        columns["city"].append(city)
    meta = pd.DataFrame(columns)
    meta["label"] = meta["label"].astype(np.int64)
    meta["location"] = meta["identifier"]
    return meta


def _read_folds(root: Path, meta: pd.DataFrame) -> list[str]:
    """The fold of every meta row; checks fold files against meta.csv."""
    scene_of = dict(zip(meta["filename"], meta["scene"]))
    fold_of: dict[str, str] = {}
    for fold, rel in FOLD_FILES.items():
        path = root / rel
        rows = _read_table(path, FOLD_HEADER)
        _no_duplicates(rows, path)
        absent = [f for _, (f, _s) in rows if f not in scene_of]
        if absent:
            raise DataError(f"names {len(absent)} file(s) absent from meta.csv, first: {absent[0]}", path)
        for number, (filename, scene) in rows:
            if scene != scene_of[filename]:
                raise DataError(
                    f"line {number}: scene_label {scene!r} for {filename} disagrees with meta.csv "
                    f"({scene_of[filename]!r})",
                    path,
                )
            if filename in fold_of:
                raise DataError(f"line {number}: {filename} is also in {FOLD_FILES[fold_of[filename]]}", path)
            fold_of[filename] = fold
    test = root / TEST_FILE
    if test.exists():  # unlabelled copy of evaluate; only checked, never used
        rows = _read_table(test, TEST_HEADER)
        absent = [f for _, (f,) in rows if f not in scene_of]
        if absent:
            raise DataError(f"names {len(absent)} file(s) absent from meta.csv, first: {absent[0]}", test)
    return [fold_of.get(f, "unused") for f in meta["filename"]]


def _check_location_leak(root: Path, meta: pd.DataFrame) -> None:
    """Official folds must not share a recording location (otherwise fold1 scores are inflated)."""
    train = set(meta.loc[meta["fold"] == "train", "location"])
    shared = sorted(train.intersection(meta.loc[meta["fold"] == "evaluate", "location"]))
    if shared:
        raise DataError(
            f"shares {len(shared)} location(s) with {FOLD_FILES['train']}, first: {shared[0]}",
            root / FOLD_FILES["evaluate"],
        )


def _stat_audio(root: Path, filenames: list[str]) -> list[tuple[str, int, int]]:
    out = []
    for filename in filenames:
        path = root / filename
        try:
            st = path.stat()
        except OSError:
            raise DataError("audio file listed in meta.csv is missing", path) from None
        if not path.is_file():
            raise DataError("audio path listed in meta.csv is not a file", path)
        out.append((filename, st.st_size, st.st_mtime_ns))
    return out


def _audio_format(root: Path, filenames: list[str], check_audio: bool) -> tuple[int, int, int]:
    """``(sample_rate, channels, clip_samples)``; with ``check_audio`` every header must agree.

    The expected format is the most common one, so the error names the odd file rather than
    whichever file happens to be listed first.
    """
    if not check_audio:
        return wav_info(root / filenames[0])
    infos = [wav_info(root / f) for f in filenames]
    rate, channels = Counter((r, c) for r, c, _ in infos).most_common(1)[0][0]
    clip = Counter(n for _, _, n in infos).most_common(1)[0][0]
    for filename, (r, c, n) in zip(filenames, infos):
        path = root / filename
        if r != rate:
            raise DataError(f"sample rate is {r} Hz, the other files have {rate} Hz", path)
        if c != channels:
            raise DataError(f"has {c} channel(s), the other files have {channels}", path)
        if n < clip:
            raise DataError(f"truncated: {n} samples per channel, the other files have {clip}", path)
    if clip <= 0:
        raise DataError("audio files are empty (0 samples)", root / filenames[0])
    return rate, channels, clip


def _identity(root: Path, stats: list[tuple[str, int, int]], *, mtimes: bool) -> str:
    """The metadata contents plus the audio files' names and sizes (and, with ``mtimes``, their
    modification times): stat only, so it costs no audio reads."""
    h = hashlib.sha256()
    for rel in ("meta.csv", *FOLD_FILES.values()):
        h.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())
    for filename, size, mtime in sorted(stats):
        h.update((f"{filename}\t{size}\t{mtime}\n" if mtimes else f"{filename}\t{size}\n").encode())
    return h.hexdigest()


def _is_synthetic(root: Path, lines: int = 10) -> bool:
    readme = root / "README.md"
    try:
        head = readme.read_text(encoding="utf-8", errors="replace").splitlines()[:lines]
    except OSError:
        return False
    return any(_SYNTHETIC.search(line) for line in head)


def load_dataset(root: str | Path, *, check_audio: bool = True) -> TauDataset:
    """Read and validate a TAU 2019 development or 2020 Mobile development folder.

    Every listed audio file is stat-ed (missing files fail here); with ``check_audio`` every WAV
    header is also read (rate, channels, length), which takes about a second for 14,400 files.
    """
    root = Path(root).expanduser().resolve()
    meta_path = _check_root(root)
    meta = _read_meta(meta_path)
    layout = "tau2020" if set(meta["source"]) - {"a"} else "tau2019"
    meta["domain"] = meta["source"] if layout == "tau2020" else meta["city"]
    meta["fold"] = _read_folds(root, meta)
    _check_location_leak(root, meta)
    filenames = meta["filename"].tolist()
    stats = _stat_audio(root, filenames)
    rate, channels, clip = _audio_format(root, filenames, check_audio)
    return TauDataset(
        root=root,
        layout=layout,
        meta=meta,
        sample_rate=int(rate),
        channels=int(channels),
        clip_samples=int(clip),
        is_synthetic=_is_synthetic(root),
        identity=_identity(root, stats, mtimes=False),
        stamp=_identity(root, stats, mtimes=True),
    )


def read_audio(ds: TauDataset, filename: str) -> np.ndarray:
    """``(channels, clip_samples)`` float32, checked against the dataset's format."""
    return read_wav(ds.path(filename), ds.sample_rate, ds.channels, ds.clip_samples)


# --------------------------------------------------------------------------- reporting


def describe(ds: TauDataset) -> pd.DataFrame:
    """Clip counts, rows ``(fold, scene)``, one column per domain plus ``total``."""
    meta = ds.meta
    folds = [f for f in FOLDS if (meta["fold"] == f).any()]
    scenes = [s for s in SCENES if (meta["scene"] == s).any()]
    domains = sorted(meta["domain"].unique())
    table = pd.crosstab([meta["fold"], meta["scene"]], meta["domain"])
    index = pd.MultiIndex.from_product([folds, scenes], names=["fold", "scene"])
    table = table.reindex(index=index, columns=domains, fill_value=0).astype(np.int64)
    table.columns.name = ds.domain_kind
    table["total"] = table.sum(axis=1)
    return table


def summary_text(ds: TauDataset) -> str:
    """A few lines for ``harness data info``: what was loaded and which domains are unseen."""
    meta = ds.meta
    counts = meta["fold"].value_counts()
    domains = {f: sorted(meta.loc[meta["fold"] == f, "domain"].unique()) for f in FOLDS}
    unseen = [d for d in domains["evaluate"] if d not in domains["train"]]
    kind = ds.domain_kind
    lines = [
        f"layout: {ds.layout} ({'SYNTHETIC data, not the real TAU recordings' if ds.is_synthetic else 'real data'})",
        f"root: {ds.root}",
        f"audio: {ds.sample_rate} Hz, {ds.channels} channel(s), {ds.seconds:.2f} s ({ds.clip_samples} samples)",
        f"clips: {len(meta)} (" + ", ".join(f"{f} {int(counts.get(f, 0))}" for f in FOLDS) + ")",
        f"scenes: {meta['scene'].nunique()}, locations: {meta['location'].nunique()}",
        f"{kind} in train ({len(domains['train'])}): {', '.join(domains['train'])}",
        f"{kind} in evaluate ({len(domains['evaluate'])}): {', '.join(domains['evaluate'])}",
    ]
    if unseen:
        parts = []
        for d in unseen:
            rows = meta["domain"] == d
            parts.append(
                f"{d} ({int((rows & (meta['fold'] == 'evaluate')).sum())} evaluate, "
                f"{int((rows & (meta['fold'] == 'unused')).sum())} unused)"
            )
        lines.append(f"unseen {kind}: " + ", ".join(parts))
    else:
        lines.append(f"unseen {kind}: none (every evaluate {kind} is also in train)")
    lines.append(f"identity: {ds.identity[:16]}")
    return "\n".join(lines)
