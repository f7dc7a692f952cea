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
        store.update_index({"run_id": f"w{worker}-r{i}", "status": "complete", "seed": i, "acc_score": 0.5})
        # Re-writing a row must replace it, not duplicate it.
        store.update_index({"run_id": f"w{worker}-r{i}", "status": "complete", "seed": i, "acc_score": 0.75})


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
    assert (df["acc_score"] == 0.75).all()


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


def test_reindex_migrates_run_folders_of_earlier_versions(tmp_path: Path) -> None:
    import json

    run = tmp_path / "runs" / "old-run"
    run.mkdir(parents=True)
    epochs = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.0, 0.5], "acc": [0.2, 0.4, 0.6],
                           "unseen_acc": [0.1, 0.3, 0.5], "eval_loss": [2.0, 1.5, 1.0],
                           "acc_city_milan": [0.1, 0.3, 0.5], "acc_scene_bus": [0.2, 0.4, 0.6], "seconds": 1.0, "lr": 1e-3})
    epochs.to_csv(run / "epochs.csv", index=False)
    (run / "summary.json").write_text(json.dumps({"run_id": "old-run", "status": "complete", "acc_last10": 0.5,
                                                  "unseen_last10": 0.4, "score_epochs": 2, "run_dir": "runs/old-run"}))
    for _ in range(2):  # idempotent
        assert ResultsStore(tmp_path).reindex() == 1
    summary = json.loads((run / "summary.json").read_text())
    assert "acc_last10" not in summary and summary["acc_score"] == 0.5 and summary["score_window"] == 2
    assert summary["scores"]["acc"] == pytest.approx(0.5) and summary["scores"]["log_loss"] == pytest.approx(1.25)
    cols = set(pd.read_csv(run / "epochs.csv").columns)
    assert {"acc_domain_milan", "acc_class_bus", "log_loss"} <= cols and "eval_loss" not in cols
    index = pd.read_csv(tmp_path / "index.csv")
    assert index.loc[0, "acc_score"] == 0.5 and index.loc[0, "score_window"] == 2


def test_rows_of_earlier_versions_read_under_todays_names(tmp_path) -> None:
    """An index that grew across versions (old rows with acc_last10, new ones with acc_score) reads
    as one column, so tables need no --reindex to see the old runs."""
    import pandas as pd

    from harness.results.store import ResultsStore

    pd.DataFrame({"run_id": ["old", "new"], "status": ["complete", "complete"],
                  "acc_last10": [0.61, None], "unseen_last10": [0.42, None],
                  "acc_score": [None, 0.7], "unseen_score": [None, 0.5]}).to_csv(tmp_path / "index.csv", index=False)
    df = ResultsStore(tmp_path).load_index()
    assert list(df["acc_score"]) == [0.61, 0.7] and list(df["unseen_score"]) == [0.42, 0.5]
    assert "acc_last10" not in df and "unseen_last10" not in df
