"""The fused kernels' build, the record of which implementation ran and why, and bf16 autocast.

The kernels are built from the package's C source into an empty cache; where they cannot be
(no compiler) or cannot run (forward hooks), the model runs its modules and says why, and a
run's ``config.json`` and summary carry that. The torch internals the fused path reads (the CPU
generator's state layout, the forward-hook registries) fail here, naming the torch version, when
a torch release moves them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import architectures  # noqa: F401  (registers the architectures)
from architectures.fused import build, ops
from harness.registry import create_architecture

TORCH = f"torch {torch.__version__}"


@pytest.fixture
def fresh_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An empty kernel cache and no loaded library; afterwards the session's library is reloaded."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    build.reset()
    yield tmp_path / "cache" / "kernels"
    monkeypatch.undo()
    build.reset()


def test_builds_from_a_clean_cache(fresh_build: Path) -> None:
    if build.compiler() is None:
        pytest.skip("no C compiler here")
    assert not fresh_build.exists()
    lib = build.kernels()
    assert lib is not None, build.kernel_error()
    assert [p.name for p in fresh_build.iterdir()] == [build.library_path().name]  # no temporary left
    model = create_architecture("fcnn", n_mels=40, n_frames=50)
    model(torch.randn(2, 2, 40, 50))
    assert model.implementation() == {"implementation": "fused", "fallback": None}


def test_no_compiler_falls_back_and_says_why(fresh_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-anywhere")
    model = create_architecture("fcnn", n_mels=40, n_frames=50)  # the choice is made here
    assert build.kernels() is None and not fresh_build.exists()
    record = model.implementation()
    assert record["implementation"] == "torch modules"
    assert "kernels unavailable: no C compiler found (CC=no-such-compiler-anywhere)" in record["fallback"]
    model(torch.randn(2, 2, 40, 50))  # runs, as the reference definition
    assert model.implementation() == record


def test_hooks_fall_back_and_are_recorded() -> None:
    if build.kernels() is None:
        pytest.skip(f"fused kernels unavailable here: {build.kernel_error()}")
    model = create_architecture("fcnn", n_mels=40, n_frames=50).eval()
    with torch.no_grad():
        model(torch.randn(2, 2, 40, 50))
    assert model.implementation() == {"implementation": "fused", "fallback": None}
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        with torch.no_grad():
            model(torch.randn(2, 2, 40, 50))
    finally:
        handle.remove()
    record = model.implementation()
    assert record == {"implementation": "fused, partly torch modules", "fallback": "forward hooks on the block"}, \
        f"{TORCH}: the fused path no longer sees forward hooks (torch.nn.modules.module hook registries moved)"


def test_torch_internals_the_fused_path_reads_are_where_expected() -> None:
    from torch.nn.modules import module as m

    assert hasattr(m, "_global_forward_hooks") and hasattr(nn.Linear(1, 1), "_forward_pre_hooks"), \
        f"{TORCH} moved the forward-hook registries the fused path checks"
    assert torch.get_rng_state().numel() == ops.RNG_STATE_BYTES, \
        f"{TORCH} changed the CPU generator state layout the fused dropout replays"


def test_subspectralnet_records_plain_modules() -> None:
    from harness.model import implementation

    model = create_architecture("subspectralnet", n_mels=40, n_frames=50)
    assert implementation(model) == {"implementation": "torch modules", "fallback": None}
    assert implementation(nn.Linear(2, 2)) == {"implementation": "torch modules", "fallback": None}


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_bf16_autocast_matches_float32_at_bf16_tolerance(impl: str) -> None:
    """Under bf16 autocast every implementation stays within bf16 rounding of the float32 model."""
    if impl == "fused" and build.kernels() is None:
        pytest.skip(f"fused kernels unavailable here: {build.kernel_error()}")
    torch.manual_seed(0)
    ref = create_architecture("fcnn", n_mels=40, n_frames=50, conv_impl="reference").eval()
    fast = create_architecture("fcnn", n_mels=40, n_frames=50, conv_impl=impl).eval()
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(4, 2, 40, 50)
    with torch.no_grad():
        want = ref(x).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(x).logits.float()
    torch.testing.assert_close(got, want, rtol=5e-2, atol=5e-2 * want.abs().max().item())
    assert fast.implementation()["implementation"] == ("fused" if impl == "fused" else "torch modules")


@pytest.mark.slow
def test_run_record_names_implementation_and_fallback(tiny_synth: Path, tmp_path: Path, fresh_build: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.runner.config import RunConfig
    from harness.runner.train import run

    monkeypatch.setenv("HARNESS_NO_FUSED_KERNELS", "1")
    cfg = RunConfig(arch="fcnn", data=str(tiny_synth), epochs=1, batch_size=16, device="cpu", precision="fp32")
    summary = run(cfg, tmp_path / "results", progress=False)
    assert summary["implementation"] == "torch modules" and summary["precision"] == "fp32"
    assert summary["fallback"] == "kernels unavailable: disabled by HARNESS_NO_FUSED_KERNELS"
    config = json.loads((tmp_path / "results" / summary["run_dir"] / "config.json").read_text())
    assert config["implementation"] == {"implementation": "torch modules", "fallback": summary["fallback"]}
    assert config["precision"] == {"precision": "fp32", "why": "requested"}
    assert config["environment"]["cpu_bf16"] in (None, "avx512_bf16", "amx_bf16")
