"""The GPU runner's decisions, checked on the CPU: precision per GPU, the implementation a CUDA run
builds and records, and a training step that never reads the device back."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from harness import precision
from harness.errors import ConfigError
from harness.runner.device import arch_options_for, implementation_record

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.mark.parametrize("capability,bf16,expected", [
    ((9, 0), True, "bf16"),    # Hopper
    ((8, 0), True, "bf16"),    # Ampere
    ((7, 5), False, "fp16"),   # Turing: fp16 tensor cores, no bf16
    ((7, 0), False, "fp16"),   # Volta
    ((6, 1), False, "fp32"),   # Pascal: neither
])
def test_auto_precision_on_each_gpu_generation(capability, bf16, expected) -> None:
    got, why = precision.cuda_precision(capability, bf16)
    assert got == expected and why.startswith("auto: ")


def test_auto_on_a_cuda_device_asks_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cuda_capabilities", lambda device: ((7, 5), False))
    assert precision.resolve_precision("auto", CUDA)[0] == "fp16"
    assert precision.resolve_precision("fp16", CUDA) == ("fp16", "requested")
    with pytest.warns(UserWarning, match="CUDA is not available"):  # built, then disabled on this machine
        assert precision.grad_scaler("fp16", CUDA) is not None
    assert precision.grad_scaler("bf16", CUDA) is None and precision.grad_scaler("fp32", CPU) is None


def test_fp16_training_is_refused_on_the_cpu(capsys) -> None:
    with pytest.raises(ConfigError, match="^--precision fp16 trains on CUDA only"):
        precision.resolve_precision("fp16", CPU)
    from harness.cli import main

    assert main(["run", "--precision", "fp16", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness: error: --precision fp16 trains on CUDA only") and err.count("\n") == 1


def test_cuda_never_builds_the_fused_cpu_kernels() -> None:
    from architectures.blocks import FUSED
    from harness.registry import create_architecture
    from harness.runner.config import RunConfig, implementation_options

    cfg = RunConfig(arch="fcnn", device="cpu", precision="fp32").resolved()
    how = implementation_options("fcnn")
    assert cfg.arch_options["conv_impl"] == "auto"
    options, why = arch_options_for(cfg.arch_options, how, CUDA)
    assert options["conv_impl"] == "reference" and why is None  # auto: the best there is, nothing to explain
    options, why = arch_options_for({**cfg.arch_options, "conv_impl": "fused"}, how, CUDA)
    assert options["conv_impl"] == "reference" and "CPU code" in why
    model = create_architecture("fcnn", n_mels=40, n_frames=50, **options)
    assert all(t.plan1 != FUSED and t.plan1 is not None for t in model.trunks)  # never planned fused
    assert arch_options_for(cfg.arch_options, how, CPU) == (cfg.arch_options, None)  # the CPU keeps its choice
    assert arch_options_for({"conv_impl": "channels-last"}, how, CUDA)[0] == {"conv_impl": "channels-last"}
    assert arch_options_for({"hidden": 100}, (), CUDA) == ({"hidden": 100}, None)  # no implementation option
    record = implementation_record(model, CUDA, why)
    assert record["implementation"] in ("cuDNN convolutions", "torch CUDA kernels")
    assert record["fallback"] == why and "never run on a GPU" in record["why"]
    assert record["optimizer_kernels"] == "fused" and record["cudnn_benchmark"] is False
    assert implementation_record(model, CPU) == model.implementation()


#: Tensor methods that make the host wait for a GPU (a copy back, a value read on the host).
HOST_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu, torch.Tensor.__bool__,
              torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.nonzero}


class CountReads(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS or func is torch.nonzero:
            self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


class CountScalars(TorchDispatchMode):
    """Reads that happen inside torch's own code (an ``item`` in C++) show up here."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten._local_scalar_dense, torch.ops.aten.nonzero):
            self.calls.append(str(func))
        return func(*args, **(kwargs or {}))


def steps_trainer(tmp_path, loss: str, aug: str, arch: str = "fcnn", n: int = 48, batch: int = 8):
    """A runner Trainer on random features with several steps per epoch (``benchmarks.train``'s wiring),
    its optimiser built as on CUDA (fused: the step count lives with the parameters; the CPU default
    keeps it in a host tensor, which is read on the host by design)."""
    import architectures  # noqa: F401
    from harness.runner import train
    import losses  # noqa: F401
    from benchmarks.train import Config, make_trainer

    tr = make_trainer(Config(arch, 40, "reference" if arch == "fcnn" else None, "fp32", 2, 50), batch, CPU, n, 8, tmp_path)
    tr.cfg = replace(tr.cfg, loss=loss, aug=aug, aug_options={}).resolved()
    tr.train_rows = np.arange(n)
    tr.labels, tr.domain_codes = np.arange(n) % 4, (np.arange(n) // 4) % 3
    tr.y_train = torch.as_tensor(tr.labels)
    tr.d_train = torch.as_tensor(tr.domain_codes)
    tr.ds.classes = tuple(f"class{i}" for i in range(4))
    tr.domain_vocab = [f"d{i}" for i in range(3)]
    fused = train.fused_optimizer
    train.fused_optimizer = lambda device: True
    try:
        tr.build()
    finally:
        train.fused_optimizer = fused
    return tr


@pytest.mark.parametrize("loss,aug", [("ce", "none"), ("ce", "mixup,spec"), ("triplet-city", "spec")])
def test_a_training_epoch_reads_the_device_once(tmp_path, monkeypatch: pytest.MonkeyPatch, loss, aug) -> None:
    """Every loss sum comes back in one read at the epoch's end, however many steps it has.
    (The triplet loss's readable batch check runs on CPU tensors only: on a GPU it is a device-side
    assert; here it is switched off to count what a GPU run does.)"""
    from losses.triplet import TripletLoss

    monkeypatch.setattr(TripletLoss, "check", lambda self, *a: None)
    tr = steps_trainer(tmp_path, loss, aug)
    assert tr.steps_per_epoch() >= 5
    tr.train_epoch(1)  # warm-up: lazy initialisation outside the count
    reads, scalars = CountReads(), CountScalars()
    with reads, scalars:
        metrics = tr.train_epoch(2)
    assert reads.calls == ["tolist"], reads.calls
    assert scalars.calls == [], scalars.calls
    assert np.isfinite(metrics["train_loss"])


def test_the_count_would_see_a_per_step_read(tmp_path) -> None:
    """The counter is not blind: the per-step read the loop used to do is counted once per step."""
    tr = steps_trainer(tmp_path, "ce", "none")
    reads = CountReads()
    loss_fn = tr.loss_fn

    def reading(*a, **k):
        terms = loss_fn(*a, **k)
        float(terms["loss"].detach())
        return terms

    tr.loss_fn = reading
    with reads:
        tr.train_epoch(1)
    assert reads.calls.count("__float__") == tr.steps_per_epoch()


def test_a_non_finite_loss_still_stops_the_run(tmp_path) -> None:
    from harness.errors import TrainingError

    tr = steps_trainer(tmp_path, "ce", "none")
    loss_fn = tr.loss_fn

    def nan_at_step_3(*a, _n=[0], **k):
        terms = loss_fn(*a, **k)
        _n[0] += 1
        if _n[0] == 3:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    tr.loss_fn = nan_at_step_3
    with pytest.raises(TrainingError, match="^non-finite (ce|loss) loss at epoch 1; stopped, the checkpoint of epoch 0"):
        tr.train_epoch(1)
