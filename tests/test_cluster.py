"""``harness grid --launcher slurm|ray`` on real engines started on this machine (``tests/engines.py``):
a tiny grid through a single-node SLURM (submitit job array) and through a Ray head, with one
run's worker killed mid-run (SIGKILL) and resumed from its last epoch, every run stored once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from engines import Unavailable, holder_of, ray_head, slurm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_conf():
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'harness[slurm]')")
    folder = Path(tempfile.mkdtemp(prefix="hs", dir="/tmp"))  # socket paths must stay short
    try:
        with slurm(folder) as conf:
            yield conf
    except Unavailable as exc:
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_address():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'harness[ray]')")
    folder = Path(tempfile.mkdtemp(prefix="hr", dir="/tmp"))
    try:
        with ray_head(folder) as head:
            yield head
    except Unavailable as exc:
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def grid_argv(data: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "grid", "--data", str(data), "--results", str(results),
            "--variants", "FCNN,DCASE baseline", "--mels", "40", "--seeds", "1", "--epochs", "2",
            "--batch-size", "16", "--device", "cpu", "--precision", "fp32", "--no-progress", *extra]


def kill_after_first_epoch(proc: subprocess.Popen, results: Path, timeout: float = 300) -> tuple[str, pd.DataFrame]:
    """Wait for a run's first checkpoint, SIGKILL the worker holding the run's lock; return the run
    id and its ``epochs.csv`` as the killed worker left it."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for ckpt in (results / "runs").glob("*/checkpoint.pt"):
            pid = holder_of(ckpt.parent / ".lock")
            if pid is None or not (ckpt.parent / "epochs.csv").exists() or (ckpt.parent / "summary.json").exists():
                continue  # epochs.csv is written just after the checkpoint
            epochs = pd.read_csv(ckpt.parent / "epochs.csv")
            os.kill(pid, signal.SIGKILL)
            return ckpt.parent.name, epochs
        time.sleep(0.05)
    raise AssertionError(f"no run reached its first checkpoint (grid exit {proc.poll()})")


def assert_stored_once(results: Path, killed: str, before: pd.DataFrame) -> None:
    index = pd.read_csv(results / "index.csv")
    assert len(index) == 2 and index["run_id"].is_unique and (index["status"] == "complete").all(), index
    assert sorted(p.name for p in (results / "runs").iterdir()) == sorted(index["run_id"])
    after = pd.read_csv(results / "runs" / killed / "epochs.csv")
    assert len(before) == 1 and len(after) == 2
    # The first epoch's row (its wall time included) is the killed worker's: resumed, not retrained.
    pd.testing.assert_frame_equal(after.iloc[:1], before)


def test_slurm_grid_job_array_resumes_a_killed_worker(tiny_synth: Path, tmp_path: Path, slurm_conf: str) -> None:
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    results = tmp_path / "results"
    argv = grid_argv(tiny_synth, results, "--launcher", "slurm", "--slurm-cpus-per-task", "1", "--slurm-time", "10")
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, before = kill_after_first_epoch(first, results)
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 1, out
    assert "slurm: job array" in out and "ended without a result" in out, out
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 already stored, 1 to run" in second.stdout
    assert_stored_once(results, killed, before)


def test_ray_grid_retries_a_killed_worker_from_its_last_epoch(tiny_synth: Path, tmp_path: Path, ray_address) -> None:
    ray_address, auth = ray_address
    results = tmp_path / "results"
    argv = grid_argv(tiny_synth, results, "--launcher", "ray", "--ray-address", ray_address)
    proc = subprocess.Popen(argv, env={**os.environ, **auth}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, before = kill_after_first_epoch(proc, results)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert f"ray: 2 task(s) on the Ray cluster at {ray_address}" in out
    assert_stored_once(results, killed, before)


def test_tune_trial_workers_as_ray_tasks_share_one_study(tiny_synth: Path, tmp_path: Path, ray_address) -> None:
    import optuna

    ray_address, auth = ray_address
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "harness.cli", "tune", "--data", str(tiny_synth), "--results", str(results),
            "--study", "cluster", "--trials", "2", "--epochs", "1", "--score-last", "1", "--batch-size", "16",
            "--device", "cpu", "--precision", "fp32", "--no-progress", "--arch-opt", "channels=[8,8]",
            "--launcher", "ray", "--ray-address", ray_address, "--n-jobs", "2"]
    done = subprocess.run(argv, env={**os.environ, **auth}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ray: 2 trial worker(s)" in done.stdout and "--config" in done.stdout
    study = optuna.load_study(study_name="cluster", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(results / "studies" / "cluster" / "journal.log"))))
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 2
    index = pd.read_csv(results / "index.csv")
    assert len(index) == 2 and index["run_id"].is_unique


def test_slurm_requeues_a_preempted_task_and_the_run_resumes(tiny_synth: Path, tmp_path: Path, slurm_conf: str) -> None:
    """SLURM's warning signal (``--signal=USR2``, sent before the time limit and on preemption):
    submitit requeues the array task and the run goes on from its last epoch, in one submission."""
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    results = tmp_path / "results"
    argv = grid_argv(tiny_synth, results, "--launcher", "slurm", "--slurm-cpus-per-task", "1", "--variants", "FCNN")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not list((results / "runs").glob("*/epochs.csv")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    run = next((results / "runs").glob("*/epochs.csv")).parent
    before = pd.read_csv(run / "epochs.csv")
    jobs = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-n", "harness-grid"], env=env, capture_output=True,
                          text=True, check=True).stdout.split()
    subprocess.run(["scancel", "--signal=USR2", *jobs], env=env, check=True)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    logs = "".join(p.read_text() for p in (results / "slurm").glob("*/*_log.err"))
    assert "this job is preempted" in logs and "DUE TO JOB REQUEUE" in logs, logs
    index = pd.read_csv(results / "index.csv")
    assert len(index) == 1 and (index["status"] == "complete").all()
    pd.testing.assert_frame_equal(pd.read_csv(run / "epochs.csv").iloc[:1], before)
