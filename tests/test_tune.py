"""``harness tune``: studies that resume, survive killed workers and concurrent writers, and never
select on evaluate rows; ``best_params`` and the storage helper."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.runner.config import RunConfig
from harness.tuning.params import best_params
from harness.tuning.space import parse_range
from harness.tuning.storage import fail_dead_trials, open_storage
from harness.tuning.space import SearchSpace
from harness.tuning.study import default_study_name

STUDY = "t"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny synthetic dataset (10 scenes × 4 cities × 3 locations × 2 one-second clips) and a
    private cache, shared by the module's tests; returns the environment for subprocesses."""
    from harness.data.synthetic.tau2019 import generate
    from harness.data.synthetic.world import SynthConfig

    root = tmp_path_factory.mktemp("tune-data")
    data = generate(SynthConfig(seconds=1.0, segments_per_location=2, locations_per_scene_city=3,
                                cities=("barcelona", "lyon", "prague", "milan")), root / "tiny", progress=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE", str(root / "cache"))
    mp.setenv("MPLBACKEND", "Agg")
    yield {**os.environ, "HARNESS_CACHE": str(root / "cache"), "HARNESS_TEST_DATA": str(data)}
    mp.undo()


def tune_args(env: dict[str, str], results: Path, *extra: str) -> list[str]:
    return ["tune", "--data", env["HARNESS_TEST_DATA"], "--results", str(results), "--study", STUDY,
            "--epochs", "2", "--score-last", "1", "--batch-size", "16", "--device", "cpu", "--no-progress",
            "--n-jobs", "1", "--arch-opt", "channels=[8,8]", *extra]


def cli(env: dict[str, str], results: Path, *extra: str, capsys=None) -> str:
    """``harness tune`` in this process; returns stdout."""
    from harness.cli import main

    assert main(tune_args(env, results, *extra)) == 0
    return capsys.readouterr().out if capsys else ""


def spawn(env: dict[str, str], results: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *tune_args(env, results, *extra)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def load(results: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=open_storage(None, results / "studies" / STUDY))


def wait_for(cond, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"worker ended early (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("timed out waiting for the worker")


def running_with_checkpoint(results: Path) -> bool:
    """A trial is mid-run: RUNNING, and its run has written at least one epoch's checkpoint."""
    try:
        trials = load(results).get_trials(states=(TrialState.RUNNING,))
    except KeyError:
        return False
    return any((results / "runs" / t.user_attrs.get("run_id", "-") / "checkpoint.pt").exists() for t in trials)


# -- end to end -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_study_end_to_end(env, tmp_path: Path, capsys) -> None:
    out = cli(env, tmp_path, "--trials", "3", capsys=capsys)
    study = load(tmp_path)
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)  # 5 trials before pruning
    for t in trials:
        assert 0.01 <= t.params["alpha"] <= 2 and 0.1 <= t.params["gamma"] <= 100
        summary = (tmp_path / "runs" / t.user_attrs["run_id"] / "summary.json")
        assert summary.exists(), "each trial is a normal run in the results store"
        assert sorted(t.intermediate_values) == [1, 2]
    assert len({t.user_attrs["run_id"] for t in trials}) == 3
    best = study.best_trial
    assert f"best: trial {best.number}" in out and "3 complete, 0 pruned, 0 failed" in out
    assert "trials/hour" in out and "optuna-dashboard" in out and "parameter importances" in out
    for name in ("history", "contour", "slice"):
        assert (tmp_path / "studies" / STUDY / f"{name}.png").stat().st_size > 1000
    cfg = best_params(STUDY, RunConfig(loss="triplet-city"), tmp_path)
    assert (cfg.alpha, cfg.gamma) == (best.params["alpha"], best.params["gamma"])
    # `harness run --params-from` trains with them.
    from harness.cli import main

    assert main(["run", "--params-from", STUDY, "--loss", "triplet-city", "--data", env["HARNESS_TEST_DATA"],
                 "--results", str(tmp_path), "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--no-progress",
                 "--arch-opt", "channels=[8,8]"]) == 0
    row = pd.read_csv(tmp_path / "index.csv").query("epochs == 1").iloc[0]
    assert (row["alpha"], row["gamma"]) == pytest.approx((best.params["alpha"], best.params["gamma"]))


@pytest.mark.slow
def test_rerun_continues_the_study(env, tmp_path: Path) -> None:
    cli(env, tmp_path, "--trials", "2")
    first = load(tmp_path).get_trials()
    cli(env, tmp_path, "--trials", "4")
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4 and len(trials) == 4
    assert [t.params for t in trials[:2]] == [t.params for t in first]
    # The continued sampler does not replay the start-up points already tried.
    assert len({(t.params["alpha"], t.params["gamma"]) for t in trials}) == 4
    cli(env, tmp_path, "--trials", "4")  # already full: nothing new
    assert len(load(tmp_path).get_trials()) == 4


@pytest.mark.slow
def test_changed_settings_refuse_to_join_a_study(env, tmp_path: Path, capsys) -> None:
    from harness.cli import main

    cli(env, tmp_path, "--trials", "1")
    capsys.readouterr()
    assert main(tune_args(env, tmp_path, "--trials", "2", "--epochs", "3")) == 2
    err = capsys.readouterr().err
    assert "other settings (harness_config: epochs 2 → 3)" in err and len(err.strip().splitlines()) == 1
    assert len(load(tmp_path).get_trials()) == 1


@pytest.mark.slow
def test_trials_never_score_evaluate_rows(env, tmp_path: Path, monkeypatch) -> None:
    """Every trial trains and scores on rows of the training split only; only --final reads evaluate."""
    import harness.runner.train as train
    from harness.data.registry import open_dataset
    from harness.data.splits import make_split

    calls = []
    real = train.build_rows

    def spy(ds, cfg):
        rows, ev = real(ds, cfg)
        calls.append((cfg.evaluate_on, np.asarray(rows), np.asarray(ev.rows), ev.unseen.copy()))
        return rows, ev

    monkeypatch.setattr(train, "build_rows", spy)
    cli(env, tmp_path, "--trials", "2", "--objective", "unseen", "--final")
    ds = open_dataset(env["HARNESS_TEST_DATA"], progress=False)
    split = make_split(ds, "fold1")
    evaluate = set(np.asarray(split.evaluate).tolist())
    trials = [c for c in calls if c[0] == "validation"]
    assert len(trials) == 2 and len(calls) == 3
    for _, rows, scored, unseen in trials:
        assert not evaluate & set(scored.tolist()) and not evaluate & set(rows.tolist())
        assert set(scored.tolist()) <= set(np.asarray(split.train).tolist())
        assert unseen.any(), "--objective unseen scores a city held out of the tuning train set"
        held = set(ds.clips["domain"].to_numpy()[scored[unseen]])
        assert len(held) == 1 and not held & set(ds.clips["domain"].to_numpy()[rows])
    final = [c for c in calls if c[0] == "evaluate"]
    assert len(final) == 1 and set(final[0][2].tolist()) == evaluate  # the spy does see evaluate rows
    # The stored predictions agree: trial runs hold no evaluate clip.
    eval_files = set(ds.clips["filename"].to_numpy()[sorted(evaluate)])
    for t in load(tmp_path).get_trials():
        with np.load(tmp_path / "runs" / t.user_attrs["run_id"] / "predictions.npz") as z:
            assert not eval_files & set(z["filenames"].tolist())


@pytest.mark.slow
def test_training_error_fails_the_trial_and_the_search_goes_on(env, tmp_path: Path, monkeypatch) -> None:
    import harness.runner.train as train
    from harness.errors import TrainingError

    real, seen = train.run, []

    def flaky(cfg, results, **kw):
        seen.append(cfg.alpha)
        if len(seen) == 1:
            raise TrainingError("non-finite loss at epoch 1")
        return real(cfg, results, **kw)

    monkeypatch.setattr(train, "run", flaky)
    cli(env, tmp_path, "--trials", "2")
    states = [t.state for t in load(tmp_path).get_trials()]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]


def test_a_setting_that_fails_every_trial_stops_the_search(env, tmp_path: Path, monkeypatch, capsys) -> None:
    import harness.runner.train as train
    from harness.cli import main
    from harness.errors import TrainingError

    def broken(cfg, results, **kw):
        raise TrainingError("non-finite triplet loss at epoch 1")

    monkeypatch.setattr(train, "run", broken)
    assert main(tune_args(env, tmp_path, "--trials", "50")) == 3
    err = capsys.readouterr().err
    assert "all 3 trial(s) of this session failed; last: non-finite triplet loss" in err
    assert [t.state for t in load(tmp_path).get_trials()] == [TrialState.FAIL] * 3


# -- interruption and concurrency ------------------------------------------------------------------
@pytest.mark.slow
def test_killed_worker_leaves_a_study_a_rerun_continues(env, tmp_path: Path) -> None:
    proc = spawn(env, tmp_path, "--trials", "1", "--epochs", "4")
    wait_for(lambda: running_with_checkpoint(tmp_path), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stale = load(tmp_path).get_trials(states=(TrialState.RUNNING,))
    assert len(stale) == 1  # SIGKILL gives Optuna no chance: the trial is left RUNNING
    rerun = spawn(env, tmp_path, "--trials", "1", "--epochs", "4")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-2000:]
    assert f"marked trial(s) {stale[0].number} FAIL" in out
    trials = load(tmp_path).get_trials()
    dead = trials[stale[0].number]
    assert dead.state == TrialState.FAIL
    assert sum(t.state in FINISHED for t in trials) == 1 and not [t for t in trials if t.state == TrialState.RUNNING]
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].params == dead.params and retried[0].state in FINISHED
    # Same parameters, same run: the retry resumed the killed run from its checkpoint.
    assert retried[0].user_attrs["run_id"] == dead.user_attrs["run_id"]


@pytest.mark.slow
@pytest.mark.parametrize("sig, jobs, group", [
    (signal.SIGINT, "1", False),  # Ctrl-C, one process
    (signal.SIGINT, "2", True),  # Ctrl-C in a terminal: every process of the group gets it, then the forward
    (signal.SIGTERM, "2", False),  # `kill`: only the command gets it and must stop its workers itself
])
def test_interrupt_marks_the_running_trials_failed(env, tmp_path: Path, sig: int, jobs: str, group: bool) -> None:
    proc = spawn(env, tmp_path, "--trials", "3", "--epochs", "8", "--n-jobs", jobs)
    wait_for(lambda: running_with_checkpoint(tmp_path), proc)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err[-2000:]
    trials = load(tmp_path).get_trials()
    assert trials and all(t.state != TrialState.RUNNING for t in trials), [t.state for t in trials]
    assert any(t.state == TrialState.FAIL for t in trials)


@pytest.mark.slow
def test_concurrent_commands_share_one_file_storage(env, tmp_path: Path) -> None:
    """Two commands (one with two worker processes) on one journal: no lock errors, no trial twice."""
    procs = [spawn(env, tmp_path, "--trials", "6", "--n-jobs", "2"), spawn(env, tmp_path, "--trials", "6")]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-2000:]
        errs.append(err)
    assert not any("database is locked" in e for e in errs)
    trials = load(tmp_path).get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    finished = [t for t in trials if t.state in FINISHED]
    assert 6 <= len(finished) <= 8 and len(finished) == len(trials)  # at most one overshoot per extra worker
    assert len({t.user_attrs["pid"] for t in trials}) >= 2, "the trials were shared between processes"
    run_ids = [t.user_attrs["run_id"] for t in trials]
    assert len(set(run_ids)) == len(run_ids)
    for t in finished:
        if t.state == TrialState.COMPLETE:
            assert (tmp_path / "runs" / t.user_attrs["run_id"] / "summary.json").exists()


# -- units (no training) ---------------------------------------------------------------------------
def test_parse_range_and_space() -> None:
    assert parse_range("0.01,2", "--alpha-range") == (0.01, 2.0)
    for bad in ("1", "2,1", "0,1", "a,b"):
        with pytest.raises(ConfigError, match="--alpha-range"):
            parse_range(bad, "--alpha-range")
    with pytest.raises(ConfigError, match="nothing to tune"):
        SearchSpace(alpha=None, gamma=None)
    assert SearchSpace(lr=(1e-4, 1e-2)).names == ["alpha", "gamma", "lr"]


def test_default_study_name_is_a_safe_folder_name() -> None:
    cfg = RunConfig(arch="timm/resnet18", loss="triplet-city", aug="mixup,spec", dataset_identity="abcdef0123456789")
    assert default_study_name(cfg, "unseen") == "timm_resnet18-triplet-city-mixup+spec-m40-unseen-abcdef01"


def test_open_storage(tmp_path: Path) -> None:
    s = open_storage(None, tmp_path / "studies" / "x")
    assert isinstance(s, JournalStorage) and (tmp_path / "studies" / "x" / "journal.log").exists()
    assert isinstance(open_storage(str(tmp_path / "studies" / "x"), tmp_path), JournalStorage)
    rdb = open_storage(f"sqlite:///{tmp_path / 'o.db'}", tmp_path)
    assert isinstance(rdb, RDBStorage) and rdb.get_heartbeat_interval() == 60
    with pytest.raises(ConfigError, match=r"^--storage nosuchdb://u:\*\*\*@h/d: cannot open") as exc:
        open_storage("nosuchdb://u:secret@h/d", tmp_path)
    assert "\n" not in str(exc.value) and "secret" not in str(exc.value)


def _study(tmp_path: Path, **attrs) -> optuna.Study:
    study = optuna.create_study(study_name=STUDY, storage=open_storage(None, tmp_path / "studies" / STUDY),
                                direction="maximize")
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    return study


def test_best_params(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no study 'nope'"):
        best_params("nope", RunConfig(), tmp_path)
    study = _study(tmp_path, harness_config={"loss": "triplet-city"})
    with pytest.raises(ConfigError, match="no complete trial"):
        best_params(STUDY, RunConfig(loss="triplet-city"), tmp_path)
    dist = optuna.distributions.FloatDistribution(0.01, 100, log=True)
    for a, g, v in ((0.1, 1.0, 0.5), (0.3, 20.0, 0.8), (0.5, 3.0, 0.7)):
        study.add_trial(optuna.create_trial(params={"alpha": a, "gamma": g}, distributions={"alpha": dist, "gamma": dist}, value=v))
    cfg = best_params(STUDY, RunConfig(loss="triplet-city", epochs=3), tmp_path)
    assert (cfg.alpha, cfg.gamma, cfg.epochs, cfg.lr) == (0.3, 20.0, 3, None)
    # A journal path or folder names the study too.
    assert best_params(str(tmp_path / "studies" / STUDY), RunConfig(loss="triplet-city"), tmp_path).gamma == 20.0
    with pytest.raises(ConfigError, match="tuned --loss triplet-city"):
        best_params(STUDY, RunConfig(loss="ce"), tmp_path)


def test_dead_workers_trial_is_failed_and_queued_again(tmp_path: Path) -> None:
    study = _study(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = study.ask({"alpha": optuna.distributions.FloatDistribution(0.01, 2, log=True)})
    mine.set_user_attr("host", socket.gethostname())
    mine.set_user_attr("pid", os.getpid())
    gone = study.ask({"alpha": optuna.distributions.FloatDistribution(0.01, 2, log=True)})
    gone.set_user_attr("host", socket.gethostname())
    gone.set_user_attr("pid", dead.pid)
    elsewhere = study.ask()
    elsewhere.set_user_attr("host", "another-machine")
    elsewhere.set_user_attr("pid", dead.pid)
    assert fail_dead_trials(study) == [gone.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert study.get_trials()[-1].params == gone.params
    assert fail_dead_trials(study) == []


def test_workers_starting_together_draw_different_points() -> None:
    """Same --sampler-seed in two fresh workers: their first trials differ (else one run id, one lock),
    while a given trial number always gets the same point."""
    from harness.tuning.study import TrialSeededTPE

    dist = {"alpha": optuna.distributions.FloatDistribution(0.01, 2, log=True)}
    study = optuna.create_study(direction="maximize")
    study.sampler = TrialSeededTPE(0)
    first = study.ask(dist)
    study.sampler = TrialSeededTPE(0)  # a second worker, created before any trial finished
    second = study.ask(dist)
    assert first.params != second.params
    again = optuna.create_study(direction="maximize", sampler=TrialSeededTPE(0)).ask(dist)
    assert again.params == first.params


def test_an_interrupt_waits_for_a_storage_write_inside_a_trial() -> None:
    from harness.signals import Interrupts

    state, written = Interrupts(), []
    with pytest.raises(KeyboardInterrupt):
        with state.trial():
            with state.shielded():
                state._handle(signal.SIGINT, None)  # lands mid-write: must not raise here
                written.append("epoch 3")
            written.append("not reached")
    assert written == ["epoch 3"] and not state.in_trial
    idle = Interrupts()
    with idle.shielded():  # between trials nothing is raised: the loop stops before the next trial
        idle._handle(signal.SIGTERM, None)
    assert idle.requested
