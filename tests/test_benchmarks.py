"""The speed benchmarks still drive the runner's code, and the bf16 probe's loops compute what they say."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.precision import cpu_flags


def test_train_benchmark_trainer_steps(tmp_path):
    """``benchmarks.train`` wires the runner's Trainer to random features: one step and one evaluation run."""
    import architectures  # noqa: F401
    import losses  # noqa: F401
    from benchmarks.train import Config, make_trainer

    tr = make_trainer(Config("fcnn", 40, "fused", "fp32"), 4, torch.device("cpu"), 4, 4, tmp_path)
    tr.train_epoch(1)
    tr.predict()
    # --input dcase2024: the 1-s mono clip of the DCASE 2024 front end, for the baseline beside FCNN
    from benchmarks.train import INPUTS

    for arch in ("dcase2024-baseline", "fcnn"):
        tr = make_trainer(Config(arch, 256, "fused" if arch == "fcnn" else None, "fp32", *INPUTS["dcase2024"]), 4,
                          torch.device("cpu"), 4, 4, tmp_path)
        assert tuple(tr.x_train.shape[1:]) == (1, 256, 65)
        tr.train_epoch(1)
        assert tr.predict()[0].shape == (4, 10)


@pytest.mark.skipif("avx512_bf16" not in cpu_flags(), reason="this CPU has no avx512_bf16")
def test_dpbf16_loops_match_a_reference():
    from architectures.fused.build import compiler
    from benchmarks import dpbf16

    if compiler() is None:
        pytest.skip("no C compiler")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        lib = dpbf16.build(Path(tmp))
        T, p = 100, dpbf16.p
        z = np.zeros((T + 8, 16), np.float32)
        z[3:T + 3] = rng.normal(size=(T, 16))
        w = np.zeros((8, 16), np.float32)
        w[:7] = rng.normal(size=(7, 16))
        b = rng.normal(size=16).astype(np.float32)
        want = b + sum(w[k] * z[k:k + T] for k in range(7))
        y32, y16 = np.zeros((T, 16), np.float32), np.zeros((T, 16), np.float32)
        pairs, xpairs = dpbf16.aligned(72 * 16), np.zeros(7 * T, np.uint32)  # scratch, alive during the calls
        lib.dw_f32(p(z), p(w), p(b), p(y32), T, 1)
        lib.dw_bf16(p(z), p(w), p(b), p(y16), T, p(pairs), 1)
        np.testing.assert_allclose(y32, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y16, want, rtol=0, atol=3e-2 * np.abs(want).max())
        x = rng.normal(size=(14, T)).astype(np.float32)
        ws = rng.normal(size=(14, 32)).astype(np.float32)
        bs = rng.normal(size=32).astype(np.float32)
        want = (bs + x.T @ ws).reshape(T, 2, 16).transpose(1, 0, 2)  # (channel block, T, 16)
        s32, s16 = np.zeros((2, T, 16), np.float32), np.zeros((2, T, 16), np.float32)
        lib.stem_f32(p(x), p(ws), p(bs), p(s32), T, 2, 1)
        lib.stem_bf16(p(x), p(ws), p(bs), p(s16), T, 2, p(xpairs), 1)
        np.testing.assert_allclose(s32, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(s16, want, rtol=0, atol=3e-2 * np.abs(want).max())
        assert not np.array_equal(s16, s32)  # the bf16 loop really rounds


def test_gpu_check_without_cuda_says_so_and_exits_0(tmp_path):
    """``bash benchmarks/gpu_check.sh`` on a machine without CUDA: one line, exit 0, nothing written."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--out", str(tmp_path)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == [
        "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing measured"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_gpu_check_parts_run_on_the_cpu(tmp_path):
    """The check script's parts, end to end with small settings on the CPU (``--device cpu``): every part
    measured or refused with its reason, and the report written."""
    import json

    from benchmarks import gpu_check

    argv = ["--device", "cpu", "--budget", "600", "--archs", "fcnn", "--mels", "40", "--precisions", "fp32,fp16",
            "--batch-size", "8", "--steps", "2", "--frames", "50", "--seconds", "0.2", "--packing", "1,2",
            "--pack-seconds", "2", "--grid-epochs", "1", "--grid-variants", "FCNN", "--out", str(tmp_path)]
    assert gpu_check.main(argv) == 0
    rec = json.loads((tmp_path / "gpu-cpu.json").read_text())
    fp32, fp16 = rec["speed"]
    assert fp32["train_clips_s"] > 0 and fp32["eval_clips_s"] > 0
    assert fp16["error"].startswith("--precision fp16 trains on CUDA only")
    assert [r["runs"] for r in rec["packing"]] == [1, 2] and all(r["total_clips_s"] > 0 for r in rec["packing"])
    assert rec["targets"]["packing_gain"] == rec["packing"][1]["vs_one"]
    assert rec["grid"]["exit"] == 0 and rec["grid"]["runs_complete"] == 2 and rec["grid"]["table_exit"] == 0
    assert "## Packing FCNN-40" in (tmp_path / "gpu-cpu.md").read_text()
