/*
 * Float-free backward pass: errors through the +-1 weights by masked additions (no multiplication), the
 * straight-through gate and the centring of the integer normalisation, and the requantisation of each
 * layer's error to int8 with a power-of-two scale. Semantics: reference.ts, function by function.
 */
#include "ff.h"
#include "kernels.h"

/*
 * In place on g (int32 [n][gs]), columns [0, cols): with gate bits ([n][words(cols)], or null) g = 0 where
 * the gate bit is clear; with `center`, each column minus floor(column sum / n) (the backward of the
 * mean subtraction); with act bits (the layer's output signs a = +-1, [n][words(cols)], or null), each
 * column minus a * floor(sum_b g a / n): batch norm's variance term with the normalised activation
 * approximated by its sign (the error's projection off the sign pattern; additions only). csum
 * (int32 [2 cols]) is scratch. Writes this thread's max |g| over its columns to partial[tid].
 */
EXPORT(ff_center_max)
void ff_center_max(int tid, int nt, size_t n, size_t cols, int32_t *g, size_t gs, const uint32_t *gate, int center,
                   const uint32_t *act, int32_t *csum, int32_t *partial) {
  size_t words = ff_words(cols), lo, hi;
  thread_range(cols, 32, tid, nt, &lo, &hi);
  int32_t top = 0;
  int32_t *cproj = csum + cols;
  if (lo < hi) {
    for (size_t j = lo; j < hi; j++) csum[j] = 0, cproj[j] = 0;
    for (size_t b = 0; b < n; b++) {
      int32_t *gb = g + b * gs;
      const uint32_t *bits = gate ? gate + b * words : (const uint32_t *)0;
      for (size_t j = lo; j < hi; j++) {
        if (bits && !((bits[j >> 5] >> (j & 31)) & 1u)) gb[j] = 0;
        csum[j] += gb[j];
      }
    }
    for (size_t j = lo; j < hi; j++) csum[j] = center ? (int32_t)ff_floor_div(csum[j], (int64_t)n) : 0;
    for (size_t b = 0; b < n; b++) {
      int32_t *gb = g + b * gs;
      const uint32_t *ab = act ? act + b * words : (const uint32_t *)0;
      for (size_t j = lo; j < hi; j++) {
        gb[j] -= csum[j];
        if (ab) cproj[j] += ((ab[j >> 5] >> (j & 31)) & 1u) ? -gb[j] : gb[j];
      }
    }
    if (act) {
      for (size_t j = lo; j < hi; j++) cproj[j] = (int32_t)ff_floor_div(cproj[j], (int64_t)n);
    }
    for (size_t b = 0; b < n; b++) {
      int32_t *gb = g + b * gs;
      const uint32_t *ab = act ? act + b * words : (const uint32_t *)0;
      for (size_t j = lo; j < hi; j++) {
        int32_t v = gb[j];
        if (ab) v -= ((ab[j >> 5] >> (j & 31)) & 1u) ? -cproj[j] : cproj[j];
        gb[j] = v;
        int32_t a = v < 0 ? -v : v;
        if (a > top) top = a;
      }
    }
  }
  partial[tid] = top;
}

/*
 * e (int8 [n][es]) = g quantised with the layer's power-of-two scale: M = max(partial[0..parts)),
 * q = max(0, bitlen(M) - 7), e = clamp((g + 2^(q-1)) >> q, -127, 127) (g itself when q = 0); columns
 * cols..es-1 are 0. With `pairs` (int32 [es][ceil(n/2)], or null) also the example pairs of e as two int16
 * halves (low: example 2q, high: 2q+1, 0 past the last). Thread 0 writes q to *qout.
 */
EXPORT(ff_quantize)
void ff_quantize(int tid, int nt, size_t n, size_t cols, const int32_t *g, size_t gs, const int32_t *partial,
                 size_t parts, int8_t *e, size_t es, uint32_t *pairs, int32_t *qout) {
  int32_t top = 0;
  for (size_t t = 0; t < parts; t++) top = partial[t] > top ? partial[t] : top;
  int q = ff_bitlen((uint64_t)top) - 7;
  if (q < 0) q = 0;
  if (tid == 0) *qout = q;
  int32_t half = q > 0 ? (int32_t)1 << (q - 1) : 0;
  size_t lo, hi;
  thread_range(es, 16, tid, nt, &lo, &hi);
  if (lo >= hi) return;
  for (size_t b = 0; b < n; b++) {
    const int32_t *gb = g + b * gs;
    int8_t *eb = e + b * es;
    for (size_t j = lo; j < hi; j++) eb[j] = j < cols ? (int8_t)ff_clamp32((gb[j] + half) >> q, -127, 127) : 0;
  }
  if (pairs) {
    size_t hn = (n + 1) / 2;
    for (size_t j = lo; j < hi; j++) {
      for (size_t p = 0; p < hn; p++) {
        uint32_t a = (uint16_t)(int16_t)e[2 * p * es + j];
        uint32_t c = 2 * p + 1 < n ? (uint16_t)(int16_t)e[(2 * p + 1) * es + j] : 0u;
        pairs[j * hn + p] = a | (c << 16);
      }
    }
  }
}

/*
 * Subset tables of each example's errors over groups of 4 outputs (ff_subset_table): tables is
 * uint8 [n][G][32] with G = ceil(rows / 4) (rows past `rows` count as 0), totals[b] = sum_i e[b][i].
 */
EXPORT(ff_error_tables)
void ff_error_tables(int tid, int nt, size_t n, size_t rows, const int8_t *e, size_t es, uint8_t *tables,
                     int32_t *totals) {
  size_t groups = (rows + 3) / 4, lo, hi;
  thread_range(n, 1, tid, nt, &lo, &hi);
  for (size_t b = lo; b < hi; b++) {
    const int8_t *eb = e + b * es;
    int32_t total = 0;
    for (size_t i = 0; i < rows; i++) total += eb[i];
    totals[b] = total;
    for (size_t g = 0; g < groups; g++) {
      int32_t v[4];
      for (size_t r = 0; r < 4; r++) v[r] = 4 * g + r < rows ? eb[4 * g + r] : 0;
#ifdef OB_SIMD128
      ff_subset_table(v[0], v[1], v[2], v[3], tables + (b * groups + g) * 32);
#else
      ff_subset_table_scalar(v[0], v[1], v[2], v[3], tables + (b * groups + g) * 32);
#endif
    }
  }
}

/*
 * ex (int32 [n][p]) = the error at a layer's input: ex[b][j] = sum_{i < rows} sgn(h[i][j]) * e[b][i] for
 * every column j < p, with sgn(h) = -1 for h < 0 and +1 otherwise; h is int16 [rows][p]; e enters through
 * ff_error_tables. Computed as totals[b] - 2 sum_{i: h[i][j] < 0} e[b][i], the masked sum by table lookups:
 * for each 16 columns and each group of 4 rows, the 4 sign bits of each column (a nibble, built from the
 * counters into this thread's scratch, G * 16 bytes) index the example's subset table; additions only.
 */
EXPORT(ff_backward_input)
void ff_backward_input(int tid, int nt, size_t n, size_t rows, size_t p, const int16_t *h, const uint8_t *tables,
                       const int32_t *totals, int32_t *ex, uint8_t *scratch) {
  size_t groups = (rows + 3) / 4, lo, hi;
  thread_range(p, 16, tid, nt, &lo, &hi);
  if (lo >= hi) return;
  uint8_t *nib = scratch + (size_t)tid * groups * 16;
  for (size_t j0 = lo; j0 < hi; j0 += 16) {
    /* The nibbles of columns j0..j0+15: byte t of group g has bit r set iff h[4g + r][j0 + t] < 0. */
    for (size_t g = 0; g < groups; g++) {
#ifdef OB_SIMD128
      v128_t acc = wasm_i8x16_splat(0);
      for (size_t r = 0; r < 4 && 4 * g + r < rows; r++) {
        const int16_t *hr = h + (4 * g + r) * p + j0;
        v128_t m = wasm_i8x16_narrow_i16x8(wasm_i16x8_shr(wasm_v128_load(hr), 15), wasm_i16x8_shr(wasm_v128_load(hr + 8), 15));
        acc = wasm_v128_or(acc, wasm_v128_and(m, wasm_i8x16_splat((int8_t)(1 << r))));
      }
      wasm_v128_store(nib + 16 * g, acc);
#else
      for (size_t t = 0; t < 16; t++) {
        uint8_t bits = 0;
        for (size_t r = 0; r < 4 && 4 * g + r < rows; r++) bits |= (uint8_t)((h[(4 * g + r) * p + j0 + t] < 0) << r);
        nib[16 * g + t] = bits;
      }
#endif
    }
    for (size_t b = 0; b < n; b++) {
      for (size_t t = 0; t < 16; t++) ex[b * p + j0 + t] = 0;
    }
    size_t b = 0;
#ifdef OB_SIMD128
    for (; b + 4 <= n; b += 4) {
      const uint8_t *t0 = tables + b * groups * 32, *t1 = t0 + groups * 32, *t2 = t1 + groups * 32, *t3 = t2 + groups * 32;
      for (size_t g0 = 0; g0 < groups; g0 += 64) { /* int16 lanes: 64 sums of at most 4 * 127 */
        size_t g1 = min_sz(groups, g0 + 64);
        v128_t a00 = wasm_i16x8_splat(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        for (size_t g = g0; g < g1; g++) {
          v128_t idx = wasm_v128_load(nib + 16 * g);
          FF_LOOKUP_ADD(t0 + 32 * g, idx, a00, a01);
          FF_LOOKUP_ADD(t1 + 32 * g, idx, a10, a11);
          FF_LOOKUP_ADD(t2 + 32 * g, idx, a20, a21);
          FF_LOOKUP_ADD(t3 + 32 * g, idx, a30, a31);
        }
        int32_t *x0 = ex + b * p + j0, *x1 = x0 + p, *x2 = x1 + p, *x3 = x2 + p;
        flush8(x0, a00), flush8(x0 + 8, a01), flush8(x1, a10), flush8(x1 + 8, a11);
        flush8(x2, a20), flush8(x2 + 8, a21), flush8(x3, a30), flush8(x3 + 8, a31);
      }
    }
    for (; b < n; b++) {
      const uint8_t *tb = tables + b * groups * 32;
      for (size_t g0 = 0; g0 < groups; g0 += 64) {
        size_t g1 = min_sz(groups, g0 + 64);
        v128_t a0 = wasm_i16x8_splat(0), a1 = a0;
        for (size_t g = g0; g < g1; g++) FF_LOOKUP_ADD(tb + 32 * g, wasm_v128_load(nib + 16 * g), a0, a1);
        flush8(ex + b * p + j0, a0), flush8(ex + b * p + j0 + 8, a1);
      }
    }
#else
    for (; b < n; b++) {
      const uint8_t *tb = tables + b * groups * 32;
      for (size_t t = 0; t < 16; t++) {
        int32_t s = 0;
        for (size_t g = 0; g < groups; g++) s += ff_table_at(tb + 32 * g, nib[16 * g + t]);
        ex[b * p + j0 + t] = s;
      }
    }
#endif
    for (size_t bb = 0; bb < n; bb++) {
      int32_t *xb = ex + bb * p + j0;
      for (size_t t = 0; t < 16; t++) xb[t] = totals[bb] - 2 * xb[t];
    }
  }
}
