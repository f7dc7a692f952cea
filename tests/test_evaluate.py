"""Reduced-precision evaluation: fp16 casting, int8 post-training quantization, ``harness evaluate``."""

from __future__ import annotations

import json

import pytest
import torch

from harness.errors import ConfigError
from harness.inference.evaluate import parse_precisions
from harness.inference.quantize import convert, forward, param_bytes
from harness.contracts import ModelOutput
from harness.model import count_parameters
from harness.registry import create_architecture
from harness.runner.config import RunConfig


class _Tiny(torch.nn.Module):
    def __init__(self, conv: torch.nn.Module):
        super().__init__()
        self.body = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        h = self.body(x).mean((2, 3))
        return ModelOutput(self.head(h), h)


def test_int8_names_a_layer_it_cannot_quantize() -> None:
    x = torch.randn(4, 1, 8, 8)
    bad = _Tiny(torch.nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular")).eval()
    with pytest.raises(ConfigError, match=r"^layer body\.0 \(ConvReLU2d\) cannot be quantized to int8: 'padding_mode'"):
        convert(bad, "int8", [x])
    with pytest.raises(Exception, match="calibration clips"):
        convert(_Tiny(torch.nn.Conv2d(1, 4, 3)).eval(), "int8", [])
    with pytest.raises(ConfigError, match="--precision"):
        convert(bad, "int4")


def test_int8_close_to_float_and_memory_as_computed() -> None:
    torch.manual_seed(0)
    model = _Tiny(torch.nn.Conv2d(1, 4, 3)).eval()
    x = torch.randn(64, 1, 8, 8)
    q = convert(model, "int8", [x[:32]])
    ref, got = model(x).logits, forward(q, x, "int8").logits
    assert (ref - got).abs().max() < 0.05 * ref.abs().max()
    # batch norm folded into the conv; int8 weights + float32 biases: conv 36 + 4·4, dense 12 + 3·4
    assert param_bytes(q) == (36 + 16) + (12 + 12)
    half = convert(model, "fp16")
    assert param_bytes(half) == 2 * count_parameters(model) and forward(half, x, "fp16").logits.dtype == torch.float16
    assert param_bytes(model) == 4 * count_parameters(model) and next(model.parameters()).dtype == torch.float32


def test_precision_flags() -> None:
    assert parse_precisions("int8, fp16,int8", "--eval-precision") == ["int8", "fp16"]
    assert parse_precisions(None, "--eval-precision") == []
    with pytest.raises(ConfigError, match="^--eval-precision takes fp16 and/or int8"):
        parse_precisions("fp8", "--eval-precision")


def test_bad_eval_precision_refused_before_training(tmp_path, capsys) -> None:
    from harness.cli import main

    assert main(["run", "--eval-precision", "int4", "--results", str(tmp_path)]) == 2
    assert "--eval-precision takes fp16 and/or int8" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert main(["evaluate", "nothing-here", "--results", str(tmp_path)]) == 2


@pytest.mark.slow
def test_reduced_precision_keeps_accuracy_and_shrinks_memory(tiny_synth, tmp_path, capsys, monkeypatch) -> None:
    from harness.cli import main
    from harness.runner import train
    from harness.sampling import PairedBatchSampler

    cfg = RunConfig(arch="dcase-baseline", data=str(tiny_synth), epochs=3, batch_size=16, device="cpu", seed=0,
                    precision="fp32")
    s = train.run(cfg, tmp_path, progress=False)

    def built(*args, **kwargs):
        raise AssertionError("re-scoring a stored run built part of training")

    # Re-scoring reopens the model and its rows: no trainer, optimiser or pair sampler.
    for target in (train.Trainer, torch.optim.Optimizer, PairedBatchSampler):
        monkeypatch.setattr(target, "__init__", built)
    assert main(["evaluate", s["run_id"], "--precision", "fp16,int8", "--results", str(tmp_path), "--no-progress"]) == 0
    assert "evaluated at int8" in capsys.readouterr().out
    stored = json.loads((tmp_path / s["run_dir"] / "summary.json").read_text())
    q = stored["quantized"]
    assert stored["acc_final"] == s["acc_final"] and set(q) == {"fp32", "fp16", "int8"}
    assert q["fp32"]["acc"] == pytest.approx(s["acc_final"])  # the same final model, scored by the same path
    # Tolerances: fp16 within 1 point of float, int8 within 5 points, on the 80 scored clips of a 3-epoch model.
    assert abs(q["fp16"]["acc"] - q["fp32"]["acc"]) <= 0.01
    assert abs(q["int8"]["acc"] - q["fp32"]["acc"]) <= 0.05
    n_train = json.loads((tmp_path / s["run_dir"] / "config.json").read_text())["split"]["train"]
    assert q["int8"]["calibration_clips"] == min(256, n_train) and q["fp16"]["calibration_clips"] == 0
    model = create_architecture("dcase-baseline", n_mels=40, n_frames=50)
    assert q["fp16"]["param_bytes"] == 2 * count_parameters(model) == 2 * s["params"] == q["fp32"]["param_bytes"] // 2
    # int8: batch norm folded into the convolutions; int8 weights, float32 biases of every conv and dense layer
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert q["int8"]["param_bytes"] == sum(m.weight.numel() + 4 * m.weight.shape[0] for m in layers)
    assert q["int8"]["param_bytes"] < q["fp32"]["param_bytes"] / 3
