"""The results index under concurrent writers, and atomic writes."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest

from harness.atomic import atomic_path
from harness.results.store import INDEX_COLUMNS, ResultsStore


def _writer(root: str, worker: int, n: int) -> None:
    store = ResultsStore(root)
    for i in range(n):
        store.update_index({"run_id": f"w{worker}-r{i}", "status": "complete", "seed": i, "acc_last10": 0.5})
        # Re-writing a row must replace it, not duplicate it.
        store.update_index({"run_id": f"w{worker}-r{i}", "status": "complete", "seed": i, "acc_last10": 0.75})


def test_concurrent_index_writers_lose_nothing(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    df = pd.read_csv(tmp_path / "index.csv")
    assert list(df.columns) == INDEX_COLUMNS
    assert len(df) == 60 and df["run_id"].is_unique
    assert (df["acc_last10"] == 0.75).all()


def test_atomic_path_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_reindex_rebuilds_from_summaries(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    for i in range(3):
        store.write_summary(f"run{i}", {"run_id": f"run{i}", "status": "complete", "seed": i})
    (tmp_path / "index.csv").unlink()
    assert store.reindex() == 3
    assert sorted(store.load_index()["run_id"]) == ["run0", "run1", "run2"]
