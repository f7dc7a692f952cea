"""The shared runner: determinism, reuse, resume after SIGKILL, bad input and faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.cli import main
from harness.errors import ConfigError, TrainingError
from harness.runner.config import RunConfig
from harness.runner.train import run

pytestmark = pytest.mark.slow

METRIC_COLS = ["train_loss", "train_ce", "acc", "unseen_acc", "log_loss", "macro_acc"]


def cfg(data: Path, **kw) -> RunConfig:
    base = dict(arch="fcnn", loss="ce", data=str(data), epochs=2, batch_size=16, device="cpu", seed=1)
    base.update(kw)
    return RunConfig(**base)


def epochs(results: Path, summary: dict) -> pd.DataFrame:
    return pd.read_csv(results / summary["run_dir"] / "epochs.csv")


def test_same_seed_same_metrics_and_reuse(tiny_synth: Path, tmp_path: Path) -> None:
    a = run(cfg(tiny_synth, loss="triplet-city", aug="spec"), tmp_path / "a", progress=False)
    b = run(cfg(tiny_synth, loss="triplet-city", aug="spec"), tmp_path / "b", progress=False)
    assert a["run_id"] == b["run_id"] and a["status"] == "complete"
    pd.testing.assert_frame_equal(epochs(tmp_path / "a", a)[METRIC_COLS + ["train_triplet"]],
                                  epochs(tmp_path / "b", b)[METRIC_COLS + ["train_triplet"]])
    assert 0.0 <= a["acc_score"] <= 1.0
    # An identical completed run is a no-op that returns the stored record.
    again = run(cfg(tiny_synth, loss="triplet-city", aug="spec"), tmp_path / "a", progress=False)
    assert again.get("reused") and again["acc_score"] == a["acc_score"]
    # Another seed is another run with other numbers.
    c = run(cfg(tiny_synth, loss="triplet-city", aug="spec", seed=2), tmp_path / "a", progress=False)
    assert c["run_id"] != a["run_id"]
    index = pd.read_csv(tmp_path / "a" / "index.csv")
    assert set(index["run_id"]) == {a["run_id"], c["run_id"]} and (index["status"] == "complete").all()


def test_record_is_complete(tiny_synth: Path, tmp_path: Path) -> None:
    s = run(cfg(tiny_synth, arch="subspectralnet", aug="mixup,spec"), tmp_path, progress=False)
    d = tmp_path / s["run_dir"]
    assert {"config.json", "epochs.csv", "summary.json", "predictions.npz", "checkpoint.pt"} <= {p.name for p in d.iterdir()}
    import json

    import numpy as np

    conf = json.loads((d / "config.json").read_text())
    assert conf["environment"]["packages"]["torch"] and conf["dataset"]["identity"]
    from harness.results.migrate import SCHEMA

    assert conf["schema"] == SCHEMA  # new records say which schema they follow
    z = np.load(d / "predictions.npz")
    assert z["logits"].shape[1] == 10 and z["unseen"].any() and z["official"].any()
    assert set(z["domains"][z["unseen"]]) == {"milan"}
    ep = epochs(tmp_path, s)
    assert "acc_domain_milan" in ep.columns and "acc_class_park" in ep.columns


def test_resume_after_sigkill_matches_uninterrupted(tiny_synth: Path, tmp_path: Path) -> None:
    """Also with a warm-up + cosine schedule stepped every batch and the random augmentations."""
    args = ["--arch", "fcnn", "--loss", "triplet-city", "--data", str(tiny_synth), "--epochs", "4",
            "--batch-size", "16", "--device", "cpu", "--seed", "5", "--no-progress",
            "--optimizer", "adamw", "--weight-decay", "1e-4", "--schedule", "cosine", "--warmup-epochs", "1",
            "--aug", "freq-mixstyle,dir,roll", "--aug-opt", "freq-mixstyle.p=0.5"]
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *args, "--results", str(killed)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(killed.glob("runs/*/epochs.csv")):
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = pd.read_csv(next(killed.glob("runs/*/epochs.csv")))
    assert 1 <= len(partial) < 4, "the kill should land before the run ends"
    assert main(["run", *args, "--results", str(killed)]) == 0
    assert main(["run", *args, "--results", str(tmp_path / "clean")]) == 0
    a = pd.read_csv(next(killed.glob("runs/*/epochs.csv")))
    b = pd.read_csv(next((tmp_path / "clean").glob("runs/*/epochs.csv")))
    assert len(a) == 4
    pd.testing.assert_frame_equal(a[METRIC_COLS + ["lr"]], b[METRIC_COLS + ["lr"]])
    assert a["lr"].iloc[0] < a["lr"].iloc[1] > a["lr"].iloc[3]  # warm-up, then cosine decay


def test_mixup_with_triplet_is_refused(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    code = main(["run", "--loss", "triplet-city", "--aug", "mixup", "--data", str(tiny_synth),
                 "--results", str(tmp_path), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "mixup" in err and "discrete" in err and "\n" not in err
    assert not list(tmp_path.glob("runs/*/summary.json"))


@pytest.mark.parametrize("argv, needle", [
    (["--aug", "cutout"], "cutout"),
    (["--arch", "fcn"], "fcnn"),
    (["--loss", "ce", "--alpha", "0.3"], "alpha"),
    (["--epochs", "0"], "--epochs"),
    (["--split", "leave-one-city-out:atlantis"], "atlantis"),
    (["--data", "/nonexistent/TAU"], "/nonexistent/TAU"),
])
def test_bad_options_one_line_errors(argv, needle, tiny_synth: Path, tmp_path: Path, capsys) -> None:
    base = ["run", "--data", str(tiny_synth), "--results", str(tmp_path), "--no-progress", "--device", "cpu"]
    code = main(base + argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and needle in err and err.count("\n") == 0, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a missing GPU")
def test_cuda_absent_is_an_error(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    code = main(["run", "--data", str(tiny_synth), "--results", str(tmp_path), "--device", "cuda", "--no-progress"])
    assert code == 3 and "no GPU" in capsys.readouterr().err


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tiny_synth: Path, tmp_path: Path, monkeypatch) -> None:
    import losses.ce as ce_module

    original = ce_module.CrossEntropy.forward
    calls = {"n": 0}
    limit = 20  # batches: past the first epoch, so epoch 1's checkpoint exists

    def poisoned(self, out, target, domain=None):
        terms = original(self, out, target, domain)
        calls["n"] += 1
        if calls["n"] > limit:
            terms = {k: v * float("nan") for k, v in terms.items()}
        return terms

    monkeypatch.setattr(ce_module.CrossEntropy, "forward", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite .* at epoch 2"):
        run(cfg(tiny_synth, epochs=3), tmp_path, progress=False)
    ck = torch.load(next(tmp_path.glob("runs/*/checkpoint.pt")), weights_only=False)
    assert ck["epoch"] == 1
    index = pd.read_csv(tmp_path / "index.csv")
    assert list(index["status"]) == ["failed"]


@pytest.mark.parametrize("kind", ["no-unseen-city", "empty-class"])
def test_dataset_that_cannot_serve_the_split(kind: str, tmp_path: Path, capsys) -> None:
    from tau_factory import write_tau

    from harness.data.tau import SCENES

    if kind == "no-unseen-city":  # the "unseen" city is also a training city
        root = write_tau(tmp_path / "tau", scenes=SCENES, cities=("london", "paris"), unseen_city="paris",
                         seconds=1.0, sample_rate=8000)
        needle = "no unseen city"
    else:  # one scene is only in evaluate: its class has no training clip
        from tau_factory import read_rows, write_rows

        root = write_tau(tmp_path / "tau", seconds=1.0, sample_rate=8000)
        train = root / "evaluation_setup" / "fold1_train.csv"
        write_rows(train, [r for r in read_rows(train) if r[1] != "park"])
        needle = "class 'park' with no training clip (empty class)"
    code = main(["run", "--data", str(root), "--results", str(tmp_path / "r"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and str(root) in err and "\n" not in err
    assert not (tmp_path / "r" / "index.csv").exists()


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        RunConfig(preset="fast").resolved()
    assert RunConfig(aug="spec,mixup").resolved().aug == "mixup,spec"
    assert RunConfig(preset="paper").resolved().epochs == 200


def test_sigterm_marks_the_run_failed_and_it_resumes(tiny_synth: Path, tmp_path: Path) -> None:
    args = ["--arch", "fcnn", "--data", str(tiny_synth), "--epochs", "4", "--batch-size", "16", "--device", "cpu",
            "--seed", "6", "--no-progress", "--results", str(tmp_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(tmp_path.glob("runs/*/epochs.csv")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err
    row = pd.read_csv(tmp_path / "index.csv").iloc[0]
    assert row["status"] == "failed"  # not left "running" for liveness to guess at
    failure = json.loads(next(tmp_path.glob("runs/*/failure.json")).read_text())
    assert failure["error"] == "terminated (SIGTERM)"
    assert main(["run", *args]) == 0
    assert pd.read_csv(tmp_path / "index.csv").iloc[0]["status"] == "complete"
    assert len(pd.read_csv(next(tmp_path.glob("runs/*/epochs.csv")))) == 4


class StatusTracker:
    """Records how the runner says a run ended."""

    status = None

    def start(self, run_dir, record, history) -> None:
        pass

    def log_epoch(self, epoch, row) -> None:
        pass

    def finish(self, status, summary) -> None:
        self.status = status


@pytest.mark.parametrize("stop, status", [("prune", "stopped"), ("fail", "failed")])
def test_a_pruned_run_is_stopped_and_a_fault_failed(stop: str, status: str, tiny_synth: Path, tmp_path: Path) -> None:
    import optuna

    exc = optuna.TrialPruned("pruned at epoch 1") if stop == "prune" else RuntimeError("fault")

    def on_epoch(epoch, metrics) -> None:
        raise exc

    tracker = StatusTracker()
    with pytest.raises(type(exc)):
        run(cfg(tiny_synth), tmp_path, progress=False, on_epoch=on_epoch, tracker=tracker)
    assert tracker.status == status


def test_training_alone_never_imports_optuna() -> None:
    code = ("import sys, harness.runner.train as t; from harness.registry import LOSSES; LOSSES.names(); "
            "assert not t.pruned(RuntimeError()); print('optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
