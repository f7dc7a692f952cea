"""``benchmarks.parity``: fp32/bf16 accuracy summary and the within-noise verdict, on a FABRICATED store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import parity
from harness.results.store import ResultsStore
from tests.fixtures_store import N_CLIPS, clips, write_run


def _store(root, *, ssn_bf16_loses: int = 30, bf16: bool = True):
    """FCNN + triplet-city: bf16 swaps 2 right and 2 wrong clips per seed against fp32 (no effect).
    SubSpectralNet: bf16 gets ``ssn_bf16_loses`` clips wrong that fp32 gets right, every seed."""
    store, c = ResultsStore(root), clips()
    base = np.arange(N_CLIPS) % 2 == 0
    for seed in range(3):
        for arch, loss in (("fcnn", "triplet-city"), ("subspectralnet", "ce")):
            for prec in ("fp32", "bf16") if bf16 else ("fp32",):
                ok = base.copy()
                if prec == "bf16" and arch == "fcnn":
                    ok[[1 + 2 * seed, 3 + 2 * seed]] = True
                    ok[[10 + 2 * seed, 12 + 2 * seed]] = False
                if prec == "bf16" and arch == "subspectralnet":
                    ok[np.flatnonzero(base)[:ssn_bf16_loses]] = False
                run_id = f"fx-{arch}-{prec}-s{seed}"
                acc = float(ok.mean()) + 0.01 * seed
                summary = {"run_id": run_id, "status": "complete", "arch": arch, "loss": loss, "aug": "none",
                           "n_mels": 40, "seed": seed, "epochs": 30, "preset": "quick", "split": "fold1",
                           "dataset_identity": "fixture", "acc_score": acc, "unseen_score": acc - 0.1,
                           "wall_s": 10.0 if prec == "fp32" else 8.0, "device": "cpu", "precision": prec,
                           "run_dir": f"runs/{run_id}"}
                write_run(store, summary, ok, np.zeros((N_CLIPS, 4), np.float16), c)
                (store.run_dir(run_id) / "config.json").write_text(json.dumps(
                    {"environment": {"cpu": "Fixture CPU", "cpu_bf16": "avx512_bf16", "torch_threads": 1}}))
    return root


def test_parity_means_and_verdicts(tmp_path):
    rec = parity.parity(_store(tmp_path))
    assert rec["status"] == "measured"
    assert rec["machine"] == {"cpu": ["Fixture CPU"], "torch_threads": [1], "cpu_bf16": ["avx512_bf16"]}
    rows = {(r["arch"], r["precision"]): r for r in rec["rows"]}
    assert set(rows) == {(a, p) for a in ("fcnn", "subspectralnet") for p in ("fp32", "bf16")}
    fp = rows[("fcnn", "fp32")]
    assert fp["seeds"] == [0, 1, 2] and fp["acc_mean"] == pytest.approx(51.0) and fp["acc_std"] == pytest.approx(1.0)
    assert fp["unseen_mean"] == pytest.approx(41.0) and rows[("fcnn", "bf16")]["wall_s_mean"] == 8.0
    groups = {g["arch"]: g for g in rec["groups"]}
    f, s = groups["fcnn"], groups["subspectralnet"]
    assert f["tests"]["overall"]["diff"] == pytest.approx(0.0) and f["tests"]["overall"]["p"] == 1.0
    assert f["within_noise"] is True
    # 30 of 120 clips lost in each of 3 seeds: Δ = -25 points, far outside the noise
    assert s["tests"]["overall"]["diff"] == pytest.approx(-25.0)
    assert s["tests"]["overall"]["p_holm"] < 1e-6 and s["within_noise"] is False
    assert s["score_diff_per_seed"] == pytest.approx([-25.0] * 3)
    md = "\n".join(parity.markdown(rec))
    assert "DIFFERS" in md and "within noise" in md and "Fixture CPU" in md


def test_parity_needs_both_precisions(tmp_path):
    rec = parity.parity(_store(tmp_path, bf16=False))
    assert rec["groups"] == [] and rec["status"].startswith("not measured: no configuration")
    assert parity.parity(None)["status"].startswith("not measured")


def test_parity_command(tmp_path, capsys):
    out = tmp_path / "out"
    assert parity.main(["--results", str(_store(tmp_path / "r")), "--out", str(out)]) == 0
    rec = json.loads((out / "parity.json").read_text())
    assert [g["within_noise"] for g in rec["groups"]] == [True, False]
    assert (out / "parity.md").read_text().startswith("# Accuracy parity")
    with pytest.raises(SystemExit) as exc:
        parity.main(["--results", str(tmp_path / "nowhere"), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("no index.csv there (not a results folder)")
