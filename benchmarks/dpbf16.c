/* The fused FCNN kernel's two inner loops in float32 FMAs and in AVX512-BF16 dot products
   (_mm512_dpbf16_ps), timed on their own: would a bf16 variant of architectures/fused/fcnn_block.c
   be faster on this CPU? Driven by benchmarks/dpbf16.py, which compiles it with
       cc -std=c11 -O3 -march=native -ffp-contract=fast -fPIC -shared dpbf16.c -o dpbf16.so

   Layout as in the kernel: one 64-byte vector holds 16 channels; a row is T time steps.
   - dw: the depthwise (1,7) time conv, y[t] = b + sum_k w[k] z[t+k]. bf16: z is packed once per row
     into pairs (z[t], z[t+1]) per channel (round to nearest even, then interleave: 2 instructions a
     step), then y[t] = b + sum_{p<4} dot(pair[t+2p], (w[2p], w[2p+1])) with w[7] = 0.
   - stem: the first block's (7,1) conv over 2 input channels, z[t] = b + sum_{q<14} w[q] x_q[t]
     (x_q[t] a broadcast scalar). bf16: the 14 input rows are packed once per row group into 7
     rows of pairs (x_2p[t], x_2p+1[t]) and z[t] = b + sum_{p<7} dot(broadcast pair, (w[2p], w[2p+1])).
   Each function repeats its work `reps` times (so the call overhead does not count); the caller
   times it and checks that the outputs agree. */

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define K 7
#define Q 14

/* z: (T + 8) x 16 floats (zero padded), w: 8 x 16 (w[7] = 0), y: T x 16 */
static void dw_f32_once(const float *z, const float *w, const float *b, float *y, int T) {
    __m512 wv[K], bv = _mm512_loadu_ps(b);
    for (int k = 0; k < K; k++) wv[k] = _mm512_loadu_ps(w + 16 * k);
    int t = 0;
    for (; t + 4 <= T; t += 4) {
        __m512 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
        for (int k = 0; k < K; k++) {
            a0 = _mm512_fmadd_ps(wv[k], _mm512_loadu_ps(z + 16 * (t + k)), a0);
            a1 = _mm512_fmadd_ps(wv[k], _mm512_loadu_ps(z + 16 * (t + k + 1)), a1);
            a2 = _mm512_fmadd_ps(wv[k], _mm512_loadu_ps(z + 16 * (t + k + 2)), a2);
            a3 = _mm512_fmadd_ps(wv[k], _mm512_loadu_ps(z + 16 * (t + k + 3)), a3);
        }
        _mm512_storeu_ps(y + 16 * t, a0); _mm512_storeu_ps(y + 16 * (t + 1), a1);
        _mm512_storeu_ps(y + 16 * (t + 2), a2); _mm512_storeu_ps(y + 16 * (t + 3), a3);
    }
}

/* Interleave two rows of 16 floats into 16 bf16 pairs (lo[c], hi[c]), rounding to nearest even. */
static inline __m512bh pair_bf16(__m512 lo, __m512 hi, __m512i perm) {
    __m512bh packed = _mm512_cvtne2ps_pbh(hi, lo);  /* bf16 lanes 0-15 = lo, 16-31 = hi */
    return (__m512bh)_mm512_permutexvar_epi16(perm, (__m512i)packed);
}

static inline __m512i interleave_index(void) {
    int16_t idx[32];
    for (int c = 0; c < 16; c++) { idx[2 * c] = (int16_t)c; idx[2 * c + 1] = (int16_t)(16 + c); }
    return _mm512_loadu_si512(idx);
}

/* pairs: scratch of (CHUNK + 8) x 64 bytes; same arguments as dw_f32. Packs CHUNK steps at a time
   so that the pairs stay in L1 next to z and y. */
#define CHUNK 64
static void dw_bf16_once(const float *z, const float *w, const float *b, float *y, int T, __m512bh *pairs) {
    __m512i perm = interleave_index();
    __m512bh wp[4];
    for (int p = 0; p < 4; p++)
        wp[p] = pair_bf16(_mm512_loadu_ps(w + 16 * 2 * p), _mm512_loadu_ps(w + 16 * (2 * p + 1)), perm);
    __m512 bv = _mm512_loadu_ps(b);
    for (int t0 = 0; t0 < T; t0 += CHUNK) {
        int n = T - t0 < CHUNK ? T - t0 : CHUNK;
        for (int t = 0; t < n + K - 1; t++)
            pairs[t] = pair_bf16(_mm512_loadu_ps(z + 16 * (t0 + t)), _mm512_loadu_ps(z + 16 * (t0 + t + 1)), perm);
        for (int t = 0; t + 4 <= n; t += 4) {
            __m512 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
            for (int p = 0; p < 4; p++) {
                a0 = _mm512_dpbf16_ps(a0, pairs[t + 2 * p], wp[p]);
                a1 = _mm512_dpbf16_ps(a1, pairs[t + 2 * p + 1], wp[p]);
                a2 = _mm512_dpbf16_ps(a2, pairs[t + 2 * p + 2], wp[p]);
                a3 = _mm512_dpbf16_ps(a3, pairs[t + 2 * p + 3], wp[p]);
            }
            float *yt = y + 16 * (t0 + t);
            _mm512_storeu_ps(yt, a0); _mm512_storeu_ps(yt + 16, a1);
            _mm512_storeu_ps(yt + 32, a2); _mm512_storeu_ps(yt + 48, a3);
        }
    }
}

/* x: Q rows of T floats, w: Q x (16 * nblk) (channel blocks of 16), y: nblk x T x 16 */
static void stem_f32_once(const float *x, const float *w, const float *b, float *y, int T, int nblk) {
    for (int cb = 0; cb < nblk; cb++) {
        __m512 wv[Q], bv = _mm512_loadu_ps(b + 16 * cb);
        for (int q = 0; q < Q; q++) wv[q] = _mm512_loadu_ps(w + (size_t)q * 16 * nblk + 16 * cb);
        float *yb = y + (size_t)cb * T * 16;
        int t = 0;
        for (; t + 4 <= T; t += 4) {
            __m512 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
            for (int q = 0; q < Q; q++) {
                const float *xq = x + (size_t)q * T + t;
                a0 = _mm512_fmadd_ps(wv[q], _mm512_set1_ps(xq[0]), a0);
                a1 = _mm512_fmadd_ps(wv[q], _mm512_set1_ps(xq[1]), a1);
                a2 = _mm512_fmadd_ps(wv[q], _mm512_set1_ps(xq[2]), a2);
                a3 = _mm512_fmadd_ps(wv[q], _mm512_set1_ps(xq[3]), a3);
            }
            _mm512_storeu_ps(yb + 16 * t, a0); _mm512_storeu_ps(yb + 16 * (t + 1), a1);
            _mm512_storeu_ps(yb + 16 * (t + 2), a2); _mm512_storeu_ps(yb + 16 * (t + 3), a3);
        }
    }
}

static inline uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

/* xpairs: scratch of 7 x T uint32 (the packed input rows), packed here once for all channel blocks */
static void stem_bf16_once(const float *x, const float *w, const float *b, float *y, int T, int nblk, uint32_t *xpairs) {
    __m512i perm = interleave_index();
    for (int p = 0; p < Q / 2; p++) {
        const float *x0 = x + (size_t)(2 * p) * T, *x1 = x0 + T;
        uint32_t *xp = xpairs + (size_t)p * T;
        for (int t = 0; t < T; t++) xp[t] = (uint32_t)bf16_rne(x0[t]) | ((uint32_t)bf16_rne(x1[t]) << 16);
    }
    for (int cb = 0; cb < nblk; cb++) {
        __m512bh wp[Q / 2];
        __m512 bv = _mm512_loadu_ps(b + 16 * cb);
        for (int p = 0; p < Q / 2; p++)
            wp[p] = pair_bf16(_mm512_loadu_ps(w + (size_t)(2 * p) * 16 * nblk + 16 * cb),
                              _mm512_loadu_ps(w + (size_t)(2 * p + 1) * 16 * nblk + 16 * cb), perm);
        float *yb = y + (size_t)cb * T * 16;
        int t = 0;
        for (; t + 4 <= T; t += 4) {
            __m512 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
            for (int p = 0; p < Q / 2; p++) {
                const uint32_t *xp = xpairs + (size_t)p * T + t;
                a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_set1_epi32((int)xp[0]), wp[p]);
                a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_set1_epi32((int)xp[1]), wp[p]);
                a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_set1_epi32((int)xp[2]), wp[p]);
                a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_set1_epi32((int)xp[3]), wp[p]);
            }
            _mm512_storeu_ps(yb + 16 * t, a0); _mm512_storeu_ps(yb + 16 * (t + 1), a1);
            _mm512_storeu_ps(yb + 16 * (t + 2), a2); _mm512_storeu_ps(yb + 16 * (t + 3), a3);
        }
    }
}

void dw_f32(const float *z, const float *w, const float *b, float *y, int T, int reps) {
    for (int r = 0; r < reps; r++) dw_f32_once(z, w, b, y, T);
}

void dw_bf16(const float *z, const float *w, const float *b, float *y, int T, __m512bh *pairs, int reps) {
    for (int r = 0; r < reps; r++) dw_bf16_once(z, w, b, y, T, pairs);
}

void stem_f32(const float *x, const float *w, const float *b, float *y, int T, int nblk, int reps) {
    for (int r = 0; r < reps; r++) stem_f32_once(x, w, b, y, T, nblk);
}

void stem_bf16(const float *x, const float *w, const float *b, float *y, int T, int nblk, uint32_t *xpairs, int reps) {
    for (int r = 0; r < reps; r++) stem_bf16_once(x, w, b, y, T, nblk, xpairs);
}
