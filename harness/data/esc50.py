"""Dataset plugin ``esc50``: ESC-50 (Piczak 2015) as distributed, and its ESC-10 subset.

Layout: ``audio/*.wav`` (2,000 clips, 5 s, 44.1 kHz mono) and ``meta/esc50.csv`` with the header
``filename,fold,target,category,esc10,src_file,take``. Protocol: the official 5-fold
cross-validation (``fold:1`` … ``fold:5``). The domain (and the group never split) is the source
recording ``src_file``: clips cut from one freesound recording share a fold, and the cross-domain
triplet loss pairs same-class clips of different source recordings.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.audio import uniform_format
from harness.data.csvmeta import check_filenames, check_values, integers, read_metadata
from harness.data.dataset import AudioSpec, Dataset, Protocols, clip_table, fingerprint, stat_files
from harness.data.registry import register_dataset
from harness.errors import ConfigError, DataError

META = "meta/esc50.csv"
HEADER = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = ("1", "2", "3", "4", "5")
SUBSETS = ("esc50", "esc10")


def _detect(root: Path) -> bool:
    return (root / META).is_file() and (root / "audio").is_dir()


def _class_names(meta, path: Path) -> list[str]:
    """Category names ordered by ``target``; each target must name one category."""
    names: dict[int, str] = {}
    for i, (target, category) in enumerate(zip(meta["target_id"], meta["category"])):
        if names.setdefault(int(target), category) != category:
            raise DataError(f"line {i + 2}: target {target} is {category!r} here but {names[int(target)]!r} "
                            "elsewhere", path)
    if len(set(names.values())) != len(names):
        raise DataError("one category has two target numbers", path)
    return [names[t] for t in sorted(names)]


@register_dataset("esc50", "ESC-50 environmental sounds: 50 classes, official 5-fold CV; domain = source recording "
                  "(src_file); --subset esc10", detect=_detect, looks_for=f"{META} + audio/")
def esc50(root: Path, subset: str = "esc50", check_audio: bool = True) -> Dataset:
    if subset not in SUBSETS:
        raise ConfigError(f"esc50: unknown subset {subset!r}; choose {', '.join(SUBSETS)}")
    path = root / META
    meta = read_metadata(path, HEADER, exact=True, what="ESC-50 metadata")
    meta["fold_id"] = integers(meta, "fold", path, 1, 5)
    meta["target_id"] = integers(meta, "target", path, 0, 49)
    check_values(meta, "esc10", ("True", "False"), path)
    check_filenames(meta["filename"], path)
    classes = _class_names(meta, path)
    if subset == "esc10":
        meta = meta[meta["esc10"] == "True"].reset_index(drop=True)
        if meta.empty:
            raise DataError("no clip has esc10 = True", path)
        classes = [c for c in classes if c in set(meta["category"])]
    filenames = ("audio/" + meta["filename"]).tolist()
    clips, classes = clip_table(filenames, meta["category"].tolist(), meta["src_file"], meta["src_file"],
                                meta["fold_id"].astype(str), classes=classes, take=meta["take"])
    stats = stat_files(root, filenames, META)
    rate, channels, samples = uniform_format(root, filenames, check_audio)
    salt = f"esc50:{subset}"
    return Dataset(
        name="esc50", root=root, clips=clips, classes=classes, domain_kind="source recording",
        audio=AudioSpec(int(rate), int(channels), int(samples)),
        protocols=Protocols(folds=FOLDS, unseen_note="every test clip comes from a source recording (src_file) "
                                                     "absent from training, by the official folds"),
        identity=fingerprint(root, [META], stats, mtimes=False, salt=salt),
        stamp=fingerprint(root, [META], stats, mtimes=True, salt=salt),
        title="ESC-50" + (" (ESC-10 subset)" if subset == "esc10" else ""),
        options={"subset": subset} if subset != "esc50" else {},
    )
