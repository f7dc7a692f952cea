"""SIGTERM and Ctrl-C stop ``harness grid --jobs 2`` and ``harness tune --n-jobs 2`` within seconds.

Real processes: the command runs in its own session, the signal goes to it alone (``kill``, a
batch scheduler) or to its whole process group (Ctrl-C in a terminal). Within 10 s of the signal
no worker may be alive (checked by pid), no index row may read ``running``, no run may start
after it, and the command exits 143 (SIGTERM) or 130 (Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.processes import pid_alive

ROOT = Path(__file__).parents[1]
#: Seconds the command and its workers get to be gone after the signal.
LIMIT = 10.0


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: parent pids)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        out |= kids
        todo += list(kids)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rows(results: Path) -> pd.DataFrame:
    path = results / "index.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["run_id", "status"])


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *argv], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_until_training(proc: subprocess.Popen, results: Path, workers: int, timeout: float = 600) -> set[int]:
    """Once a run's row reads ``running`` and the workers exist: the worker pids."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended before training (exit {proc.returncode}): {err[-2000:]}")
        kids = {p for p in descendants(proc.pid) if "spawn_main" in cmdline(p)}  # not the resource tracker
        if (rows(results)["status"] == "running").any() and len(kids) >= workers:
            return kids
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no run started in time")


def stop_and_check(proc: subprocess.Popen, sig: int, group: bool, workers: set[int], results: Path) -> tuple[str, pd.DataFrame]:
    before = set(rows(results)["run_id"])
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    while time.monotonic() - sent < LIMIT and any(alive(p) for p in workers):
        time.sleep(0.1)
    left = [p for p in workers if alive(p)]
    try:  # the command itself: its interpreter's teardown alone takes seconds on a busy machine
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the command was still running 60 s after the signal")
    assert not left, f"worker process(es) {left} still alive {LIMIT:.0f} s after the signal"
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    after = rows(results)
    assert not (after["status"] == "running").any(), after[["run_id", "status"]]
    assert set(after["run_id"]) <= before | set(after.loc[after["status"] == "failed", "run_id"])
    assert (after["status"] != "complete").all()  # nothing ran to its end after the signal
    return err, after


def alive(pid: int) -> bool:
    """Alive and not a zombie (an exited child its parent has not reaped yet)."""
    try:
        return pid_alive(pid) and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), pytest.param(signal.SIGINT, True, marks=pytest.mark.slow)])
def test_grid_with_two_jobs_stops_on_a_signal(sig: int, group: bool, tiny_synth: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = start(["grid", "--data", str(tiny_synth), "--results", str(results), "--jobs", "2", "--variants", "FCNN",
                  "--mels", "40", "--seeds", "6", "--epochs", "60", "--device", "cpu", "--precision", "fp32",
                  "--no-progress"], tmp_path)
    workers = wait_until_training(proc, results, 2)
    err, after = stop_and_check(proc, sig, group, workers, results)
    assert "re-run the same command to resume" in err
    assert 1 <= len(after) <= 2 and (after["status"] == "failed").all()  # the two that ran; the other four never started
    what = "terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted"
    failures = [(results / "runs" / r / "failure.json") for r in after["run_id"]]
    assert any(f.exists() and what in f.read_text() for f in failures)


@pytest.mark.slow
@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_tune_with_two_jobs_stops_on_a_signal(sig: int, group: bool, tiny_synth: Path, tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    results = tmp_path / "results"
    proc = start(["tune", "--data", str(tiny_synth), "--results", str(results), "--n-jobs", "2", "--trials", "6",
                  "--arch", "fcnn", "--epochs", "60", "--device", "cpu", "--precision", "fp32", "--study", "s",
                  "--no-progress"], tmp_path)
    workers = wait_until_training(proc, results, 2)
    stop_and_check(proc, sig, group, workers, results)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(results / "studies" / "s" / "journal.log")))
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert trials and all(t.state == TrialState.FAIL for t in trials), [t.state for t in trials]


@pytest.mark.slow
def test_ctrl_c_while_the_grid_workers_are_still_starting(tiny_synth: Path, tmp_path: Path) -> None:
    """A Ctrl-C reaches the whole group while the workers are still importing: they start with
    SIGINT ignored and are stopped by the command, so none ends with a traceback."""
    results = tmp_path / "results"
    proc = start(["grid", "--data", str(tiny_synth), "--results", str(results), "--jobs", "2", "--variants", "FCNN",
                  "--mels", "40", "--seeds", "4", "--epochs", "60", "--device", "cpu", "--precision", "fp32",
                  "--no-progress"], tmp_path)
    end = time.monotonic() + 600
    workers: set[int] = set()
    while time.monotonic() < end and len(workers) < 2 and proc.poll() is None:
        workers = {p for p in descendants(proc.pid) if "spawn_main" in cmdline(p)}
        time.sleep(0.02)
    assert len(workers) == 2 and not (rows(results)["status"] == "running").any(), "the workers were not caught starting"
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the command was still running 60 s after Ctrl-C")
    assert not [p for p in workers if alive(p)]
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert not (rows(results)["status"] == "running").any()
