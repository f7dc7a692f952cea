"""Dataset plugin ``tau2022-mobile``: TAU Urban Acoustic Scenes 2022 Mobile development as
distributed, and the DCASE 2024 data-efficient training splits.

The 2022 set is the 2020 Mobile material cut into 1-s segments:
``audio/<scene>-<city>-<location>-<segment>-<piece>-<device>.wav`` (44.1 kHz mono), the same
4-column ``meta.csv`` and ``evaluation_setup/fold1_*.csv``. Devices a, b, c are real and s1-s6
simulated; s4-s6 never occur in training. A group is one 10-s recording
(``<scene>-<city>-<location>-<segment>``: all its 1-s pieces on every device), so no split puts a
piece of a recording on one side and another piece, or a parallel device's copy, on the other.

``subset=5|10|25|50|100`` trains on the DCASE 2024 ``split{N}.csv`` (``filename<TAB>scene_label``,
nested, whole recordings) and scores on ``test.csv``. Those files are distributed apart from the
audio, so ``splits=DIR`` names their folder (default: ``split_setup/`` in the dataset folder,
where ``harness data synth --preset tau2022`` writes them). Their contents are part of the
dataset's identity (an edited split file is a new run); the feature cache does not depend on
them, so every subset reads the same cached features.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.data.audio import uniform_format
from harness.data.dataset import AudioSpec, Dataset, Protocols, clip_table, fingerprint, scan_files
from harness.data.registry import register_dataset
from harness.data.synthetic.writer import SYNTHETIC_MARKER
from harness.data.tau import (FOLD_FILES, FOLD_HEADER, META_HEADER, REAL_DEVICES, SCENES, TEST_HEADER, _read_folds,
                              _read_meta, _read_table)
from harness.errors import ConfigError, DataError

NAME = "tau2022-mobile"
SUBSETS = (5, 10, 25, 50, 100)
SPLITS_DIRNAME = "split_setup"
ZENODO_2022 = "https://zenodo.org/record/6337421"
SPLITS_SOURCE = ("the DCASE 2024 Task 1 baseline (https://github.com/CPJKU/dcase2024_task1_baseline/releases/download/"
                 "files/split5.csv, …, test.csv)")
#: ``audio/<scene>-<city>-<location>-<segment>-<piece>-<device>.wav``: the 2020 name plus the 1-s piece.
_FILENAME = re.compile(r"^audio/([a-z_]+-[a-z]+-\d+-\d+)-\d+-[a-z0-9]+\.wav$")


def _detect(root: Path) -> bool:
    """``meta.csv`` with TAU's header whose first file name has the 1-s piece index (reads one line)."""
    meta = root / "meta.csv"
    if not (meta.is_file() and (root / "evaluation_setup").is_dir()):
        return False
    with open(meta, "rb") as fh:
        head = fh.read(4096).decode("utf-8-sig", errors="replace").replace("\r\n", "\n").split("\n")
    if len(head) < 2 or tuple(f.strip() for f in head[0].split("\t")) != META_HEADER:
        return False
    return bool(_FILENAME.match(head[1].split("\t")[0].strip()))


def _recordings(meta: pd.DataFrame, path: Path) -> list[str]:
    out = []
    for i, filename in enumerate(meta["filename"].tolist()):
        m = _FILENAME.match(filename)
        if not m:
            raise DataError(f"row {i + 2}: {filename!r} is not audio/<scene>-<city>-<location>-<segment>-<piece>-"
                            "<device>.wav (the 2022 Mobile naming)", path)
        out.append(m.group(1))
    return out


def _read_split(path: Path, scene_of: dict[str, str]) -> list[str]:
    """The file names of one DCASE 2024 split file, checked against ``meta.csv``."""
    if not path.is_file():
        raise DataError(f"split file not found: split5/10/25/50/100.csv and test.csv are distributed apart from the "
                        f"audio, with {SPLITS_SOURCE}; put them in one folder and pass --data-opt splits=DIR", path)
    first = path.read_bytes()[:200].decode("utf-8-sig", errors="replace").split("\n")[0].strip()
    rows = _read_table(path, TEST_HEADER if first == "filename" else FOLD_HEADER)
    seen: dict[str, int] = {}
    for number, fields in rows:
        filename = fields[0]
        if filename in seen:
            raise DataError(f"line {number}: {filename} is listed twice (first on line {seen[filename]})", path)
        seen[filename] = number
        if filename not in scene_of:
            raise DataError(f"line {number}: {filename} is not in meta.csv", path)
        if len(fields) > 1 and fields[1] != scene_of[filename]:
            raise DataError(f"line {number}: scene_label {fields[1]!r} for {filename} disagrees with meta.csv "
                            f"({scene_of[filename]!r})", path)
    if not seen:
        raise DataError("no rows", path)
    return list(seen)


def _check_leak(clips: pd.DataFrame, where: Path) -> None:
    """Training and test rows never share a 10-s recording or a recording location."""
    train, test = clips["fold"] == "train", clips["fold"] == "evaluate"
    for column, what in (("group", "recording"), ("location", "recording location")):
        shared = sorted(set(clips.loc[train, column]) & set(clips.loc[test, column]))
        if shared:
            raise DataError(f"training and test rows share {len(shared)} {what}(s), first: {shared[0]} (leak)", where)


def device_groupings(clips: pd.DataFrame) -> dict[str, dict[str, str]]:
    """``recording``: real / simulated; ``device``: real / simulated-seen / unseen (devices with no row
    in the official training split, s4-s6 on the real data), as the task reports them."""
    devices = sorted(set(clips["domain"].tolist()))
    trained = set(clips.loc[clips["official_fold"] == "train", "domain"].tolist())
    return {"recording": {d: "real" if d in REAL_DEVICES else "simulated" for d in devices},
            "device": {d: "real" if d in REAL_DEVICES else "simulated-seen" if d in trained else "unseen"
                       for d in devices}}


@register_dataset(NAME, "TAU Urban Acoustic Scenes 2022 Mobile development: 1-s clips, 10 scenes, 9 devices, "
                  "fold1 or the DCASE 2024 subsets (--subset 5|10|25|50|100, --data-opt splits=DIR); domain = device",
                  detect=_detect, looks_for="meta.csv + evaluation_setup/fold1_*.csv with 1-s pieces "
                  "(audio/<scene>-<city>-<loc>-<segment>-<piece>-<device>.wav)")
def tau2022_mobile(root: Path, subset: int | None = None, splits: str | None = None, check_audio: bool = True) -> Dataset:
    if subset is not None and subset not in SUBSETS:
        raise ConfigError(f"{NAME}: --subset must be one of {', '.join(map(str, SUBSETS))}, got {subset}")
    if splits is not None and subset is None:
        raise ConfigError(f"{NAME}: --data-opt splits=DIR names the DCASE 2024 split files; give --subset N with it")
    root = Path(root)
    meta_path = root / "meta.csv"
    if not meta_path.is_file():
        raise DataError("meta.csv not found; download TAU Urban Acoustic Scenes 2022 Mobile development from Zenodo "
                        f"({ZENODO_2022}) and extract every zip into one folder, or write a synthetic copy with "
                        "`harness data synth --preset tau2022`", meta_path)
    meta = _read_meta(meta_path)
    recordings = _recordings(meta, meta_path)
    official = _read_folds(root, meta)
    metadata: list[str | Path] = ["meta.csv", *FOLD_FILES.values()]
    fold, split_files, holdout = official, [], "fold1"
    if subset is not None:
        folder = Path(splits).expanduser().resolve() if splits else root / SPLITS_DIRNAME
        scene_of = dict(zip(meta["filename"].tolist(), meta["scene"].tolist()))
        split_files = [folder / f"split{subset}.csv", folder / "test.csv"]
        train, test = (set(_read_split(p, scene_of)) for p in split_files)
        both = sorted(train & test)
        if both:
            raise DataError(f"{both[0]} is in both split{subset}.csv and test.csv", folder)
        fold = ["train" if f in train else "evaluate" if f in test else "unused" for f in meta["filename"].tolist()]
        holdout = f"split{subset}"
    present = set(meta["scene"].tolist())
    clips, classes = clip_table(meta["filename"], meta["scene"].tolist(), meta["source"], recordings, fold,
                                classes=[s for s in SCENES if s in present], scene=meta["scene"],
                                identifier=meta["identifier"], source=meta["source"], city=meta["city"],
                                location=meta["identifier"], official_fold=official)
    _check_leak(clips, split_files[0].parent if split_files else root / FOLD_FILES["evaluate"])
    filenames = clips["filename"].tolist()
    scanned = scan_files(root, filenames, "meta.csv", headers=check_audio)
    stats = [s for s, _ in scanned]
    rate, channels, clip = uniform_format(root, filenames, check_audio, [i for _, i in scanned] if check_audio else None)
    synthetic = (root / SYNTHETIC_MARKER).is_file()
    salt = f"{NAME}:{subset or ''}"
    return Dataset(
        name=NAME, root=root, clips=clips, classes=classes, domain_kind="device",
        audio=AudioSpec(int(rate), int(channels), int(clip)),
        protocols=Protocols(holdout=holdout, groupings=device_groupings(clips),
                            unseen_note="unseen devices: those of the test rows with no training row (s4-s6 on "
                                        "the real data); every test row is in the test split, none is unused"),
        identity=fingerprint(root, [*metadata, *split_files], stats, mtimes=False, salt=salt),
        stamp=fingerprint(root, metadata, stats, mtimes=True, salt=NAME),  # features do not depend on the split files
        is_synthetic=synthetic,
        title=("synthetic dataset in TAU 2022 Mobile layout (generated audio, not TAU)" if synthetic else
               "TAU Urban Acoustic Scenes 2022 Mobile development")
        + (f", DCASE 2024 split{subset}.csv / test.csv" if subset else ""),
        options={"subset": subset} if subset is not None else {},
        paths={"splits": str(split_files[0].parent)} if splits else {},
    )
