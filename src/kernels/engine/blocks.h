/*
 * Pieces shared by the engine's kernels (engine.c: dense layers; conv.c: convolutions and pooling): output
 * stages, thread splits, and the XNOR and real-input blocks over packed weight rows. Static, so each kernel file
 * gets its own inlined copy. See engine.c for the conventions.
 */
#ifndef ONEBIT_ENGINE_BLOCKS_H
#define ONEBIT_ENGINE_BLOCKS_H

#include "../common.h"
#include "../popcount.h"

enum { OUT_BITS = 0, OUT_REAL = 1 };
enum { ACT_NONE = 0, ACT_RELU = 1, ACT_HARDTANH = 2 };

static inline size_t words_of(size_t cols) { return (cols + 127) / 128 * 4; }

/* Rows [r0, r1) and output channels [j0, j1) of thread tid. */
static inline void split_rows_or_channels(size_t rows, size_t n, size_t row_align, int tid, int nt, size_t *r0,
                                          size_t *r1, size_t *j0, size_t *j1) {
  if (rows >= 4 * (size_t)nt || n <= 32) {
    thread_range(rows, row_align, tid, nt, r0, r1);
    *j0 = 0;
    *j1 = n;
  } else {
    *r0 = 0;
    *r1 = rows;
    thread_range(n, 32, tid, nt, j0, j1);
  }
}

static inline void split_work(size_t rows, size_t n, int tid, int nt, size_t *r0, size_t *r1, size_t *j0,
                              size_t *j1) {
  split_rows_or_channels(rows, n, 2, tid, nt, r0, r1, j0, j1);
}

static inline float activate(float y, int act) {
  if (act == ACT_RELU) return y > 0.0f ? y : 0.0f;
  if (act == ACT_HARDTANH) return y < -1.0f ? -1.0f : (y > 1.0f ? 1.0f : y);
  return y;
}

/* Clears the output words that this thread will OR bits into (its channels of its rows, plus padding). */
static inline void zero_bits(uint32_t *out, size_t n, size_t r0, size_t r1, size_t j0, size_t j1) {
  size_t words = words_of(n);
  size_t w0 = j0 / 32, w1 = j1 == n ? words : j1 / 32;
  for (size_t r = r0; r < r1; r++) {
    for (size_t w = w0; w < w1; w++) out[r * words + w] = 0;
  }
}

/* Output of an integer pre-activation z (bits-input layers). */
static inline void emit_int(int mode, const void *p0, const void *p1, int act, void *out, size_t n, size_t row,
                            size_t j, int32_t z) {
  if (mode == OUT_BITS) {
    int32_t t = ((const int32_t *)p0)[j];
    uint32_t neg = ((const int8_t *)p1)[j] > 0 ? (uint32_t)(z < t) : (uint32_t)(z > t);
    ((uint32_t *)out)[row * words_of(n) + (j >> 5)] |= neg << (j & 31);
  } else {
    double y = (double)z * (double)((const float *)p0)[j] + (double)((const float *)p1)[j];
    ((float *)out)[row * words_of(n) * 32 + j] = activate((float)y, act);
  }
}

/* Output of a real pre-activation s (real-input layers). */
static inline void emit_real(int mode, const void *p0, const void *p1, int act, void *out, size_t n, size_t row,
                             size_t j, double s) {
  if (mode == OUT_BITS) {
    double t = (double)((const float *)p0)[j];
    uint32_t neg = ((const int8_t *)p1)[j] > 0 ? (uint32_t)(s < t) : (uint32_t)(s > t);
    ((uint32_t *)out)[row * words_of(n) + (j >> 5)] |= neg << (j & 31);
  } else {
    double y = s * (double)((const float *)p0)[j] + (double)((const float *)p1)[j];
    ((float *)out)[row * words_of(n) * 32 + j] = activate((float)y, act);
  }
}

/* Sum of the first k bytes of a row of raw pixels (the first layer's V). */
static inline int64_t pixel_sum(const uint8_t *x, size_t k) {
  uint32_t s = 0;
  for (size_t i = 0; i < k; i++) s += x[i];
  return (int64_t)s;
}

/* ---------------------------------------------------------------------------------------------------- */
/* 1-bit activations: XNOR / popcount                                                                    */

/* Rows of W per cache block: the streamed weight rows (<= 128 KiB) stay in L2 while the batch passes. */
static inline size_t w_block_rows(size_t words) {
  size_t rows = (128 * 1024) / (words * 4);
  return rows < 4 ? 4 : rows & ~(size_t)3;
}

/* Scalar popcount(x XOR y) over `words` 32-bit words (an even number), 64 bits at a time. */
static inline uint32_t xor_popcount_scalar(const uint32_t *x, const uint32_t *y, size_t words) {
  const uint64_t *a = (const uint64_t *)x, *b = (const uint64_t *)y;
  uint32_t total = 0;
  for (size_t i = 0; i < words / 2; i++) total += (uint32_t)__builtin_popcountll(a[i] ^ b[i]);
  return total;
}

/*
 * Border correction of a convolution (docs/architecture.md "Padding"): a padded tap is packed as a clear bit
 * (+1), so z counts sum of the padded taps' weights too; corr[cidx[p] * n + j] is that sum for output pixel
 * p and channel j (cidx[p] < 0 for pixels whose window is inside the image). None for dense layers (cidx NULL).
 */
static inline int32_t correction(const int32_t *cidx, const int32_t *corr, size_t positions, size_t n, size_t row,
                                 size_t j) {
  if (cidx == NULL) return 0;
  int32_t c = cidx[row % positions];
  return c < 0 ? 0 : corr[(size_t)c * n + j];
}

/* Output of local row `row` (global row orow + row) of an XNOR block, border-corrected. */
#define EMIT_Z(row, j, z) \
  emit_int(mode, p0, p1, act, out, n, orow + (row), (j), (z) - correction(cidx, corr, positions, n, orow + (row), (j)))

/* The border correction row of output row `row` (n values), or NULL when it has none. */
static inline const int32_t *corr_row(const int32_t *cidx, const int32_t *corr, size_t positions, size_t n,
                                      size_t row) {
  if (cidx == NULL) return NULL;
  int32_t c = cidx[row % positions];
  return c < 0 ? NULL : corr + (size_t)c * n;
}

/* The bits of channels j..j+3 (j a multiple of 4) of one row from their popcounts, OR-ed into the row at once. */
static inline void emit4_bits(const void *p0, const void *p1, void *out, size_t n, size_t row, size_t j, int32_t kk,
                              const uint32_t *pop, const int32_t *c) {
  const int32_t *t = (const int32_t *)p0 + j;
  const int8_t *d = (const int8_t *)p1 + j;
  uint32_t bits = 0;
  for (int q = 0; q < 4; q++) {
    int32_t z = kk - 2 * (int32_t)pop[q] - (c ? c[j + (size_t)q] : 0);
    bits |= (d[q] > 0 ? (uint32_t)(z < t[q]) : (uint32_t)(z > t[q])) << q;
  }
  ((uint32_t *)out)[row * words_of(n) + (j >> 5)] |= bits << (j & 31);
}

/* Outputs of channels j..j+3 (j a multiple of 4) of one row from their popcounts: bits at once, or one by one. */
static inline void emit4_int(int mode, const void *p0, const void *p1, int act, void *out, size_t n, size_t row,
                             size_t j, int32_t kk, const uint32_t *pop, const int32_t *c) {
  if (mode == OUT_BITS) {
    emit4_bits(p0, p1, out, n, row, j, kk, pop, c);
    return;
  }
  for (size_t q = 0; q < 4; q++) emit_int(mode, p0, p1, act, out, n, row, j + q, kk - 2 * (int32_t)pop[q] - (c ? c[j + q] : 0));
}

/* Scalar variant: a 2 x 4 block of (x row, w row) pairs, i64.popcnt. */
static inline void xnor_scalar(size_t r0, size_t r1, size_t j0, size_t j1, size_t k, const uint32_t *x, const uint32_t *w,
                        int mode, const void *p0, const void *p1, int act, void *out, size_t n, size_t orow,
                        const int32_t *cidx, const int32_t *corr, size_t positions) {
  size_t words = words_of(k), halves = words / 2;
  size_t step = w_block_rows(words);
  int32_t kk = (int32_t)k;
  for (size_t jb = j0; jb < j1; jb += step) {
    size_t je = min_sz(j1, jb + step);
    size_t j4 = jb + (je - jb) / 4 * 4;
    size_t r = r0;
    for (; r + 2 <= r1; r += 2) {
      const uint64_t *a0 = (const uint64_t *)(x + r * words), *a1 = (const uint64_t *)(x + (r + 1) * words);
      for (size_t j = jb; j < j4; j += 4) {
        const uint64_t *b0 = (const uint64_t *)(w + j * words);
        const uint64_t *b1 = b0 + halves, *b2 = b1 + halves, *b3 = b2 + halves;
        uint32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, u0 = 0, u1 = 0, u2 = 0, u3 = 0;
        for (size_t i = 0; i < halves; i++) {
          uint64_t xa = a0[i], xb = a1[i], y;
          y = b0[i];
          t0 += (uint32_t)__builtin_popcountll(xa ^ y);
          u0 += (uint32_t)__builtin_popcountll(xb ^ y);
          y = b1[i];
          t1 += (uint32_t)__builtin_popcountll(xa ^ y);
          u1 += (uint32_t)__builtin_popcountll(xb ^ y);
          y = b2[i];
          t2 += (uint32_t)__builtin_popcountll(xa ^ y);
          u2 += (uint32_t)__builtin_popcountll(xb ^ y);
          y = b3[i];
          t3 += (uint32_t)__builtin_popcountll(xa ^ y);
          u3 += (uint32_t)__builtin_popcountll(xb ^ y);
        }
        EMIT_Z(r, j, kk - 2 * (int32_t)t0);
        EMIT_Z(r, j + 1, kk - 2 * (int32_t)t1);
        EMIT_Z(r, j + 2, kk - 2 * (int32_t)t2);
        EMIT_Z(r, j + 3, kk - 2 * (int32_t)t3);
        EMIT_Z(r + 1, j, kk - 2 * (int32_t)u0);
        EMIT_Z(r + 1, j + 1, kk - 2 * (int32_t)u1);
        EMIT_Z(r + 1, j + 2, kk - 2 * (int32_t)u2);
        EMIT_Z(r + 1, j + 3, kk - 2 * (int32_t)u3);
      }
    }
    /* Ragged edges: the last odd row, and the last (< 4) channels of the block. */
    for (size_t rr = r0; rr < r1; rr++) {
      for (size_t j = rr < r ? j4 : jb; j < je; j++) {
        int32_t z = kk - 2 * (int32_t)xor_popcount_scalar(x + rr * words, w + j * words, words);
        EMIT_Z(rr, j, z);
      }
    }
  }
}

#ifdef OB_SIMD128
/* SIMD variant: a 2 x 4 block of (x row, w row) pairs, i8x16.popcnt with byte accumulators. */
static inline void xnor_simd(size_t r0, size_t r1, size_t j0, size_t j1, size_t k, const uint32_t *x, const uint32_t *w,
                      int mode, const void *p0, const void *p1, int act, void *out, size_t n, size_t orow,
                      const int32_t *cidx, const int32_t *corr, size_t positions) {
  size_t words = words_of(k), vecs = words / 4;
  size_t step = w_block_rows(words);
  int32_t kk = (int32_t)k;
  for (size_t jb = j0; jb < j1; jb += step) {
    size_t je = min_sz(j1, jb + step);
    size_t j4 = jb + (je - jb) / 4 * 4;
    size_t r = r0;
    for (; r + 2 <= r1; r += 2) {
      const uint32_t *a0 = x + r * words;
      /* Each row's border correction, looked up once per row (NULL: none). */
      const int32_t *c0 = corr_row(cidx, corr, positions, n, orow + r);
      const int32_t *c1 = corr_row(cidx, corr, positions, n, orow + r + 1);
      for (size_t j = jb; j < j4; j += 4) {
        popcounts_2x4 p = xor_popcount_2x4(a0, w + j * words, words);
        emit4_int(mode, p0, p1, act, out, n, orow + r, j, kk, p.t, c0);
        emit4_int(mode, p0, p1, act, out, n, orow + r + 1, j, kk, p.u, c1);
      }
    }
    if (r < r1) {
      /* The odd last row (a batch of one, above all): one row against four channels at a time. */
      const int32_t *c0 = corr_row(cidx, corr, positions, n, orow + r);
      uint32_t pop[4] __attribute__((aligned(16)));
      for (size_t j = jb; j < j4; j += 4) {
        wasm_v128_store(pop, xor_popcount_1x4(x + r * words, w + j * words, words));
        emit4_int(mode, p0, p1, act, out, n, orow + r, j, kk, pop, c0);
      }
    }
    for (size_t rr = r0; rr < r1; rr++) {
      for (size_t j = j4; j < je; j++) {
        int32_t z = kk - 2 * (int32_t)xor_popcount_vecs(x + rr * words, w + j * words, vecs);
        EMIT_Z(rr, j, z);
      }
    }
  }
}
#endif

#ifdef OB_SIMD128
/* SIGN_MASK[b] has 0x80000000 in lane l iff bit l of b is set: XOR with it negates those lanes. */
#define M 0x80000000u
static const uint32_t SIGN_MASK[16][4] __attribute__((aligned(16))) = {
    {0, 0, 0, 0}, {M, 0, 0, 0}, {0, M, 0, 0}, {M, M, 0, 0}, {0, 0, M, 0}, {M, 0, M, 0}, {0, M, M, 0}, {M, M, M, 0},
    {0, 0, 0, M}, {M, 0, 0, M}, {0, M, 0, M}, {M, M, 0, M}, {0, 0, M, M}, {M, 0, M, M}, {0, M, M, M}, {M, M, M, M},
};
#undef M

static inline v128_t sign_mask(uint32_t bits, int q) { return wasm_v128_load(SIGN_MASK[(bits >> (4 * q)) & 15]); }

static inline float hsum_f32(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/*
 * One row against one packed sign row, in the same order as the tiled loop (4 lanes, then the lane sum), so
 * every output is the same whichever way the work is tiled or split across threads.
 */
static inline float signed_sum_simd(const float *x, const uint32_t *w, size_t k) {
  size_t nib = (k + 3) / 4, full = nib / 8, tail = nib % 8;
  v128_t acc = wasm_f32x4_splat(0.0f);
  for (size_t i = 0; i < full + (tail != 0); i++) {
    uint32_t b = w[i];
    int qn = i < full ? 8 : (int)tail;
    for (int q = 0; q < qn; q++) acc = wasm_f32x4_add(acc, wasm_v128_xor(wasm_v128_load(x + 32 * i + 4 * q), sign_mask(b, q)));
  }
  return hsum_f32(acc);
}
#endif

#ifndef OB_SIMD128
/* Scalar dot product of a float row with a packed sign row: the sign bit of each term flipped by its weight bit. */
static inline float signed_sum_scalar(const float *x, const uint32_t *w, size_t k) {
  float s = 0.0f;
  for (size_t c = 0; c < k; c++) s += (w[c >> 5] >> (c & 31)) & 1u ? -x[c] : x[c];
  return s;
}
#endif

/*
 * The first convolution on raw pixels through f32_rows: the gathered rows hold the pixel values themselves,
 * so the signed sums S are integers (exact in float32 below 2^24) and s = a S + c (wsum[j] - corr), the
 * normalisation x = a v + c applied with the weight sum over in-image taps only (padded taps are 0 in training).
 */
struct pixel_sums {
  const int32_t *wsum;
  double a, c;
  const int32_t *cidx, *corr;
  size_t positions;
};

static inline double pixel_fix(const struct pixel_sums *ps, double s, size_t row, size_t j, size_t n) {
  if (ps == NULL) return s;
  return ps->a * s + ps->c * (double)(ps->wsum[j] - correction(ps->cidx, ps->corr, ps->positions, n, row, j));
}

/*
 * Rows [r0, r1) of real x (local row r at x + r * kp, kp = words(k) * 32, padding 0) against packed sign rows
 * j0..j1 of W, written as global rows orow + r. Tiles of 4 rows x 2 channels: each nibble of weight bits becomes
 * a sign mask once and serves 4 rows. Only the first ceil(k / 4) nibbles are visited (the rest are padding:
 * adding +0 changes nothing), so a short row (a 3 x 3 x 3 convolution) does not pay for its 128-float padding.
 */
static inline __attribute__((always_inline)) void f32_rows(size_t r0, size_t r1, size_t j0, size_t j1, size_t k, const float *x, const uint32_t *w, int mode,
                     const void *p0, const void *p1, int act, void *out, size_t n, size_t orow, const struct pixel_sums *ps) {
  size_t words = words_of(k), kp = words * 32;
  size_t nib = (k + 3) / 4, full = nib / 8, tail = nib % 8, vis = full + (tail != 0);
  size_t r = r0;
  (void)vis;
#ifdef OB_SIMD128
  size_t j2 = j0 + (j1 - j0) / 2 * 2;
  for (; r + 4 <= r1; r += 4) {
    const float *x0 = x + r * kp, *x1 = x0 + kp, *x2 = x1 + kp, *x3 = x2 + kp;
    for (size_t j = j0; j < j2; j += 2) {
      const uint32_t *w0 = w + j * words, *w1 = w0 + words;
      v128_t a00 = wasm_f32x4_splat(0.0f), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      for (size_t i = 0; i < vis; i++) {
        uint32_t b0 = w0[i], b1 = w1[i];
        int qn = i < full ? 8 : (int)tail;
        for (int q = 0; q < qn; q++) {
          v128_t m0 = sign_mask(b0, q), m1 = sign_mask(b1, q), v;
          size_t o = 32 * i + 4 * q;
          v = wasm_v128_load(x0 + o);
          a00 = wasm_f32x4_add(a00, wasm_v128_xor(v, m0));
          a01 = wasm_f32x4_add(a01, wasm_v128_xor(v, m1));
          v = wasm_v128_load(x1 + o);
          a10 = wasm_f32x4_add(a10, wasm_v128_xor(v, m0));
          a11 = wasm_f32x4_add(a11, wasm_v128_xor(v, m1));
          v = wasm_v128_load(x2 + o);
          a20 = wasm_f32x4_add(a20, wasm_v128_xor(v, m0));
          a21 = wasm_f32x4_add(a21, wasm_v128_xor(v, m1));
          v = wasm_v128_load(x3 + o);
          a30 = wasm_f32x4_add(a30, wasm_v128_xor(v, m0));
          a31 = wasm_f32x4_add(a31, wasm_v128_xor(v, m1));
        }
      }
      emit_real(mode, p0, p1, act, out, n, orow + r, j, pixel_fix(ps, hsum_f32(a00), orow + r, j, n));
      emit_real(mode, p0, p1, act, out, n, orow + r, j + 1, pixel_fix(ps, hsum_f32(a01), orow + r, j + 1, n));
      emit_real(mode, p0, p1, act, out, n, orow + r + 1, j, pixel_fix(ps, hsum_f32(a10), orow + r + 1, j, n));
      emit_real(mode, p0, p1, act, out, n, orow + r + 1, j + 1, pixel_fix(ps, hsum_f32(a11), orow + r + 1, j + 1, n));
      emit_real(mode, p0, p1, act, out, n, orow + r + 2, j, pixel_fix(ps, hsum_f32(a20), orow + r + 2, j, n));
      emit_real(mode, p0, p1, act, out, n, orow + r + 2, j + 1, pixel_fix(ps, hsum_f32(a21), orow + r + 2, j + 1, n));
      emit_real(mode, p0, p1, act, out, n, orow + r + 3, j, pixel_fix(ps, hsum_f32(a30), orow + r + 3, j, n));
      emit_real(mode, p0, p1, act, out, n, orow + r + 3, j + 1, pixel_fix(ps, hsum_f32(a31), orow + r + 3, j + 1, n));
    }
    for (size_t j = j2; j < j1; j++) {
      for (size_t q = 0; q < 4; q++) emit_real(mode, p0, p1, act, out, n, orow + r + q, j, pixel_fix(ps, signed_sum_simd(x + (r + q) * kp, w + j * words, k), orow + r + q, j, n));
    }
  }
  /* Remaining rows (< 4): one row at a time. */
  for (; r < r1; r++) {
    for (size_t j = j0; j < j1; j++) emit_real(mode, p0, p1, act, out, n, orow + r, j, pixel_fix(ps, signed_sum_simd(x + r * kp, w + j * words, k), orow + r, j, n));
  }
#else
  for (; r < r1; r++) {
    for (size_t j = j0; j < j1; j++) emit_real(mode, p0, p1, act, out, n, orow + r, j, pixel_fix(ps, signed_sum_scalar(x + r * kp, w + j * words, k), orow + r, j, n));
  }
#endif
}


#include "avx512.h"

#endif
