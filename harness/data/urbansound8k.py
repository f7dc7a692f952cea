"""Dataset plugin ``urbansound8k``: UrbanSound8K (Salamon et al. 2014) as distributed.

Layout: ``audio/fold1`` … ``audio/fold10`` and ``metadata/UrbanSound8K.csv`` with the header
``slice_file_name,fsID,start,end,salience,fold,classID,class``. Protocol: the official 10-fold
cross-validation, never a random split (slices of one freesound recording share a fold; a
random split puts them on both sides and inflates accuracy). The domain and the group never
split is the source recording (``fsID``).

The files keep the rate, bit depth and channel count of their freesound originals, and slices
are up to 4 s long. They are converted to one declared target (default 22,050 Hz mono, 4 s):
resampled with torchaudio, channels averaged, and shorter slices padded at the end (``pad``:
``zero`` = silence, the default, or ``repeat`` = the slice tiled). The target and the pad rule
are part of the feature cache key and of every run record.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.audio import scan_headers
from harness.data.csvmeta import check_filenames, integers, read_metadata
from harness.data.dataset import AudioSpec, Dataset, Protocols, clip_table, fingerprint, stat_files
from harness.data.registry import register_dataset
from harness.errors import ConfigError, DataError

META = "metadata/UrbanSound8K.csv"
HEADER = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
FOLDS = tuple(str(k) for k in range(1, 11))


def _detect(root: Path) -> bool:
    return (root / META).is_file() and (root / "audio").is_dir()


@register_dataset("urbansound8k", "UrbanSound8K urban sounds: 10 classes, official 10-fold CV; domain = source "
                  "recording (fsID); mixed formats converted to sample_rate/channels/seconds, short clips padded (pad)",
                  detect=_detect, looks_for=f"{META} + audio/fold1..10/")
def urbansound8k(root: Path, sample_rate: int = 22050, channels: int = 1, seconds: float = 4.0, pad: str = "zero",
                 check_audio: bool = True) -> Dataset:
    if not (int(sample_rate) == sample_rate and sample_rate > 0 and channels in (1, 2) and seconds > 0):
        raise ConfigError(f"urbansound8k: need sample_rate > 0, channels 1 or 2, seconds > 0; got {sample_rate}, "
                          f"{channels}, {seconds}")
    path = root / META
    meta = read_metadata(path, HEADER, exact=True, what="UrbanSound8K metadata")
    fold = integers(meta, "fold", path, 1, 10)
    class_id = integers(meta, "classID", path, 0, 9)
    check_filenames(meta["slice_file_name"], path)
    names: dict[int, str] = {}
    for i, (cid, name) in enumerate(zip(class_id, meta["class"])):
        if names.setdefault(int(cid), name) != name:
            raise DataError(f"line {i + 2}: classID {cid} is {name!r} here but {names[int(cid)]!r} elsewhere", path)
    spread = meta.assign(fold=fold).groupby("fsID")["fold"].nunique()
    if (spread > 1).any():
        fs = spread.index[spread > 1][0]
        raise DataError(f"recording fsID {fs} is in {int(spread[fs])} folds; slices of one recording must share "
                        "a fold (otherwise the official cross-validation leaks)", path)
    filenames = [f"audio/fold{k}/{name}" for k, name in zip(fold, meta["slice_file_name"])]
    clips, classes = clip_table(filenames, meta["class"].tolist(), meta["fsID"], meta["fsID"], fold.astype(str),
                                classes=[names[c] for c in sorted(names)], salience=meta["salience"])
    stats = stat_files(root, filenames, META)
    if check_audio:
        scan_headers(root, filenames)
    spec = AudioSpec(int(sample_rate), int(channels), int(round(seconds * sample_rate)), exact=False, pad=pad)
    salt = "urbansound8k"
    return Dataset(
        name="urbansound8k", root=root, clips=clips, classes=classes, domain_kind="source recording",
        audio=spec,
        protocols=Protocols(folds=FOLDS, unseen_note="every test clip comes from a recording (fsID) absent from "
                                                     "training, by the official folds"),
        identity=fingerprint(root, [META], stats, mtimes=False, salt=salt),
        stamp=fingerprint(root, [META], stats, mtimes=True, salt=salt),
        title="UrbanSound8K",
        options={k: v for k, v in (("sample_rate", sample_rate), ("channels", channels), ("seconds", seconds),
                                   ("pad", pad)) if v != {"sample_rate": 22050, "channels": 1, "seconds": 4.0,
                                                          "pad": "zero"}[k]},
    )
