/*
 * Float-free counter updates, fused with the weight gradient so that dL/dW never exists in memory:
 *   dW[i][j]  = sum_b e[b][i] * x[b][j]                       (integer)
 *   delta     = (dW + (r & (2^shift - 1))) >> shift           (stochastic rounding of dW / 2^shift)
 *   h[i][j]   = clamp(h[i][j] - delta, -clip, clip)           (int16 counters; the weight is sgn(h))
 * where r is the next number of row i's xorshift32 stream: row i has four lanes seeded by
 * ff_seed(key, i, lane); column j takes lane j % 4 of the (j / 4 + 1)-th step of the four lanes, so the
 * result does not depend on how rows are split between threads. Columns past `cols` stay 0.
 *
 * Binary inputs (x = +-1, given as masks -1 for x = -1): dW = E_i - 2 sum_{b: x=-1} e[b][i] with
 * E_i = sum_b e[b][i], additions only; the packed signs of the new counters are written too (the next
 * forward's XNOR operand). Pixel inputs (the first layer, x = pixel - 128): int8 x int8 products summed
 * with i32x4.dot_i16x8_s over pairs of examples.
 */
#include "ff.h"
#include "kernels.h"

#ifdef OB_SIMD128
/* Four steps of the row's four xorshift32 lanes. */
static inline v128_t xorshift_v(v128_t x) {
  x = wasm_v128_xor(x, wasm_i32x4_shl(x, 13));
  x = wasm_v128_xor(x, wasm_u32x4_shr(x, 17));
  x = wasm_v128_xor(x, wasm_i32x4_shl(x, 5));
  return x;
}

static inline v128_t seed_v(uint32_t key, uint32_t row) {
  return wasm_i32x4_make((int32_t)ff_seed(key, row, 0), (int32_t)ff_seed(key, row, 1), (int32_t)ff_seed(key, row, 2),
                         (int32_t)ff_seed(key, row, 3));
}

/*
 * Applies the update to 8 counters hr[0..7] (columns j..j+7) given dW in d0 (j..j+3) and d1 (j+4..j+7);
 * advances the row's stream by two steps; `valid` lanes (-1) are written, others keep their value.
 * Returns the new counters.
 */
static inline v128_t apply8(int16_t *hr, v128_t d0, v128_t d1, v128_t *state, v128_t rmask, int shift, v128_t lo,
                            v128_t hi, v128_t valid) {
  v128_t r0 = xorshift_v(*state);
  v128_t r1 = xorshift_v(r0);
  *state = r1;
  v128_t q0 = wasm_i32x4_shr(wasm_i32x4_add(d0, wasm_v128_and(r0, rmask)), shift);
  v128_t q1 = wasm_i32x4_shr(wasm_i32x4_add(d1, wasm_v128_and(r1, rmask)), shift);
  v128_t old = wasm_v128_load(hr);
  v128_t h0 = wasm_i32x4_sub(wasm_i32x4_extend_low_i16x8(old), q0);
  v128_t h1 = wasm_i32x4_sub(wasm_i32x4_extend_high_i16x8(old), q1);
  h0 = wasm_i32x4_min(wasm_i32x4_max(h0, lo), hi);
  h1 = wasm_i32x4_min(wasm_i32x4_max(h1, lo), hi);
  v128_t fresh = wasm_v128_bitselect(wasm_i16x8_narrow_i32x4(h0, h1), old, valid);
  wasm_v128_store(hr, fresh);
  return fresh;
}

/* -1 in the lanes j + l < cols (l = 0..7), 0 elsewhere. */
static inline v128_t valid_lanes(size_t j, size_t cols) {
  if (j + 8 <= cols) return wasm_i16x8_splat(-1);
  int16_t v[8];
  for (int l = 0; l < 8; l++) v[l] = j + (size_t)l < cols ? -1 : 0;
  return wasm_i16x8_make(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
}
#endif

#ifndef OB_SIMD128
/* One column update (the build without SIMD). */
static inline int16_t apply1(int16_t h, int32_t dw, uint32_t r, int shift, int32_t clip) {
  int32_t mask = (int32_t)(((uint32_t)1 << shift) - 1u);
  int32_t delta = (dw + (int32_t)(r & (uint32_t)mask)) >> shift;
  return (int16_t)ff_clamp32((int32_t)h - delta, -clip, clip);
}
#endif

/*
 * Subset tables of each output's errors over groups of 4 examples, for ff_update_bits: tables is
 * uint8 [rows][G][32] with G = ceil(n / 4) (examples past n count as 0); totals[i] = sum_b e[b][i].
 */
EXPORT(ff_row_tables)
void ff_row_tables(int tid, int nt, size_t n, size_t rows, const int8_t *e, size_t es, uint8_t *tables,
                   int32_t *totals) {
  size_t groups = (n + 3) / 4, lo, hi;
  thread_range(rows, 1, tid, nt, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    int32_t total = 0;
    for (size_t b = 0; b < n; b++) total += e[b * es + i];
    totals[i] = total;
    for (size_t g = 0; g < groups; g++) {
      int32_t v[4];
      for (size_t r = 0; r < 4; r++) v[r] = 4 * g + r < n ? e[(4 * g + r) * es + i] : 0;
#ifdef OB_SIMD128
      ff_subset_table(v[0], v[1], v[2], v[3], tables + (i * groups + g) * 32);
#else
      ff_subset_table_scalar(v[0], v[1], v[2], v[3], tables + (i * groups + g) * 32);
#endif
    }
  }
}

/*
 * Nibbles of the input signs for ff_update_bits: nib is uint8 [p / 16][G][16] (G = ceil(n / 4)); byte t of
 * (block c, group g) has bit r set iff act[4g + r] has column 16c + t set (x = -1); 0 past n and cols.
 */
EXPORT(ff_act_nibbles)
void ff_act_nibbles(int tid, int nt, size_t n, size_t cols, size_t p, const uint32_t *act, uint8_t *nib) {
  size_t groups = (n + 3) / 4, words = ff_words(cols), lo, hi;
  thread_range(p / 16, 1, tid, nt, &lo, &hi);
  for (size_t c = lo; c < hi; c++) {
    size_t j0 = 16 * c;
    for (size_t g = 0; g < groups; g++) {
      uint8_t *out = nib + (c * groups + g) * 16;
      for (size_t t = 0; t < 16; t++) out[t] = 0;
      if (j0 >= cols) continue;
      for (size_t r = 0; r < 4 && 4 * g + r < n; r++) {
        const uint32_t *ab = act + (4 * g + r) * words;
        uint32_t bits = (ab[j0 >> 5] >> (j0 & 31)) & 0xffffu; /* j0 is a multiple of 16: one word */
        for (size_t t = 0; t < 16; t++) out[t] |= (uint8_t)(((bits >> t) & 1u) << r);
      }
    }
  }
}

/*
 * Binary-input layer: rows x cols weights, int16 counters h [rows][p] and their packed signs w
 * ([rows][words(cols)], rewritten). The errors enter through ff_row_tables (tables, totals), the inputs
 * through ff_act_nibbles (nib): T[i][j] = sum_{b: x[b][j] = -1} e[b][i] by table lookups (16 columns per
 * lookup, 4 examples per nibble), dW = totals[i] - 2 T[i][j]; additions only.
 */
#define UPDATE_BITS_ROWS 4
EXPORT(ff_update_bits)
void ff_update_bits(int tid, int nt, size_t n, size_t rows, size_t cols, size_t p, const uint8_t *tables,
                    const int32_t *totals, const uint8_t *nib, int16_t *h, uint32_t *w, uint32_t key, int shift,
                    int32_t clip) {
  size_t groups = (n + 3) / 4, words = ff_words(cols), lo, hi;
  thread_range(rows, UPDATE_BITS_ROWS, tid, nt, &lo, &hi);
  for (size_t i0 = lo; i0 < hi; i0 += UPDATE_BITS_ROWS) {
    size_t nr = min_sz(UPDATE_BITS_ROWS, hi - i0);
#ifdef OB_SIMD128
    v128_t st[UPDATE_BITS_ROWS];
    for (size_t r = 0; r < UPDATE_BITS_ROWS; r++) st[r] = seed_v(key, (uint32_t)(i0 + r));
    v128_t rmask = wasm_i32x4_splat((int32_t)(((uint32_t)1 << shift) - 1u));
    v128_t vlo = wasm_i32x4_splat(-clip), vhi = wasm_i32x4_splat(clip);
    uint32_t pending[UPDATE_BITS_ROWS] = {0, 0, 0, 0};
    const uint8_t *tr[UPDATE_BITS_ROWS];
    for (size_t r = 0; r < UPDATE_BITS_ROWS; r++) tr[r] = tables + (i0 + (r < nr ? r : 0)) * groups * 32;
    for (size_t j = 0; j < p; j += 16) {
      const uint8_t *nb = nib + (j / 16) * groups * 16;
      int32_t t32[UPDATE_BITS_ROWS][16];
      for (size_t r = 0; r < UPDATE_BITS_ROWS; r++)
        for (int c = 0; c < 16; c++) t32[r][c] = 0;
      for (size_t g0 = 0; g0 < groups; g0 += 64) { /* int16 lanes: 64 sums of at most 4 * 127 */
        size_t g1 = min_sz(groups, g0 + 64);
        v128_t a00 = wasm_i16x8_splat(0), a01 = a00, a10 = a00, a11 = a00;
        v128_t a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        for (size_t g = g0; g < g1; g++) {
          v128_t idx = wasm_v128_load(nb + 16 * g);
          FF_LOOKUP_ADD(tr[0] + 32 * g, idx, a00, a01);
          FF_LOOKUP_ADD(tr[1] + 32 * g, idx, a10, a11);
          FF_LOOKUP_ADD(tr[2] + 32 * g, idx, a20, a21);
          FF_LOOKUP_ADD(tr[3] + 32 * g, idx, a30, a31);
        }
        flush8(t32[0], a00), flush8(t32[0] + 8, a01);
        flush8(t32[1], a10), flush8(t32[1] + 8, a11);
        flush8(t32[2], a20), flush8(t32[2] + 8, a21);
        flush8(t32[3], a30), flush8(t32[3] + 8, a31);
      }
      v128_t valid0 = valid_lanes(j, cols), valid1 = valid_lanes(j + 8, cols);
      for (size_t r = 0; r < nr; r++) {
        v128_t et = wasm_i32x4_splat(totals[i0 + r]);
        int16_t *hr = h + (i0 + r) * p + j;
        v128_t d[4];
        for (int c = 0; c < 4; c++) d[c] = wasm_i32x4_sub(et, wasm_i32x4_shl(wasm_v128_load(t32[r] + 4 * c), 1));
        v128_t n0 = apply8(hr, d[0], d[1], &st[r], rmask, shift, vlo, vhi, valid0);
        v128_t n1 = apply8(hr + 8, d[2], d[3], &st[r], rmask, shift, vlo, vhi, valid1);
        uint32_t bits = (uint32_t)wasm_i16x8_bitmask(wasm_i16x8_lt(n0, wasm_i16x8_splat(0))) |
                        ((uint32_t)wasm_i16x8_bitmask(wasm_i16x8_lt(n1, wasm_i16x8_splat(0))) << 8);
        bits &= (uint32_t)wasm_i16x8_bitmask(valid0) | ((uint32_t)wasm_i16x8_bitmask(valid1) << 8);
        if ((j & 31) == 0) {
          pending[r] = bits;
        } else if ((j >> 5) < words) {
          w[(i0 + r) * words + (j >> 5)] = pending[r] | (bits << 16);
          pending[r] = 0;
        }
      }
      /* The counters' row stride p can pass the packed row's last word (p = cols + 16 when cols is a
       * multiple of 256): columns there are padding, and their word belongs to the next row. */
      if ((j & 31) == 0 && j + 16 >= p && (j >> 5) < words) {
        for (size_t r = 0; r < nr; r++) w[(i0 + r) * words + (j >> 5)] = pending[r];
      }
    }
    for (size_t r = 0; r < nr; r++) {
      for (size_t ww = (p + 31) / 32; ww < words; ww++) w[(i0 + r) * words + ww] = 0;
    }
#else
    for (size_t r = 0; r < nr; r++) {
      size_t i = i0 + r;
      uint32_t st[4] = {ff_seed(key, (uint32_t)i, 0), ff_seed(key, (uint32_t)i, 1), ff_seed(key, (uint32_t)i, 2),
                        ff_seed(key, (uint32_t)i, 3)};
      for (size_t ww = 0; ww < words; ww++) w[i * words + ww] = 0;
      for (size_t j = 0; j < p; j++) {
        if ((j & 3) == 0)
          for (int l = 0; l < 4; l++) st[l] = ff_xorshift32(st[l]);
        if (j >= cols) continue;
        int32_t t = 0;
        for (size_t g = 0; g < groups; g++)
          t += ff_table_at(tables + (i * groups + g) * 32, nib[((j / 16) * groups + g) * 16 + (j & 15)]);
        int16_t v = apply1(h[i * p + j], totals[i] - 2 * t, st[j & 3], shift, clip);
        h[i * p + j] = v;
        if (v < 0) w[i * words + (j >> 5)] |= 1u << (j & 31);
      }
    }
#endif
  }
}

/*
 * Pixel-input layer: dW[i][j] = sum_b e[b][i] * x[b][j] from the example pairs (ff_quantize's `pairs`,
 * int32 [rows][hn], and ff_input's xp, int32 [hn][p], hn = ceil(n/2)).
 */
EXPORT(ff_update_pixels)
void ff_update_pixels(int tid, int nt, size_t n, size_t rows, size_t cols, size_t p, const uint32_t *ep,
                      const uint32_t *xp, int16_t *h, uint32_t key, int shift, int32_t clip) {
  size_t hn = (n + 1) / 2, lo, hi;
  thread_range(rows, 4, tid, nt, &lo, &hi);
#ifdef OB_SIMD128
  v128_t rmask = wasm_i32x4_splat((int32_t)(((uint32_t)1 << shift) - 1u));
  v128_t vlo = wasm_i32x4_splat(-clip), vhi = wasm_i32x4_splat(clip);
  for (size_t i0 = lo; i0 < hi; i0 += 4) {
    size_t nr = min_sz(4, hi - i0);
    v128_t st[4];
    for (size_t r = 0; r < 4; r++) st[r] = seed_v(key, (uint32_t)(i0 + r));
    const uint32_t *e0 = ep + i0 * hn;
    const uint32_t *e1 = nr > 1 ? e0 + hn : e0, *e2 = nr > 2 ? e0 + 2 * hn : e0, *e3 = nr > 3 ? e0 + 3 * hn : e0;
    for (size_t j = 0; j < p; j += 8) {
      v128_t a00 = wasm_i32x4_splat(0), a01 = a00, a10 = a00, a11 = a00;
      v128_t a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      for (size_t q = 0; q < hn; q++) {
        const uint32_t *xr = xp + q * p + j;
        v128_t x0 = wasm_v128_load(xr), x1 = wasm_v128_load(xr + 4), v;
        v = wasm_v128_load32_splat(e0 + q);
        a00 = wasm_i32x4_add(a00, wasm_i32x4_dot_i16x8(v, x0));
        a01 = wasm_i32x4_add(a01, wasm_i32x4_dot_i16x8(v, x1));
        v = wasm_v128_load32_splat(e1 + q);
        a10 = wasm_i32x4_add(a10, wasm_i32x4_dot_i16x8(v, x0));
        a11 = wasm_i32x4_add(a11, wasm_i32x4_dot_i16x8(v, x1));
        v = wasm_v128_load32_splat(e2 + q);
        a20 = wasm_i32x4_add(a20, wasm_i32x4_dot_i16x8(v, x0));
        a21 = wasm_i32x4_add(a21, wasm_i32x4_dot_i16x8(v, x1));
        v = wasm_v128_load32_splat(e3 + q);
        a30 = wasm_i32x4_add(a30, wasm_i32x4_dot_i16x8(v, x0));
        a31 = wasm_i32x4_add(a31, wasm_i32x4_dot_i16x8(v, x1));
      }
      v128_t valid = valid_lanes(j, cols);
      apply8(h + i0 * p + j, a00, a01, &st[0], rmask, shift, vlo, vhi, valid);
      if (nr > 1) apply8(h + (i0 + 1) * p + j, a10, a11, &st[1], rmask, shift, vlo, vhi, valid);
      if (nr > 2) apply8(h + (i0 + 2) * p + j, a20, a21, &st[2], rmask, shift, vlo, vhi, valid);
      if (nr > 3) apply8(h + (i0 + 3) * p + j, a30, a31, &st[3], rmask, shift, vlo, vhi, valid);
    }
  }
#else
  for (size_t i = lo; i < hi; i++) {
    uint32_t st[4] = {ff_seed(key, (uint32_t)i, 0), ff_seed(key, (uint32_t)i, 1), ff_seed(key, (uint32_t)i, 2),
                      ff_seed(key, (uint32_t)i, 3)};
    for (size_t j = 0; j < p; j++) {
      if ((j & 3) == 0)
        for (int l = 0; l < 4; l++) st[l] = ff_xorshift32(st[l]);
      if (j >= cols) continue;
      int32_t dw = 0;
      for (size_t q = 0; q < hn; q++) {
        uint32_t a = ep[i * hn + q], x = xp[q * p + j];
        dw += (int32_t)(int16_t)(a & 0xffffu) * (int32_t)(int16_t)(x & 0xffffu) +
              (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(x >> 16);
      }
      h[i * p + j] = apply1(h[i * p + j], dw, st[j & 3], shift, clip);
    }
  }
#endif
}
