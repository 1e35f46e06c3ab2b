/*
 * XOR-popcount over bit-packed rows (32-bit words, rows padded to 128 bits; backend.ts), shared by the
 * training kernels (bits.c), the inference engine (engine/engine.c) and float-free training
 * (float-free/forward.c). i8x16.popcnt counts into byte accumulators, which are widened every 31 vectors
 * (31 * 8 = 248 < 256) so they never overflow. Integer-only, so the float-free module can use it.
 */
#ifndef ONEBIT_POPCOUNT_H
#define ONEBIT_POPCOUNT_H

#include "common.h"

#ifdef OB_SIMD128
/* Sum of the 16 byte lanes. */
static inline uint32_t hsum_u8(v128_t acc) {
  v128_t s32 = wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(acc));
  s32 = wasm_i32x4_add(s32, wasm_i32x4_shuffle(s32, s32, 2, 3, 0, 1));
  s32 = wasm_i32x4_add(s32, wasm_i32x4_shuffle(s32, s32, 1, 0, 3, 2));
  return (uint32_t)wasm_i32x4_extract_lane(s32, 0);
}

/*
 * The four byte-lane sums of s0..s3 as one u32x4 (lane q = sum of s_q): each is widened to four u32 lanes,
 * then two transposing adds fold the four vectors into one, instead of four separate horizontal sums.
 */
static inline v128_t hsum4_u8(v128_t s0, v128_t s1, v128_t s2, v128_t s3) {
  v128_t q0 = wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(s0));
  v128_t q1 = wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(s1));
  v128_t q2 = wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(s2));
  v128_t q3 = wasm_u32x4_extadd_pairwise_u16x8(wasm_u16x8_extadd_pairwise_u8x16(s3));
  v128_t a = wasm_i32x4_add(wasm_i32x4_shuffle(q0, q1, 0, 4, 1, 5), wasm_i32x4_shuffle(q0, q1, 2, 6, 3, 7));
  v128_t b = wasm_i32x4_add(wasm_i32x4_shuffle(q2, q3, 0, 4, 1, 5), wasm_i32x4_shuffle(q2, q3, 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(a, b, 0, 1, 4, 5), wasm_i32x4_shuffle(a, b, 2, 3, 6, 7));
}

#define POPXOR(x, y) wasm_i8x16_popcnt(wasm_v128_xor(x, y))

/* popcount(x XOR y) over `vecs` 128-bit vectors. */
static inline uint32_t xor_popcount_vecs(const uint32_t *x, const uint32_t *y, size_t vecs) {
  uint32_t total = 0;
  for (size_t v0 = 0; v0 < vecs; v0 += 31) {
    size_t v1 = min_sz(vecs, v0 + 31);
    v128_t s = wasm_i8x16_splat(0);
    for (size_t v = v0; v < v1; v++) s = wasm_i8x16_add(s, POPXOR(wasm_v128_load(x + 4 * v), wasm_v128_load(y + 4 * v)));
    total += hsum_u8(s);
  }
  return total;
}

/* The eight counts of a 2 x 4 block: t[q] = popcount(a0 XOR b_q), u[q] = popcount(a1 XOR b_q). */
typedef struct {
  uint32_t t[4], u[4];
} popcounts_2x4;

/*
 * Rows a0, a0 + words against rows b0 .. b0 + 3 * words: each loaded vector of A meets four of B
 * (measured faster than i64.popcnt, a nibble table and a carry-save adder; see bits.c). Always inlined,
 * so the block lives in registers and no shadow stack is used (common.h).
 */
static inline __attribute__((always_inline)) popcounts_2x4 xor_popcount_2x4(const uint32_t *a0, const uint32_t *b0,
                                                                              size_t words) {
  const uint32_t *a1 = a0 + words;
  const uint32_t *b1 = b0 + words, *b2 = b1 + words, *b3 = b2 + words;
  size_t vecs = words / 4;
  popcounts_2x4 c = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  for (size_t v0 = 0; v0 < vecs; v0 += 31) {
    size_t v1 = min_sz(vecs, v0 + 31);
    v128_t s0 = wasm_i8x16_splat(0), s1 = s0, s2 = s0, s3 = s0, r0 = s0, r1 = s0, r2 = s0, r3 = s0;
    for (size_t v = v0; v < v1; v++) {
      v128_t x = wasm_v128_load(a0 + 4 * v), y = wasm_v128_load(a1 + 4 * v), w;
      w = wasm_v128_load(b0 + 4 * v);
      s0 = wasm_i8x16_add(s0, POPXOR(x, w));
      r0 = wasm_i8x16_add(r0, POPXOR(y, w));
      w = wasm_v128_load(b1 + 4 * v);
      s1 = wasm_i8x16_add(s1, POPXOR(x, w));
      r1 = wasm_i8x16_add(r1, POPXOR(y, w));
      w = wasm_v128_load(b2 + 4 * v);
      s2 = wasm_i8x16_add(s2, POPXOR(x, w));
      r2 = wasm_i8x16_add(r2, POPXOR(y, w));
      w = wasm_v128_load(b3 + 4 * v);
      s3 = wasm_i8x16_add(s3, POPXOR(x, w));
      r3 = wasm_i8x16_add(r3, POPXOR(y, w));
    }
    c.t[0] += hsum_u8(s0), c.t[1] += hsum_u8(s1), c.t[2] += hsum_u8(s2), c.t[3] += hsum_u8(s3);
    c.u[0] += hsum_u8(r0), c.u[1] += hsum_u8(r1), c.u[2] += hsum_u8(r2), c.u[3] += hsum_u8(r3);
  }
  return c;
}

/*
 * One row a0 against rows b0 .. b0 + 3 * words: lane q of the result is popcount(a0 XOR b_q). The single-row
 * counterpart of xor_popcount_2x4 (a batch of one, or a batch's odd last row): each loaded vector of A meets
 * four of B, where one row against one row loads two vectors per count.
 */
static inline __attribute__((always_inline)) v128_t xor_popcount_1x4(const uint32_t *a0, const uint32_t *b0,
                                                                      size_t words) {
  const uint32_t *b1 = b0 + words, *b2 = b1 + words, *b3 = b2 + words;
  size_t vecs = words / 4;
  v128_t total = wasm_i32x4_splat(0);
  for (size_t v0 = 0; v0 < vecs; v0 += 31) {
    size_t v1 = min_sz(vecs, v0 + 31);
    v128_t s0 = wasm_i8x16_splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (size_t v = v0; v < v1; v++) {
      v128_t x = wasm_v128_load(a0 + 4 * v);
      s0 = wasm_i8x16_add(s0, POPXOR(x, wasm_v128_load(b0 + 4 * v)));
      s1 = wasm_i8x16_add(s1, POPXOR(x, wasm_v128_load(b1 + 4 * v)));
      s2 = wasm_i8x16_add(s2, POPXOR(x, wasm_v128_load(b2 + 4 * v)));
      s3 = wasm_i8x16_add(s3, POPXOR(x, wasm_v128_load(b3 + 4 * v)));
    }
    total = wasm_i32x4_add(total, hsum4_u8(s0, s1, s2, s3));
  }
  return total;
}
#endif

#endif
