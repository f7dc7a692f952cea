"""``harness export``: a trained run's model as ONNX or TorchScript, with its preprocessing contract beside it.

The exported graph is the architecture's reference definition (``conv_impl=reference`` where the
architecture has that option: FCNN's fused CPU kernel is a speed choice, not part of the function)
with the run's weights. Input: normalised log-mel ``(batch, channels, n_mels, n_frames)``; output:
logits. ``<run-id>.preprocessing.json`` says how to turn a WAV into that input.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.atomic import atomic_path, write_json
from harness.errors import ConfigError
from harness.inference.trained import TrainedRun

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT, OUTPUT = "features", "logits"
OPSET = 18


class Logits(nn.Module):
    """The model with only its logits as output (what a deployed classifier needs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


@dataclass(frozen=True)
class Exported:
    model: Path
    contract: Path
    max_abs_diff: float | None  # exported vs PyTorch logits on a check batch; None if no runtime to check with


def _example(run: TrainedRun, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *run.preprocessing.input_shape()), generator=g)


def _onnx(module: nn.Module, x: torch.Tensor, path: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise ConfigError(f"ONNX export needs the onnx extra ({exc.name} is not installed): pip install 'harness[onnx]'") from exc
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(module, (x,), input_names=[INPUT], output_names=[OUTPUT], opset_version=OPSET,
                                dynamic_shapes=({0: batch},), dynamo=True, verbose=False)
    with atomic_path(path) as tmp:
        program.save(str(tmp), external_data=False)


def _torchscript(module: nn.Module, x: torch.Tensor, path: Path) -> None:
    traced = torch.jit.trace(module, x)
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp))


def _run_exported(fmt: str, path: Path, x: torch.Tensor) -> np.ndarray | None:
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            return torch.jit.load(str(path)).eval()(x).detach().numpy()
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: x.numpy()})[0]


def export(run: TrainedRun, fmt: str, out: str | Path | None = None) -> Exported:
    """Write ``<out>/<run-id><.onnx|.pt>`` and ``<out>/<run-id>.preprocessing.json``; check the file runs."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    folder = Path(out) if out else run.dir / "export"
    path = folder / f"{run.run_id}{FORMATS[fmt]}"
    module = Logits(run.model(conv_impl="reference")).eval()
    x = _example(run, 2)
    with warnings.catch_warnings():
        # torch's own notices (jit.trace deprecation, tracer shape checks that are constant here) are not the user's business
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, torch.jit.TracerWarning, UserWarning))
        with torch.no_grad():
            (_onnx if fmt == "onnx" else _torchscript)(module, x, path)
    check = _example(run, 3, seed=1)  # another batch size than the example: the batch axis is dynamic
    got = _run_exported(fmt, path, check)
    with torch.no_grad():
        want = module(check).numpy()
    diff = None if got is None else float(np.max(np.abs(got - want)))
    contract = folder / f"{run.run_id}.preprocessing.json"
    write_json(contract, {**run.preprocessing.to_dict(), "run_id": run.run_id, "arch": run.config.arch,
                          "arch_options": run.config.arch_options, "model_file": path.name, "model_format": fmt,
                          "input_name": INPUT, "output_name": OUTPUT,
                          "torch": torch.__version__, **({"onnx_opset": OPSET} if fmt == "onnx" else {})})
    return Exported(path, contract, diff)
