"""The fast factorized-conv implementations compute exactly the plain (k,1) + depthwise (1,k) definition.

Every ``conv_impl`` is checked against ``reference`` on the whole FCNN: outputs, running
statistics, and gradients with respect to the input and every parameter, in float64 (tight)
and float32 (float tolerance); parameter counts and state_dict keys are unchanged, so a
checkpoint trained with one implementation loads into another.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

import architectures  # noqa: F401  (registers the architectures)
from architectures import blocks
from architectures.blocks import FACTORIZED_IMPLS, FactorizedConv2d
from architectures.fused import build, fused_block, kernel_error, kernels, ops
from harness.errors import ConfigError
from harness.model import count_parameters
from harness.registry import create_architecture

FAST = [i for i in FACTORIZED_IMPLS if i != "reference"]
TOL = {torch.float64: 1e-10, torch.float32: 2e-4}


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is faster and immune to other processes holding the second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def needs_kernels(impl: str) -> None:
    if impl in ("fused", "auto") and kernels() is None:
        pytest.skip(f"fused kernels unavailable here: {kernel_error()}")


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the C kernels called, to prove the fused path ran rather than the fallback."""
    calls: list[str] = []
    real = build.call

    def spy(name, *args):
        calls.append(name)
        return real(name, *args)

    monkeypatch.setattr(build, "call", spy)
    return calls


def pair(impl: str, n_mels: int, n_frames: int, dtype: torch.dtype, **options) -> tuple[nn.Module, nn.Module]:
    """(reference, impl) FCNNs with identical random parameters, BN weights of both signs."""
    torch.manual_seed(0)
    ref = create_architecture("fcnn", n_mels=n_mels, n_frames=n_frames, conv_impl="reference", **options).to(dtype)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
                m.weight.normal_()
                m.bias.normal_(0, 0.5)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    fast = create_architecture("fcnn", n_mels=n_mels, n_frames=n_frames, conv_impl=impl, **options).to(dtype)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def loss_of(out) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(out.logits.shape, generator=g, dtype=out.logits.dtype)
    wb = torch.randn(out.band_logits.shape, generator=g, dtype=out.logits.dtype)
    we = torch.randn(out.embedding.shape, generator=g, dtype=out.logits.dtype)
    return (out.logits * w).sum() + (out.band_logits * wb).sum() + (out.embedding.tanh() * we).sum()


def assert_same_step(ref: nn.Module, fast: nn.Module, x: torch.Tensor, tol: float, seed: int = 5) -> None:
    """One forward/backward of both (same RNG state: dropout masks match); compare everything."""
    xr = x.clone().requires_grad_()
    xf = x.clone().requires_grad_()
    torch.manual_seed(seed)
    out_r = ref(xr)
    torch.manual_seed(seed)
    out_f = fast(xf)
    for name in ("logits", "embedding", "band_logits"):
        a, b = getattr(out_f, name), getattr(out_r, name)
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item(), msg=lambda m: f"{name}: {m}")
    loss_of(out_r).backward()
    loss_of(out_f).backward()
    torch.testing.assert_close(xf.grad, xr.grad, rtol=tol, atol=tol * xr.grad.abs().max().item())
    scale = max(p.grad.abs().max().item() for p in ref.parameters())
    for (name, pr), pf in zip(ref.named_parameters(), fast.parameters()):
        # a conv bias just before training-mode BN has a true gradient of 0 (the mean cancels it)
        atol = tol * max(pr.grad.abs().max().item(), 1e-3 * scale)
        torch.testing.assert_close(pf.grad, pr.grad, rtol=tol, atol=atol, msg=lambda m: f"grad of {name}: {m}")
    for (name, br), bf in zip(ref.named_buffers(), fast.buffers()):
        torch.testing.assert_close(bf, br, rtol=tol, atol=tol, msg=lambda m: f"buffer {name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("impl", FAST)
def test_fast_impl_matches_reference_in_training(impl: str, dtype: torch.dtype, kernel_calls: list[str]) -> None:
    needs_kernels(impl)
    ref, fast = pair(impl, 40, 103, dtype)  # 103 frames: the pooling drops the last 3
    ref.train()
    fast.train()
    x = torch.randn(3, 2, 40, 103, dtype=dtype)
    assert_same_step(ref, fast, x, TOL[dtype])
    if impl in ("fused", "auto"):
        assert {"fcnn_fwd", "fcnn_bwd", "fcnn_epi_fwd", "fcnn_epi_bwd"} <= set(kernel_calls)


@pytest.mark.parametrize("impl", FAST)
def test_fast_impl_matches_reference_at_200_mels_and_in_eval(impl: str, kernel_calls: list[str]) -> None:
    needs_kernels(impl)
    ref, fast = pair(impl, 200, 30, torch.float64)  # 19 sub-bands, channels (32, 64)
    x = torch.randn(2, 2, 200, 30, dtype=torch.float64)
    assert_same_step(ref.train(), fast.train(), x, TOL[torch.float64])
    ref.eval()
    fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(x).logits, ref(x).logits, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(fast(x).embedding, ref(x).embedding, rtol=1e-10, atol=1e-10)
    assert_same_step(ref, fast, x, TOL[torch.float64])  # eval mode with gradients (running statistics)
    if impl in ("fused", "auto"):
        assert "fcnn_fwd" in kernel_calls


def test_fused_block_odd_sizes_and_first_window_wins() -> None:
    """Rows and frames the pooling does not cover still count in the BN statistics; ties pick the first."""
    needs_kernels("fused")
    torch.manual_seed(3)
    for cin, cout, f, t, pool in [(2, 16, 9, 17, (2, 5)), (5, 32, 10, 23, (4, 23)), (3, 16, 7, 12, (3, 4))]:
        block = nn.Sequential(FactorizedConv2d(cin, cout, 7, impl="fused"), nn.BatchNorm2d(cout), nn.ReLU()).double()
        with torch.no_grad():
            block[1].weight.normal_()
        ref = copy.deepcopy(block)
        ref[0].impl = "reference"
        mp = nn.MaxPool2d(pool)
        x = torch.randn(3, cin, f, t, dtype=torch.float64)
        x[0, :, :, :] = 0.0  # a constant clip: equal values in every window
        xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_f, out_r = fused_block(block, mp, xf), mp(ref(xr))
        torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-10)
        g = torch.randn_like(out_r)
        out_f.backward(g)
        out_r.backward(g)
        torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-9, atol=1e-9)
        for (name, pr), pf in zip(ref.named_parameters(), block.parameters()):
            torch.testing.assert_close(pf.grad, pr.grad, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name}: {m}")
        torch.testing.assert_close(block[1].running_var, ref[1].running_var)


@pytest.mark.parametrize("impl", FACTORIZED_IMPLS)
@pytest.mark.parametrize("n_mels,params", [(40, 113_160), (200, 870_600)])
def test_parameter_count_and_keys_unchanged(impl: str, n_mels: int, params: int) -> None:
    model = create_architecture("fcnn", n_mels=n_mels, n_frames=500, conv_impl=impl)
    ref = create_architecture("fcnn", n_mels=n_mels, n_frames=500, conv_impl="reference")
    assert count_parameters(model) == params
    assert list(model.state_dict()) == list(ref.state_dict())
    assert [v.shape for v in model.state_dict().values()] == [v.shape for v in ref.state_dict().values()]


@pytest.mark.parametrize("trained_with,loaded_into", [("auto", "reference"), ("reference", "fused"),
                                                       ("dense", "channels-last")])
def test_checkpoint_trained_with_one_impl_loads_into_another(trained_with: str, loaded_into: str) -> None:
    needs_kernels(trained_with)
    needs_kernels(loaded_into)
    torch.manual_seed(0)
    a = create_architecture("fcnn", n_mels=40, n_frames=50, conv_impl=trained_with)
    opt = torch.optim.Adam(a.parameters(), lr=1e-2)
    x = torch.randn(4, 2, 40, 50)
    for _ in range(3):  # a few real steps: weights and BN running statistics move away from the init
        opt.zero_grad()
        a(x).logits.logsumexp(1).sum().backward()
        opt.step()
    buf = io.BytesIO()
    torch.save({"model": a.state_dict()}, buf)
    buf.seek(0)
    b = create_architecture("fcnn", n_mels=40, n_frames=50, conv_impl=loaded_into)
    b.load_state_dict(torch.load(buf, weights_only=True)["model"])
    a.eval()
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(b(x).logits, a(x).logits, rtol=2e-4, atol=2e-4)


def test_registry_option_and_errors() -> None:
    for impl in FACTORIZED_IMPLS:
        model = create_architecture("fcnn", n_mels=40, n_frames=50, conv_impl=impl)
        convs = [m for m in model.modules() if isinstance(m, FactorizedConv2d)]
        assert convs and all(c.impl == impl for c in convs)
    default = create_architecture("fcnn", n_mels=40, n_frames=50)
    assert all(c.impl == blocks.DEFAULT_IMPL for c in default.modules() if isinstance(c, FactorizedConv2d))
    with pytest.raises(ConfigError, match="unknown factorized conv impl 'fastest'"):
        create_architecture("fcnn", n_mels=40, n_frames=50, conv_impl="fastest")


def test_fused_falls_back_where_it_cannot_run(kernel_calls: list[str]) -> None:
    """Forward hooks (ptflops), channel counts off the vector width: the modules run, same result."""
    needs_kernels("fused")
    ref, fast = pair("fused", 40, 50, torch.float32, channels="24,32")  # 24 is not a multiple of 16 lanes
    x = torch.randn(2, 2, 40, 50)
    assert_same_step(ref, fast, x, TOL[torch.float32])
    assert kernel_calls.count("fcnn_fwd") == 3  # block 2 (32 channels) of each of the 3 bands; block 1 fell back
    kernel_calls.clear()
    ref, fast = pair("fused", 40, 50, torch.float32)
    ref.eval()
    fast.eval()
    seen = []
    handle = fast.trunks[0].block1[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    try:
        with torch.no_grad():
            torch.testing.assert_close(fast(x).logits, ref(x).logits, rtol=2e-4, atol=2e-4)
    finally:
        handle.remove()
    assert seen == [torch.Size([2, 64, 20, 50])]  # the hooked conv ran as a module
    assert kernel_calls.count("fcnn_fwd") == 5  # 3 bands x 2 blocks, less the hooked one


def test_macs_are_counted_on_the_definition() -> None:
    from harness.complexity import measure

    assert measure("fcnn", 40, conv_impl="fused").macs == measure("fcnn", 40, conv_impl="reference").macs


def test_fused_dropout_draws_the_masks_torch_would() -> None:
    """Fused dropout keeps torch's random stream: same mask, generator left in the same state."""
    needs_kernels("fused")
    assert ops.dropout_exact(), f"the CPU generator state layout changed in torch {torch.__version__}"
    torch.manual_seed(11)
    torch.rand(7)  # start mid-block of the generator
    saved = torch.get_rng_state()
    ref = torch.empty(4, 32, 10, 13).bernoulli_(0.7).bool()  # 2 draws per element: several mt19937 blocks
    after = torch.get_rng_state()
    torch.set_rng_state(saved)
    mine = ops.dropout_mask((4, 32, 10, 13), 0.7)
    assert torch.equal(mine.permute(0, 3, 1, 2).bool(), ref)
    assert torch.equal(torch.get_rng_state(), after)
    assert 0.6 < mine.float().mean().item() < 0.8
