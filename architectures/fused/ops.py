"""The fused trunk block as PyTorch custom operators with their autograd formulas.

``harness::fcnn_conv_pool`` computes a factorized block's depthwise (1,k) time conv (and, for the
first block, with few input channels, the (k,1) conv too), the BatchNorm batch statistics and the
max-pool window maxima in one pass, without writing the full-resolution activation;
``harness::fcnn_epilogue`` applies BatchNorm's affine map, ReLU and the dropout on the 10x smaller
pooled tensor (they commute with the pooling, see :func:`fused_block`). Each has a backward
operator that recomputes instead of storing. Registered with ``torch.library.custom_op`` and
``register_autograd``; the kernels themselves are plain C (``fcnn_block.c``, :mod:`.build`).
CPU, float32/float64; results depend on the thread count (per-thread partial sums), like oneDNN's.

Whether a block runs fused is decided when the model is built (:func:`plan`); what can change
after that (the tensor's device or dtype, hooks installed by ptflops, tracing) is checked per call
(:func:`obstacle`) and the block then runs its modules, the same function up to float rounding.
"""

import ctypes
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from architectures.fused import build

MAX_K, MAX_STEM_TAPS = 15, 32
#: Channels must be a multiple of the float32 vector width (64-byte vectors).
LANES = 16


def vector_lanes(dtype: torch.dtype) -> int:
    return 64 // torch.empty((), dtype=dtype).element_size()


# -- conv + statistics + pool ------------------------------------------------------------------
@torch.library.custom_op("harness::fcnn_conv_pool", mutates_args=())
def conv_pool(inp: Tensor, wf: Optional[Tensor], bf: Optional[Tensor], wt: Tensor, bt: Tensor, ph: int, pw: int,
              stats: bool, threads: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(P, idx, mean, var): window maxima P (B,F//ph,T//pw,C) of y = time(z) and their positions; the
    batch mean and biased variance of y (float64, zeros without ``stats``). ``inp`` is z (B,C,F,T),
    or with ``wf`` (Cin,k,C) and ``bf`` (C) the stem's input x (B,Cin,F,T) and z = freq(x)."""
    k, c = wt.shape
    dtype = inp.dtype
    if wf is not None:
        x, z = inp.contiguous(), None
        b, cin, f, t = x.shape
        wf, bf = wf.contiguous(), bf.contiguous()
    else:
        x, z = None, inp.permute(0, 2, 3, 1).contiguous()  # a view when inp is channels-last
        b, f, t, _ = z.shape
        cin = 0
    wt, bt = wt.contiguous(), bt.contiguous()
    fp, tp = f // ph, t // pw
    pooled = inp.new_empty((b, fp, tp, c))  # channels last: one vector of channels per window
    idx = torch.empty((b, fp, tp, c), dtype=torch.int32 if dtype == torch.float32 else torch.int64)
    part = torch.zeros((threads, 2, c), dtype=torch.float64) if stats else None
    build.call("fcnn_fwd", dtype, z, x, wf, bf, cin, wt, bt, b, f, t, c, k, ph, pw, pooled, idx, part, threads)
    if not stats:
        return pooled, idx, torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    n = b * f * t
    sums = part.sum(0)
    mean = sums[0] / n
    return pooled, idx, mean, (sums[1] / n - mean * mean).clamp_min(0.0)


@torch.library.custom_op("harness::fcnn_conv_pool_backward", mutates_args=())
def conv_pool_backward(inp: Tensor, wf: Optional[Tensor], bf: Optional[Tensor], wt: Tensor, bt: Tensor,
                       g_pooled: Tensor, idx: Tensor, alpha: Tensor, beta: Tensor, ph: int, pw: int,
                       need_input: bool, threads: int) -> tuple[Tensor, Tensor]:
    """(dz (B,F,T,C) or empty, gradient sums [wt, bt(, wf, bf)] in float64) for dy = alpha + beta·y
    plus ``g_pooled`` at each window's maximum; y (and for the stem z) recomputed."""
    k, c = wt.shape
    dtype = wt.dtype
    stem = wf is not None
    if stem:
        x, z = inp.contiguous(), None
        b, cin, f, t = x.shape
        wf, bf = wf.contiguous(), bf.contiguous()
    else:
        x, z = None, inp.permute(0, 2, 3, 1).contiguous()
        b, f, t, _ = z.shape
        cin = 0
    gz = torch.empty((b, f, t, c), dtype=dtype) if need_input else None
    size = k * c + c + (cin * k * c + c if stem else 0)
    parts = torch.zeros((threads, size), dtype=torch.float64)
    build.call("fcnn_bwd", dtype, z, x, wf, bf, cin, wt.contiguous(), bt.contiguous(), b, f, t, c, k, ph, pw,
               g_pooled.contiguous(), idx, alpha.contiguous(), beta.contiguous(), gz, parts, threads)
    return (gz if gz is not None else torch.empty(0, dtype=dtype)), parts.sum(0)


def _conv_pool_setup(ctx, inputs, output) -> None:
    inp, wf, bf, wt, bt, ph, pw, stats, threads = inputs
    _, idx, mean, _ = output
    ctx.save_for_backward(inp, wf, bf, wt, bt, idx, mean)
    ctx.dims = (ph, pw, threads)
    ctx.mark_non_differentiable(idx)


def _conv_pool_grad(ctx, g_pooled, _g_idx, g_mean, g_var):
    inp, wf, bf, wt, bt, idx, mean = ctx.saved_tensors
    ph, pw, threads = ctx.dims
    k, c = wt.shape
    dtype = wt.dtype
    b, _, f, t = inp.shape
    n = b * f * t
    # d mean/dy = 1/n, d var/dy = 2 (y - mean)/n: dy = alpha + beta * y + scatter(g_pooled)
    g_mean = torch.zeros(c, dtype=torch.float64) if g_mean is None else g_mean.double()
    g_var = torch.zeros(c, dtype=torch.float64) if g_var is None else g_var.double()
    beta = 2.0 * g_var / n
    alpha = (g_mean / n - beta * mean).to(dtype)
    if g_pooled is None:
        g_pooled = torch.zeros((b, f // ph, t // pw, c), dtype=dtype)
    need_input = ctx.needs_input_grad[0]
    gz, total = conv_pool_backward(inp, wf, bf, wt, bt, g_pooled, idx, alpha, beta.to(dtype), ph, pw,
                                   need_input, threads)
    total = total.to(dtype)
    g_wt, g_bt = total[:k * c].view(k, c), total[k * c:k * c + c]
    g_wf = g_bf = g_inp = None
    if wf is not None:
        cin = wf.shape[0]
        g_wf, g_bf = total[k * c + c:k * c + c + cin * k * c].view(cin, k, c), total[-c:]
    if need_input:
        gz = gz.permute(0, 3, 1, 2)  # (B,C,F,T), channels-last
        if wf is not None:
            w4 = wf.permute(2, 0, 1).unsqueeze(-1).contiguous()  # back to (C, Cin, k, 1)
            g_inp = torch.ops.aten.convolution_backward(
                gz, inp, w4, None, [1, 1], [k // 2, 0], [1, 1], False, [0, 0], 1, [True, False, False])[0]
        else:
            g_inp = gz
    return g_inp, g_wf, g_bf, g_wt, g_bt, None, None, None, None


torch.library.register_autograd("harness::fcnn_conv_pool", _conv_pool_grad, setup_context=_conv_pool_setup)


# -- BatchNorm affine map, ReLU, dropout on the pooled tensor -----------------------------------
@torch.library.custom_op("harness::fcnn_epilogue", mutates_args=())
def epilogue(pooled: Tensor, a: Tensor, shift: Tensor, mask: Optional[Tensor], keep: float, channels_last: bool,
             threads: int) -> Tensor:
    """``max(0, a·P + shift)`` per channel (times ``keep`` where ``mask`` (B,Fp,Tp,C) is set, 0 where
    not), from P (B,Fp,Tp,C) to (B,C,Fp,Tp), NCHW or channels-last."""
    b, fp, tp, c = pooled.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((b, c, fp, tp), dtype=pooled.dtype, memory_format=fmt)
    build.call("fcnn_epi_fwd", pooled.dtype, pooled.contiguous(), a.contiguous(), shift.contiguous(), b, fp, tp, c,
               out, mask, float(keep), int(channels_last), threads)
    return out


@torch.library.custom_op("harness::fcnn_epilogue_backward", mutates_args=())
def epilogue_backward(pooled: Tensor, a: Tensor, shift: Tensor, mask: Optional[Tensor], keep: float, g_out: Tensor,
                      threads: int) -> tuple[Tensor, Tensor]:
    """(dP, float64 sums (2, C) of the gradients of ``a`` and ``shift``)."""
    b, fp, tp, c = pooled.shape
    nhwc = g_out.is_contiguous(memory_format=torch.channels_last) and not g_out.is_contiguous()
    g_out = g_out.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    g_pooled = torch.empty_like(pooled)
    parts = torch.zeros((threads, 2, c), dtype=torch.float64)
    build.call("fcnn_epi_bwd", pooled.dtype, pooled.contiguous(), a.contiguous(), shift.contiguous(), g_out, b, fp,
               tp, c, g_pooled, mask, float(keep), int(nhwc), parts, threads)
    return g_pooled, parts.sum(0)


def _epilogue_setup(ctx, inputs, output) -> None:
    pooled, a, shift, mask, keep, _, threads = inputs
    ctx.save_for_backward(pooled, a, shift, mask)
    ctx.keep, ctx.threads = keep, threads


def _epilogue_grad(ctx, g_out):
    pooled, a, shift, mask = ctx.saved_tensors
    g_pooled, sums = epilogue_backward(pooled, a, shift, mask, ctx.keep, g_out, ctx.threads)
    sums = sums.to(pooled.dtype)
    return g_pooled, sums[0], sums[1], None, None, None, None


torch.library.register_autograd("harness::fcnn_epilogue", _epilogue_grad, setup_context=_epilogue_setup)


# -- dropout masks ------------------------------------------------------------------------------
#: Layout of torch.get_rng_state() for the CPU generator (ATen's CPUGeneratorImplState, not a
#: documented format): the mt19937 countdown ``left`` at byte 8, position ``next`` at 16, the 624
#: state words (as 64-bit) at 24. :func:`dropout_exact` checks it against torch at first use and
#: the tests fail naming the torch version when it changes.
RNG_STATE_BYTES, RNG_LEFT, RNG_NEXT, RNG_WORDS = 5056, 8, 16, 24
_dropout_exact: Optional[bool] = None


def dropout_mask(shape: tuple[int, int, int, int], keep_prob: float) -> Tensor:
    """The mask torch's CPU ``bernoulli_(keep_prob)`` would draw for an NCHW tensor of ``shape``, as
    (B,Fp,Tp,C) uint8, advancing the default generator exactly as that call does. Replaying the
    generator in C is several times faster than drawing with torch (docs/precision.md, "The fused FCNN kernels")."""
    state = torch.get_rng_state()
    base = state.data_ptr()
    mask = torch.empty(shape, dtype=torch.uint8)  # drawn in NCHW order, like bernoulli_ on the NCHW tensor
    build.kernels().fcnn_bernoulli_mask(ctypes.c_void_p(base + RNG_WORDS), ctypes.c_void_p(base + RNG_LEFT),
                                        ctypes.c_void_p(base + RNG_NEXT), ctypes.c_long(mask.numel()),
                                        ctypes.c_double(keep_prob), build.ptr(mask))
    torch.set_rng_state(state)
    return mask.permute(0, 2, 3, 1).contiguous()


def dropout_exact() -> bool:
    """Whether :func:`dropout_mask` reproduces this torch's dropout masks bit for bit (checked once
    against ``bernoulli_`` on a few shapes; where it does not, dropout runs as the module)."""
    global _dropout_exact
    if _dropout_exact is None:
        ok = build.kernels() is not None and torch.get_rng_state().numel() == RNG_STATE_BYTES
        saved = torch.get_rng_state()
        try:
            for shape, q in (((2, 3, 5, 7), 0.7), ((3, 16, 4, 9), 0.37), ((1, 16, 10, 100), 0.5)):
                if not ok:
                    break
                torch.set_rng_state(saved)
                ref = torch.empty(shape).bernoulli_(q).bool()
                ref_state = torch.get_rng_state()
                torch.set_rng_state(saved)
                mine = dropout_mask(shape, q).permute(0, 3, 1, 2).bool()
                ok = bool(torch.equal(mine, ref)) and torch.equal(torch.get_rng_state(), ref_state)
        except (RuntimeError, OSError, AttributeError):
            ok = False
        finally:
            torch.set_rng_state(saved)
        _dropout_exact = ok
    return _dropout_exact


# -- when the fused path applies ----------------------------------------------------------------
def _is_plain_pool(pool: nn.Module) -> bool:
    if not isinstance(pool, nn.MaxPool2d):
        return False
    pair = nn.modules.utils._pair
    ks = pair(pool.kernel_size)
    st = pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return (ks == st and pair(pool.padding) == (0, 0) and pair(pool.dilation) == (1, 1)
            and not pool.ceil_mode and not pool.return_indices)


def plan(block: nn.Sequential, pool: nn.Module) -> Optional[str]:
    """Why ``pool(block(x))`` cannot run fused (None: it can), from the modules alone: decided when
    the model is built. ``block`` is (FactorizedConv2d, BatchNorm2d, ReLU); builds the kernels."""
    conv = block[0]
    impl = getattr(conv, "impl", None)
    if impl not in ("fused", "auto"):
        return f"conv_impl={impl}"
    if not (len(block) == 3 and isinstance(block[1], nn.BatchNorm2d) and block[1].affine
            and isinstance(block[2], nn.ReLU)):
        return "block is not conv, BatchNorm, ReLU"
    if not _is_plain_pool(pool):
        return "pooling is not a plain non-overlapping max-pool"
    c = conv.time.out_channels
    if c % LANES:
        return f"{c} channels, not a multiple of {LANES}"
    if conv.kernel_size > MAX_K:
        return f"kernel size {conv.kernel_size} > {MAX_K}"
    if build.kernels() is None:
        return f"kernels unavailable: {build.kernel_error()}"
    return None


def _hooked(modules: list[nn.Module]) -> bool:
    """Forward hooks on any of ``modules`` or globally (ptflops counts through them). Reads torch's
    hook registries (not a public API); a test fails naming the torch version when they move."""
    from torch.nn.modules import module as m

    if m._global_forward_hooks or m._global_forward_pre_hooks:
        return True
    return any(mod._forward_hooks or mod._forward_pre_hooks for mod in modules)


def obstacle(block: nn.Sequential, pool: nn.Module, x: Tensor) -> Optional[str]:
    """Why a block planned as fused must run its modules for this input (None: it runs fused)."""
    if x.device.type != "cpu":
        return f"{x.device.type} tensor"
    if x.dtype not in build.PRECISIONS or x.dim() != 4:
        return f"{x.dtype} input" if x.dim() == 4 else f"{x.dim()}-d input"
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return "TorchScript or torch.compile tracing"
    conv, bn = block[0], block[1]
    if conv.freq.weight.dtype != x.dtype or bn.weight.dtype != x.dtype or conv.freq.weight.device != x.device:
        return "parameters and input differ in dtype or device"
    if block[0].time.out_channels % vector_lanes(x.dtype):
        return "channels not a multiple of the vector width"
    if _hooked([block, conv, conv.freq, conv.time, bn, block[2], pool]):
        return "forward hooks on the block"
    return None


# -- the block ----------------------------------------------------------------------------------
def fused_block(block: nn.Sequential, pool: nn.MaxPool2d, x: Tensor, dropout: Optional[nn.Module] = None,
                channels_last: bool = False) -> Tensor:
    """``dropout(pool(ReLU(BN(conv(x)))))`` for a factorized conv block, the running statistics updated.

    With s = sign(BN weight) (+1 at 0), BN's affine map on y is |a|·(s·y) + c with |a| ≥ 0,
    monotone in s·y, so ReLU and the max-pool commute with it: the kernel pools s·y (by
    negating the time conv's weights where s < 0) and the affine map and ReLU run on the
    pooled tensor. The BN statistics of y come out of the same pass. A training-mode ``nn.Dropout``
    is applied in the same last pass with the mask torch itself would draw (same generator, same
    order: :func:`dropout_exact`); ``channels_last`` picks the output's memory format. Under bf16
    autocast the (k,1) conv of a wide block runs in bf16 and the kernels in ``x``'s dtype.
    """
    conv, bn = block[0], block[1]
    k = conv.kernel_size
    cout, cin = conv.freq.out_channels, conv.freq.in_channels
    ph, pw = nn.modules.utils._pair(pool.kernel_size)
    s = torch.where(bn.weight.detach() >= 0, 1.0, -1.0).to(x.dtype)
    wt = (conv.time.weight.view(cout, k) * s[:, None]).t()
    bt = conv.time.bias * s
    use_batch_stats = bn.training or not bn.track_running_stats or bn.running_mean is None
    threads = torch.get_num_threads()
    if cin * k <= MAX_STEM_TAPS:  # few input channels: compute the (k,1) conv inside the kernel
        wf = conv.freq.weight.view(cout, cin, k).permute(1, 2, 0)
        pooled, _, mean, var = conv_pool(x, wf, conv.freq.bias, wt, bt, ph, pw, use_batch_stats, threads)
    else:
        z = F.conv2d(x.contiguous(memory_format=torch.channels_last), conv.freq.weight, conv.freq.bias,
                     padding=(k // 2, 0)).to(x.dtype)
        pooled, _, mean, var = conv_pool(z, None, None, wt, bt, ph, pw, use_batch_stats, threads)
    mean_s, var = mean.to(x.dtype), var.to(x.dtype)
    if use_batch_stats:
        if bn.training and bn.track_running_stats and bn.running_mean is not None:
            n = x.shape[0] * x.shape[2] * x.shape[3]
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                mom = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                bn.running_mean.mul_(1 - mom).add_(s * mean_s.detach(), alpha=mom)
                bn.running_var.mul_(1 - mom).add_(var.detach() * (n / max(n - 1, 1)), alpha=mom)
        abs_a = bn.weight * s * torch.rsqrt(var + bn.eps)  # |a|, with the gradient of a·s
        shift = bn.bias - abs_a * mean_s
    else:
        a = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        abs_a = a * s
        shift = bn.bias - a * bn.running_mean
    mask, keep = None, 1.0
    fuse_drop = (type(dropout) is nn.Dropout and dropout.training and 0.0 < dropout.p < 1.0
                 and not _hooked([dropout]) and dropout_exact())
    if fuse_drop:
        q = 1.0 - dropout.p
        mask = dropout_mask((x.shape[0], cout, pooled.shape[1], pooled.shape[2]), q)
        keep = float(torch.tensor(1.0, dtype=x.dtype) / torch.tensor(q, dtype=x.dtype))  # as noise.div_(1 - p)
    module_drop = dropout is not None and not fuse_drop
    # dropout left to the module draws its mask in memory order: give it the reference's NCHW layout
    out = epilogue(pooled, abs_a, shift, mask, keep, channels_last and not module_drop, threads)
    return dropout(out) if module_drop else out
