"""``harness grid --jobs N|auto``: how many workers, on which device, and that packing changes no result."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest

from harness import packing
from harness.packing import CONTEXT_BYTES, MAX_PER_GPU, Plan, gpu_jobs, jobs_type, plan_workers

GiB = 2**30


def test_jobs_takes_a_number_or_auto() -> None:
    assert jobs_type("3") == 3 and jobs_type("auto") == "auto" and jobs_type(" AUTO ") == "auto"
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer or auto"):
            jobs_type(bad)


def test_gpu_jobs_fill_memory_up_to_the_caps() -> None:
    assert gpu_jobs([80 * GiB], 4 * GiB, cores=32, runs=36) == [MAX_PER_GPU]  # memory for 16: capped
    assert gpu_jobs([20 * GiB], 4 * GiB, cores=32, runs=36) == [4]             # 0.8 × 20 / 4
    assert gpu_jobs([3 * GiB], 4 * GiB, cores=32, runs=36) == [1]              # too small: one, as alone
    assert gpu_jobs([80 * GiB], 4 * GiB, cores=4, runs=36) == [3]              # a core each, one for the grid
    assert gpu_jobs([80 * GiB], 4 * GiB, cores=32, runs=2) == [2]              # no more workers than runs
    two = gpu_jobs([80 * GiB, 10 * GiB], 4 * GiB, cores=64, runs=36)
    assert two == [MAX_PER_GPU, 2]                                             # each GPU by its own room
    assert gpu_jobs([80 * GiB, 80 * GiB], 4 * GiB, cores=7, runs=36) == [3, 3]  # dealt evenly
    assert gpu_jobs([], 4 * GiB, cores=8, runs=3) == []


def test_cpu_auto_keeps_the_cpu_rule() -> None:
    plan = plan_workers("auto", "cpu", runs=10, cores=2)
    assert plan.slots == ["cpu", "cpu"] and plan.threads == 1 and plan.why == "auto: 2 on the CPU"
    assert plan_workers("auto", "cpu", runs=10, cores=1).slots == ["cpu"]
    assert plan_workers("auto", "cpu", runs=1, cores=16).jobs == 1
    assert plan_workers(3, "cpu", runs=10, cores=12) == Plan(["cpu"] * 3, 4, "--jobs 3")


def test_cuda_workers_spread_over_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packing, "gpus_for", lambda device: [0, 1] if device == "auto" else [int(device[-1])])
    plan = plan_workers("auto", "auto", runs=36, per_run=4 * GiB, cores=16, free=[20 * GiB, 12 * GiB])
    assert sorted(plan.slots) == ["cuda:0"] * 4 + ["cuda:1"] * 2
    assert plan.slots[:2] == ["cuda:0", "cuda:1"]  # the first workers start on different GPUs
    assert "4 on cuda:0 (20.0 GiB free)" in plan.why and "4.00 GiB estimated per run" in plan.why
    assert plan_workers(3, "auto", runs=36, cores=16).slots == ["cuda:0", "cuda:1", "cuda:0"]
    assert plan_workers(4, "cuda:1", runs=36, cores=16).slots == ["cuda:1"] * 4


def test_run_memory_is_measured_on_the_meta_device() -> None:
    import architectures  # noqa: F401

    small = packing.activation_bytes("fcnn", {"conv_impl": "auto"}, (2, 40, 100), 10, 8)
    big = packing.activation_bytes("fcnn", {"conv_impl": "auto"}, (2, 40, 100), 10, 32)
    assert small[0] == big[0] > 10_000                      # parameters do not depend on the batch
    assert 3.5 * small[1] < big[1] < 4.5 * small[1]         # saved activations grow with it
    assert packing.run_bytes(GiB, 1000, 100) == CONTEXT_BYTES + GiB + 16_000 + 200


def test_cli_refuses_a_bad_jobs_value(tmp_path: Path, capsys) -> None:
    from harness.cli import main

    assert main(["grid", "--jobs", "many", "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--jobs" in err and "positive integer or auto" in err and err.count("\n") == 1


@pytest.mark.slow
def test_packed_runs_store_what_single_runs_store(tiny_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys) -> None:
    """--jobs 2 and --jobs 1 on the same seeds: the same metrics, epoch by epoch (one torch thread per
    worker in both, so that only the packing differs)."""
    from harness.cli import main

    monkeypatch.setattr(packing.os, "cpu_count", lambda: 1)
    metrics = {}
    for jobs in ("1", "2"):
        results = tmp_path / f"jobs{jobs}"
        argv = ["grid", "--data", str(tiny_synth), "--results", str(results), "--mels", "40", "--seeds", "2",
                "--epochs", "2", "--batch-size", "16", "--device", "cpu", "--precision", "fp32", "--no-progress",
                "--variants", "FCNN,DCASE baseline", "--jobs", jobs]
        assert main(argv) == 0
        index = pd.read_csv(results / "index.csv").set_index("run_id").sort_index()
        assert len(index) == 4 and (index["status"] == "complete").all()
        metrics[jobs] = {run: pd.read_csv(results / "runs" / run / "epochs.csv").drop(columns=["seconds"])
                         for run in index.index}
    assert sorted(metrics["1"]) == sorted(metrics["2"])
    for run, single in metrics["1"].items():
        pd.testing.assert_frame_equal(single, metrics["2"][run], check_exact=True)
