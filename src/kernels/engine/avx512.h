/*
 * x86 AVX-512 code for the engine's hot kernels, compiled only into the native addon's avx512 level
 * (scripts/build-native.mjs). Each gives the same results bit for bit as the 128-bit path it replaces:
 *   xnor_avx512       1-bit layers (dense and conv): 512-bit XOR and VPOPCNTQ in 4 x 4 blocks of (row, channel);
 *   g5_first_layer    the first layer on raw pixels (oe_dense_g5): the sum of the pixels under weight -1 by
 *                     lookups in per-image tables of 5-pixel groups, 32 channels per VPERMW, exact (measured
 *                     faster here than VPDPBUSD integer dot products: 4.2 against 5.5 us per image on
 *                     mlp-2x2048, one thread);
 *   lut_f32_rows      real-input dense layers (oe_dense_f32_lut): each group of 4 inputs' 16 signed sums in
 *                     one register, looked up for 16 channels at once (VPERMPS), summed group after group in
 *                     the order of the wasm kernel, so the float results are identical.
 * Included by blocks.h after the shared output stages.
 */
#ifndef ONEBIT_ENGINE_AVX512_H
#define ONEBIT_ENGINE_AVX512_H

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VPOPCNTDQ__)
#define OB_AVX512 1
#include <immintrin.h>

/* The 32-bit words w.. of a row of `words` words that one 512-bit step covers (rows are whole 128-bit vectors). */
static inline __mmask16 words_mask(size_t words, size_t w) {
  size_t left = words - w;
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* The totals of s0..s3 (8 u64 lanes each) as four u32 in pop[0..3]: two transposing adds, then one fold. */
static inline void sum4_u64(__m512i s0, __m512i s1, __m512i s2, __m512i s3, uint32_t *pop) {
  __m512i t0 = _mm512_add_epi64(_mm512_unpacklo_epi64(s0, s1), _mm512_unpackhi_epi64(s0, s1));
  __m512i t1 = _mm512_add_epi64(_mm512_unpacklo_epi64(s2, s3), _mm512_unpackhi_epi64(s2, s3));
  /* Each 128-bit lane of t0 holds (s0, s1) partial sums, of t1 (s2, s3); add the four lanes. */
  __m512i u = _mm512_add_epi64(_mm512_shuffle_i64x2(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_i64x2(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)));
  u = _mm512_shuffle_i64x2(u, u, _MM_SHUFFLE(3, 1, 2, 0));
  __m256i v = _mm256_add_epi64(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
  _mm_storeu_si128((__m128i *)pop, _mm256_cvtepi64_epi32(v));
}

/* ---------------------------------------------------------------------------------------------------- */
/* Output stages of 16 channels                                                                           */

/*
 * The output stage of 16 channels j..j+15 of row `row` from their pre-activations s (two halves of 8 doubles):
 * emit_real's arithmetic lane for lane (double products and sums, one rounding to float32), so the same bits.
 */
static inline void emit16_real(__m512d s_lo, __m512d s_hi, size_t j, size_t row, int mode, const void *p0,
                               const void *p1, int act, void *out, size_t n) {
  if (mode == OUT_BITS) {
    const float *t = (const float *)p0 + j;
    __m512d t_lo = _mm512_cvtps_pd(_mm256_loadu_ps(t)), t_hi = _mm512_cvtps_pd(_mm256_loadu_ps(t + 8));
    __mmask16 lt = (__mmask16)(_mm512_cmp_pd_mask(s_lo, t_lo, _CMP_LT_OQ) |
                               ((unsigned)_mm512_cmp_pd_mask(s_hi, t_hi, _CMP_LT_OQ) << 8));
    __mmask16 gt = (__mmask16)(_mm512_cmp_pd_mask(s_lo, t_lo, _CMP_GT_OQ) |
                               ((unsigned)_mm512_cmp_pd_mask(s_hi, t_hi, _CMP_GT_OQ) << 8));
    __mmask16 up = _mm_cmpgt_epi8_mask(_mm_loadu_si128((const __m128i *)((const int8_t *)p1 + j)), _mm_setzero_si128());
    uint32_t bits = (uint32_t)((lt & up) | (gt & (__mmask16)~up));
    ((uint32_t *)out)[row * words_of(n) + (j >> 5)] |= bits << (j & 31);
    return;
  }
  const float *scale = (const float *)p0 + j, *bias = (const float *)p1 + j;
  __m512d y_lo = _mm512_add_pd(_mm512_mul_pd(s_lo, _mm512_cvtps_pd(_mm256_loadu_ps(scale))),
                               _mm512_cvtps_pd(_mm256_loadu_ps(bias)));
  __m512d y_hi = _mm512_add_pd(_mm512_mul_pd(s_hi, _mm512_cvtps_pd(_mm256_loadu_ps(scale + 8))),
                               _mm512_cvtps_pd(_mm256_loadu_ps(bias + 8)));
  __m512 y = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(y_lo)), _mm512_cvtpd_ps(y_hi), 1);
  if (act == ACT_RELU) {
    /* y > 0 ? y : 0 (NaN and -0 give +0) */
    y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), y);
  } else if (act == ACT_HARDTANH) {
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(y, _mm512_set1_ps(-1.0f), _CMP_LT_OQ), _mm512_set1_ps(-1.0f));
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(y, _mm512_set1_ps(1.0f), _CMP_GT_OQ), _mm512_set1_ps(1.0f));
  }
  _mm512_storeu_ps((float *)out + row * words_of(n) * 32 + j, y);
}

/* Emits channels [jb, hi) of row `row` from the 16 sums `q` of the pixels under weight -1 (as emit_block). */
static inline void emit_q16(__m512i q, size_t jb, size_t hi, size_t row, int64_t pix, const int32_t *wsum, double a,
                            double c, int mode, const void *p0, const void *p1, int act, void *out, size_t n) {
  if (hi - jb == 16) {
    /* V - 2Q is exact in int32 (|V|, |2Q| < 2^26 for k <= 2^16 pixels). */
    __m512i z = _mm512_sub_epi32(_mm512_set1_epi32((int32_t)pix), _mm512_add_epi32(q, q));
    __m512i ws = _mm512_loadu_si512((const void *)(wsum + jb));
    __m512d av = _mm512_set1_pd(a), cv = _mm512_set1_pd(c);
    __m512d s_lo = _mm512_add_pd(_mm512_mul_pd(av, _mm512_cvtepi32_pd(_mm512_castsi512_si256(z))),
                                 _mm512_mul_pd(cv, _mm512_cvtepi32_pd(_mm512_castsi512_si256(ws))));
    __m512d s_hi = _mm512_add_pd(_mm512_mul_pd(av, _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(z, 1))),
                                 _mm512_mul_pd(cv, _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(ws, 1))));
    emit16_real(s_lo, s_hi, jb, row, mode, p0, p1, act, out, n);
    return;
  }
  uint32_t qs[16] __attribute__((aligned(64)));
  _mm512_store_si512((__m512i *)qs, q);
  for (size_t j = jb; j < hi; j++)
    emit_real(mode, p0, p1, act, out, n, row, j, a * (double)(pix - 2 * (int64_t)qs[j - jb]) + c * (double)wsum[j]);
}

/* ---------------------------------------------------------------------------------------------------- */
/* 1-bit layers: XOR and VPOPCNTQ                                                                         */

#define XP512(acc, a, b) acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)))

/* popcount(x XOR y) over one row pair of `words` words. */
static inline uint32_t xor_popcount_512(const uint32_t *x, const uint32_t *y, size_t words) {
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < words; i += 16) {
    __mmask16 m = words_mask(words, i);
    XP512(acc, _mm512_maskz_loadu_epi32(m, x + i), _mm512_maskz_loadu_epi32(m, y + i));
  }
  return (uint32_t)_mm512_reduce_add_epi64(acc);
}

/*
 * R (1..4) rows from a0 (stride `words`) against the 4 weight rows from b0: pop[r][q] = popcount(a_r XOR b_q).
 * Always inlined with a constant R, so the block lives in registers.
 */
static inline __attribute__((always_inline)) void xnor_block_512(const uint32_t *a0, const uint32_t *b0,
                                                                 size_t words, int R, uint32_t pop[4][4]) {
  __m512i s[4][4];
  for (int r = 0; r < R; r++) {
    for (int q = 0; q < 4; q++) s[r][q] = _mm512_setzero_si512();
  }
  for (size_t i = 0; i < words; i += 16) {
    __mmask16 m = words_mask(words, i);
    __m512i y0 = _mm512_maskz_loadu_epi32(m, b0 + i), y1 = _mm512_maskz_loadu_epi32(m, b0 + words + i);
    __m512i y2 = _mm512_maskz_loadu_epi32(m, b0 + 2 * words + i);
    __m512i y3 = _mm512_maskz_loadu_epi32(m, b0 + 3 * words + i);
    for (int r = 0; r < R; r++) {
      __m512i v = _mm512_maskz_loadu_epi32(m, a0 + (size_t)r * words + i);
      XP512(s[r][0], v, y0);
      XP512(s[r][1], v, y1);
      XP512(s[r][2], v, y2);
      XP512(s[r][3], v, y3);
    }
  }
  for (int r = 0; r < R; r++) sum4_u64(s[r][0], s[r][1], s[r][2], s[r][3], pop[r]);
}


/* The outputs of 16 channels j..j+15 of one row from their popcounts (emit_int lane for lane; c: correction row). */
static inline void emit16_int(int mode, const void *p0, const void *p1, int act, void *out, size_t n, size_t row,
                              size_t j, int32_t kk, const uint32_t *pop, const int32_t *c) {
  __m512i p = _mm512_loadu_si512((const void *)pop);
  __m512i z = _mm512_sub_epi32(_mm512_set1_epi32(kk), _mm512_add_epi32(p, p));
  if (c != NULL) z = _mm512_sub_epi32(z, _mm512_loadu_si512((const void *)(c + j)));
  if (mode == OUT_BITS) {
    __m512i t = _mm512_loadu_si512((const void *)((const int32_t *)p0 + j));
    __mmask16 up = _mm_cmpgt_epi8_mask(_mm_loadu_si128((const __m128i *)((const int8_t *)p1 + j)), _mm_setzero_si128());
    __mmask16 bits = (__mmask16)((_mm512_cmplt_epi32_mask(z, t) & up) | (_mm512_cmpgt_epi32_mask(z, t) & (__mmask16)~up));
    ((uint32_t *)out)[row * words_of(n) + (j >> 5)] |= (uint32_t)bits << (j & 31);
    return;
  }
  emit16_real(_mm512_cvtepi32_pd(_mm512_castsi512_si256(z)), _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(z, 1)), j,
              row, mode, p0, p1, act, out, n);
}

/*
 * The rows [r, r + R) of an XNOR layer against channels [jb, j4) (a multiple of 4 apart), emitted 16 channels at
 * a time (four 4 x 4 blocks), then 4.
 */
static inline __attribute__((always_inline)) void xnor_rows_512(size_t r, int R, size_t jb, size_t j4, size_t words,
                                                                int32_t kk, const uint32_t *x, const uint32_t *w,
                                                                int mode, const void *p0, const void *p1, int act,
                                                                void *out, size_t n, size_t orow, const int32_t *cidx,
                                                                const int32_t *corr, size_t positions) {
  const int32_t *c[4];
  for (int q = 0; q < R; q++) c[q] = corr_row(cidx, corr, positions, n, orow + r + (size_t)q);
  uint32_t pop[4][4][4] __attribute__((aligned(64)));
  size_t j = jb;
  for (; j + 16 <= j4; j += 16) {
    for (int b = 0; b < 4; b++) xnor_block_512(x + r * words, w + (j + 4 * (size_t)b) * words, words, R, pop[b]);
    for (int q = 0; q < R; q++) {
      uint32_t row16[16] __attribute__((aligned(64)));
      for (int b = 0; b < 4; b++) __builtin_memcpy(row16 + 4 * b, pop[b][q], 16);
      emit16_int(mode, p0, p1, act, out, n, orow + r + (size_t)q, j, kk, row16, c[q]);
    }
  }
  for (; j < j4; j += 4) {
    xnor_block_512(x + r * words, w + j * words, words, R, pop[0]);
    for (int q = 0; q < R; q++) emit4_int(mode, p0, p1, act, out, n, orow + r + (size_t)q, j, kk, pop[0][q], c[q]);
  }
}

/* As xnor_simd (blocks.h), with 512-bit XOR and VPOPCNTQ in blocks of 4 rows x 4 channels. */
static inline void xnor_avx512(size_t r0, size_t r1, size_t j0, size_t j1, size_t k, const uint32_t *x,
                               const uint32_t *w, int mode, const void *p0, const void *p1, int act, void *out, size_t n,
                               size_t orow, const int32_t *cidx, const int32_t *corr, size_t positions) {
  size_t words = words_of(k);
  /* Blocks of a multiple of 16 channels, so that every 16-channel output group starts on a half word (j0 is
   * 0 or a multiple of 32) and its bits never straddle two output words. */
  size_t step = w_block_rows(words) / 16 * 16;
  if (step < 16) step = 16;
  int32_t kk = (int32_t)k;
  for (size_t jb = j0; jb < j1; jb += step) {
    size_t je = min_sz(j1, jb + step);
    size_t j4 = jb + (je - jb) / 4 * 4;
    size_t r = r0;
    for (; r + 4 <= r1; r += 4)
      xnor_rows_512(r, 4, jb, j4, words, kk, x, w, mode, p0, p1, act, out, n, orow, cidx, corr, positions);
    if (r1 - r == 3) xnor_rows_512(r, 3, jb, j4, words, kk, x, w, mode, p0, p1, act, out, n, orow, cidx, corr, positions);
    if (r1 - r == 2) xnor_rows_512(r, 2, jb, j4, words, kk, x, w, mode, p0, p1, act, out, n, orow, cidx, corr, positions);
    if (r1 - r == 1) xnor_rows_512(r, 1, jb, j4, words, kk, x, w, mode, p0, p1, act, out, n, orow, cidx, corr, positions);
    for (size_t rr = r0; rr < r1; rr++) {
      for (size_t j = j4; j < je; j++) {
        int32_t z = kk - 2 * (int32_t)xor_popcount_512(x + rr * words, w + j * words, words);
        EMIT_Z(rr, j, z);
      }
    }
  }
}
#undef XP512

/* ---------------------------------------------------------------------------------------------------- */
/* The first layer on raw pixels: VPERMW lookups over groups of 5 pixels                                  */

/*
 * The table of one group of 5 pixels of an image: T[m] = the sum of the pixels whose bit of m is set (32 u16,
 * at most 1275), the pixels past k taken as 0.
 */
static inline __m512i pixel_table5(const uint8_t *x, size_t col, size_t k) {
  __m512i t = _mm512_setzero_si512();
  for (int l = 0; l < 5; l++) {
    size_t c = col + (size_t)l;
    uint16_t v = c < k ? x[c] : 0;
    /* lanes m with bit l set */
    __mmask32 has = (__mmask32)(l == 0 ? 0xAAAAAAAAu : l == 1 ? 0xCCCCCCCCu : l == 2 ? 0xF0F0F0F0u : l == 3 ? 0xFF00FF00u : 0xFFFF0000u);
    t = _mm512_mask_add_epi16(t, has, t, _mm512_set1_epi16((short)v));
  }
  return t;
}

/* Groups of 5 pixels summed in u16 lanes before they are widened (48 * 1275 < 65536). */
#define G5_CHUNK 48

/*
 * R (1..8) images (tables `tab`, groups * 32 u16 each) against the 32 * B (B = 1 or 2) channels from jb: each
 * group's 32-channel index vector (the g5 layout) looks up every image's table (VPERMW); Q = the sum of the
 * pixels under weight -1, exact. Always inlined with constant R and B.
 */
static inline __attribute__((always_inline)) void g5_tile(const uint16_t *tab, int R, int B, const uint16_t *g5,
                                                          size_t groups, size_t jb, size_t j1, size_t r,
                                                          const int64_t *pix, const int32_t *wsum, double a, double c,
                                                          int mode, const void *p0, const void *p1, int act, void *out,
                                                          size_t n) {
  __m512i lo[8][4], hi[8][4];
  for (int q = 0; q < R; q++) {
    for (int b = 0; b < B; b++) lo[q][b] = hi[q][b] = _mm512_setzero_si512();
  }
  const uint16_t *i0 = g5 + (jb / 32) * groups * 32;
  for (size_t g0 = 0; g0 < groups; g0 += G5_CHUNK) {
    size_t g1 = min_sz(groups, g0 + G5_CHUNK);
    __m512i acc[8][4];
    for (int q = 0; q < R; q++) {
      for (int b = 0; b < B; b++) acc[q][b] = _mm512_setzero_si512();
    }
    for (size_t g = g0; g < g1; g++) {
      __m512i ix[4];
      for (int b = 0; b < B; b++) ix[b] = _mm512_loadu_si512((const void *)(i0 + ((size_t)b * groups + g) * 32));
      for (int q = 0; q < R; q++) {
        __m512i t = _mm512_loadu_si512((const void *)(tab + ((size_t)q * groups + g) * 32));
        for (int b = 0; b < B; b++) acc[q][b] = _mm512_add_epi16(acc[q][b], _mm512_permutexvar_epi16(ix[b], t));
      }
    }
    for (int q = 0; q < R; q++) {
      for (int b = 0; b < B; b++) {
        lo[q][b] = _mm512_add_epi32(lo[q][b], _mm512_cvtepu16_epi32(_mm512_castsi512_si256(acc[q][b])));
        hi[q][b] = _mm512_add_epi32(hi[q][b], _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(acc[q][b], 1)));
      }
    }
  }
  for (int q = 0; q < R; q++) {
    size_t row = r + (size_t)q;
    for (int b = 0; b < B; b++) {
      size_t j = jb + 32 * (size_t)b;
      if (j < j1) emit_q16(lo[q][b], j, min_sz(j1, j + 16), row, pix[q], wsum, a, c, mode, p0, p1, act, out, n);
      if (j + 16 < j1) emit_q16(hi[q][b], j + 16, min_sz(j1, j + 32), row, pix[q], wsum, a, c, mode, p0, p1, act, out, n);
    }
  }
}

/* R images from row r (tables built in `tab`) against channels [j0, j1), 64 at a time. */
static inline __attribute__((always_inline)) void g5_rows(const uint8_t *x, size_t kp, size_t k, size_t r, int R,
                                                          uint16_t *tab, const uint16_t *g5, size_t groups, size_t j0,
                                                          size_t j1, const int32_t *wsum, double a, double c, int mode,
                                                          const void *p0, const void *p1, int act, void *out,
                                                          size_t n) {
  int64_t pix[8];
  for (int q = 0; q < R; q++) {
    const uint8_t *xr = x + (r + (size_t)q) * kp;
    pix[q] = pixel_sum(xr, k);
    for (size_t g = 0; g < groups; g++)
      _mm512_storeu_si512((void *)(tab + ((size_t)q * groups + g) * 32), pixel_table5(xr, 5 * g, k));
  }
  size_t jb = j0;
  for (; jb + 96 < j1; jb += 128) g5_tile(tab, R, 4, g5, groups, jb, j1, r, pix, wsum, a, c, mode, p0, p1, act, out, n);
  for (; jb < j1; jb += 32) g5_tile(tab, R, 1, g5, groups, jb, j1, r, pix, wsum, a, c, mode, p0, p1, act, out, n);
}

/*
 * oe_dense_g5 on AVX-512: rows [r0, r1) against channels [j0, j1) (j0 a multiple of 32), 4 images x 128 channels
 * at a time (4 images' tables, 40 KiB on mlp-2x2048, stay in L1; 8 images spilled to L2 and ran half as fast);
 * `tab` has room for 8 images' tables (8 * groups * 64 bytes).
 */
static inline void g5_first_layer(size_t r0, size_t r1, size_t j0, size_t j1, size_t k, const uint8_t *x,
                                  const uint16_t *g5, const int32_t *wsum, double a, double c, int mode, const void *p0,
                                  const void *p1, int act, void *out, size_t n, uint16_t *tab) {
  size_t kp = words_of(k) * 32, groups = (k + 4) / 5;
  size_t r = r0;
  for (; r + 4 <= r1; r += 4) g5_rows(x, kp, k, r, 4, tab, g5, groups, j0, j1, wsum, a, c, mode, p0, p1, act, out, n);
  if (r + 2 <= r1) {
    g5_rows(x, kp, k, r, 2, tab, g5, groups, j0, j1, wsum, a, c, mode, p0, p1, act, out, n);
    r += 2;
  }
  if (r < r1) g5_rows(x, kp, k, r, 1, tab, g5, groups, j0, j1, wsum, a, c, mode, p0, p1, act, out, n);
}
#undef G5_CHUNK

/* ---------------------------------------------------------------------------------------------------- */
/* Real-input dense layers: VPERMPS lookups                                                              */

/*
 * The 16 signed sums of each group of 4 inputs of row x: T[g][m] = (s0 x0 + s1 x1) + (s2 x2 + s3 x3), s_l = -1
 * iff bit l of m, each sum formed as the wasm kernel forms it (build_f32_planes), as 16 floats per group.
 */
static inline void build_f32_tables(const float *x, size_t groups, float *tables) {
  const __m128 flip0 = _mm_castsi128_ps(_mm_setr_epi32(0, (int32_t)0x80000000u, 0, (int32_t)0x80000000u));
  const __m128 flip1 = _mm_castsi128_ps(_mm_setr_epi32(0, 0, (int32_t)0x80000000u, (int32_t)0x80000000u));
  const __m512i low2 = _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
  const __m512i high2 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  for (size_t g = 0; g < groups; g++) {
    __m128 v = _mm_loadu_ps(x + 4 * g);
    __m128 p = _mm_add_ps(_mm_xor_ps(_mm_shuffle_ps(v, v, 0x00), flip0), _mm_xor_ps(_mm_shuffle_ps(v, v, 0x55), flip1));
    __m128 q = _mm_add_ps(_mm_xor_ps(_mm_shuffle_ps(v, v, 0xAA), flip0), _mm_xor_ps(_mm_shuffle_ps(v, v, 0xFF), flip1));
    __m512 t = _mm512_add_ps(_mm512_permutexvar_ps(low2, _mm512_castps128_ps512(p)),
                             _mm512_permutexvar_ps(high2, _mm512_castps128_ps512(q)));
    _mm512_storeu_ps(tables + 16 * g, t);
  }
}

/* Emits 16 channels [jb, hi) of row `row` from their sums (as emit16 of engine.c). */
static inline void emit_f16(__m512 s, size_t jb, size_t hi, size_t row, int mode, const void *p0, const void *p1,
                            int act, void *out, size_t n) {
  if (hi - jb == 16) {
    emit16_real(_mm512_cvtps_pd(_mm512_castps512_ps256(s)), _mm512_cvtps_pd(_mm512_extractf32x8_ps(s, 1)), jb, row, mode,
                p0, p1, act, out, n);
    return;
  }
  float sums[16] __attribute__((aligned(64)));
  _mm512_store_ps(sums, s);
  for (size_t j = jb; j < hi; j++) emit_real(mode, p0, p1, act, out, n, row, j, sums[j - jb]);
}

#define LOOKUP16(acc, ix, table) acc = _mm512_add_ps(acc, _mm512_permutexvar_ps(ix, _mm512_loadu_ps(table)))

/*
 * Rows `row` (tables ta) and, when tb is not NULL, row + 1 (tables tb) against channels [j0, j1) (j0 a multiple
 * of 16), four blocks of 16 channels at a time: each group's table is loaded once per row for the four.
 * Each channel's sum runs over the groups in order from +0, as f32_rows_planes adds them.
 */
static inline void lut_f32_rows(const float *ta, const float *tb, size_t groups, size_t gstride, const uint8_t *nib,
                         size_t j0, size_t j1, size_t row, int mode, const void *p0, const void *p1, int act, void *out,
                         size_t n) {
  size_t jb = j0;
  for (; jb < j1; jb += 64) {
    size_t blocks = min_sz(4, (j1 - jb + 15) / 16);
    const uint8_t *ix0 = nib + (jb / 16) * gstride * 16;
    __m512 a[4], b[4];
    for (int q = 0; q < 4; q++) a[q] = b[q] = _mm512_setzero_ps();
    if (blocks == 4 && tb != NULL) {
      for (size_t g = 0; g < groups; g++) {
        for (int q = 0; q < 4; q++) {
          __m512i ix = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ix0 + (size_t)q * gstride * 16 + 16 * g)));
          LOOKUP16(a[q], ix, ta + 16 * g);
          LOOKUP16(b[q], ix, tb + 16 * g);
        }
      }
    } else {
      for (size_t g = 0; g < groups; g++) {
        for (size_t q = 0; q < blocks; q++) {
          __m512i ix = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ix0 + q * gstride * 16 + 16 * g)));
          LOOKUP16(a[q], ix, ta + 16 * g);
          if (tb != NULL) LOOKUP16(b[q], ix, tb + 16 * g);
        }
      }
    }
    for (size_t q = 0; q < blocks; q++) {
      size_t lo = jb + 16 * q, hi = min_sz(j1, lo + 16);
      emit_f16(a[q], lo, hi, row, mode, p0, p1, act, out, n);
      if (tb != NULL) emit_f16(b[q], lo, hi, row + 1, mode, p0, p1, act, out, n);
    }
  }
}
#undef LOOKUP16
#endif

#endif
