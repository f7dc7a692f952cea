"""``harness grid``: plans the Table 1 runs, skips stored ones, shares the queue between workers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main

pytestmark = pytest.mark.slow


def grid_args(data: Path, results: Path, *extra: str) -> list[str]:
    return ["grid", "--data", str(data), "--results", str(results), "--mels", "40", "--seeds", "1", "--epochs", "1",
            "--batch-size", "16", "--device", "cpu", "--no-progress", *extra]


def test_dry_run_lists_every_row(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    assert main(grid_args(tiny_synth, tmp_path, "--dry-run", "--seeds", "2")) == 0
    out = capsys.readouterr().out
    assert "18 runs (9 variants × 1 mel settings × 2 seeds), 0 already stored, 18 to run" in out
    for name in ("SubSpectralNet", "FCNN-mixup-spec", "FCNN-triplet-spec", "DCASE baseline", "FCNN-triplet-random"):
        assert name in out


def test_local_jobs_then_skip(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    argv = grid_args(tiny_synth, tmp_path, "--variants", "FCNN,FCNN-triplet", "--jobs", "2")
    assert main(argv) == 0
    index = pd.read_csv(tmp_path / "index.csv")
    assert sorted(index["loss"]) == ["ce", "triplet-city"] and (index["status"] == "complete").all()
    capsys.readouterr()
    assert main(argv + ["--dry-run"]) == 0
    assert "2 already stored, 0 to run" in capsys.readouterr().out


def test_workers_share_one_queue(tiny_synth: Path, tmp_path: Path) -> None:
    journal = tmp_path / "queue" / "journal.log"
    argv = grid_args(tiny_synth, tmp_path / "res", "--variants", "FCNN,FCNN-spec,DCASE baseline", "--storage", str(journal))
    # A journal file path is an Optuna storage too; two workers drain the same grid.
    procs = [subprocess.Popen([sys.executable, "-m", "harness.cli", *argv]) for _ in range(2)]
    assert all(p.wait(600) == 0 for p in procs)
    index = pd.read_csv(tmp_path / "res" / "index.csv")
    assert len(index) == 3 and index["run_id"].is_unique and (index["status"] == "complete").all()


def test_loco_plans_one_run_per_held_out_domain(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    argv = grid_args(tiny_synth, tmp_path, "--dry-run", "--split", "loco", "--variants", "FCNN,FCNN-triplet")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "20 runs (2 variants × 1 mel settings × 1 seeds × 10 held-out domains)" in out
    for city in ("barcelona", "milan", "vienna"):
        assert f"loco:{city}" in out
    assert main(grid_args(tiny_synth, tmp_path, "--dry-run", "--split", "loco:rome")) == 2
    assert "unknown city 'rome'" in capsys.readouterr().err


def test_methods_grid_waits_for_then_uses_the_best_teacher(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    from harness.data.registry import open_dataset
    from harness.results.store import ResultsStore
    from harness.runner.config import RunConfig
    from harness.runner.teacher import best_run

    assert main(grid_args(tiny_synth, tmp_path, "--table", "methods", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "6 to run" in out and "(8 variants" in out
    assert "of FCNN-KD, FCNN-KD-triplet wait for a complete stored teacher (best:subspectralnet)" in out
    identity = open_dataset(str(tiny_synth), progress=False).identity
    store = ResultsStore(tmp_path)
    for run_id, acc in (("ssn-weak", 0.4), ("ssn-best", 0.6)):
        store.update_index({"run_id": run_id, "status": "complete", "arch": "subspectralnet", "split": "fold1",
                            "dataset_identity": identity, "acc_score": acc})
    store.update_index({"run_id": "ssn-other-data", "status": "complete", "arch": "subspectralnet", "split": "fold1",
                        "dataset_identity": "elsewhere", "acc_score": 0.9})
    store.update_index({"run_id": "ssn-other-split", "status": "complete", "arch": "subspectralnet",
                        "split": "leave-one-city-out:paris", "dataset_identity": identity, "acc_score": 0.9})
    assert main(grid_args(tiny_synth, tmp_path, "--table", "methods", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "8 to run" in out and re.search(r"fcnn-kd-triplet-city-none-m40(-bf16)?-s0", out) and "wait" not in out
    assert best_run(store, "subspectralnet", RunConfig(split="fold1", dataset_identity=identity)) == "ssn-best"
