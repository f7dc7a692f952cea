"""Dataset plugins ``tau2019`` and ``tau2020-mobile``: TAU Urban Acoustic Scenes development sets
read as distributed (the ``synthetic`` plugin reads its generated copy of the 2019 layout with
:func:`load_dataset` too).

Everything the rest of the harness trusts about the data is checked here once, so a
bad download fails at load time with a one-line :class:`DataError` naming the file,
not hours into training. TAU's scene and city names are known here and nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.data.audio import uniform_format
from harness.data.dataset import AudioSpec, Dataset, Protocols, clip_table, fingerprint, scan_files
from harness.data.registry import register_dataset
from harness.data.synthetic.writer import SYNTHETIC_MARKER
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
#: Real recording devices of TAU 2020 Mobile; s1-s6 are simulated from device a's recordings.
REAL_DEVICES = ("a", "b", "c")

META_HEADER = ("filename", "scene_label", "identifier", "source_label")
FOLD_HEADER = ("filename", "scene_label")
TEST_HEADER = ("filename",)
FOLD_FILES = {"train": "evaluation_setup/fold1_train.csv", "evaluate": "evaluation_setup/fold1_evaluate.csv"}
TEST_FILE = "evaluation_setup/fold1_test.csv"
ZENODO_2019 = "https://zenodo.org/record/2589280"
_SCENE_INDEX = {s: i for i, s in enumerate(SCENES)}
#: ``audio/<scene>-<city>-<location>-<segment>-<device>.wav`` (2019, 2020); 2022 adds a sub-segment.
_FILENAME = re.compile(r"^audio/[a-z_]+-[a-z]+-\d+-\d+-[a-z0-9]+\.wav$")


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
    if filename.startswith("/") or ".." in filename.split("/"):
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
    columns: dict[str, list] = {k: [] for k in ("filename", "scene", "identifier", "source", "city")}
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
        columns["identifier"].append(identifier)
        columns["source"].append(source)
        columns["city"].append(city)
    return pd.DataFrame(columns)


def _read_folds(root: Path, meta: pd.DataFrame) -> list[str]:
    """The fold of every meta row; checks fold files against meta.csv."""
    scene_of = dict(zip(meta["filename"].tolist(), meta["scene"].tolist()))
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
    return [fold_of.get(f, "unused") for f in meta["filename"].tolist()]


def _check_location_leak(root: Path, meta: pd.DataFrame) -> None:
    """Official folds must not share a recording location (otherwise fold1 scores are inflated)."""
    train = set(meta.loc[meta["fold"] == "train", "group"].tolist())
    shared = sorted(train.intersection(meta.loc[meta["fold"] == "evaluate", "group"].tolist()))
    if shared:
        raise DataError(
            f"shares {len(shared)} location(s) with {FOLD_FILES['train']}, first: {shared[0]}",
            root / FOLD_FILES["evaluate"],
        )


def _domains_note(meta: pd.DataFrame, kind: str) -> str:
    """What ``--unseen all`` adds here, from the data: the unused rows of the unseen domains."""
    train = set(meta.loc[meta["fold"] == "train", "domain"].tolist())
    unseen = sorted(set(meta.loc[meta["fold"] == "evaluate", "domain"].tolist()) - train)
    if not unseen:
        return f"no {kind} of evaluate is unseen in train"
    n_eval = int((meta["domain"].isin(unseen) & (meta["fold"] == "evaluate")).sum())
    n_unused = int((meta["domain"].isin(unseen) & (meta["fold"] == "unused")).sum())
    return (f"unseen {kind} {', '.join(unseen)}: official = its {n_eval} clips of fold1 evaluate; "
            f"all = plus its {n_unused} clips in no fold file ({n_eval + n_unused} in all)")


def load_dataset(root: str | Path, *, check_audio: bool = True, name: str | None = None, title: str | None = None,
                 synthetic: bool = False) -> Dataset:
    """Read and validate a TAU 2019 development or 2020 Mobile development folder.

    Every listed audio file is stat-ed (missing files fail here); with ``check_audio`` every WAV
    header is also read (rate, channels, length). ``name`` is the plugin reading it (default:
    ``tau2019`` or ``tau2020-mobile`` from ``meta.csv``'s devices); ``title`` and ``synthetic``
    are what a plugin reading a generated copy of the layout says about it.
    """
    root = Path(root).expanduser().resolve()
    meta_path = _check_root(root)
    meta = _read_meta(meta_path)
    is2020 = bool(set(meta["source"].tolist()) - {"a"})
    name = name or ("tau2020-mobile" if is2020 else "tau2019")
    kind = "device" if is2020 else "city"
    domain = meta["source"] if is2020 else meta["city"]
    fold = _read_folds(root, meta)
    present = set(meta["scene"].tolist())
    scenes = [s for s in SCENES if s in present]
    clips, classes = clip_table(meta["filename"], meta["scene"].tolist(), domain, meta["identifier"], fold,
                                classes=scenes, scene=meta["scene"], identifier=meta["identifier"],
                                source=meta["source"], city=meta["city"], location=meta["identifier"])
    _check_location_leak(root, clips)
    filenames = clips["filename"].tolist()
    scanned = scan_files(root, filenames, "meta.csv", headers=check_audio)
    stats = [s for s, _ in scanned]
    rate, channels, clip = uniform_format(root, filenames, check_audio, [i for _, i in scanned] if check_audio else None)
    metadata = ("meta.csv", *FOLD_FILES.values())
    return Dataset(
        name=name, root=root, clips=clips, classes=classes, domain_kind=kind,
        audio=AudioSpec(int(rate), int(channels), int(clip)),
        protocols=Protocols(holdout="fold1", unseen_note=_domains_note(clips, kind),
                            groupings={"recording": {d: "real" if d in REAL_DEVICES else "simulated"
                                                     for d in sorted(set(clips["domain"].tolist()))}} if is2020 else {}),
        identity=fingerprint(root, metadata, stats, mtimes=False),
        stamp=fingerprint(root, metadata, stats, mtimes=True),
        is_synthetic=synthetic,
        title=title or ("TAU Urban Acoustic Scenes 2020 Mobile development" if is2020 else
                        "TAU Urban Acoustic Scenes 2019 development"),
    )


# --------------------------------------------------------------------------- the plugins


def meta_sources(root: Path) -> set[str] | None:
    """The devices of a TAU-layout ``meta.csv`` (None: not that layout). Reads only ``meta.csv``."""
    meta = root / "meta.csv"
    if not (meta.is_file() and (root / "evaluation_setup").is_dir()):
        return None
    lines = meta.read_bytes().decode("utf-8-sig", errors="replace").replace("\r\n", "\n").split("\n")
    if tuple(f.strip() for f in lines[0].split("\t")) != META_HEADER:
        return None
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    if not rows or not _FILENAME.match(rows[0][0].strip()):
        return None
    return {r[3].strip() for r in rows if len(r) == 4}


def _is_2019(root: Path) -> bool:
    return meta_sources(root) == {"a"} and not (root / SYNTHETIC_MARKER).exists()


def _is_2020(root: Path) -> bool:
    sources = meta_sources(root)
    return bool(sources and sources - {"a"})


_LOOKS_FOR = "meta.csv (filename, scene_label, identifier, source_label) + evaluation_setup/fold1_*.csv"


@register_dataset("tau2019", "TAU Urban Acoustic Scenes 2019 development: 10 scenes, 10 cities, fold1; domain = city",
                  detect=_is_2019, looks_for=_LOOKS_FOR + ", one device", paper_layout=True)
def tau2019(root: Path, check_audio: bool = True) -> Dataset:
    return load_dataset(root, check_audio=check_audio, name="tau2019")


@register_dataset("tau2020-mobile", "TAU Urban Acoustic Scenes 2020 Mobile development: 10 scenes, 9 devices, fold1; "
                  "domain = device", detect=_is_2020, looks_for=_LOOKS_FOR + ", several devices")
def tau2020_mobile(root: Path, check_audio: bool = True) -> Dataset:
    return load_dataset(root, check_audio=check_audio, name="tau2020-mobile")

