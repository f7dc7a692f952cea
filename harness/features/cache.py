"""The on-disk feature cache: one memory-mapped ``.npy`` per (dataset identity, FeatureConfig).

Layout: ``cache_dir()/features/<key>/{features.npy, manifest.json}``. A cache directory is
only ever created by renaming a finished temporary directory into place, and is only used
when its manifest (written last) matches the dataset and config and the data file has the
full size; anything else is recomputed. So an interrupted or failed extraction can never be
mistaken for a complete one.

Extraction streams: worker processes read and transform a few clips at a time and write
their rows straight into the file, so memory does not grow with the dataset.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch

from harness.data.audio import load_clip
from harness.data.dataset import AudioSpec
from harness.errors import DataError, HarnessError, StorageError
from harness.progress import progress as progress_bar
from harness.features.logmel import FeatureConfig, LogMelExtractor
from harness.paths import cache_dir
from harness.processes import pid_alive

FORMAT_VERSION = 1  # bump when the stored numbers or the layout change
DATA_FILE = "features.npy"
MANIFEST_FILE = "manifest.json"
CLIPS_PER_TASK = 16


class Dataset(Protocol):
    """What the cache needs from ``harness.data.dataset.Dataset``."""

    root: Path
    clips: Any  # pandas.DataFrame with a ``filename`` column relative to ``root``
    audio: AudioSpec  # the format clips are converted to (rate, channels, length, pad rule)
    identity: str
    stamp: str  # identity + file modification times: a file rewritten in place invalidates the cache


def feature_key(stamp: str, cfg: FeatureConfig, audio: AudioSpec | None = None) -> str:
    """sha256 of the dataset's stamp (identity and file times), every feature setting, the format
    version and, where clips are converted (resampled, down-mixed, padded), the conversion rule.

    A spec that reads files as stored is fixed by the files themselves, which the stamp covers, so
    it stays out and caches written before conversions existed keep their keys.
    """
    doc = {"format": FORMAT_VERSION, "identity": stamp, "config": cfg.to_dict()}
    if audio is not None and not audio.exact:
        doc["audio"] = audio.to_dict()
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def features_root() -> Path:
    return cache_dir() / "features"


def feature_path(ds: Dataset, cfg: FeatureConfig) -> Path:
    """The cache directory of ``ds`` under ``cfg`` (it may not exist yet)."""
    return features_root() / feature_key(ds.stamp, cfg, ds.audio)


def load_features(
    ds: Dataset, cfg: FeatureConfig | None = None, progress: bool = True, workers: int | None = None
) -> np.ndarray:
    """Read-only memory map ``(len(ds.clips), channels, n_mels, n_frames)``; row i is ``ds.clips`` row i.

    Computed on first use (``workers`` processes, default: one per available core) and cached.
    A bad WAV raises its :class:`~harness.errors.DataError` and caches nothing.
    """
    cfg = cfg or FeatureConfig()
    final = feature_path(ds, cfg)
    expected = _expected(ds, cfg)
    arr = _open_complete(final, expected)
    if arr is not None:
        return arr
    try:
        tmp = _extract_to_temp(ds, cfg, expected, final, progress, workers)
        _publish(tmp, final, expected)
    except OSError as exc:  # the cache folder cannot be written: one line naming it
        raise StorageError.from_os(exc, final, "cannot write the feature cache") from exc
    arr = _open_complete(final, expected)
    if arr is None:
        raise HarnessError("feature cache failed verification right after it was written", final)
    return arr


# --------------------------------------------------------------------------- manifest


def _expected(ds: Dataset, cfg: FeatureConfig) -> dict[str, Any]:
    """The manifest fields a cache for ``ds`` under ``cfg`` must have."""
    a = ds.audio
    n_frames = cfg.n_frames(a.sample_rate, a.clip_samples)
    return {
        "format": FORMAT_VERSION,
        "key": feature_key(ds.stamp, cfg, a),
        "identity": ds.identity,
        "config": cfg.to_dict(),
        "audio": a.to_dict(),
        "filenames": [str(f) for f in ds.clips["filename"]],
        "shape": [len(ds.clips), cfg.channels(a.channels), int(cfg.n_mels), int(n_frames)],
        "dtype": cfg.dtype,
    }


def _open_complete(path: Path, expected: dict[str, Any]) -> np.ndarray | None:
    """The cached array if ``path`` holds a complete cache matching ``expected``, else None."""
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("complete") is not True:
        return None
    if any(manifest.get(k) != v for k, v in expected.items()):
        return None
    data = path / DATA_FILE
    try:
        if data.stat().st_size != manifest.get("file_bytes"):
            return None
        arr = np.load(data, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if list(arr.shape) != expected["shape"] or arr.dtype != np.dtype(expected["dtype"]):
        return None
    return arr


def _write_manifest(tmp: Path, expected: dict[str, Any], ds: Dataset, cfg: FeatureConfig, seconds: float) -> None:
    extractor = LogMelExtractor(cfg, ds.audio.sample_rate)
    manifest = dict(expected)
    manifest.update(
        complete=True,
        file_bytes=(tmp / DATA_FILE).stat().st_size,
        root=str(ds.root),
        win_length=extractor.win,
        hop_length=extractor.hop,
        n_fft=extractor.n_fft,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        extraction_seconds=round(seconds, 3),
        host=socket.gethostname(),
        torch=torch.__version__,
    )
    path = tmp / MANIFEST_FILE
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


# --------------------------------------------------------------------------- publishing


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    """Move ``path`` out of the way first, so no half-deleted directory keeps a cache name."""
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _publish(tmp: Path, final: Path, expected: dict[str, Any]) -> None:
    """Rename the finished ``tmp`` to ``final``.

    A complete cache another process put there first wins (ours is dropped); an incomplete or
    mismatching one is moved away and replaced.
    """
    for _ in range(3):
        try:
            os.rename(tmp, final)
            _fsync_dir(final.parent)
            return
        except OSError:
            if not final.exists():
                raise
        if _open_complete(final, expected) is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        _discard(final)
    shutil.rmtree(tmp, ignore_errors=True)
    raise HarnessError("could not move the finished feature cache into place", final)


def _remove_stale(root: Path, key: str) -> None:
    """Temporary directories of ``key`` left by processes that no longer exist (killed runs)."""
    for p in root.glob(f".tmp-{key}-*"):
        try:
            pid = int(p.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".trash-{key}-*"):
        shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class _RowWriter:
    """Extracts a run of clips and writes their rows into the ``.npy`` at their own offset."""

    cfg: FeatureConfig
    audio: AudioSpec
    data_path: str
    data_offset: int
    row_bytes: int

    def __call__(self, task: tuple[int, Sequence[str]]) -> int:
        start, paths = task
        a = self.audio
        extractor = _extractor(self.cfg, a.sample_rate)
        shape = (len(paths), self.cfg.channels(a.channels), self.cfg.n_mels, extractor.n_frames(a.clip_samples))
        rows = np.empty(shape, self.cfg.dtype)
        for i, path in enumerate(paths):
            extractor(load_clip(path, a), out=rows[i])
        with open(self.data_path, "r+b") as f:
            f.seek(self.data_offset + start * self.row_bytes)
            f.write(memoryview(rows).cast("B"))
        return len(paths)


_EXTRACTORS: dict[tuple[FeatureConfig, int], LogMelExtractor] = {}
_WORKER: _RowWriter | None = None


def _extractor(cfg: FeatureConfig, sample_rate: int) -> LogMelExtractor:
    key = (cfg, sample_rate)
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = LogMelExtractor(cfg, sample_rate)
    return _EXTRACTORS[key]


def _keep_buffers_on_heap() -> None:
    """Stop glibc returning each multi-MB audio buffer to the kernel after every clip.

    Otherwise every read re-faults fresh pages, which costs about a third of the time per clip.
    Only done in worker processes, which exit when extraction ends.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
            libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):
            pass


def _init_worker(writer: _RowWriter) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it terminates the pool)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's SIGTERM handler is not the worker's: pool.terminate() ends it
    torch.set_num_threads(1)  # one process per core; intra-op threads would only compete
    _keep_buffers_on_heap()
    _WORKER = writer


def _run_task(task: tuple[int, Sequence[str]]) -> int:
    assert _WORKER is not None
    return _WORKER(task)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _tasks(paths: list[str], size: int) -> Iterator[tuple[int, list[str]]]:
    for start in range(0, len(paths), size):
        yield start, paths[start : start + size]


def _run(writer: _RowWriter, paths: list[str], workers: int, bar: Any) -> None:
    """Fill every row, in worker processes when that helps; errors propagate unchanged."""
    size = max(1, min(CLIPS_PER_TASK, math.ceil(len(paths) / (4 * workers))))
    if workers <= 1 or len(paths) <= size:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for task in _tasks(paths, size):
                bar.update(writer(task))
        finally:
            torch.set_num_threads(threads)
        return
    # fork: workers start in milliseconds with torch already imported (spawn costs ~2 s each);
    # like DataLoader workers they set one intra-op thread before any torch work.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=(writer,)) as pool:
        for n in pool.imap_unordered(_run_task, _tasks(paths, size)):
            bar.update(n)


def _reserve(path: Path) -> None:
    """Allocate the sparse file's blocks now, so a full disk is an ``OSError`` here instead of a
    failed write (or a SIGBUS through a memory map) in a worker halfway through."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "rb+") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise


def _extract(
    ds: Dataset, cfg: FeatureConfig, tmp: Path, expected: dict[str, Any], progress: bool, workers: int
) -> None:
    """Write ``features.npy`` for every row of ``ds.clips`` into ``tmp`` (no manifest)."""
    shape = tuple(expected["shape"])
    mm = np.lib.format.open_memmap(tmp / DATA_FILE, mode="w+", dtype=np.dtype(cfg.dtype), shape=shape)
    offset = int(mm.offset)
    del mm  # the header is written and the file sized; rows are filled by position
    _reserve(tmp / DATA_FILE)
    writer = _RowWriter(
        cfg=cfg,
        audio=ds.audio,
        data_path=str(tmp / DATA_FILE),
        data_offset=offset,
        row_bytes=int(np.prod(shape[1:])) * np.dtype(cfg.dtype).itemsize,
    )
    paths = [str(Path(ds.root) / f) for f in ds.clips["filename"]]
    with progress_bar(total=len(paths), unit="clip", desc=f"log-mel x{cfg.n_mels}", enabled=progress) as bar:
        _run(writer, paths, workers, bar)
    with open(tmp / DATA_FILE, "rb+") as f:
        os.fsync(f.fileno())


def _extract_to_temp(
    ds: Dataset, cfg: FeatureConfig, expected: dict[str, Any], final: Path, progress: bool, workers: int | None
) -> Path:
    """A finished temporary directory beside ``final``; removed again if anything fails."""
    LogMelExtractor(cfg, ds.audio.sample_rate)  # configuration errors before any work
    if len(ds.clips) == 0:
        raise DataError("the dataset lists no clips, so there are no features to compute", ds.root)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final.parent, final.name)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        _extract(ds, cfg, tmp, expected, progress, workers or default_workers())
        _write_manifest(tmp, expected, ds, cfg, time.perf_counter() - t0)
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp
