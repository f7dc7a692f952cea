"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every record file the harness writes goes through :func:`atomic_path`, so this is also the one
place where a refused write (permission denied, read-only or full file system, a path under a
regular file) becomes a one-line :class:`~harness.errors.StorageError` naming the file, with
nothing half-written left behind. New files get the mode ``open()`` would give them (0666 less
the umask), so a results folder shared by a group stays readable by the group.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.errors import StorageError


def _new_temp(path: Path) -> Path:
    """An empty temporary file beside ``path``, created 0666 & ~umask (``mkstemp`` would give 0600)."""
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place.

    An ``OSError`` while creating, writing or renaming is raised as a ``StorageError`` naming
    ``path``; the temporary file is removed whatever happens.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(path)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError.from_os(exc, path, hide=tmp) from exc
    finally:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
