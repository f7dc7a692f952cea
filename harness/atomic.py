"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every record file the harness writes goes through :func:`atomic_path`, so this is also the one
place where a refused write (permission denied, read-only or full file system, a path under a
regular file) becomes a one-line :class:`~harness.errors.StorageError` naming the file, with
nothing half-written left behind. New files get the mode ``open()`` would give them (0666 less
the umask), so a results folder shared by a group stays readable by the group.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.errors import StorageError

#: Less free space than this (for an unprivileged writer) counts as a full file system.
FULL_BYTES = 1 << 20


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
    except RuntimeError as exc:  # a library's writer that reports the file system's refusal as its own error
        cause = hidden_os_error(exc, path)
        if cause is None:
            raise
        raise StorageError.from_os(cause, path, hide=tmp) from exc
    finally:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def hidden_os_error(exc: BaseException, path: str | Path) -> OSError | None:
    """The ``OSError`` behind a library's ``RuntimeError``, or None when there is none.

    torch's zip writer turns a failed write into ``RuntimeError: [enforce fail at
    inline_container.cc] unexpected pos``: the ``OSError`` the Python file raised is its context
    when torch wrote through a Python file, and is lost when torch wrote the file itself. So the
    chain is searched first; failing that, a file system with no space left where ``path`` lies
    says what happened (a full disk is the one refusal that lets a write start and then fail).
    """
    seen = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, OSError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    try:
        fs = os.statvfs(Path(path).parent)
    except OSError:
        return None
    if fs.f_bavail * fs.f_frsize < FULL_BYTES:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
