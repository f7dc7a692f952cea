"""Run folders and the results index (``index.csv``), safe under concurrent writers.

The index is rewritten whole under an exclusive ``fcntl`` lock and renamed into place, so
readers (pandas, ``harness table``) never see a torn file and concurrent runs never lose
each other's rows.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from harness.atomic import atomic_path, write_json
from harness.errors import ConfigError, DataError, StorageError, TrainingError
from harness.results.migrate import migrate_run, upgrade_index
from harness.results.records import load_summary

INDEX_COLUMNS = [
    "run_id", "status", "arch", "loss", "aug", "n_mels", "seed", "alpha", "gamma", "epochs",
    "batch_size", "lr", "preset", "split", "dataset", "dataset_kind", "dataset_identity",
    "unseen_protocol", "unseen_domains", "acc_score", "unseen_score", "score_window", "acc_final",
    "unseen_final", "params", "wall_s", "device", "precision", "implementation", "fallback", "created", "run_dir",
]

#: The lock a run holds in its folder while it trains.
LOCK_FILE = ".lock"


def check_run_name(name: str, what: str = "run") -> str:
    """A run id is the name of a folder under ``results/runs``, never a path: ``../other/runs/ID``
    or an absolute path would read, and write (``harness export``), outside the results folder."""
    text = str(name)
    if (not text.strip() or text in (".", "..") or "/" in text or "\\" in text
            or any(ord(c) < 32 or ord(c) == 127 for c in text)):
        raise ConfigError(f"{what} {text!r} is not a run id: give the name of a folder under results/runs, not a path "
                          "(`harness table` or index.csv lists them)")
    return text


@contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[None]:
    """An exclusive advisory lock held for the ``with`` block (released if the process dies)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        raise StorageError.from_os(exc, path) from exc
    with fh:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fh, flags)
        except BlockingIOError as exc:
            raise TrainingError(f"{path.parent}: in use by another harness process; wait for it or pick another run") from exc
        except OSError as exc:  # a file system mounted without locks (NFS ``nolock``)
            raise StorageError.from_os(exc, path, verb="cannot lock") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ResultsStore:
    """``results/`` with ``runs/<run-id>/`` folders and ``index.csv``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def index_path(self) -> Path:
        return self.root / "index.csv"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / check_run_name(run_id)

    def load_index(self, *, liveness: bool = False) -> pd.DataFrame:
        """Every run's row; an empty frame with the right columns when nothing is stored.

        With ``liveness``, a ``running`` row whose run no process holds any more (killed, power
        lost) reads ``stale``.
        """
        if not self.index_path.exists():
            return pd.DataFrame(columns=INDEX_COLUMNS)
        try:
            df = pd.read_csv(self.index_path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"results index is unreadable ({exc}); rebuild it with `harness table --reindex`", self.index_path) from exc
        df = upgrade_index(df)  # rows written by earlier versions read under today's names
        if liveness and len(df):
            dead = (df["status"] == "running") & ~df["run_id"].astype(str).map(self.is_running)
            df.loc[dead, "status"] = "stale"
        return df

    def is_running(self, run_id: str) -> bool:
        """Whether a process holds the run's lock now (the runner holds it for the whole run and the
        kernel drops it when the process dies, however it dies). Creates nothing."""
        try:
            fd = os.open(self.run_dir(run_id) / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # closing releases the probe's lock, if it got it
        return False

    def update_index(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of ``row['run_id']`` atomically, under the index lock."""
        with file_lock(self.root / "index.lock"):
            df = self.load_index()
            df = df[df["run_id"] != row["run_id"]]
            new = pd.DataFrame([{c: row.get(c) for c in INDEX_COLUMNS}])
            df = new if df.empty else pd.concat([df, new], ignore_index=True)
            with atomic_path(self.index_path) as tmp:
                df.to_csv(tmp, index=False)

    def index_runs(self, run_ids: list[str]) -> int:
        """Put each run's stored summary into the index where its row is missing or out of date
        (a row lost to a file system whose locks do not hold between hosts); returns how many."""
        df = self.load_index()
        indexed = dict(zip(df["run_id"].astype(str), df["status"].astype(str)))
        fixed = 0
        for run_id in run_ids:
            summary = self.summary(run_id)
            if summary is not None and indexed.get(run_id) != summary.get("status"):
                self.update_index(summary)
                fixed += 1
        return fixed

    def reindex(self) -> int:
        """Rebuild ``index.csv`` from the ``summary.json`` files of every run folder.

        Run folders written by earlier versions are migrated first (:func:`migrate_run`).
        """
        rows = []
        for summary in sorted((self.root / "runs").glob("*/summary.json")):
            rows.append(migrate_run(summary.parent))
        with file_lock(self.root / "index.lock"):
            with atomic_path(self.index_path) as tmp:
                pd.DataFrame(rows, columns=INDEX_COLUMNS).to_csv(tmp, index=False)
        return len(rows)

    def summary(self, run_id: str) -> dict[str, Any] | None:
        """The run's ``summary.json`` (None before it finished); a damaged one is a one-line error."""
        return load_summary(self.run_dir(run_id))

    def write_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        write_json(self.run_dir(run_id) / "summary.json", summary)
        self.update_index(summary)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """``numpy.savez_compressed`` written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_predictions(run_dir: str | Path) -> dict[str, np.ndarray]:
    path = Path(run_dir) / "predictions.npz"
    if not path.exists():
        raise DataError("run has no stored predictions (incomplete run?)", path)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}

