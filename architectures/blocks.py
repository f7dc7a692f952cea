"""Building blocks shared by the DCASE baseline, SubSpectralNet and the factorized CNN.

All three models use the same two-block CNN trunk (conv → BN → ReLU → max-pool → dropout,
twice); they differ only in the first pooling, the kind of convolution and whether the input
is cut into sub-bands. Keeping the trunk here makes "FCNN = SubSpectralNet with factorized
convolutions" literally true in code.

The factorized block has several implementations of the same function (``conv_impl``), all with
the same parameters and state_dict keys, so a checkpoint trained with one loads into any other:

``reference``      the plain definition: Conv (k,1) then depthwise Conv (1,k), NCHW.
``channels-last``  the same two convolutions on channels-last tensors (oneDNN's NHWC kernels).
``dense``          the rank-1 kernel materialised as one dense k×k conv plus the exact bias map
                   (k× the multiply-accumulates of the factorized form).
``fused``          conv → BatchNorm → ReLU → max-pool (→ the dropout after the first pool) of a
                   trunk block as one step, with small C kernels (compiled on first use, see
                   :func:`fused_kernels`): one pass computes the depthwise time conv, the BatchNorm
                   batch statistics and the window maxima without writing the full-resolution
                   activation (for the first block, with 2 input channels, the (k,1) conv too);
                   BN's affine map, ReLU and dropout then run on the 10x smaller pooled tensor (they
                   commute with the pooling, see :func:`fused_block`); backward recomputes instead of
                   storing. Dropout masks are the ones torch would draw (:func:`fused_dropout_exact`),
                   so a seeded run sees the same masks as with ``reference``. CPU, float32/float64;
                   the result depends on the thread count (per-thread partial sums), like oneDNN's.
``auto``           ``fused`` where it applies (CPU tensors, kernel available), else ``reference``.

Where ``fused`` cannot run (a CUDA tensor, channels not a multiple of the vector width, forward
hooks on the block's modules as ptflops installs, TorchScript or torch.compile tracing) the block
computes the reference definition instead, so the choice never changes what a model computes
(beyond float rounding), only how fast.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.model import ModelOutput

#: Implementations of :class:`FactorizedConv2d` (see the module docstring).
FACTORIZED_IMPLS: tuple[str, ...] = ("auto", "reference", "channels-last", "dense", "fused")
#: What ``fcnn`` uses unless told otherwise.
DEFAULT_IMPL = "auto"


class FactorizedConv2d(nn.Module):
    """A k×k convolution whose kernel is rank-1 per (output, input) channel pair.

    ``freq``: Conv (k,1), Cin→Cout, bias; ``time``: depthwise Conv (1,k) on Cout channels, bias.
    Output channel o sees ``freq.weight[o, i, :, 0] ⊗ time.weight[o, 0, 0, :]`` for input i,
    the paper's "conv2D with a rank-1 matrix kernel" (§3.1). ``impl`` picks how it is computed
    (module docstring); the reference implementation is the ground truth for the others.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7, impl: str = "reference"):
        super().__init__()
        self.impl = check_impl(impl)
        k = check_kernel(kernel_size)
        self.kernel_size = k
        self.freq = nn.Conv2d(in_channels, out_channels, (k, 1), padding=(k // 2, 0), bias=True)
        self.time = nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, k // 2), groups=out_channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # "fused" works on a whole conv → BN → ReLU → pool block (Trunk); on its own the conv is
        # computed as defined.
        if self.impl == "channels-last":  # NCHW again outside, so what follows (dropout masks) is unchanged
            return self.time(self.freq(x.contiguous(memory_format=torch.channels_last))).contiguous()
        if self.impl == "dense":
            k = self.kernel_size
            return F.conv2d(x, self.dense_kernel(), None, padding=k // 2) + self.bias_map(x.shape[-1])
        return self.time(self.freq(x))

    def dense_kernel(self) -> torch.Tensor:
        """The equivalent dense (Cout, Cin, k, k) kernel: outer product of column and row."""
        col = self.freq.weight[:, :, :, 0]  # (Cout, Cin, k)
        row = self.time.weight[:, 0, 0, :]  # (Cout, k)
        return col[:, :, :, None] * row[:, None, None, :]

    def dense_bias(self) -> torch.Tensor:
        """The equivalent bias away from the time edges: b_time + b_freq · Σ row.

        Within k//2 frames of either end, zero padding cuts part of the row, so the first
        conv's bias contributes less there (see :meth:`bias_map`).
        """
        return self.time.bias + self.freq.bias * self.time.weight[:, 0, 0, :].sum(-1)

    def bias_map(self, n_frames: int) -> torch.Tensor:
        """The exact bias contribution per (channel, frame), edges included: shape (Cout, 1, T)."""
        k = self.kernel_size
        const = self.freq.bias.view(1, -1, 1, 1).expand(1, -1, 1, n_frames)
        return F.conv2d(const, self.time.weight, self.time.bias, padding=(0, k // 2), groups=const.shape[1])[0]


def check_impl(impl: str) -> str:
    if impl not in FACTORIZED_IMPLS:
        raise ConfigError(f"unknown factorized conv impl {impl!r}; known: {', '.join(FACTORIZED_IMPLS)}")
    return impl


# -- the fused block: C kernels ---------------------------------------------------------------
#: One source, compiled twice (float32 and float64). A "row" is one mel bin of one clip, all
#: frames; work is split over (clip, pooling row group, block of one vector of channels), each
#: thread accumulating its own partial sums (summed in thread order by the caller: the result
#: depends only on the thread count, not on scheduling).
_KERNEL_SRC = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define VL ((int)(64 / sizeof(REAL)))
#define MAXK 15
#define MAXQ 32

typedef REAL real;
typedef IREAL ireal;
typedef real vec __attribute__((vector_size(64), aligned(sizeof(real))));
typedef ireal ivec __attribute__((vector_size(64), aligned(sizeof(real))));
typedef uint8_t mvec __attribute__((vector_size(64 / sizeof(REAL)), aligned(1)));  /* VL mask bytes */
#define LD(p) (*(const vec *)(p))
#define ST(p, v) (*(vec *)(p) = (v))

typedef struct {
    const real *z, *x, *wf, *bf, *wt, *bt, *zeros;
    int Cin, B, F, T, C, K, ph, pw;
} shape_t;

int FN(fcnn_vector_lanes)(void) { return VL; }

/* zb[h .. h+T) = the z row (mel bin f of clip b) for channels c0 .. c0+VL; zero padding around.
   Stem: z = bf + sum_{i,a} wf[i][a] * x[b][i][f+a-h][t] (x NCHW); else read z (NHWC). */
static inline __attribute__((always_inline)) void FN(load_z)(vec *zb, const shape_t *s, int b, int f, int c0,
                                                             int K, int Cin, const real **xr, vec *wfv) {
    int h = K / 2, T = s->T, C = s->C;
    vec zero = {0};
    for (int p = 0; p < h; p++) { zb[p] = zero; zb[h + T + p] = zero; }
    if (s->x) {
        int q = Cin * K;
        for (int i = 0; i < Cin; i++)
            for (int a = 0; a < K; a++) {
                int fa = f + a - h;  /* outside the band: a row of zeros (keeps the tap count fixed) */
                wfv[i * K + a] = LD(s->wf + ((size_t)i * K + a) * C + c0);
                xr[i * K + a] = (fa < 0 || fa >= s->F) ? s->zeros : s->x + (((size_t)b * Cin + i) * s->F + fa) * T;
            }
        vec bf = LD(s->bf + c0);
        int t = 0;
        for (; t + 4 <= T; t += 4) {
            vec a0 = bf, a1 = bf, a2 = bf, a3 = bf;
            for (int k = 0; k < q; k++) {
                const real *xk = xr[k] + t;
                a0 += wfv[k] * xk[0]; a1 += wfv[k] * xk[1]; a2 += wfv[k] * xk[2]; a3 += wfv[k] * xk[3];
            }
            zb[h + t] = a0; zb[h + t + 1] = a1; zb[h + t + 2] = a2; zb[h + t + 3] = a3;
        }
        for (; t < T; t++) {
            vec acc = bf;
            for (int k = 0; k < q; k++) acc += wfv[k] * xr[k][t];
            zb[h + t] = acc;
        }
    } else {
        const real *zr = s->z + ((size_t)b * s->F + f) * T * C + c0;
        for (int t = 0; t < T; t++) zb[h + t] = LD(zr + (size_t)t * C);
    }
}


/* y[t * stride] = bt + sum_k wt[k] * zb[t + k] for t in [0, T) (zb zero-padded by h on both sides);
   stride VL for a row buffer, C for a row of an NHWC tensor. */
static inline __attribute__((always_inline)) void FN(dw_row)(real *restrict y, size_t stride, const vec *restrict zb,
                                                             const vec *wt, vec bt, int T, int K) {
    int t = 0;
    for (; t + 4 <= T; t += 4) {
        vec a0 = bt, a1 = bt, a2 = bt, a3 = bt;
        for (int k = 0; k < K; k++) {
            a0 += wt[k] * zb[t + k]; a1 += wt[k] * zb[t + k + 1];
            a2 += wt[k] * zb[t + k + 2]; a3 += wt[k] * zb[t + k + 3];
        }
        ST(y + t * stride, a0); ST(y + (t + 1) * stride, a1);
        ST(y + (t + 2) * stride, a2); ST(y + (t + 3) * stride, a3);
    }
    for (; t < T; t++) {
        vec a = bt;
        for (int k = 0; k < K; k++) a += wt[k] * zb[t + k];
        ST(y + t * stride, a);
    }
}

/* Forward of one (clip, row group, channel block): y = bt + sum_k wt[k] z[t+k-h]; sums of y and
   y^2; max and its position over each (ph, pw) window (first maximum wins, as in max_pool2d). */
static inline __attribute__((always_inline)) void FN(fwd_group)(const shape_t *s, int K, int Cin, int b, int j, int c0,
                                                                vec *zb, vec *yb, vec *pm, ivec *pi, real *P,
                                                                ireal *idx, double *acc) {
    int T = s->T, C = s->C, ph = s->ph, pw = s->pw, Fp = s->F / ph, Tp = T / pw;
    int pooled = j < Fp, f0 = j * ph, f1 = pooled ? f0 + ph : s->F;
    vec wt[MAXK], wfv[MAXQ];
    const real *xr[MAXQ];
    for (int k = 0; k < K; k++) wt[k] = LD(s->wt + (size_t)k * C + c0);
    vec bt = LD(s->bt + c0), ninf = {0};
    ninf -= INFINITY;
    ivec izero = {0};
    if (pooled)
        for (int tp = 0; tp < Tp; tp++) { pm[tp] = ninf; pi[tp] = izero; }
    for (int f = f0; f < f1; f++) {
        FN(load_z)(zb, s, b, f, c0, K, Cin, xr, wfv);
        FN(dw_row)((real *)yb, VL, zb, wt, bt, T, K);
        if (acc) {
            vec s1a = {0}, s1b = {0}, s2a = {0}, s2b = {0};
            int t = 0;
            for (; t + 2 <= T; t += 2) {
                vec y0 = yb[t], y1 = yb[t + 1];
                s1a += y0; s1b += y1; s2a += y0 * y0; s2b += y1 * y1;
            }
            for (; t < T; t++) { s1a += yb[t]; s2a += yb[t] * yb[t]; }
            s1a += s1b; s2a += s2b;
            for (int l = 0; l < VL; l++) { acc[c0 + l] += s1a[l]; acc[C + c0 + l] += s2a[l]; }
        }
        if (pooled) {
            ireal base = (ireal)((f - f0) * pw);
            for (int tp = 0; tp < Tp; tp++) {
                vec m = pm[tp];
                ivec mi = pi[tp];
                const vec *yw = yb + (size_t)tp * pw;
                for (int d = 0; d < pw; d++) {
                    vec y = yw[d];
                    ivec gt = (ivec)(y > m);
                    m = (vec)(((ivec)y & gt) | ((ivec)m & ~gt));
                    mi = ((base + d) & gt) | (mi & ~gt);
                }
                pm[tp] = m;
                pi[tp] = mi;
            }
        }
    }
    if (pooled) {
        for (int tp = 0; tp < Tp; tp++) {
            size_t o = (((size_t)b * Fp + j) * Tp + tp) * C + c0;
            ST(P + o, pm[tp]);
            *(ivec *)(idx + o) = pi[tp];
        }
    }
}

/* Backward of one group: dy = alpha + beta * y (+ dP at the window's maximum); gradients of the
   time conv (wt, bt), of z (written to gz when given) and, for the stem, of wf and bf. */
static inline __attribute__((always_inline)) void FN(bwd_group)(const shape_t *s, int K, int Cin, int b, int j, int c0,
                                                                vec *zb, vec *gyb, vec *gzb, const real *gP,
                                                                const ireal *idx, const real *alpha,
                                                                const real *beta, real *gz, double *acc) {
    int h = K / 2, T = s->T, C = s->C, ph = s->ph, pw = s->pw, Fp = s->F / ph, Tp = T / pw;
    int pooled = j < Fp, f0 = j * ph, f1 = pooled ? f0 + ph : s->F;
    vec wt[MAXK], wfv[MAXQ], gwt[MAXK], gwf[MAXQ];
    const real *xr[MAXQ];
    for (int k = 0; k < K; k++) wt[k] = LD(s->wt + (size_t)k * C + c0);
    vec bt = LD(s->bt + c0), al = LD(alpha + c0), be = LD(beta + c0), zero = {0};
    vec btg = al + be * bt, wtg[MAXK];  /* dy's affine part folded into the time conv */
    for (int k = 0; k < K; k++) wtg[k] = be * wt[k];
    double *agwt = acc, *agbt = acc + (size_t)K * C, *agwf = agbt + C, *agbf = agwf + (size_t)Cin * K * C;
    for (int f = f0; f < f1; f++) {
        FN(load_z)(zb, s, b, f, c0, K, Cin, xr, wfv);
        for (int p = 0; p < h; p++) { gyb[p] = zero; gyb[h + T + p] = zero; }
        FN(dw_row)((real *)(gyb + h), VL, zb, wtg, btg, T, K);
        if (pooled) {  /* dP (B,Fp,Tp,C) back to the window maximum of this row */
            int df = f - f0;
            ireal lo = (ireal)(df * pw);
            for (int tp = 0; tp < Tp; tp++) {
                size_t o = (((size_t)b * Fp + j) * Tp + tp) * C + c0;
                ivec id = *(const ivec *)(idx + o) - lo;
                vec gp = LD(gP + o);
                vec *gw = gyb + h + (size_t)tp * pw;
                for (int d = 0; d < pw; d++) {
                    ivec hit = (ivec)(id == (ireal)d);
                    gw[d] += (vec)((ivec)gp & hit);
                }
            }
        }
        /* time conv weight and bias gradients: sum_t dy[t] z[t+k-h] */
        vec gbt = zero;
        for (int k = 0; k < K; k++) gwt[k] = zero;
        for (int t = 0; t < T; t++) {
            vec g = gyb[h + t];
            gbt += g;
            for (int k = 0; k < K; k++) gwt[k] += g * zb[t + k];
        }
        for (int l = 0; l < VL; l++) {
            agbt[c0 + l] += gbt[l];
            for (int k = 0; k < K; k++) agwt[(size_t)k * C + c0 + l] += gwt[k][l];
        }
        /* dz[u] = sum_k wt[k] dy[u+h-k]: the transposed time conv (kernel reversed) */
        vec wr[MAXK];
        for (int k = 0; k < K; k++) wr[k] = wt[K - 1 - k];
        vec *out = gzb;
        if (gz && !s->x) out = NULL;
        if (out) FN(dw_row)((real *)out, VL, gyb, wr, zero, T, K);
        else FN(dw_row)(gz + ((size_t)b * s->F + f) * T * C + c0, (size_t)C, gyb, wr, zero, T, K);
        if (s->x) {
            vec gbf = zero;
            const int Q = Cin * K;
            for (int q = 0; q < Q; q++) gwf[q] = zero;
            for (int t = 0; t < T; t++) {
                vec o = gzb[t];
                gbf += o;
                for (int q = 0; q < Q; q++) gwf[q] += o * xr[q][t];
            }
            for (int q = 0; q < Q; q++)
                for (int l = 0; l < VL; l++) agwf[(size_t)q * C + c0 + l] += gwf[q][l];
            for (int l = 0; l < VL; l++) agbf[c0 + l] += gbf[l];
            if (gz) {
                real *gzr = gz + ((size_t)b * s->F + f) * T * C + c0;
                for (int t = 0; t < T; t++) ST(gzr + (size_t)t * C, gzb[t]);
            }
        }
    }
}

static int FN(unsupported)(const real *x, int Cin, int C, int K) {
    return C % VL != 0 || K > MAXK || K % 2 == 0 || (x && Cin * K > MAXQ);
}

#ifdef _OPENMP
#define THREAD_ID omp_get_thread_num()
#else
#define THREAD_ID 0
#endif

/* P and idx (B,Fp,Tp,C); stats [nthreads][2][C] or NULL. 0 = done, 1 = unsupported. */
int FN(fcnn_fwd)(const real *z, const real *x, const real *wf, const real *bf, int Cin,
                 const real *wt, const real *bt, int B, int F, int T, int C, int K, int ph, int pw,
                 real *P, ireal *idx, double *stats, int nthreads) {
    if (FN(unsupported)(x, Cin, C, K)) return 1;
    real *zeros = (real *)calloc((size_t)T + 1, sizeof(real));
    if (!zeros) return 2;
    shape_t s = {z, x, wf, bf, wt, bt, zeros, x ? Cin : 0, B, F, T, C, K, ph, pw};
    if (!x) Cin = 0;
    int Fp = F / ph, Tp = T / pw, gpb = Fp + (F > Fp * ph), ncb = C / VL;
    long total = (long)B * gpb * ncb;
#pragma omp parallel num_threads(nthreads)
    {
        vec *zb = (vec *)aligned_alloc(64, 64 * (size_t)(T + 2 * K));
        vec *yb = (vec *)aligned_alloc(64, 64 * (size_t)(T + 2 * K));
        vec *pm = (vec *)aligned_alloc(64, 64 * (size_t)(Tp + 1));
        ivec *pi = (ivec *)aligned_alloc(64, 64 * (size_t)(Tp + 1));
        double *acc = stats ? stats + (size_t)THREAD_ID * 2 * C : NULL;
#pragma omp for schedule(static)
        for (long g = 0; g < total; g++) {
            int cb = (int)(g % ncb);
            long r = g / ncb;
            int b = (int)(r / gpb), j = (int)(r % gpb);
            if (K == 7 && Cin == 2) FN(fwd_group)(&s, 7, 2, b, j, cb * VL, zb, yb, pm, pi, P, idx, acc);
            else if (K == 7) FN(fwd_group)(&s, 7, Cin, b, j, cb * VL, zb, yb, pm, pi, P, idx, acc);
            else FN(fwd_group)(&s, K, Cin, b, j, cb * VL, zb, yb, pm, pi, P, idx, acc);
        }
        free(zb); free(yb); free(pm); free(pi);
    }
    free(zeros);
    return 0;
}

/* parts [nthreads][K*C (wt) + C (bt) (+ Cin*K*C (wf) + C (bf) for the stem)]; gz (B,F,T,C) or NULL. */
int FN(fcnn_bwd)(const real *z, const real *x, const real *wf, const real *bf, int Cin,
                 const real *wt, const real *bt, int B, int F, int T, int C, int K, int ph, int pw,
                 const real *gP, const ireal *idx, const real *alpha, const real *beta,
                 real *gz, double *parts, int nthreads) {
    if (FN(unsupported)(x, Cin, C, K)) return 1;
    real *zeros = (real *)calloc((size_t)T + 1, sizeof(real));
    if (!zeros) return 2;
    shape_t s = {z, x, wf, bf, wt, bt, zeros, x ? Cin : 0, B, F, T, C, K, ph, pw};
    if (!x) Cin = 0;
    int Fp = F / ph, gpb = Fp + (F > Fp * ph), ncb = C / VL;
    long total = (long)B * gpb * ncb;
    size_t psize = (size_t)K * C + C + (x ? (size_t)Cin * K * C + C : 0);
#pragma omp parallel num_threads(nthreads)
    {
        vec *zb = (vec *)aligned_alloc(64, 64 * (size_t)(T + 2 * K));
        vec *gyb = (vec *)aligned_alloc(64, 64 * (size_t)(T + 2 * K));
        vec *gzb = (vec *)aligned_alloc(64, 64 * (size_t)(T + 2 * K));
        double *acc = parts + (size_t)THREAD_ID * psize;
#pragma omp for schedule(static)
        for (long g = 0; g < total; g++) {
            int cb = (int)(g % ncb);
            long r = g / ncb;
            int b = (int)(r / gpb), j = (int)(r % gpb);
            if (K == 7 && Cin == 2) FN(bwd_group)(&s, 7, 2, b, j, cb * VL, zb, gyb, gzb, gP, idx, alpha, beta, gz, acc);
            else if (K == 7) FN(bwd_group)(&s, 7, Cin, b, j, cb * VL, zb, gyb, gzb, gP, idx, alpha, beta, gz, acc);
            else FN(bwd_group)(&s, K, Cin, b, j, cb * VL, zb, gyb, gzb, gP, idx, alpha, beta, gz, acc);
        }
        free(zb); free(gyb); free(gzb);
    }
    free(zeros);
    return 0;
}

/* Epilogue: BatchNorm's affine map, ReLU and (optionally) the dropout that follows the pooling.
   out (B,C,Fp,Tp) = max(0, a * P + sh) * noise, P (B,Fp,Tp,C); noise = keep where mask (B,Fp,Tp,C)
   is set, 0 where not (no dropout: mask NULL). out is written NCHW, or NHWC when out_nhwc. */
int FN(fcnn_epi_fwd)(const real *P, const real *a, const real *sh, int B, int Fp, int Tp, int C, real *out,
                     const uint8_t *mask, double keep, int out_nhwc, int nthreads) {
    if (C % VL) return 1;
    int ncb = C / VL;
    long total = (long)B * Fp * ncb;
    real kp = (real)keep;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (long g = 0; g < total; g++) {
        int c0 = (int)(g % ncb) * VL;
        long r = g / ncb;
        int b = (int)(r / Fp), j = (int)(r % Fp);
        vec av = LD(a + c0), sv = LD(sh + c0), zero = {0};
        for (int tp = 0; tp < Tp; tp++) {
            size_t o = (((size_t)b * Fp + j) * Tp + tp) * C + c0;
            vec v = av * LD(P + o) + sv;
            ivec pos = (ivec)(v > zero);
            v = (vec)((ivec)v & pos);
            if (mask) v = v * (__builtin_convertvector(*(const mvec *)(mask + o), vec) * kp);
            if (out_nhwc) ST(out + o, v);
            else
                for (int l = 0; l < VL; l++) out[(((size_t)b * C + c0 + l) * Fp + j) * Tp + tp] = v[l];
        }
    }
    return 0;
}

/* Its backward: gP (B,Fp,Tp,C) = g * noise * [a P + sh > 0] * a with g NCHW (or NHWC when g_nhwc);
   per-thread sums of g * noise * [..] * P (gradient of a) and g * noise * [..] (of sh) into
   parts[nthreads][2][C]. */
int FN(fcnn_epi_bwd)(const real *P, const real *a, const real *sh, const real *gout, int B, int Fp, int Tp, int C,
                     real *gP, const uint8_t *mask, double keep, int g_nhwc, double *parts, int nthreads) {
    if (C % VL) return 1;
    int ncb = C / VL;
    long total = (long)B * Fp * ncb;
    real kp = (real)keep;
#pragma omp parallel num_threads(nthreads)
    {
        double *acc = parts + (size_t)THREAD_ID * 2 * C;
#pragma omp for schedule(static)
        for (long g = 0; g < total; g++) {
            int c0 = (int)(g % ncb) * VL;
            long r = g / ncb;
            int b = (int)(r / Fp), j = (int)(r % Fp);
            vec av = LD(a + c0), sv = LD(sh + c0), zero = {0}, ga = zero, gs = zero;
            for (int tp = 0; tp < Tp; tp++) {
                size_t o = (((size_t)b * Fp + j) * Tp + tp) * C + c0;
                vec pv = LD(P + o), gv;
                if (g_nhwc) gv = LD(gout + o);
                else
                    for (int l = 0; l < VL; l++) gv[l] = gout[(((size_t)b * C + c0 + l) * Fp + j) * Tp + tp];
                if (mask) gv = gv * (__builtin_convertvector(*(const mvec *)(mask + o), vec) * kp);
                ivec pos = (ivec)(av * pv + sv > zero);
                gv = (vec)((ivec)gv & pos);
                ga += gv * pv;
                gs += gv;
                ST(gP + o, gv * av);
            }
            for (int l = 0; l < VL; l++) { acc[c0 + l] += ga[l]; acc[C + c0 + l] += gs[l]; }
        }
    }
    return 0;
}

#ifdef FCNN_COMMON
/* Dropout masks exactly as torch's CPU bernoulli_(q) draws them from the default generator
   (ATen's mt19937; two 32-bit words per element, u = ((hi << 32 | lo) mod 2^53) / 2^53, keep
   when u < q), n elements in memory order. The generator state (624 words stored as 64-bit,
   the countdown `left` and the position `next`, as in torch.get_rng_state()) is advanced in place. */
static inline uint32_t mt_twist(uint32_t u, uint32_t v) {
    return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

int fcnn_bernoulli_mask(uint64_t *state64, int32_t *left, uint64_t *next, long n, double q, uint8_t *mask) {
    enum { N = 624, M = 397 };
    uint32_t st[N], w[N];
    for (int i = 0; i < N; i++) st[i] = (uint32_t)state64[i];
    long lf = *left, nx = (long)*next;
    /* u < q  <=>  m < q * 2^53 (exact: a power-of-two scale)  <=>  m < ceil(q * 2^53) for integer m */
    uint64_t thr = (uint64_t)ceil(q * 9007199254740992.0);
    const uint64_t mask53 = (1ull << 53) - 1;
    long e = 0;
    int have_hi = 0;
    uint32_t hi = 0;
    while (e < n) {
        int pos, avail;
        if (lf > 1) {  /* words of the current block not yet drawn: next .. N-1 */
            pos = (int)nx;
            avail = (int)(lf - 1);
        } else {       /* ATen: --left reaches 0 -> twist, left = N, next = 0, then the draw */
            uint32_t *p = st;
            for (int i = 0; i < N - M; i++) p[i] = p[i + M] ^ mt_twist(p[i], p[i + 1]);
            for (int i = N - M; i < N - 1; i++) p[i] = p[i + M - N] ^ mt_twist(p[i], p[i + 1]);
            p[N - 1] = p[M - 1] ^ mt_twist(p[N - 1], p[0]);
            lf = N + 1;
            nx = 0;
            pos = 0;
            avail = N;
        }
        for (int i = pos; i < pos + avail; i++) {
            uint32_t y = st[i];
            y ^= (y >> 11);
            y ^= (y << 7) & 0x9d2c5680u;
            y ^= (y << 15) & 0xefc60000u;
            y ^= (y >> 18);
            w[i] = y;
        }
        int i = pos, end = pos + avail;
        if (have_hi && i < end) {
            uint64_t m = (((uint64_t)hi << 32) | w[i++]) & mask53;
            mask[e++] = m < thr;
            have_hi = 0;
        }
        long pairs = (end - i) / 2;
        if (pairs > n - e) pairs = n - e;
        for (long k = 0; k < pairs; k++) {
            uint64_t m = (((uint64_t)w[i + 2 * k] << 32) | w[i + 2 * k + 1]) & mask53;
            mask[e + k] = m < thr;
        }
        e += pairs;
        i += (int)(2 * pairs);
        if (e < n && i < end) { hi = w[i++]; have_hi = 1; }
        int used = i - pos;
        lf -= used;
        nx += used;
    }
    for (int i = 0; i < N; i++) state64[i] = st[i];
    *left = (int32_t)lf;
    *next = (uint64_t)nx;
    return 0;
}
#endif
"""

_PRECISIONS = {torch.float32: ("float", "int32_t", "_f32"), torch.float64: ("double", "int64_t", "_f64")}
_lib_lock = threading.Lock()
_lib: Any = None
_lib_error: str | None = None


def _kernel_dir() -> Path:
    from harness.paths import cache_dir
    return cache_dir() / "kernels"


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _compile(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise OSError("no C compiler (cc, gcc or clang) found")
    with tempfile.TemporaryDirectory(prefix="fcnn-kernel-") as tmp:
        src = Path(tmp) / "fcnn_kernels.c"
        src.write_text(_KERNEL_SRC)
        last = ""
        for openmp in (["-fopenmp"], []):  # OpenMP when the compiler has it, else one thread
            objs = []
            try:
                for real, ireal, sfx in _PRECISIONS.values():
                    obj = Path(tmp) / f"k{sfx}.o"
                    common = ["-DFCNN_COMMON"] if sfx == "_f32" else []  # precision-free code: once
                    subprocess.run([cc, "-std=c11", "-ffp-contract=fast", "-O3", "-march=native", "-fPIC", "-fno-math-errno",
                                    *openmp, *common, f"-DREAL={real}", f"-DIREAL={ireal}", f"-DSFX={sfx}", "-c",
                                    str(src), "-o", str(obj)],
                                   check=True, capture_output=True, text=True, timeout=300)
                    objs.append(str(obj))
                out = Path(tmp) / "lib.so"
                subprocess.run([cc, "-shared", *openmp, "-o", str(out), *objs], check=True, capture_output=True,
                               text=True, timeout=300)
            except subprocess.CalledProcessError as exc:
                last = (exc.stderr or "").strip().splitlines()[-1:] or [str(exc)]
                last = last[0]
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(out, tmp_target)
            os.replace(tmp_target, target)  # atomic: concurrent processes never load half a file
            return
        raise OSError(f"{cc} could not build the fused FCNN kernels: {last}")


def fused_kernels() -> Any:
    """The compiled fused-block kernels (a ``ctypes.CDLL``), or None where they cannot be built.

    Built on first use with the system C compiler (``$CC``, else cc/gcc/clang; -O3
    -march=native -fopenmp) into ``<cache>/kernels/``, keyed by the source, the compiler and the
    CPU, and reused after that (about a second to build). :func:`fused_kernel_error` says why
    they are missing.
    """
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    with _lib_lock:
        if _lib is not None or _lib_error is not None:
            return _lib
        try:
            if os.environ.get("HARNESS_NO_FUSED_KERNELS"):
                raise OSError("disabled by HARNESS_NO_FUSED_KERNELS")
            key = hashlib.sha256("\0".join([_KERNEL_SRC, os.environ.get("CC", ""), _cpu_signature(),
                                             platform.machine()]).encode()).hexdigest()[:16]
            target = _kernel_dir() / f"fcnn-{key}.so"
            if not target.exists():
                _compile(target)
            lib = ctypes.CDLL(str(target))
            for _, _, sfx in _PRECISIONS.values():
                for name in ("fcnn_fwd", "fcnn_bwd", "fcnn_epi_fwd", "fcnn_epi_bwd"):
                    fn = getattr(lib, name + sfx)
                    fn.restype = ctypes.c_int
            lib.fcnn_bernoulli_mask.restype = ctypes.c_int
            _lib = lib
        except (OSError, AttributeError) as exc:
            _lib_error = str(exc)
    return _lib


def fused_kernel_error() -> str | None:
    """Why :func:`fused_kernels` is None (None when they are available or not yet tried)."""
    return _lib_error


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(0 if t is None else t.data_ptr())


def _kernel_call(name: str, dtype: torch.dtype, *args: Any) -> None:
    fn = getattr(fused_kernels(), name + _PRECISIONS[dtype][2])
    cargs = [a if isinstance(a, ctypes.c_void_p) else
             _ptr(a) if a is None or isinstance(a, torch.Tensor) else
             ctypes.c_double(a) if isinstance(a, float) else ctypes.c_int(int(a)) for a in args]
    if fn(*cargs) != 0:
        raise RuntimeError(f"{name}: shape not supported by the fused kernels")  # callers check first


def _vector_lanes(dtype: torch.dtype) -> int:
    return 64 // torch.empty((), dtype=dtype).element_size()


_MAX_K, _MAX_STEM_TAPS = 15, 32


class _FusedTimeConvPool(torch.autograd.Function):
    """Depthwise (1,k) conv + batch statistics + max-pool, from z (NHWC) or from the stem input.

    Inputs: ``inp`` (z (B,C,F,T) or the stem's x (B,Cin,F,T)), ``wf`` (Cin,k,C) and ``bf`` (C)
    for the stem (None otherwise), ``wt`` (k,C), ``bt`` (C). Outputs the pooled maxima P
    (B,F//ph,T//pw,C) of y = time(z) and, with ``stats``, the batch mean and biased variance of y
    over (B,F,T). Backward takes gradients of all three and recomputes y (and z for the stem).
    """

    @staticmethod
    def forward(ctx, inp, wf, bf, wt, bt, stem: bool, ph: int, pw: int, stats: bool, threads: int):
        k, c = wt.shape
        dtype = inp.dtype
        if stem:
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
        _kernel_call("fcnn_fwd", dtype, z, x, wf, bf, cin, wt, bt, b, f, t, c, k, ph, pw, pooled, idx, part, threads)
        ctx.save_for_backward(z, x, wf, bf, wt, bt, idx)
        ctx.dims = (stem, b, cin, f, t, c, k, ph, pw, threads)
        n = b * f * t
        if stats:
            sums = part.sum(0)
            mean = sums[0] / n
            var = (sums[1] / n - mean * mean).clamp_min(0.0)
            ctx.mean = mean
            return pooled, mean.to(dtype), var.to(dtype)
        ctx.mean = torch.zeros(c, dtype=torch.float64)
        return pooled, None, None

    @staticmethod
    def backward(ctx, g_pooled, g_mean, g_var):
        z, x, wf, bf, wt, bt, idx = ctx.saved_tensors
        stem, b, cin, f, t, c, k, ph, pw, threads = ctx.dims
        dtype = wt.dtype
        n = b * f * t
        # d mean/dy = 1/n, d var/dy = 2 (y - mean)/n: dy = alpha + beta * y + scatter(g_pooled)
        g_mean = torch.zeros(c, dtype=torch.float64) if g_mean is None else g_mean.double()
        g_var = torch.zeros(c, dtype=torch.float64) if g_var is None else g_var.double()
        beta = 2.0 * g_var / n
        alpha = (g_mean / n - beta * ctx.mean).to(dtype)
        beta = beta.to(dtype)
        if g_pooled is None:
            g_pooled = torch.zeros((b, f // ph, t // pw, c), dtype=dtype)
        g_pooled = g_pooled.contiguous()
        need_input = ctx.needs_input_grad[0]
        gz = torch.empty((b, f, t, c), dtype=dtype) if need_input else None
        size = k * c + c + (cin * k * c + c if stem else 0)
        parts = torch.zeros((threads, size), dtype=torch.float64)
        _kernel_call("fcnn_bwd", dtype, z, x, wf, bf, cin, wt, bt, b, f, t, c, k, ph, pw, g_pooled, idx,
                     alpha, beta, gz, parts, threads)
        total = parts.sum(0).to(dtype)
        g_wt, g_bt = total[:k * c].view(k, c), total[k * c:k * c + c]
        g_wf = g_bf = g_inp = None
        if stem:
            g_wf, g_bf = total[k * c + c:k * c + c + cin * k * c].view(cin, k, c), total[-c:]
        if need_input:
            gz = gz.permute(0, 3, 1, 2)  # (B,C,F,T), channels-last
            if stem:
                w4 = wf.permute(2, 0, 1).unsqueeze(-1).contiguous()  # back to (C, Cin, k, 1)
                g_inp = torch.ops.aten.convolution_backward(
                    gz, x, w4, None, [1, 1], [k // 2, 0], [1, 1], False, [0, 0], 1, [True, False, False])[0]
            else:
                g_inp = gz
        return g_inp, g_wf, g_bf, g_wt, g_bt, None, None, None, None, None


class _AffineReLUDropout(torch.autograd.Function):
    """``max(0, a·P + shift)`` per channel (then ``· noise``, the dropout's 0 or 1/(1-p), where a mask
    is given), from P (B,Fp,Tp,C) to (B,C,Fp,Tp), NCHW or channels-last."""

    @staticmethod
    def forward(ctx, pooled, a, shift, threads: int, mask, keep: float, channels_last: bool):
        b, fp, tp, c = pooled.shape
        a, shift = a.contiguous(), shift.contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        out = torch.empty((b, c, fp, tp), dtype=pooled.dtype, memory_format=fmt)
        _kernel_call("fcnn_epi_fwd", pooled.dtype, pooled, a, shift, b, fp, tp, c, out, mask, float(keep),
                     int(channels_last), threads)
        ctx.save_for_backward(pooled, a, shift, mask)
        ctx.threads, ctx.keep = threads, float(keep)
        return out

    @staticmethod
    def backward(ctx, g_out):
        pooled, a, shift, mask = ctx.saved_tensors
        b, fp, tp, c = pooled.shape
        nhwc = g_out.is_contiguous(memory_format=torch.channels_last) and not g_out.is_contiguous()
        g_out = g_out.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        g_pooled = torch.empty_like(pooled)
        parts = torch.zeros((ctx.threads, 2, c), dtype=torch.float64)
        _kernel_call("fcnn_epi_bwd", pooled.dtype, pooled, a, shift, g_out, b, fp, tp, c, g_pooled, mask, ctx.keep,
                     int(nhwc), parts, ctx.threads)
        sums = parts.sum(0).to(pooled.dtype)
        return g_pooled, sums[0], sums[1], None, None, None, None


#: Layout of torch.get_rng_state() for the CPU generator (ATen's CPUGeneratorImplState): the
#: mt19937 countdown ``left`` at byte 8, position ``next`` at 16, the 624 state words (as 64-bit) at 24.
_RNG_STATE_BYTES, _RNG_LEFT, _RNG_NEXT, _RNG_WORDS = 5056, 8, 16, 24
_dropout_exact: bool | None = None


def _dropout_mask(shape: tuple[int, int, int, int], keep_prob: float) -> torch.Tensor:
    """The mask torch's CPU ``bernoulli_(keep_prob)`` would draw for an NCHW tensor of ``shape``, as
    (B,Fp,Tp,C) uint8, advancing the default generator exactly as that call does."""
    state = torch.get_rng_state()
    base = state.data_ptr()
    mask = torch.empty(shape, dtype=torch.uint8)  # drawn in NCHW order, like bernoulli_ on the NCHW tensor
    fused_kernels().fcnn_bernoulli_mask(ctypes.c_void_p(base + _RNG_WORDS), ctypes.c_void_p(base + _RNG_LEFT),
                                        ctypes.c_void_p(base + _RNG_NEXT), ctypes.c_long(mask.numel()),
                                        ctypes.c_double(keep_prob), _ptr(mask))
    torch.set_rng_state(state)
    return mask.permute(0, 2, 3, 1).contiguous()


def fused_dropout_exact() -> bool:
    """Whether :func:`_dropout_mask` reproduces this torch's dropout masks bit for bit (checked once
    against ``bernoulli_`` on a few shapes; where it does not, dropout runs as the module)."""
    global _dropout_exact
    if _dropout_exact is None:
        ok = fused_kernels() is not None and torch.get_rng_state().numel() == _RNG_STATE_BYTES
        saved = torch.get_rng_state()
        try:
            for shape, q in (((2, 3, 5, 7), 0.7), ((3, 16, 4, 9), 0.37), ((1, 16, 10, 100), 0.5)):
                if not ok:
                    break
                torch.set_rng_state(saved)
                ref = torch.empty(shape).bernoulli_(q).bool()
                ref_state = torch.get_rng_state()
                torch.set_rng_state(saved)
                mine = _dropout_mask(shape, q).permute(0, 3, 1, 2).bool()
                ok = bool(torch.equal(mine, ref)) and torch.equal(torch.get_rng_state(), ref_state)
        except (RuntimeError, OSError, AttributeError):
            ok = False
        finally:
            torch.set_rng_state(saved)
        _dropout_exact = ok
    return _dropout_exact


def _is_plain_pool(pool: nn.Module) -> bool:
    if not isinstance(pool, nn.MaxPool2d):
        return False
    ks = nn.modules.utils._pair(pool.kernel_size)
    st = nn.modules.utils._pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return (ks == st and nn.modules.utils._pair(pool.padding) == (0, 0)
            and nn.modules.utils._pair(pool.dilation) == (1, 1) and not pool.ceil_mode and not pool.return_indices)


def _hooked(modules: list[nn.Module]) -> bool:
    from torch.nn.modules import module as m
    if m._global_forward_hooks or m._global_forward_pre_hooks:
        return True
    return any(mod._forward_hooks or mod._forward_pre_hooks for mod in modules)


def fused_applies(block: nn.Sequential, pool: nn.Module, x: torch.Tensor) -> bool:
    """Whether :func:`fused_block` can compute ``pool(block(x))`` here (else use the modules)."""
    conv, bn = block[0], block[1]
    if not isinstance(conv, FactorizedConv2d) or conv.impl not in ("fused", "auto"):
        return False
    if x.device.type != "cpu" or x.dtype not in _PRECISIONS or x.dim() != 4:
        return False
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if not (isinstance(bn, nn.BatchNorm2d) and bn.affine and isinstance(block[2], nn.ReLU) and len(block) == 3):
        return False
    if not _is_plain_pool(pool) or _hooked([block, conv, conv.freq, conv.time, bn, block[2], pool]):
        return False
    c = conv.time.out_channels
    if c % _vector_lanes(x.dtype) or conv.kernel_size > _MAX_K:
        return False
    if any(p.dtype != x.dtype or p.device != x.device for p in (conv.freq.weight, bn.weight)):
        return False
    return fused_kernels() is not None


def fused_block(block: nn.Sequential, pool: nn.MaxPool2d, x: torch.Tensor, dropout: nn.Module | None = None,
                channels_last: bool = False) -> torch.Tensor:
    """``dropout(pool(ReLU(BN(conv(x)))))`` for a factorized conv block, the running statistics updated.

    With s = sign(BN weight) (+1 at 0), BN's affine map on y is |a|·(s·y) + c with |a| ≥ 0,
    monotone in s·y, so ReLU and the max-pool commute with it: the kernel pools s·y (by
    negating the time conv's weights where s < 0) and the affine map and ReLU run on the
    pooled tensor. The BN statistics of y come out of the same pass. A training-mode ``nn.Dropout``
    is applied in the same last pass with the mask torch itself would draw (same generator, same
    order: :func:`fused_dropout_exact`); ``channels_last`` picks the output's memory format.
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
    if cin * k <= _MAX_STEM_TAPS:  # few input channels: compute the (k,1) conv inside the kernel
        wf = conv.freq.weight.view(cout, cin, k).permute(1, 2, 0)
        pooled, mean_s, var = _FusedTimeConvPool.apply(x, wf, conv.freq.bias, wt, bt, True, ph, pw,
                                                       use_batch_stats, threads)
    else:
        z = F.conv2d(x.contiguous(memory_format=torch.channels_last), conv.freq.weight, conv.freq.bias,
                     padding=(k // 2, 0))
        pooled, mean_s, var = _FusedTimeConvPool.apply(z, None, None, wt, bt, False, ph, pw, use_batch_stats, threads)
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
                 and not _hooked([dropout]) and fused_dropout_exact())
    if fuse_drop:
        q = 1.0 - dropout.p
        mask = _dropout_mask((x.shape[0], cout, pooled.shape[1], pooled.shape[2]), q)
        keep = float(torch.tensor(1.0, dtype=x.dtype) / torch.tensor(q, dtype=x.dtype))  # as noise.div_(1 - p)
    module_drop = dropout is not None and not fuse_drop
    # dropout left to the module draws its mask in memory order: give it the reference's NCHW layout
    out = _AffineReLUDropout.apply(pooled, abs_a, shift, threads, mask, keep, channels_last and not module_drop)
    return dropout(out) if module_drop else out


def check_kernel(kernel_size: int) -> int:
    """'same' padding needs an odd kernel."""
    k = int(kernel_size)
    if k < 1 or k % 2 == 0:
        raise ConfigError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
    return k


def parse_channels(channels: Any, default: tuple[int, int]) -> tuple[int, int]:
    """Channel widths of the two conv blocks from an option: None, [c1, c2] or "c1,c2"."""
    if channels is None:
        return default
    if isinstance(channels, str):
        channels = [c for c in channels.replace("x", ",").split(",") if c.strip()]
    try:
        c1, c2 = (int(c) for c in channels)
    except (TypeError, ValueError):
        raise ConfigError(f"channels must be two integers like [32, 64] or '32,64', got {channels!r}") from None
    if c1 < 1 or c2 < 1:
        raise ConfigError(f"channels must be positive, got {channels!r}")
    return c1, c2


def conv_bn_relu(cin: int, cout: int, k: int, factorized: bool, impl: str = "reference") -> nn.Sequential:
    """One convolution block: 'same' conv (dense or factorized), BatchNorm, ReLU."""
    conv: nn.Module = (FactorizedConv2d(cin, cout, k, impl=impl) if factorized
                       else nn.Conv2d(cin, cout, k, padding=k // 2, bias=True))
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Trunk(nn.Module):
    """Two conv blocks with pooling: pool1 as given, then (4, all remaining frames).

    The second time pooling always collapses the whole remaining time axis, which is
    (4, 100) at 500 frames as in the DCASE baseline, and keeps the flattened size (hence
    the parameter count) independent of the clip length.
    """

    def __init__(self, n_mels: int, n_frames: int, in_channels: int, channels: tuple[int, int],
                 kernel_size: int, pool1: tuple[int, int], dropout: float, factorized: bool,
                 impl: str = "reference", what: str = "model"):
        super().__init__()
        k = check_kernel(kernel_size)
        f1, t1 = n_mels // pool1[0], n_frames // pool1[1]
        f2 = f1 // 4
        if t1 < 1:
            raise ConfigError(f"{what} needs at least {pool1[1]} frames (first pooling {pool1}), got n_frames={n_frames}")
        if f2 < 1:
            raise ConfigError(f"{what} needs at least {pool1[0] * 4} mel bins per input (pooling {pool1[0]} then 4), got {n_mels}")
        c1, c2 = channels
        self.block1 = conv_bn_relu(in_channels, c1, k, factorized, impl)
        self.pool1 = nn.MaxPool2d(pool1)
        self.drop1 = nn.Dropout(dropout)
        self.block2 = conv_bn_relu(c1, c2, k, factorized, impl)
        self.pool2 = nn.MaxPool2d((4, t1))
        self.drop2 = nn.Dropout(dropout)
        self.out_features = c2 * f2
        self.n_frames, self.time_pool, self.what = n_frames, pool1[1], what

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding before dropout, dropped-out features for the dense layers), both (B, D).

        The embedding is taken before dropout so triplet distances are not randomised by it.
        """
        if x.shape[-1] // self.time_pool != self.n_frames // self.time_pool:
            raise ConfigError(f"{self.what} was built for n_frames={self.n_frames}, got input with {x.shape[-1]} frames")
        if fused_applies(self.block1, self.pool1, x):  # dropout included; channels-last for the next conv
            x = fused_block(self.block1, self.pool1, x, dropout=self.drop1, channels_last=True)
        else:
            x = self.drop1(self.pool1(self.block1(x)))
        if fused_applies(self.block2, self.pool2, x):
            emb = fused_block(self.block2, self.pool2, x).flatten(1)
        else:
            emb = self.pool2(self.block2(x)).flatten(1)
        return emb, self.drop2(emb)


def band_starts(n_mels: int, band_size: int, band_hop: int) -> list[int]:
    """First mel bin of every sub-band (bins past the last full band are not used)."""
    if band_size < 1 or band_hop < 1:
        raise ConfigError(f"band_size and band_hop must be positive, got {band_size} and {band_hop}")
    if n_mels < band_size:
        raise ConfigError(f"sub-band size {band_size} exceeds n_mels={n_mels}")
    return list(range(0, n_mels - band_size + 1, band_hop))


def global_widths(d_in: int, floor: int = 64) -> list[int]:
    """Hidden widths of SubSpectralNet's global classifier: 2^⌊log2 d⌋ halving down to 64."""
    widths, h = [], 1 << (max(d_in, 1).bit_length() - 1)
    while h >= floor:
        widths.append(h)
        h //= 2
    return widths


class SubBandNet(nn.Module):
    """SubSpectralNet (dense convs) or the FCNN (factorized convs).

    Each sub-band has its own trunk, a Linear→32 (+ReLU) whose output goes to the global
    classifier, and its own Linear→classes sub-classifier (the band logits).
    """

    def __init__(self, n_mels: int, n_frames: int, in_channels: int, n_classes: int, *,
                 channels: tuple[int, int], kernel_size: int, band_size: int, band_hop: int,
                 band_features: int, dropout: float, factorized: bool, impl: str = "reference",
                 what: str = "model"):
        super().__init__()
        self.starts = band_starts(n_mels, band_size, band_hop)
        self.band_size = band_size
        self.trunks = nn.ModuleList(
            Trunk(band_size, n_frames, in_channels, channels, kernel_size, (2, 5), dropout, factorized, impl, what)
            for _ in self.starts)
        d = self.trunks[0].out_features
        self.band_fc = nn.ModuleList(nn.Sequential(nn.Linear(d, band_features), nn.ReLU(inplace=True))
                                     for _ in self.starts)
        self.band_heads = nn.ModuleList(nn.Sequential(nn.Dropout(dropout), nn.Linear(band_features, n_classes))
                                        for _ in self.starts)
        layers: list[nn.Module] = []
        width = band_features * len(self.starts)
        for h in global_widths(width):
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.global_head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        embs, feats, band_logits = [], [], []
        for start, trunk, fc, head in zip(self.starts, self.trunks, self.band_fc, self.band_heads):
            emb, h = trunk(x[:, :, start:start + self.band_size])
            h = fc(h)
            embs.append(emb)
            feats.append(h)
            band_logits.append(head(h))
        logits = self.global_head(torch.cat(feats, dim=1))
        return ModelOutput(logits, torch.cat(embs, dim=1), torch.stack(band_logits, dim=1))


def check_input(n_mels: int, n_frames: int, in_channels: int, n_classes: int) -> None:
    """Reject impossible shapes with one line before building anything."""
    for name, v in (("n_mels", n_mels), ("n_frames", n_frames), ("in_channels", in_channels), ("n_classes", n_classes)):
        if int(v) < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")


def check_dropout(dropout: float) -> float:
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)
