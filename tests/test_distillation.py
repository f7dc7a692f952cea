"""Knowledge distillation: the loss against a hand computation, every misaligned-teacher error,
and a tiny teacher → student run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.contracts import ModelOutput
from harness.registry import create_loss
from harness.runner.config import RunConfig


def test_kd_loss_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(4, 10)), rng.normal(size=(4, 10)) * 3
    y = np.array([1, 0, 9, 3])
    T, lam = 3.0, 0.3

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    ce = -log_softmax(s)[np.arange(4), y].mean()
    lp_t, lp_s = log_softmax(t / T), log_softmax(s / T)
    kl = (np.exp(lp_t) * (lp_t - lp_s)).sum(1).mean()
    loss = create_loss("kd", temperature=T, weight=lam)
    terms = loss(ModelOutput(torch.from_numpy(s), torch.zeros(4, 3, dtype=torch.float64)), torch.from_numpy(y),
                 torch.zeros(4, dtype=torch.long), teacher=torch.from_numpy(t))
    assert terms["kd"].item() == pytest.approx(T * T * kl, rel=1e-10)
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert terms["loss"].item() == pytest.approx((1 - lam) * ce + lam * T * T * kl, rel=1e-10)
    # The same logits as teacher: no soft term.
    same = loss(ModelOutput(torch.from_numpy(s), torch.zeros(4, 3)), torch.from_numpy(y), None, teacher=torch.from_numpy(s))
    assert same["kd"].item() == pytest.approx(0.0, abs=1e-12)


def test_kd_with_triplet_adds_the_triplet_term() -> None:
    torch.manual_seed(0)
    y, d = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    out = ModelOutput(torch.randn(4, 10, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64))
    terms = create_loss("kd-triplet-city", weight=0.25, gamma=2.0)(out, y, d, teacher=torch.randn(4, 10, dtype=torch.float64))
    expected = 0.75 * terms["ce"] + 0.25 * terms["kd"] + 2.0 * terms["triplet"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-12)
    assert create_loss("kd-triplet-city").pairing == "cross-domain" and create_loss("kd").pairing is None


# -- misaligned teachers --------------------------------------------------------------------------
def _fake_teacher(results: Path, data: Path, run_id: str = "teacher-x", *, status: str = "complete",
                  identity: str | None = None, split: str = "fold1", drop_first: bool = False) -> str:
    """A stored run folder with a config, a summary and stored logits, but no checkpoint."""
    from harness.data.registry import open_dataset
    from harness.runner.rows import build_rows

    ds = open_dataset(str(data), progress=False)
    cfg = RunConfig(arch="fcnn", data=str(data), split=split).resolved().for_dataset(ds)
    cfg.dataset_identity = identity or ds.identity
    folder = results / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": cfg.to_dict()}))
    (folder / "summary.json").write_text(json.dumps({"run_id": run_id, "status": status}))
    train, _ = build_rows(ds, RunConfig(data=str(data)).resolved().for_dataset(ds))
    names = np.sort(ds.clips["filename"].to_numpy()[train].astype(str))[1 if drop_first else 0:]
    np.savez(folder / "teacher_logits.npz", filenames=names, logits=np.zeros((len(names), 10), np.float32))
    return run_id


@pytest.mark.parametrize("case, needle", [
    ("absent", "no such run"),
    ("incomplete", "not complete"),
    ("other-dataset", "dataset identity"),
    ("saw-scored-clips", "a clip the student is scored on"),
    ("missing-logits", "no logits for training clip 'audio/"),
    ("no-best", "no complete stored subspectralnet run"),
    ("no-teacher", "give --teacher"),
    ("teacher-without-kd", "only used by a distillation loss"),
])
def test_misaligned_teacher_is_a_one_line_error(case: str, needle: str, tiny_synth: Path, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    argv = ["run", "--data", str(tiny_synth), "--results", str(results), "--device", "cpu", "--no-progress",
            "--epochs", "1", "--batch-size", "16", "--loss", "kd"]
    if case == "absent":
        argv += ["--teacher", "nope"]
    elif case == "incomplete":
        argv += ["--teacher", _fake_teacher(results, tiny_synth, status="running")]
    elif case == "other-dataset":
        argv += ["--teacher", _fake_teacher(results, tiny_synth, identity="0123456789abcdef")]
    elif case == "saw-scored-clips":  # the student scores paris's training clips, which the fold1 teacher trained on
        argv += ["--teacher", _fake_teacher(results, tiny_synth), "--split", "leave-one-city-out:paris"]
    elif case == "missing-logits":
        argv += ["--teacher", _fake_teacher(results, tiny_synth, drop_first=True)]
    elif case == "no-best":
        argv += ["--teacher", "best:subspectralnet"]
    elif case == "teacher-without-kd":
        argv = [a if a != "kd" else "ce" for a in argv] + ["--teacher", _fake_teacher(results, tiny_synth)]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and "\n" not in err, err
    assert not list(results.glob("runs/*/epochs.csv"))


@pytest.mark.slow
def test_teacher_to_student_end_to_end(tiny_synth: Path, tmp_path: Path) -> None:
    """A 40-mel SubSpectralNet teaches a 20-mel FCNN; logits are stored once and reused."""
    import pandas as pd

    from harness.data.registry import open_dataset
    from harness.results.store import ResultsStore
    from harness.runner.teacher import LOGITS_FILE, _compute
    from harness.runner.train import run

    base = dict(data=str(tiny_synth), epochs=1, batch_size=16, device="cpu")
    teacher = run(RunConfig(arch="subspectralnet", n_mels=40, **base), tmp_path, progress=False)
    student = run(RunConfig(arch="fcnn", n_mels=20, loss="kd", teachers=[teacher["run_id"]], **base), tmp_path, progress=False)
    assert student["status"] == "complete" and "teacher-" not in student["run_id"]
    assert "train_kd" in pd.read_csv(tmp_path / student["run_dir"] / "epochs.csv").columns
    stored = tmp_path / teacher["run_dir"] / LOGITS_FILE
    z = np.load(stored)
    ds = open_dataset(str(tiny_synth), progress=False)
    names = ds.clips["filename"].to_numpy().astype(str)
    rows = np.flatnonzero(np.isin(names, z["filenames"]))
    assert len(rows) == len(z["filenames"]) == int((ds.clips["fold"] == "train").sum())
    tcfg = RunConfig.from_dict(json.loads((tmp_path / teacher["run_dir"] / "config.json").read_text())["config"])
    again = _compute(ds, tcfg, tmp_path / teacher["run_dir"], rows, torch.device("cpu"))
    order = np.argsort(z["filenames"])
    np.testing.assert_allclose(z["logits"][order], again[np.argsort(names[rows])], rtol=1e-4, atol=1e-4)
    # A second student reads the stored logits: the file is not rewritten.
    mtime = stored.stat().st_mtime_ns
    both = run(RunConfig(arch="fcnn", n_mels=20, loss="kd-triplet-city", teachers=[teacher["run_id"]] * 2, **base),
               tmp_path, progress=False)
    assert both["status"] == "complete" and stored.stat().st_mtime_ns == mtime
    assert ResultsStore(tmp_path).summary(both["run_id"])["loss"] == "kd-triplet-city"
    # best:ARCH names the stored teacher: the same run id as naming it.
    best = run(RunConfig(arch="fcnn", n_mels=20, loss="kd", teachers=["best:subspectralnet"], **base), tmp_path, progress=False)
    assert best["run_id"] == student["run_id"] and best.get("reused")
