"""Distributed tuning: two worker commands share one study in PostgreSQL, each trial counted once.

Needs a server: ``HARNESS_TEST_POSTGRES_URL`` (``.ci/run`` starts a local one and sets it)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.tuning.storage import open_storage

URL = os.environ.get("HARNESS_TEST_POSTGRES_URL")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(not URL, reason="HARNESS_TEST_POSTGRES_URL is not set (no PostgreSQL server; .ci/run starts one)"),
]


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    from harness.data.synthetic.tau2019 import generate
    from harness.data.synthetic.world import SynthConfig

    root = generate(SynthConfig(seconds=1.0, segments_per_location=2, locations_per_scene_city=3,
                                cities=("barcelona", "lyon", "prague", "milan")), tmp_path / "tiny", progress=False)
    return root, {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}


def test_two_workers_share_a_postgres_study(data, tmp_path: Path) -> None:
    root, env = data
    name = f"pg-{uuid.uuid4().hex[:8]}"
    storage = open_storage(URL, tmp_path)
    assert storage.get_heartbeat_interval() == 60  # dead workers' trials are failed and retried
    args = ["tune", "--data", str(root), "--study", name, "--storage", URL, "--trials", "4", "--epochs", "2",
            "--score-last", "1", "--batch-size", "16", "--device", "cpu", "--no-progress", "--n-jobs", "1",
            "--arch-opt", "channels=[8,8]"]
    # Each worker has its own results folder, as on separate machines.
    procs = [subprocess.Popen([sys.executable, "-m", "harness.cli", *args, "--results", str(tmp_path / f"r{i}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=900)
            assert p.returncode == 0, err[-2000:]
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert sorted(t.number for t in trials) == list(range(len(trials)))
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert 4 <= len(finished) <= 5 and len(finished) == len(trials)  # at most one overshoot per extra worker
        assert len({t.user_attrs["pid"] for t in trials}) == 2, "both workers ran trials"
        for t in trials:  # each trial ran once, in the results folder of the worker that took it
            here = [i for i in range(2) if (tmp_path / f"r{i}" / "runs" / t.user_attrs["run_id"] / "epochs.csv").exists()]
            assert len(here) == 1
    finally:
        optuna.delete_study(study_name=name, storage=storage)
