"""One exception type for every user-facing failure.

The CLI prints ``str(error)`` as a single line and exits non-zero, so every message
must name the file or value at fault and the problem, on one line.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """A user-facing error: bad input, bad data, an impossible configuration."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None):
        message = " ".join(str(message).split())  # guarantee one line
        if path is not None:
            message = f"{path}: {message}"
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class DataError(HarnessError):
    """The dataset on disk is missing, malformed or inconsistent."""


class ConfigError(HarnessError):
    """An option value or a combination of options is invalid."""


class StorageError(HarnessError):
    """The file system refused a read or write: permission, read-only, full, not a folder."""

    exit_code = 4

    @classmethod
    def from_os(cls, exc: OSError, path: str | Path | None = None, verb: str = "cannot write",
                hide: str | Path | None = None) -> "StorageError":
        """``cannot write PATH: No space left on device``, naming the part of the path at fault when it
        differs (``NotADirectoryError`` on a parent), but never a temporary file (``hide``)."""
        target = Path(path) if path is not None else Path(exc.filename) if exc.filename else None
        reason = exc.strerror or str(exc) or type(exc).__name__
        culprit = exc.filename
        if culprit and target is not None and Path(culprit) not in (target, Path(hide) if hide else None):
            reason = f"{reason} ({culprit})"
        return cls(f"{verb} {target}: {reason}" if target is not None else f"{verb}: {reason}")


class TrainingError(HarnessError):
    """Training cannot go on (non-finite loss, out of memory, device missing)."""

    exit_code = 3


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, ``kill``): stopped as Ctrl-C stops, so a run is marked and resumable."""
