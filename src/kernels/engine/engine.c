/*
 * Kernels of the bit-packed inference engine (src/engine), built into wasm/onebit-engine.wasm.
 *
 * One kernel per kind of dense layer, each fused with the layer's output stage:
 *   oe_dense_bits  1-bit activations: XNOR/popcount on packed rows, z = k - 2 popcount(x XOR w), an exact
 *                  integer; two variants (SIMD i8x16.popcnt and scalar i64.popcnt), chosen by the caller;
 *   oe_dense_f32   real (float32) activations against packed +-1 weights: each weight bit selects the
 *                  sign of the input (an XOR of the float's sign bit), so the layer is additions only and the
 *                  weights are never unpacked in memory;
 *   oe_dense_u8    the first layer on raw 8-bit pixels (one channel): sum_k w_k v_k = V - 2 sum_{w_k=-1} v_k,
 *                  a masked byte sum (exact integers, 16 pixels per SIMD add), then the normalisation
 *                  x = a v + c folded in: sum_k w_k x_k = a (V - 2Q) + c sum_k w_k.
 * Output stages (`mode`):
 *   OUT_BITS  bit j of the output row is set (-1) iff z < t[j] (direction +1) or z > t[j] (direction -1):
 *             batch norm and the sign of the next layer's binarizer folded into one threshold; int32
 *             thresholds for integer z, float32 for real z;
 *   OUT_REAL  y[j] = act(z * scale[j] + bias[j]), computed in double and rounded once to float32.
 *
 * Packing convention (src/engine/format.ts): a row of K signs is words(K) = ceil(K/128)*4 uint32 words,
 * bit j of word w is column 32w + j, a set bit is -1, padding bits are 0. Real activation rows are
 * padded the same way (to a multiple of 128 floats, padding 0) so that every kernel runs whole vectors.
 *
 * Threads: each kernel takes (tid, nt) and does its share: whole rows when the batch is large enough,
 * else 32-aligned runs of output channels (so a thread owns whole output words).
 */
#include "../common.h"

enum { OUT_BITS = 0, OUT_REAL = 1 };
enum { ACT_NONE = 0, ACT_RELU = 1, ACT_HARDTANH = 2 };

static inline size_t words_of(size_t cols) { return (cols + 127) / 128 * 4; }

/* Rows [r0, r1) and output channels [j0, j1) of thread tid. */
static inline void split_work(size_t rows, size_t n, int tid, int nt, size_t *r0, size_t *r1, size_t *j0,
                              size_t *j1) {
  if (rows >= 4 * (size_t)nt || n <= 32) {
    thread_range(rows, 2, tid, nt, r0, r1);
    *j0 = 0;
    *j1 = n;
  } else {
    *r0 = 0;
    *r1 = rows;
    thread_range(n, 32, tid, nt, j0, j1);
  }
}

static inline float activate(float y, int act) {
  if (act == ACT_RELU) return y > 0.0f ? y : 0.0f;
  if (act == ACT_HARDTANH) return y < -1.0f ? -1.0f : (y > 1.0f ? 1.0f : y);
  return y;
}

/* Clears the output words that this thread will OR bits into (its channels of its rows, plus padding). */
static void zero_bits(uint32_t *out, size_t n, size_t r0, size_t r1, size_t j0, size_t j1) {
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

/* ---------------------------------------------------------------------------------------------------- */
/* 1-bit activations: XNOR / popcount                                                                    */

/* Rows of W per cache block: the streamed weight rows (<= 128 KiB) stay in L2 while the batch passes. */
static size_t w_block_rows(size_t words) {
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

/* Scalar variant: a 2 x 4 block of (x row, w row) pairs, i64.popcnt. */
static void xnor_scalar(size_t r0, size_t r1, size_t j0, size_t j1, size_t k, const uint32_t *x, const uint32_t *w,
                        int mode, const void *p0, const void *p1, int act, void *out, size_t n) {
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
        emit_int(mode, p0, p1, act, out, n, r, j, kk - 2 * (int32_t)t0);
        emit_int(mode, p0, p1, act, out, n, r, j + 1, kk - 2 * (int32_t)t1);
        emit_int(mode, p0, p1, act, out, n, r, j + 2, kk - 2 * (int32_t)t2);
        emit_int(mode, p0, p1, act, out, n, r, j + 3, kk - 2 * (int32_t)t3);
        emit_int(mode, p0, p1, act, out, n, r + 1, j, kk - 2 * (int32_t)u0);
        emit_int(mode, p0, p1, act, out, n, r + 1, j + 1, kk - 2 * (int32_t)u1);
        emit_int(mode, p0, p1, act, out, n, r + 1, j + 2, kk - 2 * (int32_t)u2);
        emit_int(mode, p0, p1, act, out, n, r + 1, j + 3, kk - 2 * (int32_t)u3);
      }
    }
    /* Ragged edges: the last odd row, and the last (< 4) channels of the block. */
    for (size_t rr = r0; rr < r1; rr++) {
      for (size_t j = rr < r ? j4 : jb; j < je; j++) {
        int32_t z = kk - 2 * (int32_t)xor_popcount_scalar(x + rr * words, w + j * words, words);
        emit_int(mode, p0, p1, act, out, n, rr, j, z);
      }
    }
  }
}

#ifdef __wasm_simd128__
/* Sum of the 16 byte lanes. */
static inline uint32_t hsum_u8(v128_t acc) {
  v128_t s32 = wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(acc));
  s32 = wasm_i32x4_add(s32, wasm_i32x4_shuffle(s32, s32, 2, 3, 0, 1));
  s32 = wasm_i32x4_add(s32, wasm_i32x4_shuffle(s32, s32, 1, 0, 3, 2));
  return (uint32_t)wasm_i32x4_extract_lane(s32, 0);
}

#define POPXOR(a, b) wasm_i8x16_popcnt(wasm_v128_xor(a, b))

/* popcount(x XOR y) over `vecs` 128-bit vectors; byte accumulators take 31 vectors before widening. */
static uint32_t xor_popcount_simd(const uint32_t *x, const uint32_t *y, size_t vecs) {
  uint32_t total = 0;
  for (size_t v0 = 0; v0 < vecs; v0 += 31) {
    size_t v1 = min_sz(vecs, v0 + 31);
    v128_t s = wasm_i8x16_splat(0);
    for (size_t v = v0; v < v1; v++) s = wasm_i8x16_add(s, POPXOR(wasm_v128_load(x + 4 * v), wasm_v128_load(y + 4 * v)));
    total += hsum_u8(s);
  }
  return total;
}

/* SIMD variant: a 2 x 4 block of (x row, w row) pairs, i8x16.popcnt with byte accumulators. */
static void xnor_simd(size_t r0, size_t r1, size_t j0, size_t j1, size_t k, const uint32_t *x, const uint32_t *w,
                      int mode, const void *p0, const void *p1, int act, void *out, size_t n) {
  size_t words = words_of(k), vecs = words / 4;
  size_t step = w_block_rows(words);
  int32_t kk = (int32_t)k;
  for (size_t jb = j0; jb < j1; jb += step) {
    size_t je = min_sz(j1, jb + step);
    size_t j4 = jb + (je - jb) / 4 * 4;
    size_t r = r0;
    for (; r + 2 <= r1; r += 2) {
      const uint32_t *a0 = x + r * words, *a1 = a0 + words;
      for (size_t j = jb; j < j4; j += 4) {
        const uint32_t *b0 = w + j * words, *b1 = b0 + words, *b2 = b1 + words, *b3 = b2 + words;
        uint32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, u0 = 0, u1 = 0, u2 = 0, u3 = 0;
        for (size_t v0 = 0; v0 < vecs; v0 += 31) {
          size_t v1 = min_sz(vecs, v0 + 31);
          v128_t s0 = wasm_i8x16_splat(0), s1 = s0, s2 = s0, s3 = s0, q0 = s0, q1 = s0, q2 = s0, q3 = s0;
          for (size_t v = v0; v < v1; v++) {
            v128_t xa = wasm_v128_load(a0 + 4 * v), xb = wasm_v128_load(a1 + 4 * v), y;
            y = wasm_v128_load(b0 + 4 * v);
            s0 = wasm_i8x16_add(s0, POPXOR(xa, y));
            q0 = wasm_i8x16_add(q0, POPXOR(xb, y));
            y = wasm_v128_load(b1 + 4 * v);
            s1 = wasm_i8x16_add(s1, POPXOR(xa, y));
            q1 = wasm_i8x16_add(q1, POPXOR(xb, y));
            y = wasm_v128_load(b2 + 4 * v);
            s2 = wasm_i8x16_add(s2, POPXOR(xa, y));
            q2 = wasm_i8x16_add(q2, POPXOR(xb, y));
            y = wasm_v128_load(b3 + 4 * v);
            s3 = wasm_i8x16_add(s3, POPXOR(xa, y));
            q3 = wasm_i8x16_add(q3, POPXOR(xb, y));
          }
          t0 += hsum_u8(s0), t1 += hsum_u8(s1), t2 += hsum_u8(s2), t3 += hsum_u8(s3);
          u0 += hsum_u8(q0), u1 += hsum_u8(q1), u2 += hsum_u8(q2), u3 += hsum_u8(q3);
        }
        emit_int(mode, p0, p1, act, out, n, r, j, kk - 2 * (int32_t)t0);
        emit_int(mode, p0, p1, act, out, n, r, j + 1, kk - 2 * (int32_t)t1);
        emit_int(mode, p0, p1, act, out, n, r, j + 2, kk - 2 * (int32_t)t2);
        emit_int(mode, p0, p1, act, out, n, r, j + 3, kk - 2 * (int32_t)t3);
        emit_int(mode, p0, p1, act, out, n, r + 1, j, kk - 2 * (int32_t)u0);
        emit_int(mode, p0, p1, act, out, n, r + 1, j + 1, kk - 2 * (int32_t)u1);
        emit_int(mode, p0, p1, act, out, n, r + 1, j + 2, kk - 2 * (int32_t)u2);
        emit_int(mode, p0, p1, act, out, n, r + 1, j + 3, kk - 2 * (int32_t)u3);
      }
    }
    for (size_t rr = r0; rr < r1; rr++) {
      for (size_t j = rr < r ? j4 : jb; j < je; j++) {
        int32_t z = kk - 2 * (int32_t)xor_popcount_simd(x + rr * words, w + j * words, vecs);
        emit_int(mode, p0, p1, act, out, n, rr, j, z);
      }
    }
  }
}
#endif

/*
 * y = f(x W^T) for packed x (rows x words(k)) and packed W (n x words(k)): z = k - 2 popcount(x XOR w).
 * variant 1: SIMD (i8x16.popcnt), 0: scalar (i64.popcnt). Outputs by `mode` (see the top of the file).
 */
EXPORT(oe_dense_bits)
void oe_dense_bits(int tid, int nt, size_t rows, size_t k, size_t n, const uint32_t *x, const uint32_t *w, int mode,
                   const void *p0, const void *p1, int act, void *out, int variant) {
  size_t r0, r1, j0, j1;
  split_work(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
#ifdef __wasm_simd128__
  if (variant == 1) {
    xnor_simd(r0, r1, j0, j1, k, x, w, mode, p0, p1, act, out, n);
    return;
  }
#endif
  (void)variant;
  xnor_scalar(r0, r1, j0, j1, k, x, w, mode, p0, p1, act, out, n);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Real activations against packed weights: additions and subtractions only                             */

#ifdef __wasm_simd128__
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
#endif

/* Scalar dot product of a float row with a packed sign row: the sign bit of each term flipped by its weight bit. */
static inline float signed_sum_scalar(const float *x, const uint32_t *w, size_t words) {
  float s = 0.0f;
  for (size_t i = 0; i < words; i++) {
    uint32_t bits = w[i];
    for (int b = 0; b < 32; b++) s += (bits >> b) & 1u ? -x[32 * i + b] : x[32 * i + b];
  }
  return s;
}

/*
 * y = f(x W^T) for real x (rows x kp floats, kp = words(k) * 32, padding 0) and packed W. Tiles of 4 rows x
 * 2 channels: each nibble of weight bits becomes a sign mask once and serves 4 rows.
 */
EXPORT(oe_dense_f32)
void oe_dense_f32(int tid, int nt, size_t rows, size_t k, size_t n, const float *x, const uint32_t *w, int mode,
                  const void *p0, const void *p1, int act, void *out) {
  size_t r0, r1, j0, j1;
  split_work(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  size_t words = words_of(k), kp = words * 32;
  size_t r = r0;
#ifdef __wasm_simd128__
  size_t j2 = j0 + (j1 - j0) / 2 * 2;
  for (; r + 4 <= r1; r += 4) {
    const float *x0 = x + r * kp, *x1 = x0 + kp, *x2 = x1 + kp, *x3 = x2 + kp;
    for (size_t j = j0; j < j2; j += 2) {
      const uint32_t *w0 = w + j * words, *w1 = w0 + words;
      v128_t a00 = wasm_f32x4_splat(0.0f), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      for (size_t i = 0; i < words; i++) {
        uint32_t b0 = w0[i], b1 = w1[i];
        for (int q = 0; q < 8; q++) {
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
      emit_real(mode, p0, p1, act, out, n, r, j, hsum_f32(a00));
      emit_real(mode, p0, p1, act, out, n, r, j + 1, hsum_f32(a01));
      emit_real(mode, p0, p1, act, out, n, r + 1, j, hsum_f32(a10));
      emit_real(mode, p0, p1, act, out, n, r + 1, j + 1, hsum_f32(a11));
      emit_real(mode, p0, p1, act, out, n, r + 2, j, hsum_f32(a20));
      emit_real(mode, p0, p1, act, out, n, r + 2, j + 1, hsum_f32(a21));
      emit_real(mode, p0, p1, act, out, n, r + 3, j, hsum_f32(a30));
      emit_real(mode, p0, p1, act, out, n, r + 3, j + 1, hsum_f32(a31));
    }
    for (size_t j = j2; j < j1; j++) {
      for (size_t q = 0; q < 4; q++) emit_real(mode, p0, p1, act, out, n, r + q, j, signed_sum_scalar(x + (r + q) * kp, w + j * words, words));
    }
  }
  /* Remaining rows (< 4): one row at a time, still with SIMD. */
  for (; r < r1; r++) {
    const float *xr = x + r * kp;
    for (size_t j = j0; j < j1; j++) {
      const uint32_t *wj = w + j * words;
      v128_t acc = wasm_f32x4_splat(0.0f);
      for (size_t i = 0; i < words; i++) {
        uint32_t b = wj[i];
        for (int q = 0; q < 8; q++) acc = wasm_f32x4_add(acc, wasm_v128_xor(wasm_v128_load(xr + 32 * i + 4 * q), sign_mask(b, q)));
      }
      emit_real(mode, p0, p1, act, out, n, r, j, hsum_f32(acc));
    }
  }
#else
  for (; r < r1; r++) {
    for (size_t j = j0; j < j1; j++) emit_real(mode, p0, p1, act, out, n, r, j, signed_sum_scalar(x + r * kp, w + j * words, words));
  }
#endif
}

/* ---------------------------------------------------------------------------------------------------- */
/* The first layer on raw bytes                                                                          */

static inline int64_t pixel_sum(const uint8_t *x, size_t k) {
  uint32_t s = 0;
  for (size_t i = 0; i < k; i++) s += x[i];
  return (int64_t)s;
}

/* Scalar sum of the bytes of x whose weight bit is set. */
static inline uint32_t masked_byte_sum_scalar(const uint8_t *x, const uint32_t *w, size_t words) {
  uint32_t s = 0;
  for (size_t i = 0; i < words; i++) {
    uint32_t bits = w[i];
    for (int b = 0; b < 32; b++) s += ((bits >> b) & 1u) ? x[32 * i + b] : 0u;
  }
  return s;
}

#ifdef __wasm_simd128__
/* Byte lane l is 0xFF iff bit l of the 16-bit value h is set. */
static inline v128_t byte_mask(uint32_t h) {
  const v128_t bit = wasm_u8x16_make(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
  v128_t v = wasm_i16x8_splat((int16_t)h);
  v = wasm_i8x16_shuffle(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return wasm_i8x16_eq(wasm_v128_and(v, bit), bit);
}

/* Sum of the 8 u16 lanes. */
static inline uint32_t hsum_u16(v128_t acc) {
  v128_t s32 = wasm_u32x4_extadd_pairwise_u16x8(acc);
  s32 = wasm_i32x4_add(s32, wasm_i32x4_shuffle(s32, s32, 2, 3, 0, 1));
  s32 = wasm_i32x4_add(s32, wasm_i32x4_shuffle(s32, s32, 1, 0, 3, 2));
  return (uint32_t)wasm_i32x4_extract_lane(s32, 0);
}

#define MASKED_ADD(acc, v, m) acc = wasm_i16x8_add(acc, wasm_u16x8_extadd_pairwise_u8x16(wasm_v128_and(v, m)))
#endif

/*
 * y = f(x W^T) for images of raw bytes v (rows x kp bytes, kp = words(k) * 32, padding 0), normalised as
 * x = a v + c (one channel). With Q = the sum of the pixels whose weight is -1, V the pixel sum and
 * S0[j] = sum_k w_jk (precomputed), the pre-activation is s = a (V - 2Q) + c S0[j], V - 2Q computed exactly.
 * Tiles of 4 rows x 2 channels; u16 lanes take 128 vectors (2048 pixels) before they are widened.
 */
EXPORT(oe_dense_u8)
void oe_dense_u8(int tid, int nt, size_t rows, size_t k, size_t n, const uint8_t *x, const uint32_t *w,
                 const int32_t *wsum, double a, double c, int mode, const void *p0, const void *p1, int act,
                 void *out) {
  size_t r0, r1, j0, j1;
  split_work(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  size_t words = words_of(k), kp = words * 32;
  size_t r = r0;
#ifdef __wasm_simd128__
  size_t j2 = j0 + (j1 - j0) / 2 * 2;
  for (; r + 4 <= r1; r += 4) {
    const uint8_t *x0 = x + r * kp, *x1 = x0 + kp, *x2 = x1 + kp, *x3 = x2 + kp;
    int64_t v0 = pixel_sum(x0, k), v1 = pixel_sum(x1, k), v2 = pixel_sum(x2, k), v3 = pixel_sum(x3, k);
    for (size_t j = j0; j < j2; j += 2) {
      const uint32_t *w0 = w + j * words, *w1 = w0 + words;
      uint32_t q00 = 0, q01 = 0, q10 = 0, q11 = 0, q20 = 0, q21 = 0, q30 = 0, q31 = 0;
      /* 64 words = 2048 pixels per chunk: 128 masked adds of at most 2 * 255 per u16 lane. */
      for (size_t i0 = 0; i0 < words; i0 += 64) {
        size_t i1 = min_sz(words, i0 + 64);
        v128_t a00 = wasm_i16x8_splat(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        for (size_t i = i0; i < i1; i++) {
          uint32_t b0 = w0[i], b1 = w1[i];
          for (int h = 0; h < 2; h++) {
            v128_t m0 = byte_mask(b0 >> (16 * h)), m1 = byte_mask(b1 >> (16 * h)), v;
            size_t o = 32 * i + 16 * (size_t)h;
            v = wasm_v128_load(x0 + o);
            MASKED_ADD(a00, v, m0);
            MASKED_ADD(a01, v, m1);
            v = wasm_v128_load(x1 + o);
            MASKED_ADD(a10, v, m0);
            MASKED_ADD(a11, v, m1);
            v = wasm_v128_load(x2 + o);
            MASKED_ADD(a20, v, m0);
            MASKED_ADD(a21, v, m1);
            v = wasm_v128_load(x3 + o);
            MASKED_ADD(a30, v, m0);
            MASKED_ADD(a31, v, m1);
          }
        }
        q00 += hsum_u16(a00), q01 += hsum_u16(a01), q10 += hsum_u16(a10), q11 += hsum_u16(a11);
        q20 += hsum_u16(a20), q21 += hsum_u16(a21), q30 += hsum_u16(a30), q31 += hsum_u16(a31);
      }
      double s0 = c * (double)wsum[j], s1 = c * (double)wsum[j + 1];
      emit_real(mode, p0, p1, act, out, n, r, j, a * (double)(v0 - 2 * (int64_t)q00) + s0);
      emit_real(mode, p0, p1, act, out, n, r, j + 1, a * (double)(v0 - 2 * (int64_t)q01) + s1);
      emit_real(mode, p0, p1, act, out, n, r + 1, j, a * (double)(v1 - 2 * (int64_t)q10) + s0);
      emit_real(mode, p0, p1, act, out, n, r + 1, j + 1, a * (double)(v1 - 2 * (int64_t)q11) + s1);
      emit_real(mode, p0, p1, act, out, n, r + 2, j, a * (double)(v2 - 2 * (int64_t)q20) + s0);
      emit_real(mode, p0, p1, act, out, n, r + 2, j + 1, a * (double)(v2 - 2 * (int64_t)q21) + s1);
      emit_real(mode, p0, p1, act, out, n, r + 3, j, a * (double)(v3 - 2 * (int64_t)q30) + s0);
      emit_real(mode, p0, p1, act, out, n, r + 3, j + 1, a * (double)(v3 - 2 * (int64_t)q31) + s1);
    }
    for (size_t j = j2; j < j1; j++) {
      for (size_t q = 0; q < 4; q++) {
        const uint8_t *xq = x + (r + q) * kp;
        uint32_t qs = masked_byte_sum_scalar(xq, w + j * words, words);
        emit_real(mode, p0, p1, act, out, n, r + q, j, a * (double)(pixel_sum(xq, k) - 2 * (int64_t)qs) + c * (double)wsum[j]);
      }
    }
  }
  /* Remaining rows (< 4): one row at a time, still with SIMD. */
  for (; r < r1; r++) {
    const uint8_t *xr = x + r * kp;
    int64_t pix = pixel_sum(xr, k);
    for (size_t j = j0; j < j1; j++) {
      const uint32_t *wj = w + j * words;
      uint32_t qs = 0;
      for (size_t i0 = 0; i0 < words; i0 += 64) {
        size_t i1 = min_sz(words, i0 + 64);
        v128_t acc = wasm_i16x8_splat(0);
        for (size_t i = i0; i < i1; i++) {
          uint32_t b = wj[i];
          MASKED_ADD(acc, wasm_v128_load(xr + 32 * i), byte_mask(b));
          MASKED_ADD(acc, wasm_v128_load(xr + 32 * i + 16), byte_mask(b >> 16));
        }
        qs += hsum_u16(acc);
      }
      emit_real(mode, p0, p1, act, out, n, r, j, a * (double)(pix - 2 * (int64_t)qs) + c * (double)wsum[j]);
    }
  }
#else
  for (; r < r1; r++) {
    const uint8_t *xr = x + r * kp;
    int64_t pix = pixel_sum(xr, k);
    for (size_t j = j0; j < j1; j++) {
      uint32_t qs = masked_byte_sum_scalar(xr, w + j * words, words);
      emit_real(mode, p0, p1, act, out, n, r, j, a * (double)(pix - 2 * (int64_t)qs) + c * (double)wsum[j]);
    }
  }
#endif
}
