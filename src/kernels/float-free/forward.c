/*
 * Float-free forward pass: input preparation, the pixel layer (8-bit pixels against +-1 weights by masked
 * sums), the XNOR/popcount layers, integer centring and the sign activation, and the output head (integer
 * softmax through a table of powers of two and its error). Semantics: reference.ts, function by function.
 */
#include "ff.h"
#include "kernels.h"
#include "../popcount.h"

/* ---- input ------------------------------------------------------------------------------------------ */

/*
 * In place on x (int8 [n][p], rows holding raw pixel bytes in columns < k): x = byte - 128 (XOR 0x80),
 * columns k..p-1 = 0. Also writes the example pairs xp (int32 [ceil(n/2)][p]): the low half of
 * xp[q][j] is x[2q][j] and the high half x[2q+1][j] (0 past the last example), as int16.
 */
EXPORT(ff_input)
void ff_input(int tid, int nt, size_t n, size_t k, size_t p, int8_t *x, uint32_t *xp) {
  size_t pairs = (n + 1) / 2, lo, hi;
  thread_range(pairs, 1, tid, nt, &lo, &hi);
  for (size_t q = lo; q < hi; q++) {
    int8_t *r0 = x + 2 * q * p;
    int8_t *r1 = 2 * q + 1 < n ? r0 + p : (int8_t *)0;
    for (size_t j = 0; j < p; j++) {
      if (j < k) {
        r0[j] = (int8_t)((uint8_t)r0[j] ^ 0x80u);
        if (r1) r1[j] = (int8_t)((uint8_t)r1[j] ^ 0x80u);
      } else {
        r0[j] = 0;
        if (r1) r1[j] = 0;
      }
    }
    uint32_t *dst = xp + q * p;
    for (size_t j = 0; j < p; j++) {
      uint32_t a = (uint16_t)(int16_t)r0[j];
      uint32_t b = r1 ? (uint16_t)(int16_t)r1[j] : 0u;
      dst[j] = a | (b << 16);
    }
  }
}

/* ---- pixel layer: z[b][i] = sum_j sgn(h[i][j]) * x[b][j] -------------------------------------------- */




/*
 * z[b][i] = sum_j sgn(h[i][j]) x[b][j] = X_b - 2 sum_{j: h[i][j] < 0} x[b][j], by table lookups: `tables`
 * (uint8 [n][p/4][32]) and `totals` (X_b) come from ff_error_tables over x (4 pixels per subset table);
 * per block of 16 rows, the sign bits of 4 columns of each row form a nibble (built from the counters into
 * this thread's scratch, p/4 * 16 bytes), and one lookup gives the masked sums of 16 rows at once.
 */
EXPORT(ff_dense_pixels)
void ff_dense_pixels(int tid, int nt, size_t n, size_t rows, size_t p, const int16_t *h, const uint8_t *tables,
                     const int32_t *totals, int32_t *z, size_t zs, uint8_t *scratch) {
  size_t groups = p / 4, lo, hi;
  thread_range(rows, 16, tid, nt, &lo, &hi);
  if (lo >= hi) return;
  uint8_t *nib = scratch + (size_t)tid * groups * 16;
  for (size_t i0 = lo; i0 < hi; i0 += 16) {
    size_t nr = min_sz(16, hi - i0);
    for (size_t g = 0; g < groups; g++) {
      for (size_t t = 0; t < 16; t++) nib[16 * g + t] = 0;
    }
    for (size_t t = 0; t < nr; t++) {
      const int16_t *hr = h + (i0 + t) * p;
      for (size_t q = 0; q < p / 8; q++) {
#ifdef OB_SIMD128
        uint32_t m = (uint32_t)wasm_i16x8_bitmask(wasm_v128_load(hr + 8 * q));
#else
        uint32_t m = 0;
        for (int c = 0; c < 8; c++) m |= (uint32_t)(hr[8 * q + (size_t)c] < 0) << c;
#endif
        nib[(2 * q) * 16 + t] = (uint8_t)(m & 15u);
        nib[(2 * q + 1) * 16 + t] = (uint8_t)(m >> 4);
      }
    }
    for (size_t b = 0; b < n; b++) {
      for (size_t t = 0; t < nr; t++) z[b * zs + i0 + t] = 0;
    }
    size_t b = 0;
#ifdef OB_SIMD128
    /* Sums of 16 rows land in two int16 vectors; rows past nr (the last block) are computed and dropped. */
    for (; b + 4 <= n; b += 4) {
      const uint8_t *t0 = tables + b * groups * 32, *t1 = t0 + groups * 32, *t2 = t1 + groups * 32, *t3 = t2 + groups * 32;
      int32_t q0[16], q1[16], q2[16], q3[16];
      for (int c = 0; c < 16; c++) q0[c] = q1[c] = q2[c] = q3[c] = 0;
      for (size_t g0 = 0; g0 < groups; g0 += 64) { /* int16 lanes: 64 sums in [-512, 508] */
        size_t g1 = min_sz(groups, g0 + 64);
        v128_t a00 = wasm_i16x8_splat(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        for (size_t g = g0; g < g1; g++) {
          v128_t idx = wasm_v128_load(nib + 16 * g);
          FF_LOOKUP_ADD(t0 + 32 * g, idx, a00, a01);
          FF_LOOKUP_ADD(t1 + 32 * g, idx, a10, a11);
          FF_LOOKUP_ADD(t2 + 32 * g, idx, a20, a21);
          FF_LOOKUP_ADD(t3 + 32 * g, idx, a30, a31);
        }
        flush8(q0, a00), flush8(q0 + 8, a01), flush8(q1, a10), flush8(q1 + 8, a11);
        flush8(q2, a20), flush8(q2 + 8, a21), flush8(q3, a30), flush8(q3 + 8, a31);
      }
      for (size_t t = 0; t < nr; t++) {
        z[b * zs + i0 + t] = totals[b] - 2 * q0[t];
        z[(b + 1) * zs + i0 + t] = totals[b + 1] - 2 * q1[t];
        z[(b + 2) * zs + i0 + t] = totals[b + 2] - 2 * q2[t];
        z[(b + 3) * zs + i0 + t] = totals[b + 3] - 2 * q3[t];
      }
    }
    for (; b < n; b++) {
      const uint8_t *tb = tables + b * groups * 32;
      int32_t q[16];
      for (int c = 0; c < 16; c++) q[c] = 0;
      for (size_t g0 = 0; g0 < groups; g0 += 64) {
        size_t g1 = min_sz(groups, g0 + 64);
        v128_t a0 = wasm_i16x8_splat(0), a1 = a0;
        for (size_t g = g0; g < g1; g++) FF_LOOKUP_ADD(tb + 32 * g, wasm_v128_load(nib + 16 * g), a0, a1);
        flush8(q, a0), flush8(q + 8, a1);
      }
      for (size_t t = 0; t < nr; t++) z[b * zs + i0 + t] = totals[b] - 2 * q[t];
    }
#else
    for (; b < n; b++) {
      const uint8_t *tb = tables + b * groups * 32;
      for (size_t t = 0; t < nr; t++) {
        int32_t q = 0;
        for (size_t g = 0; g < groups; g++) q += ff_table_at(tb + 32 * g, nib[16 * g + t]);
        z[b * zs + i0 + t] = totals[b] - 2 * q;
      }
    }
#endif
  }
}

/* ---- binary layer: z[b][i] = k - 2 popcount(a[b] XOR w[i]) ----------------------------------------- */


static uint32_t xor_popcount(const uint32_t *x, const uint32_t *y, size_t words) {
  uint32_t total = 0;
  size_t w = 0;
#ifdef OB_SIMD128
  size_t vecs = words / 4;
  total = xor_popcount_vecs(x, y, vecs);
  w = vecs * 4;
#endif
  for (; w < words; w++) total += (uint32_t)__builtin_popcount(x[w] ^ y[w]);
  return total;
}

#ifdef OB_SIMD128
/* Examples a0, a0+W against weight rows w0 .. w0+3W: 2 x 4 results into z (example stride zs). */
static void xnor_block_2x4(const uint32_t *a0, const uint32_t *w0, size_t words, int32_t k, int32_t *z, size_t zs) {
  popcounts_2x4 p = xor_popcount_2x4(a0, w0, words);
  for (size_t q = 0; q < 4; q++) z[q] = k - 2 * (int32_t)p.t[q];
  for (size_t q = 0; q < 4; q++) z[zs + q] = k - 2 * (int32_t)p.u[q];
}
#endif

EXPORT(ff_dense_bits)
void ff_dense_bits(int tid, int nt, size_t n, size_t rows, size_t k, const uint32_t *a, const uint32_t *w, int32_t *z,
                   size_t zs) {
  size_t words = ff_words(k), lo, hi;
  int32_t kk = (int32_t)k;
  thread_range(rows, 4, tid, nt, &lo, &hi);
  if (lo >= hi) return;
  size_t b = 0;
#ifdef OB_SIMD128
  size_t i4 = lo + (hi - lo) / 4 * 4;
  for (; b + 2 <= n; b += 2) {
    for (size_t i = lo; i < i4; i += 4) xnor_block_2x4(a + b * words, w + i * words, words, kk, z + b * zs + i, zs);
    for (size_t i = i4; i < hi; i++) {
      z[b * zs + i] = kk - 2 * (int32_t)xor_popcount(a + b * words, w + i * words, words);
      z[(b + 1) * zs + i] = kk - 2 * (int32_t)xor_popcount(a + (b + 1) * words, w + i * words, words);
    }
  }
#endif
  for (; b < n; b++) {
    for (size_t i = lo; i < hi; i++) z[b * zs + i] = kk - 2 * (int32_t)xor_popcount(a + b * words, w + i * words, words);
  }
}

/* ---- hidden normalisation and sign ------------------------------------------------------------------ */

/*
 * Channels of z (int32 [n][zs]) -> packed signs `act` and, in training, packed gates `gate` (both
 * [n][words(rows)]), with per-channel thresholds mu and gate exponents gexp (int32 [rows]).
 * training (mode 1): mu = ceil(S / n) with S = sum_b z; A = sum_b |z - mu|; gexp = round_log2(5A / (4n));
 *   act bit set (-1) iff z < mu; gate bit set iff |z - mu| <= 2^gexp; running (Q8) += (floor(256 S / n) -
 *   running) >> shift.
 * evaluation (mode 0): mu = ceil(running / 256); act bit set iff z < mu; gate untouched.
 */
EXPORT(ff_hidden)
void ff_hidden(int tid, int nt, size_t n, size_t rows, const int32_t *z, size_t zs, int mode, int32_t *running,
               int shift, int32_t *mu, int32_t *gexp, uint32_t *act, uint32_t *gate) {
  size_t words = ff_words(rows), lo, hi;
  thread_range(words, 1, tid, nt, &lo, &hi);
  if (lo >= hi) return;
  size_t c0 = min_sz(rows, 32 * lo), c1 = min_sz(rows, 32 * hi);
  for (size_t i = c0; i < c1; i++) {
    if (mode == 0) {
      mu[i] = (int32_t)ff_ceil_div(running[i], 256);
      continue;
    }
    int64_t s = 0;
    for (size_t b = 0; b < n; b++) s += z[b * zs + i];
    int32_t m = (int32_t)ff_ceil_div(s, (int64_t)n);
    int64_t dev = 0;
    for (size_t b = 0; b < n; b++) {
      int32_t d = z[b * zs + i] - m;
      dev += d < 0 ? -d : d;
    }
    mu[i] = m;
    gexp[i] = ff_round_log2(5 * dev / (4 * (int64_t)n));
    int32_t m8 = (int32_t)ff_floor_div(s * 256, (int64_t)n);
    running[i] += (m8 - running[i]) >> shift;
  }
  for (size_t b = 0; b < n; b++) {
    const int32_t *zb = z + b * zs;
    for (size_t w = lo; w < hi; w++) {
      uint32_t bits = 0, gbits = 0;
      size_t e0 = 32 * w, e1 = min_sz(rows, e0 + 32);
      for (size_t i = e0; i < e1; i++) {
        int32_t d = zb[i] - mu[i];
        if (d < 0) bits |= 1u << (i - e0);
        if (mode != 0) {
          int32_t ad = d < 0 ? -d : d;
          if (ad <= ((int32_t)1 << gexp[i])) gbits |= 1u << (i - e0);
        }
      }
      act[b * words + w] = bits;
      if (mode != 0) gate[b * words + w] = gbits;
    }
  }
}

/* ---- output head ------------------------------------------------------------------------------------ */

/*
 * Training (runs on thread 0): per class k, mu = ceil(S_k / n); delta = z - mu; the layer's power-of-two
 * scale 2^s ~ one standard deviation, s = round_log2(5A / (4 n C)) with A = sum |delta|; logits
 * u = (delta * 256) >> s (Q8, natural-log units); softmax through the table of powers of two:
 * d = ((max_k u - u) * 369) >> 8 (369/256 ~ log2 e), E = lut[d & 255] >> (d >> 8) (0 for d >= 17*256),
 * p = (E << 16) / sum E (Q16), error g = p - 65536 [k = label] (int32 [n][C]).
 * With `project`, each class's error loses its component along the centred logits (c = u - floor(mean u)):
 * g -= (c * t) >> 16 with t = (num << 16) / den, num = sum_b g c, den = sum_b c^2 (both halved together
 * while |num| >= 2^46): the variance term of batch norm's backward, which makes the gradient blind to the
 * logits' scale (the normalisation removes it anyway).
 * Running statistics: running_k (Q8) as in ff_hidden; stats[0] (Q8) += ((min(t, 2^22) << 8) - stats[0])
 * >> shift with t = 5A / (4 n C); stats[1] = s.
 */
EXPORT(ff_output_train)
void ff_output_train(int tid, int nt, size_t n, size_t classes, const int32_t *z, size_t zs, const int32_t *labels,
                     const int32_t *lut, int32_t *running, int shift, int32_t *stats, int32_t *mu, int32_t *u,
                     int32_t *g, int project) {
  (void)nt;
  if (tid != 0) return;
  int64_t dev = 0;
  for (size_t k = 0; k < classes; k++) {
    int64_t s = 0;
    for (size_t b = 0; b < n; b++) s += z[b * zs + k];
    int32_t m = (int32_t)ff_ceil_div(s, (int64_t)n);
    mu[k] = m;
    for (size_t b = 0; b < n; b++) {
      int32_t d = z[b * zs + k] - m;
      dev += d < 0 ? -d : d;
    }
    int32_t m8 = (int32_t)ff_floor_div(s * 256, (int64_t)n);
    running[k] += (m8 - running[k]) >> shift;
  }
  int64_t t = 5 * dev / (4 * (int64_t)n * (int64_t)classes);
  int e = ff_round_log2(t);
  int32_t tc = t > ((int64_t)1 << 22) ? (int32_t)1 << 22 : (int32_t)t;
  stats[0] += ((tc << 8) - stats[0]) >> shift;
  stats[1] = e;
  for (size_t b = 0; b < n; b++) {
    int32_t *ub = u + b * classes;
    int32_t *gb = g + b * classes;
    int32_t top = (int32_t)0x80000000u;
    for (size_t k = 0; k < classes; k++) {
      ub[k] = ((z[b * zs + k] - mu[k]) * 256) >> e;
      if (ub[k] > top) top = ub[k];
    }
    int64_t sum = 0;
    for (size_t k = 0; k < classes; k++) {
      int32_t d = (int32_t)(((int64_t)(top - ub[k]) * 369) >> 8);
      int32_t ek = d >= 17 * 256 ? 0 : lut[d & 255] >> (d >> 8);
      gb[k] = ek; /* the numerator, for now */
      sum += ek;
    }
    for (size_t k = 0; k < classes; k++) {
      int32_t pk = (int32_t)(((int64_t)gb[k] << 16) / sum);
      gb[k] = pk - ((int32_t)k == labels[b] ? 65536 : 0);
    }
  }
  if (project) {
    for (size_t k = 0; k < classes; k++) {
      int64_t su = 0;
      for (size_t b = 0; b < n; b++) su += u[b * classes + k];
      int32_t mean = (int32_t)ff_floor_div(su, (int64_t)n);
      int64_t num = 0, den = 0;
      for (size_t b = 0; b < n; b++) {
        int64_t c = u[b * classes + k] - mean;
        num += g[b * classes + k] * c;
        den += c * c;
      }
      while (num >= ((int64_t)1 << 46) || -num >= ((int64_t)1 << 46)) num /= 2, den /= 2;
      if (den <= 0) continue;
      int64_t ratio = num * 65536 / den;
      for (size_t b = 0; b < n; b++) {
        int64_t c = u[b * classes + k] - mean;
        g[b * classes + k] -= (int32_t)((c * ratio) >> 16);
      }
    }
  }
}

/* Evaluation: raw[b][k] = 256 z - running_k (logits in units of 2^-(8 + s), s from stats[0]). */
EXPORT(ff_output_eval)
void ff_output_eval(int tid, int nt, size_t n, size_t classes, const int32_t *z, size_t zs, const int32_t *running,
                    int32_t *raw) {
  size_t lo, hi;
  thread_range(n, 1, tid, nt, &lo, &hi);
  for (size_t b = lo; b < hi; b++) {
    for (size_t k = 0; k < classes; k++) raw[b * classes + k] = z[b * zs + k] * 256 - running[k];
  }
}
