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
#include "blocks.h"
#include "kernels.h"

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
#ifdef OB_AVX512
  if (variant == 1) {
    xnor_avx512(r0, r1, j0, j1, k, x, w, mode, p0, p1, act, out, n, 0, NULL, NULL, 1);
    return;
  }
#endif
#ifdef OB_SIMD128
  if (variant == 1) {
    xnor_simd(r0, r1, j0, j1, k, x, w, mode, p0, p1, act, out, n, 0, NULL, NULL, 1);
    return;
  }
#endif
  (void)variant;
  xnor_scalar(r0, r1, j0, j1, k, x, w, mode, p0, p1, act, out, n, 0, NULL, NULL, 1);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Real activations against packed weights: additions and subtractions only                             */

/*
 * y = f(x W^T) for real x (rows x kp floats, kp = words(k) * 32, padding 0) and packed W (f32_rows, blocks.h).
 */
EXPORT(oe_dense_f32)
void oe_dense_f32(int tid, int nt, size_t rows, size_t k, size_t n, const float *x, const uint32_t *w, int mode,
                  const void *p0, const void *p1, int act, void *out) {
  size_t r0, r1, j0, j1;
  split_work(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  f32_rows(r0, r1, j0, j1, k, x, w, mode, p0, p1, act, out, n, 0, NULL);
}

#ifdef OB_SIMD128
/* Byte b of each of the 16 floats in T0..T3 (float m in lanes of T[m / 4]): one byte plane. */
#define PLANE(b, T0, T1, T2, T3)                                                                                 \
  wasm_i64x2_shuffle(wasm_i8x16_shuffle(T0, T1, b, 4 + b, 8 + b, 12 + b, 16 + b, 20 + b, 24 + b, 28 + b, 0, 0, 0,  \
                                        0, 0, 0, 0, 0),                                                          \
                     wasm_i8x16_shuffle(T2, T3, b, 4 + b, 8 + b, 12 + b, 16 + b, 20 + b, 24 + b, 28 + b, 0, 0, 0,  \
                                        0, 0, 0, 0, 0),                                                          \
                     0, 2)

/*
 * The tables of one row x: for each group g of 4 inputs and each 4-bit weight pattern m (bit l set: weight -1
 * on input l), the signed sum T[g][m] = (s0 x0 + s1 x1) + (s2 x2 + s3 x3), stored as byte planes: for group g,
 * 64 bytes, plane b (16 bytes at 16 b) holding byte b of T[g][m] for m = 0..15, so that i8x16.swizzle looks a
 * byte up for 16 channels at once.
 */
static void build_f32_planes(const float *x, size_t groups, uint8_t *planes) {
  const v128_t flip0 = wasm_i32x4_make(0, (int32_t)0x80000000u, 0, (int32_t)0x80000000u);
  const v128_t flip1 = wasm_i32x4_make(0, 0, (int32_t)0x80000000u, (int32_t)0x80000000u);
  for (size_t g = 0; g < groups; g++) {
    v128_t v = wasm_v128_load(x + 4 * g);
    /* Lane i of p: (s0 x0) + (s1 x1) with s0 = -1 iff bit 0 of i, s1 = -1 iff bit 1 (as p[i] there). */
    v128_t p = wasm_f32x4_add(wasm_v128_xor(wasm_i32x4_shuffle(v, v, 0, 0, 0, 0), flip0),
                              wasm_v128_xor(wasm_i32x4_shuffle(v, v, 1, 1, 1, 1), flip1));
    v128_t q = wasm_f32x4_add(wasm_v128_xor(wasm_i32x4_shuffle(v, v, 2, 2, 2, 2), flip0),
                              wasm_v128_xor(wasm_i32x4_shuffle(v, v, 3, 3, 3, 3), flip1));
    v128_t t0 = wasm_f32x4_add(p, wasm_i32x4_shuffle(q, q, 0, 0, 0, 0));
    v128_t t1 = wasm_f32x4_add(p, wasm_i32x4_shuffle(q, q, 1, 1, 1, 1));
    v128_t t2 = wasm_f32x4_add(p, wasm_i32x4_shuffle(q, q, 2, 2, 2, 2));
    v128_t t3 = wasm_f32x4_add(p, wasm_i32x4_shuffle(q, q, 3, 3, 3, 3));
    uint8_t *pg = planes + 64 * g;
    wasm_v128_store(pg, PLANE(0, t0, t1, t2, t3));
    wasm_v128_store(pg + 16, PLANE(1, t0, t1, t2, t3));
    wasm_v128_store(pg + 32, PLANE(2, t0, t1, t2, t3));
    wasm_v128_store(pg + 48, PLANE(3, t0, t1, t2, t3));
  }
}
#undef PLANE

/*
 * One row (global row `row`) against channels [j0, j1) by byte-plane lookup: per block of 16 channels and
 * group, 4 swizzles give the 4 bytes of the 16 looked-up floats, which are interleaved back into floats and
 * added, group after group. `nib` is the oe_nibbles layout (gstride groups per block of 16 channels).
 */
/* Adds the 16 floats that group g's byte planes `pg` give for the 16 channel indices `ix` to c0..c3. */
#define LOOKUP_ADD(c0, c1, c2, c3, pg, ix)                                                                  \
  do {                                                                                                       \
    v128_t b0 = wasm_i8x16_swizzle(wasm_v128_load(pg), ix);                                                  \
    v128_t b1 = wasm_i8x16_swizzle(wasm_v128_load((pg) + 16), ix);                                           \
    v128_t b2 = wasm_i8x16_swizzle(wasm_v128_load((pg) + 32), ix);                                           \
    v128_t b3 = wasm_i8x16_swizzle(wasm_v128_load((pg) + 48), ix);                                           \
    v128_t l01 = wasm_i8x16_shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);        \
    v128_t h01 = wasm_i8x16_shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);  \
    v128_t l23 = wasm_i8x16_shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);        \
    v128_t h23 = wasm_i8x16_shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);  \
    c0 = wasm_f32x4_add(c0, wasm_i16x8_shuffle(l01, l23, 0, 8, 1, 9, 2, 10, 3, 11));                         \
    c1 = wasm_f32x4_add(c1, wasm_i16x8_shuffle(l01, l23, 4, 12, 5, 13, 6, 14, 7, 15));                       \
    c2 = wasm_f32x4_add(c2, wasm_i16x8_shuffle(h01, h23, 0, 8, 1, 9, 2, 10, 3, 11));                         \
    c3 = wasm_f32x4_add(c3, wasm_i16x8_shuffle(h01, h23, 4, 12, 5, 13, 6, 14, 7, 15));                       \
  } while (0)

static inline void emit16(v128_t c0, v128_t c1, v128_t c2, v128_t c3, size_t jb, size_t j1, size_t row, int mode,
                          const void *p0, const void *p1, int act, void *out, size_t n) {
  float sums[16] __attribute__((aligned(16)));
  wasm_v128_store(sums, c0);
  wasm_v128_store(sums + 4, c1);
  wasm_v128_store(sums + 8, c2);
  wasm_v128_store(sums + 12, c3);
  size_t hi = min_sz(j1, jb + 16);
  for (size_t j = jb; j < hi; j++) emit_real(mode, p0, p1, act, out, n, row, j, sums[j - jb]);
}

/*
 * Rows `row` (planes `pa`) and, when `pb` is not NULL, `row + 1` (planes `pb`) against channels [j0, j1) by
 * byte-plane lookup: per block of 16 channels and group, 4 swizzles give the 4 bytes of the 16 looked-up
 * floats, which are interleaved back into floats and added, group after group. Two rows share each load of
 * the weights' nibbles (`nib`, the oe_nibbles layout, gstride groups per block of 16 channels); a row's sums
 * are the same either way.
 */
static void f32_rows_planes(const uint8_t *pa, const uint8_t *pb, size_t groups, size_t gstride, const uint8_t *nib,
                            size_t j0, size_t j1, size_t row, int mode, const void *p0, const void *p1, int act,
                            void *out, size_t n) {
  for (size_t jb = j0; jb < j1; jb += 16) {
    const uint8_t *idx = nib + (jb / 16) * gstride * 16;
    v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    if (pb == NULL) {
      for (size_t g = 0; g < groups; g++) {
        v128_t ix = wasm_v128_load(idx + 16 * g);
        LOOKUP_ADD(a0, a1, a2, a3, pa + 64 * g, ix);
      }
    } else {
      v128_t e0 = a0, e1 = a0, e2 = a0, e3 = a0;
      for (size_t g = 0; g < groups; g++) {
        v128_t ix = wasm_v128_load(idx + 16 * g);
        LOOKUP_ADD(a0, a1, a2, a3, pa + 64 * g, ix);
        LOOKUP_ADD(e0, e1, e2, e3, pb + 64 * g, ix);
      }
      emit16(e0, e1, e2, e3, jb, j1, row + 1, mode, p0, p1, act, out, n);
    }
    emit16(a0, a1, a2, a3, jb, j1, row, mode, p0, p1, act, out, n);
  }
}
#undef LOOKUP_ADD
#endif

/*
 * y = f(x W^T) for real x and packed W, as oe_dense_f32, by table lookup: each row's groups of 4 inputs get the
 * 16 signed sums their weight patterns can give (build_f32_planes), and the sums of 16 channels take one
 * lookup per group (f32_rows_planes): about a quarter of the work of sign flips. A row's sum runs over its
 * groups in order, whatever the batch or the threads; it differs from oe_dense_f32's order only by float
 * rounding. `nib` is the oe_nibbles layout of W; `scratch` holds 128 * groups bytes per thread (two rows'
 * tables), groups = ceil(k / 4).
 */
EXPORT(oe_dense_f32_lut)
void oe_dense_f32_lut(int tid, int nt, size_t rows, size_t k, size_t n, const float *x, const uint32_t *w,
                      const uint8_t *nib, int mode, const void *p0, const void *p1, int act, void *out,
                      uint8_t *scratch) {
#ifdef OB_SIMD128
  size_t r0, r1, j0, j1;
  split_work(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  size_t words = words_of(k), kp = words * 32, groups = (k + 3) / 4;
  uint8_t *pa = scratch + (size_t)tid * 128 * groups, *pb = pa + 64 * groups;
  (void)w;
#ifdef OB_AVX512
  /* The same tables as 16 floats per group (64 bytes, as the byte planes take), looked up with VPERMPS. */
  for (size_t r = r0; r < r1; r += 2) {
    int two = r + 1 < r1;
    build_f32_tables(x + r * kp, groups, (float *)pa);
    if (two) build_f32_tables(x + (r + 1) * kp, groups, (float *)pb);
    lut_f32_rows((const float *)pa, two ? (const float *)pb : NULL, groups, words * 8, nib, j0, j1, r, mode, p0, p1,
                 act, out, n);
  }
  return;
#endif
  for (size_t r = r0; r < r1; r += 2) {
    int two = r + 1 < r1;
    build_f32_planes(x + r * kp, groups, pa);
    if (two) build_f32_planes(x + (r + 1) * kp, groups, pb);
    f32_rows_planes(pa, two ? pb : NULL, groups, words * 8, nib, j0, j1, r, mode, p0, p1, act, out, n);
  }
#else
  (void)scratch, (void)nib;
  oe_dense_f32(tid, nt, rows, k, n, x, w, mode, p0, p1, act, out);
#endif
}

/* ---------------------------------------------------------------------------------------------------- */
/* The first layer on raw bytes                                                                          */

/* Scalar sum of the bytes of x whose weight bit is set. */
static inline uint32_t masked_byte_sum_scalar(const uint8_t *x, const uint32_t *w, size_t words) {
  uint32_t s = 0;
  for (size_t i = 0; i < words; i++) {
    uint32_t bits = w[i];
    for (int b = 0; b < 32; b++) s += ((bits >> b) & 1u) ? x[32 * i + b] : 0u;
  }
  return s;
}

#ifdef OB_SIMD128
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
#ifdef OB_SIMD128
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

/* ---------------------------------------------------------------------------------------------------- */
/* The first layer on raw bytes, by table lookup                                                         */

#ifdef OB_SIMD128
/*
 * Tables of one image: for each group g of 4 pixels (v0..v3), the 16 sums T_g[m] = sum of the v_l whose bit l
 * of m is set (at most 1020), split into low bytes (16 bytes) and high bytes (16 bytes): 32 bytes per group.
 */
static void build_tables(const uint8_t *x, size_t groups, uint8_t *tables) {
  const v128_t m0 = wasm_i16x8_make(0, 1, 0, 1, 0, 1, 0, 1);
  const v128_t m1 = wasm_i16x8_make(0, 0, 1, 1, 0, 0, 1, 1);
  const v128_t m2 = wasm_i16x8_make(0, 0, 0, 0, 1, 1, 1, 1);
  for (size_t g = 0; g < groups; g++) {
    const uint8_t *p = x + 4 * g;
    v128_t lo = wasm_i16x8_add(wasm_i16x8_mul(wasm_i16x8_splat(p[0]), m0), wasm_i16x8_mul(wasm_i16x8_splat(p[1]), m1));
    lo = wasm_i16x8_add(lo, wasm_i16x8_mul(wasm_i16x8_splat(p[2]), m2)); /* T[0..7] */
    v128_t hi = wasm_i16x8_add(lo, wasm_i16x8_splat(p[3]));               /* T[8..15] */
    wasm_v128_store(tables + 32 * g, wasm_i8x16_shuffle(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
    wasm_v128_store(tables + 32 * g + 16, wasm_i8x16_shuffle(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
  }
}

/*
 * u16 sums of the 16 channels of a block for one group: lookups in the group's table (low bytes `tlo`, high
 * bytes `thi`) by the 16 channels' weight nibbles.
 */
#define LOOKUP_TABLE(acc_lo, acc_hi, tlo, thi, idx)                                             \
  do {                                                                                          \
    v128_t l_ = wasm_i8x16_swizzle(tlo, idx);                                                   \
    v128_t h_ = wasm_i8x16_swizzle(thi, idx);                                                   \
    acc_lo = wasm_i16x8_add(acc_lo, wasm_i8x16_shuffle(l_, h_, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)); \
    acc_hi = wasm_i16x8_add(acc_hi, wasm_i8x16_shuffle(l_, h_, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)); \
  } while (0)
#define LOOKUP(acc_lo, acc_hi, tbl, idx) \
  LOOKUP_TABLE(acc_lo, acc_hi, wasm_v128_load(tbl), wasm_v128_load((tbl) + 16), idx)

/* Emits channels [jb, hi) of a block (hi - jb <= 16) from the four u32x4 sums of the pixels with weight -1. */
#define EMIT_LANE(q, lane, t)                                                                                  \
  if (jb + (t) < hi)                                                                                            \
    emit_real(mode, p0, p1, act, out, n, row, jb + (t),                                                       \
              a * (double)(pix - 2 * (int64_t)(uint32_t)wasm_i32x4_extract_lane(q, lane)) + c * (double)wsum[jb + (t)]);

static inline void emit_block(int mode, const void *p0, const void *p1, int act, void *out, size_t n, size_t row,
                              size_t jb, size_t hi, v128_t q0, v128_t q1, v128_t q2, v128_t q3, int64_t pix,
                              const int32_t *wsum, double a, double c) {
  EMIT_LANE(q0, 0, 0) EMIT_LANE(q0, 1, 1) EMIT_LANE(q0, 2, 2) EMIT_LANE(q0, 3, 3)
  EMIT_LANE(q1, 0, 4) EMIT_LANE(q1, 1, 5) EMIT_LANE(q1, 2, 6) EMIT_LANE(q1, 3, 7)
  EMIT_LANE(q2, 0, 8) EMIT_LANE(q2, 1, 9) EMIT_LANE(q2, 2, 10) EMIT_LANE(q2, 3, 11)
  EMIT_LANE(q3, 0, 12) EMIT_LANE(q3, 1, 13) EMIT_LANE(q3, 2, 14) EMIT_LANE(q3, 3, 15)
}

#define WIDEN(q0, q1, q2, q3, lo, hi)                     \
  do {                                                    \
    q0 = wasm_i32x4_add(q0, wasm_u32x4_extend_low_u16x8(lo));  \
    q1 = wasm_i32x4_add(q1, wasm_u32x4_extend_high_u16x8(lo)); \
    q2 = wasm_i32x4_add(q2, wasm_u32x4_extend_low_u16x8(hi));  \
    q3 = wasm_i32x4_add(q3, wasm_u32x4_extend_high_u16x8(hi)); \
  } while (0)

/*
 * oe_dense_lut for one image (tables `t0`) against the blocks of 16 channels from jb (16-aligned) to j1, four
 * blocks at a time, then two, so that each load of the image's tables serves several lookups (at batch 1 on
 * mlp-2x2048 the whole network went from about 74 to 52 us per image, Node, one thread); returns where it
 * stopped (the last block, when one is left). Kept out of line: inlined, it slowed the 4-image loop by about
 * a tenth.
 */
__attribute__((noinline)) static size_t lut_one_image(const uint8_t *t0, size_t groups, const uint8_t *nib,
                                                      size_t jb, size_t j1, size_t r, int64_t v0, const int32_t *wsum,
                                                      double a, double c, int mode, const void *p0, const void *p1,
                                                      int act, void *out, size_t n) {
  for (; jb + 48 < j1; jb += 64) {
    const uint8_t *ia = nib + (jb / 16) * groups * 16, *ib = ia + groups * 16, *ic = ib + groups * 16, *id = ic + groups * 16;
    v128_t z = wasm_i32x4_splat(0);
    v128_t a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
    v128_t c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
    for (size_t g0 = 0; g0 < groups; g0 += 64) {
      size_t g1 = min_sz(groups, g0 + 64);
      v128_t al = z, ah = z, bl = z, bh = z, cl = z, ch = z, dl = z, dh = z;
      for (size_t g = g0; g < g1; g++) {
        v128_t tl = wasm_v128_load(t0 + 32 * g), th = wasm_v128_load(t0 + 32 * g + 16);
        LOOKUP_TABLE(al, ah, tl, th, wasm_v128_load(ia + 16 * g));
        LOOKUP_TABLE(bl, bh, tl, th, wasm_v128_load(ib + 16 * g));
        LOOKUP_TABLE(cl, ch, tl, th, wasm_v128_load(ic + 16 * g));
        LOOKUP_TABLE(dl, dh, tl, th, wasm_v128_load(id + 16 * g));
      }
      WIDEN(a0, a1, a2, a3, al, ah);
      WIDEN(b0, b1, b2, b3, bl, bh);
      WIDEN(c0, c1, c2, c3, cl, ch);
      WIDEN(d0, d1, d2, d3, dl, dh);
    }
    emit_block(mode, p0, p1, act, out, n, r, jb, jb + 16, a0, a1, a2, a3, v0, wsum, a, c);
    emit_block(mode, p0, p1, act, out, n, r, jb + 16, jb + 32, b0, b1, b2, b3, v0, wsum, a, c);
    emit_block(mode, p0, p1, act, out, n, r, jb + 32, jb + 48, c0, c1, c2, c3, v0, wsum, a, c);
    emit_block(mode, p0, p1, act, out, n, r, jb + 48, min_sz(j1, jb + 64), d0, d1, d2, d3, v0, wsum, a, c);
  }
  for (; jb + 16 < j1; jb += 32) {
    const uint8_t *ia = nib + (jb / 16) * groups * 16, *ib = ia + groups * 16;
    v128_t z = wasm_i32x4_splat(0);
    v128_t a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
    for (size_t g0 = 0; g0 < groups; g0 += 64) {
      size_t g1 = min_sz(groups, g0 + 64);
      v128_t al = z, ah = z, bl = z, bh = z;
      for (size_t g = g0; g < g1; g++) {
        v128_t tl = wasm_v128_load(t0 + 32 * g), th = wasm_v128_load(t0 + 32 * g + 16);
        LOOKUP_TABLE(al, ah, tl, th, wasm_v128_load(ia + 16 * g));
        LOOKUP_TABLE(bl, bh, tl, th, wasm_v128_load(ib + 16 * g));
      }
      WIDEN(a0, a1, a2, a3, al, ah);
      WIDEN(b0, b1, b2, b3, bl, bh);
    }
    emit_block(mode, p0, p1, act, out, n, r, jb, jb + 16, a0, a1, a2, a3, v0, wsum, a, c);
    emit_block(mode, p0, p1, act, out, n, r, jb + 16, min_sz(j1, jb + 32), b0, b1, b2, b3, v0, wsum, a, c);
  }
  return jb;
}
#endif

/*
 * The first layer on raw bytes (as oe_dense_u8) with the pixel sums looked up instead of added: per image,
 * each group of 4 pixels gets a table of its 16 partial sums; a channel's weights, 4 bits per group, index
 * that table (i8x16.swizzle), 16 channels per lookup. `nib` holds the weights re-laid out for this: for each
 * block of 16 channels and each group, 16 bytes, byte t = the group's 4 weight bits of channel 16 * block + t
 * (oe_nibbles builds it from the packed rows). `scratch` holds 4 images' tables per thread (4 * groups * 32
 * bytes, groups = words(k) * 8). u16 lanes take 64 groups (at most 1020 each) before they are widened.
 */
EXPORT(oe_dense_lut)
void oe_dense_lut(int tid, int nt, size_t rows, size_t k, size_t n, const uint8_t *x, const uint8_t *nib,
                  const int32_t *wsum, double a, double c, int mode, const void *p0, const void *p1, int act,
                  void *out, uint8_t *scratch) {
#ifdef OB_SIMD128
  size_t r0, r1, j0, j1;
  split_rows_or_channels(rows, n, 4, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  size_t kp = words_of(k) * 32, groups = kp / 4;
  uint8_t *tables = scratch + (size_t)tid * 4 * groups * 32;
  for (size_t r = r0; r < r1; r += 4) {
    size_t tile = min_sz(4, r1 - r);
    for (size_t t = 0; t < tile; t++) build_tables(x + (r + t) * kp, groups, tables + t * groups * 32);
    int64_t v0 = pixel_sum(x + r * kp, k);
    int64_t v1 = tile > 1 ? pixel_sum(x + (r + 1) * kp, k) : 0;
    int64_t v2 = tile > 2 ? pixel_sum(x + (r + 2) * kp, k) : 0;
    int64_t v3 = tile > 3 ? pixel_sum(x + (r + 3) * kp, k) : 0;
    const uint8_t *t0 = tables, *t1 = t0 + groups * 32, *t2 = t1 + groups * 32, *t3 = t2 + groups * 32;
    size_t jb = j0 / 16 * 16;
    /* One image (a batch of one, above all): several blocks of channels at a time share the table loads. */
    if (tile == 1) jb = lut_one_image(t0, groups, nib, jb, j1, r, v0, wsum, a, c, mode, p0, p1, act, out, n);
    for (; jb < j1; jb += 16) {
      const uint8_t *idx = nib + (jb / 16) * groups * 16;
      v128_t z = wasm_i32x4_splat(0);
      v128_t a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
      v128_t c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
      for (size_t g0 = 0; g0 < groups; g0 += 64) {
        size_t g1 = min_sz(groups, g0 + 64);
        v128_t al = z, ah = z, bl = z, bh = z, cl = z, ch = z, dl = z, dh = z;
        if (tile == 4) {
          for (size_t g = g0; g < g1; g++) {
            v128_t ix = wasm_v128_load(idx + 16 * g);
            LOOKUP(al, ah, t0 + 32 * g, ix);
            LOOKUP(bl, bh, t1 + 32 * g, ix);
            LOOKUP(cl, ch, t2 + 32 * g, ix);
            LOOKUP(dl, dh, t3 + 32 * g, ix);
          }
        } else {
          for (size_t g = g0; g < g1; g++) {
            v128_t ix = wasm_v128_load(idx + 16 * g);
            LOOKUP(al, ah, t0 + 32 * g, ix);
            if (tile > 1) LOOKUP(bl, bh, t1 + 32 * g, ix);
            if (tile > 2) LOOKUP(cl, ch, t2 + 32 * g, ix);
          }
        }
        WIDEN(a0, a1, a2, a3, al, ah);
        WIDEN(b0, b1, b2, b3, bl, bh);
        WIDEN(c0, c1, c2, c3, cl, ch);
        WIDEN(d0, d1, d2, d3, dl, dh);
      }
      size_t hi = min_sz(j1, jb + 16); /* jb >= j0: thread shares of channels are 32-aligned */
      emit_block(mode, p0, p1, act, out, n, r, jb, hi, a0, a1, a2, a3, v0, wsum, a, c);
      if (tile > 1) emit_block(mode, p0, p1, act, out, n, r + 1, jb, hi, b0, b1, b2, b3, v1, wsum, a, c);
      if (tile > 2) emit_block(mode, p0, p1, act, out, n, r + 2, jb, hi, c0, c1, c2, c3, v2, wsum, a, c);
      if (tile > 3) emit_block(mode, p0, p1, act, out, n, r + 3, jb, hi, d0, d1, d2, d3, v3, wsum, a, c);
    }
  }
#else
  (void)tid, (void)nt, (void)rows, (void)k, (void)n, (void)x, (void)nib, (void)wsum, (void)a, (void)c;
  (void)mode, (void)p0, (void)p1, (void)act, (void)out, (void)scratch;
#endif
}

/*
 * The first layer on raw bytes (as oe_dense_lut) by lookups over groups of 5 pixels, 32 channels per lookup:
 * per image, each group's table of its 32 partial sums (u16); `g5` holds each channel's 5 weight bits per group
 * (oe_groups5's layout). The AVX-512 build looks 32 channels up at once (VPERMW) and runs 8 images at a time in
 * `scratch` (8 * groups * 64 bytes per thread, groups = ceil(k / 5)); other builds add the pixels under the bits
 * one by one (a reference the engine does not choose there). The sums are exact, so the outputs equal
 * oe_dense_lut's and oe_dense_u8's.
 */
EXPORT(oe_dense_g5)
void oe_dense_g5(int tid, int nt, size_t rows, size_t k, size_t n, const uint8_t *x, const uint16_t *g5,
                 const int32_t *wsum, double a, double c, int mode, const void *p0, const void *p1, int act, void *out,
                 uint8_t *scratch) {
  size_t r0, r1, j0, j1;
  split_rows_or_channels(rows, n, 2, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  size_t groups = (k + 4) / 5;
#ifdef OB_AVX512
  g5_first_layer(r0, r1, j0, j1, k, x, g5, wsum, a, c, mode, p0, p1, act, out, n,
                 (uint16_t *)(scratch + (size_t)tid * 8 * groups * 64));
#else
  (void)scratch;
  size_t kp = words_of(k) * 32;
  for (size_t r = r0; r < r1; r++) {
    const uint8_t *xr = x + r * kp;
    int64_t pix = pixel_sum(xr, k);
    for (size_t j = j0; j < j1; j++) {
      const uint16_t *bits = g5 + ((j / 32) * groups) * 32 + j % 32;
      uint32_t q = 0;
      for (size_t col = 0; col < k; col++) q += ((bits[(col / 5) * 32] >> (col % 5)) & 1u) ? xr[col] : 0u;
      emit_real(mode, p0, p1, act, out, n, r, j, a * (double)(pix - 2 * (int64_t)q) + c * (double)wsum[j]);
    }
  }
#endif
}

/*
 * The weight layout of oe_dense_g5 from packed rows (n x words(k)): for block b of 32 channels and group g of
 * 5 columns, u16 (b * groups + g) * 32 + t = bits 5g..5g+4 of channel 32b + t (bit l: column 5g + l; 0 past
 * the last column or channel), groups = ceil(k / 5).
 */
EXPORT(oe_groups5)
void oe_groups5(int tid, int nt, size_t k, size_t n, const uint32_t *w, uint16_t *g5) {
  size_t words = words_of(k), groups = (k + 4) / 5, blocks = (n + 31) / 32;
  size_t lo, hi;
  thread_range(blocks, 1, tid, nt, &lo, &hi);
  for (size_t b = lo; b < hi; b++) {
    for (size_t g = 0; g < groups; g++) {
      for (size_t t = 0; t < 32; t++) {
        size_t j = 32 * b + t;
        uint32_t v = 0;
        for (size_t l = 0; l < 5 && j < n; l++) {
          size_t col = 5 * g + l;
          if (col < k) v |= ((w[j * words + col / 32] >> (col % 32)) & 1u) << l;
        }
        g5[(b * groups + g) * 32 + t] = (uint16_t)v;
      }
    }
  }
}

/*
 * The weight layout of oe_dense_lut from packed rows (n x words(k)): for block b of 16 channels and group g of
 * 4 columns, byte (b * groups + g) * 16 + t = bits 4g..4g+3 of channel 16b + t (0 past the last channel).
 */
EXPORT(oe_nibbles)
void oe_nibbles(int tid, int nt, size_t k, size_t n, const uint32_t *w, uint8_t *nib) {
  size_t words = words_of(k), groups = words * 8, blocks = (n + 15) / 16;
  size_t lo, hi;
  thread_range(blocks, 1, tid, nt, &lo, &hi);
  for (size_t b = lo; b < hi; b++) {
    for (size_t g = 0; g < groups; g++) {
      for (size_t t = 0; t < 16; t++) {
        size_t j = 16 * b + t;
        nib[(b * groups + g) * 16 + t] = j < n ? (uint8_t)((w[j * words + g / 8] >> (4 * (g % 8))) & 15u) : 0;
      }
    }
  }
}
