/* Fused conv -> BatchNorm statistics -> max-pool kernels of a factorized-CNN trunk block, and the
   epilogue (BatchNorm's affine map, ReLU, dropout) on the pooled tensor. See architectures/fused/ops.py
   for how they compose and architectures/fused/build.py for the build.

   One source, compiled once per precision with REAL (float, double), IREAL (the integer type of the
   same width, for window indices) and SFX (_f32, _f64) defined, e.g.

       cc -std=c11 -O3 -march=native -ffp-contract=fast -fno-math-errno -fPIC -fopenmp \
          -DREAL=float -DIREAL=int32_t -DSFX=_f32 -DFCNN_COMMON -c fcnn_block.c -o f32.o

   FCNN_COMMON (defined for one of the compilations) adds the precision-free code. A "row" is one mel
   bin of one clip, all frames; work is split over (clip, pooling row group, block of one vector of
   channels), each thread accumulating its own partial sums (summed in thread order by the caller:
   the result depends only on the thread count, not on scheduling). */

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
