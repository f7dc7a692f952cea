"""Tracking: TensorBoard event files read back with TensorBoard's reader; a real MLflow server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.tracking.values import epoch_scalars

pytestmark = pytest.mark.slow


def train_args(data: Path, results: Path, *extra: str) -> list[str]:
    return ["run", "--data", str(data), "--results", str(results), "--epochs", "2", "--batch-size", "16",
            "--device", "cpu", "--no-progress", *extra]


def only_run(results: Path) -> Path:
    (run_dir,) = (results / "runs").iterdir()
    return run_dir


def test_epoch_scalars_name_every_term() -> None:
    row = {"epoch": 3, "train_loss": 1.0, "train_ce": 0.5, "train_triplet": 0.05, "acc": 0.6, "unseen_acc": float("nan"),
           "macro_acc": 0.55, "log_loss": 1.2, "lr": 1e-3, "seconds": 2.0, "acc_city_milan": 0.4}
    assert epoch_scalars(row) == {"train/loss": 1.0, "train/ce": 0.5, "train/triplet": 0.05, "eval/acc": 0.6,
                                  "eval/macro_acc": 0.55, "eval/log_loss": 1.2, "train/lr": 1e-3,
                                  "time/epoch_seconds": 2.0, "eval/acc_city_milan": 0.4}


def test_tensorboard_event_files(tiny_synth: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="--track tensorboard needs the tensorboard package (the test extra has it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(train_args(tiny_synth, tmp_path, "--loss", "triplet-city", "--track", "tensorboard")) == 0
    run_dir = only_run(tmp_path)
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    epochs = pd.read_csv(run_dir / "epochs.csv")
    for column, tag in [("train_loss", "train/loss"), ("train_ce", "train/ce"), ("train_triplet", "train/triplet"),
                        ("acc", "eval/acc"), ("unseen_acc", "eval/unseen_acc"), ("lr", "train/lr"),
                        ("log_loss", "eval/log_loss")]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx(list(epochs[column]), rel=1e-6)
    assert "eval/confusion_matrix" in tags["images"]
    image = acc.Images("eval/confusion_matrix")[-1]
    assert image.width > 100 and image.encoded_image_string.startswith(b"\x89PNG")
    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["arch"].string_value == "fcnn" and start.hparams["loss"].string_value == "triplet-city"
    assert start.hparams["epochs"].number_value == 2
    # Stored runs are reported again from their record: one clean log, not a second copy.
    assert main(train_args(tiny_synth, tmp_path, "--loss", "triplet-city", "--track", "tensorboard")) == 0
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/acc")] == [1, 2]


# -- MLflow: a real server on the loopback, SQLite backend --------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """``mlflow server`` on 127.0.0.1:<free port> with a SQLite store, stopped after the module."""
    pytest.importorskip("mlflow", reason="the MLflow tests need the mlflow package (pip install -e '.[test]' has it)")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600  # a cold start migrates the database: minutes on a loaded 2-core machine
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        yield uri
    finally:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
        log.close()


def test_mlflow_run_params_metrics_artifacts(tiny_synth: Path, tmp_path: Path, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    argv = train_args(tiny_synth, tmp_path, "--track", "mlflow", "--mlflow-uri", mlflow_server,
                      "--mlflow-experiment", "run-test", "--arch-opt", "conv_impl=reference")
    assert main(argv) == 0
    run_dir = only_run(tmp_path)
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("run-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    params = run.data.params
    assert params["arch"] == "fcnn" and params["epochs"] == "2" and params["arch_options.conv_impl"] == "reference"
    epochs = pd.read_csv(run_dir / "epochs.csv")
    for column, key in [("acc", "eval/acc"), ("unseen_acc", "eval/unseen_acc"), ("train_loss", "train/loss"),
                        ("train_ce", "train/ce"), ("lr", "train/lr")]:
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx(list(epochs[column]), rel=1e-6)
    summary = pd.read_json(run_dir / "summary.json", typ="series")
    assert run.data.metrics["summary/acc_score"] == pytest.approx(summary["acc_score"])
    assert run.data.metrics["summary/score_macro_acc"] == pytest.approx(summary["scores"]["macro_acc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "epochs.csv", "summary.json", "predictions.npz", "checkpoint.pt"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "config.json", str(tmp_path / "dl"))
    assert Path(local).read_text() == (run_dir / "config.json").read_text()


def test_tuning_trials_are_child_runs(tiny_synth: Path, tmp_path: Path, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    argv = ["tune", "--data", str(tiny_synth), "--results", str(tmp_path), "--trials", "2", "--epochs", "1",
            "--score-last", "1", "--batch-size", "16", "--n-jobs", "1", "--device", "cpu", "--no-progress",
            "--arch-opt", "channels=[8,8]", "--study", "tracked", "--track", "mlflow", "--mlflow-uri", mlflow_server,
            "--mlflow-experiment", "tune-test"]
    assert main(argv) == 0
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("tune-test")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "tracked"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and len(runs) == 3
    assert sorted(r.data.tags["optuna.trial"] for r in children) == ["0", "1"]
    trial_runs = {p.name for p in (tmp_path / "runs").iterdir()}
    assert {r.info.run_name for r in children} == trial_runs
    assert parent.info.status == "FINISHED" and "best_value" in parent.data.metrics
    assert {"alpha", "gamma"} <= {k.split(".")[-1] for k in children[0].data.params}


def test_unreachable_server_is_one_line_before_training(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("mlflow", reason="needs the mlflow package")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(train_args(tiny_synth, tmp_path, "--track", "mlflow", "--mlflow-uri", uri)) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot reach the MLflow tracking server" in err and uri in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()
    assert main(train_args(tiny_synth, tmp_path, "--track", "mlflow")) == 2
    assert "--mlflow-uri" in capsys.readouterr().err
