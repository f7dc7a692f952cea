"""Writing a generated dataset folder: all or nothing, and once per cache key.

Why: a dataset folder that looks complete is trusted by its loader, so a generator that is
interrupted, runs out of disk or races another process must never leave one half-written. Every
synthetic layout (2019, 2022 Mobile) fills a sibling work folder (``<root>.partial-<pid>``) and
renames it into place at the end; a folder kept in the cache is generated under a lock by the
first caller and reused by the others. The files themselves are written the way TAU distributes
them: TAB-separated UTF-8 metadata with LF line ends, WAV audio, and :data:`SYNTHETIC_MARKER`
beside ``meta.csv`` saying the folder is generated.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf

from harness.errors import ConfigError, DataError, StorageError

#: Written beside ``meta.csv`` of every generated folder (with the generator's version and config):
#: how the ``synthetic`` plugin, and the 2022 loader's ``is_synthetic``, tell generated data from TAU's.
SYNTHETIC_MARKER = "synthetic.json"
_WHAT = "cannot write the synthetic dataset"


# --------------------------------------------------------------------------- files


def write_wav(path: Path, frames: np.ndarray, sample_rate: int, subtype: str) -> None:
    """A WAV file of ``frames`` (``(samples,)`` or ``(samples, channels)``), encoded in memory first
    so that a refused write is an ``OSError`` naming the file."""
    buf = io.BytesIO()
    sf.write(buf, frames, sample_rate, subtype=subtype, format="WAV")
    path.write_bytes(buf.getvalue())


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """TAB-separated UTF-8 without BOM, LF line ends, header first: TAU's metadata format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        f.writelines("\t".join(r) + "\n" for r in rows)


def write_marker(root: Path, record: dict[str, Any]) -> None:
    """:data:`SYNTHETIC_MARKER` in ``root``: the generator's version and config."""
    from harness.atomic import write_json

    write_json(root / SYNTHETIC_MARKER, record)


# --------------------------------------------------------------------------- one folder, atomically


def write_folder(root: str | Path, fill: Callable[[Path], None], overwrite: bool = False) -> Path:
    """``fill(work)`` a sibling work folder, then rename it to ``root``: all or nothing.

    An existing non-empty ``root`` is refused unless ``overwrite``; an interrupted ``fill`` leaves
    no complete-looking ``root`` and no work folder.
    """
    root = Path(root).expanduser()
    if _non_empty(root) and not overwrite:
        raise ConfigError("output folder exists and is not empty (pass overwrite=True / --overwrite)", root)
    work = _partial_dir(root)
    try:
        if work.exists():
            shutil.rmtree(work)
        fill(work)
        _publish(work, root, overwrite)
    except OSError as exc:  # a folder that cannot be written: one line naming it, nothing left
        raise StorageError.from_os(exc, root, _WHAT) from exc
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return root


def _partial_dir(root: Path) -> Path:
    """Sibling work folder; the pid keeps concurrent generators apart. Never looks complete."""
    return root.with_name(f"{root.name}.partial-{os.getpid()}")


def _non_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _publish(work: Path, root: Path, overwrite: bool) -> None:
    """Rename the finished folder into place (replacing an old one only when ``overwrite``)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    old = root.with_name(f"{root.name}.old-{os.getpid()}")
    if overwrite and root.exists():
        os.rename(root, old)
    try:
        os.rename(work, root)  # atomic; fails if another process already put a non-empty root there
    except OSError as exc:
        if old.exists():
            os.rename(old, root)
        raise DataError(f"could not move the generated dataset into place ({exc.strerror})", root) from exc
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- a folder kept in the cache


def generate_once(root: Path, generate: Callable[[Path], object]) -> Path:
    """``root`` as ``generate(root)`` (which writes it with :func:`write_folder`) left it: generated
    by the first caller, reused after.

    Concurrent callers queue on a lock file beside ``root``; should locking not work (e.g. some
    network file systems) each generates into its own partial folder and the first rename wins.
    Work folders of generators that died are removed first.
    """
    if _complete(root):
        return root
    with _lock(root.parent / ".lock"):
        if _complete(root):
            return root
        _remove_stale_partials(root)
        try:
            generate(root)
        except (ConfigError, DataError):
            if _complete(root):  # another process won the race
                return root
            raise
    return root


def _complete(root: Path) -> bool:
    """Whether ``root`` holds a published folder: only :func:`_publish` puts one there."""
    return (root / "meta.csv").is_file()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An advisory inter-process lock; a no-op where flock is unavailable (rename still decides)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")
    except OSError as exc:
        raise StorageError.from_os(exc, path.parent, _WHAT) from exc
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_stale_partials(root: Path) -> None:
    """Delete work folders of generators that died (their pid no longer runs on this host)."""
    for p in root.parent.glob(f"{root.name}.partial-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass
