"""The one dataset object every stage downstream of the data reads.

A dataset plugin (``harness.data.registry``) reads one official layout and returns a
:class:`Dataset`: a clip table, the class names found in the data, what a domain is, the audio
format the features are computed at, an identity for run ids and a stamp for the feature cache,
and the official protocols. Runner, sampler, metrics, tables and tuning read classes and domains
from here, so none of them knows any dataset's class or domain names.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from harness.errors import DataError

#: Columns every clip table has, in this order (plugins may add their own after them).
CLIP_COLUMNS = ("filename", "label", "class", "domain", "group", "fold")
#: ``domain`` value of every clip when a dataset declares no domain.
NO_DOMAIN = "none"
PAD_RULES = ("zero", "repeat")


@dataclass(frozen=True)
class AudioSpec:
    """The format clips are converted to before features: part of the feature cache key and the run record.

    ``exact``: every file already has this format and is read as is (a file that differs is a
    one-line error). Otherwise each file is resampled with torchaudio (band-limited sinc), its
    channels averaged to mono when ``channels == 1``, and cut or padded to ``clip_samples``:
    ``pad="zero"`` appends silence, ``pad="repeat"`` tiles the clip (both from the clip's end).
    """

    sample_rate: int
    channels: int
    clip_samples: int
    exact: bool = True
    pad: str = "zero"

    def __post_init__(self) -> None:
        if self.pad not in PAD_RULES:
            raise DataError(f"pad rule {self.pad!r} is not one of {', '.join(PAD_RULES)}")

    @property
    def seconds(self) -> float:
        return self.clip_samples / self.sample_rate

    def describe(self) -> str:
        what = f"{self.sample_rate} Hz, {self.channels} channel(s), {self.seconds:g} s ({self.clip_samples} samples)"
        if self.exact:
            return what + ", as stored"
        mix = ", down-mixed to mono" if self.channels == 1 else ""
        return f"{what}; files resampled (torchaudio){mix}, shorter clips {self.pad}-padded at the end, longer ones cut"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Protocols:
    """The official ways to split a dataset.

    ``holdout``: the name of an official train / test split (``fold1`` for TAU; rows with fold
    ``train`` / ``evaluate``, rows in no split have fold ``unused``), or None. ``folds``: the
    cross-validation fold names (``fold:K`` tests on the rows whose fold is K), or empty.
    ``groupings``: named partitions of the domains (``{"recording": {"a": "real", "s1": "simulated"}}``)
    reported as per-group accuracy beside seen / unseen.
    """

    holdout: str | None = None
    folds: tuple[str, ...] = ()
    groupings: dict[str, dict[str, str]] = field(default_factory=dict)
    #: What ``--unseen all`` adds on this dataset (said in tables and run records).
    unseen_note: str = ""

    @property
    def default_split(self) -> str:
        if self.holdout:
            return self.holdout
        if self.folds:
            return f"fold:{self.folds[0]}"
        raise DataError("dataset declares neither a holdout split nor folds")

    def split_names(self, domain_kind: str) -> list[str]:
        out = [self.holdout] if self.holdout else []
        out += [f"fold:{f}" for f in self.folds]
        if domain_kind != NO_DOMAIN:
            out += ["leave-one-domain-out:<domain>", "loco:<domain>"]
        return out


@dataclass(frozen=True, eq=False)
class Dataset:
    """A validated dataset: ``clips`` has one row per clip with at least :data:`CLIP_COLUMNS`.

    ``label`` indexes ``classes``; ``group`` holds clips that must never be on both sides of a
    split (TAU recording location, ESC-50 / UrbanSound8K source recording); ``fold`` is the
    official membership (``train`` / ``evaluate`` / ``unused`` for a holdout, the fold name for
    cross-validation).
    """

    name: str  # the plugin that read it: tau2019, tau2020-mobile, synthetic, esc50, urbansound8k, csv, ...
    root: Path
    clips: pd.DataFrame
    classes: tuple[str, ...]
    domain_kind: str  # what a domain is: city, device, source recording, ... or "none"
    audio: AudioSpec
    protocols: Protocols
    #: Results are keyed by this: the plugin, its options, the metadata and every audio file's name
    #: and size (not its path or file times), so a copy on another machine has the same identity.
    identity: str
    #: ``identity`` plus every audio file's modification time: the feature cache's key.
    stamp: str
    is_synthetic: bool = False
    title: str = ""  # one line naming the dataset, for summaries and table notes
    options: dict[str, Any] = field(default_factory=dict)
    #: Plugin options that name files outside ``root`` (``splits=DIR``): needed to open the dataset
    #: again, but a location, not a setting, so they stay out of run ids (their contents are in ``identity``).
    paths: dict[str, str] = field(default_factory=dict)

    # -- audio -----------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def channels(self) -> int:
        return self.audio.channels

    @property
    def clip_samples(self) -> int:
        return self.audio.clip_samples

    @property
    def seconds(self) -> float:
        return self.audio.seconds

    def path(self, filename: str) -> Path:
        return self.root / filename

    def read(self, filename: str) -> np.ndarray:
        """``(channels, clip_samples)`` float32 in the dataset's :class:`AudioSpec`."""
        from harness.data.audio import load_clip

        return load_clip(self.path(filename), self.audio)

    # -- labels and domains ----------------------------------------------------------------
    @property
    def labels(self) -> np.ndarray:
        return self.clips["label"].to_numpy()

    @property
    def domains(self) -> np.ndarray:
        return self.clips["domain"].to_numpy().astype(str)

    @property
    def has_domains(self) -> bool:
        return self.domain_kind != NO_DOMAIN

    def record(self) -> dict[str, Any]:
        """What a run stores about its data (config.json)."""
        return {"name": self.name, "title": self.title, "root": str(self.root), "identity": self.identity,
                "synthetic": self.is_synthetic, "options": dict(self.options), "paths": dict(self.paths), "classes": list(self.classes),
                "domain_kind": self.domain_kind, "audio": self.audio.to_dict(), "clips": len(self.clips)}


# --------------------------------------------------------------------------- helpers for plugins


def clip_table(filename: Iterable[str], classes_of_rows: Sequence[str], domain: Iterable[str] | None,
               group: Iterable[str] | None, fold: Iterable[str], classes: Sequence[str] | None = None,
               **extra: Iterable[Any]) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Build a clip table with the standard columns; classes default to the sorted names found."""
    names = tuple(classes) if classes is not None else tuple(sorted(set(classes_of_rows)))
    index = {c: i for i, c in enumerate(names)}
    filename = _as_list(filename)
    classes_of_rows = _as_list(classes_of_rows)
    df = pd.DataFrame({
        "filename": filename,
        "label": np.fromiter((index[c] for c in classes_of_rows), np.int64, len(filename)),
        "class": classes_of_rows,
        "domain": _as_list(domain) if domain is not None else [NO_DOMAIN] * len(filename),
        "group": _as_list(group) if group is not None else filename,
        "fold": _as_list(fold),
    })
    for k, v in extra.items():
        df[k] = _as_list(v)
    return df, names


def _as_list(values: Iterable[Any]) -> list[Any]:
    """A list; pandas columns through ``tolist`` (iterating Arrow-backed strings one by one is slow)."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


def fingerprint(root: Path, metadata: Iterable[str | Path], stats: Iterable[tuple[str, int, int]], *,
                mtimes: bool, salt: str = "") -> str:
    """sha256 of the metadata files' contents, every audio file's name and size (and mtime), and ``salt``.

    Stat only, so it costs no audio reads.
    """
    h = hashlib.sha256(salt.encode() + b"\0" if salt else b"")  # no salt: the TAU layouts' identities as first issued
    for rel in metadata:
        path = root / rel
        name = str(Path(rel).as_posix()) if not Path(rel).is_absolute() else path.name
        h.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for filename, size, mtime in sorted(stats):
        h.update((f"{filename}\t{size}\t{mtime}\n" if mtimes else f"{filename}\t{size}\n").encode())
    return h.hexdigest()


def stat_files(root: Path, filenames: Iterable[str], listed_in: str | Path) -> list[tuple[str, int, int]]:
    """``(filename, size, mtime_ns)`` of every listed audio file; a missing one is a one-line error."""
    return [s for s, _ in scan_files(root, filenames, listed_in, headers=False)]


def scan_files(root: Path, filenames: Iterable[str], listed_in: str | Path, *, headers: bool = True
               ) -> list[tuple[tuple[str, int, int], tuple[int, int, int] | None]]:
    """Per listed file: ``(filename, size, mtime_ns)`` and, with ``headers``, ``(rate, channels, frames)``.

    One open per file gives both (a dataset's load touches every file once); headers the fast
    parser does not recognise are read by soundfile. Missing or unreadable files: one-line errors.
    """
    import stat as st_mode

    from harness.data.audio import wav_info
    from harness.data.wavheader import parse

    base = os.fspath(root)
    out = []
    for filename in filenames:
        path = os.path.join(base, filename)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            raise DataError(f"audio file listed in {listed_in} is missing", path) from None
        try:
            st = os.fstat(fd)
            if not st_mode.S_ISREG(st.st_mode):
                raise DataError(f"audio path listed in {listed_in} is not a file", path)
            head = os.read(fd, 4096) if headers else b""
        finally:
            os.close(fd)
        info = None
        if headers:
            info = parse(head, st.st_size) or wav_info(path)
        out.append(((filename, st.st_size, st.st_mtime_ns), info))
    return out
