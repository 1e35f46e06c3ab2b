/*
 * Float-free training kernels (docs/methods.md#float-free): shared definitions.
 *
 * This module (wasm/onebit-float-free.wasm) holds the whole training step of `--method float-free`:
 * XNOR/popcount and masked-sum forward passes, integer centring in place of batch norm, an integer softmax
 * through a lookup table of powers of two, int8 error signals with a power-of-two scale per layer, and
 * integer counter updates with stochastic rounding from xorshift32. It contains no floating-point
 * instruction: `float` and `double` are poisoned below (any use is a compile error), and a test lists the
 * module's opcodes and fails on any f32.* / f64.* (test/float-free.test.ts).
 *
 * Every kernel has an integer twin in TypeScript (src/methods/float-free/reference.ts) that defines its
 * result exactly; the twins are bound by randomized equality tests. Layouts and strides are documented
 * there, next to each reference function.
 *
 * Threading: each kernel takes (tid, nt) and does only its own share (rows, columns or examples), and
 * integer sums are exact in any order, so results never depend on the number of threads. Random numbers
 * come from per-row streams seeded from (key, row), for the same reason.
 */
#ifndef ONEBIT_FF_H
#define ONEBIT_FF_H

#include "../common.h"

#pragma GCC poison float double

/* Round n up to a multiple of 16 (counter rows, int8 rows). */
static inline size_t ff_pad16(size_t n) { return (n + 15) & ~(size_t)15; }
/* 32-bit words of a packed sign row: rows padded to 128 bits (backend.ts convention). */
static inline size_t ff_words(size_t n) { return (n + 127) / 128 * 4; }

/* floor(a / b) for b > 0. */
static inline int64_t ff_floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* ceil(a / b) for b > 0. */
static inline int64_t ff_ceil_div(int64_t a, int64_t b) { return -ff_floor_div(-a, b); }

/* Number of significant bits of v >= 0 (0 for 0). */
static inline int ff_bitlen(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

/*
 * Power-of-two exponent nearest to t in the ratio sense: k = floor(log2 t), plus one when t >= 1.5 * 2^k.
 * 0 for t <= 1.
 */
static inline int ff_round_log2(int64_t t) {
  if (t <= 1) return 0;
  int k = ff_bitlen((uint64_t)t) - 1;
  return (((uint64_t)t >> (k - 1)) & 1u) ? k + 1 : k;
}

/* The murmur3 finalizer: a bijective mix of 32 bits. */
static inline uint32_t ff_fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* Seed of lane `lane` (0..3) of row `row`'s xorshift32 stream under `key`; never 0. */
static inline uint32_t ff_seed(uint32_t key, uint32_t row, uint32_t lane) {
  uint32_t s = ff_fmix32(key ^ ff_fmix32(row * 4u + lane + 0x9e3779b9u));
  return s == 0 ? 0x6d2b79f5u : s;
}

/* One xorshift32 step (Marsaglia 2003, shifts 13, 17, 5). */
static inline uint32_t ff_xorshift32(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

#ifdef OB_SIMD128
/* Adds the int16 lanes of a (columns j..j+7) into t[0..7] (int32). */
static inline void flush8(int32_t *t, v128_t a) {
  wasm_v128_store(t, wasm_i32x4_add(wasm_v128_load(t), wasm_i32x4_extend_low_i16x8(a)));
  wasm_v128_store(t + 4, wasm_i32x4_add(wasm_v128_load(t + 4), wasm_i32x4_extend_high_i16x8(a)));
}
#endif

/* Scalar form of ff_subset_table (below): the same 32 bytes. */
static inline void ff_subset_table_scalar(int32_t v0, int32_t v1, int32_t v2, int32_t v3, uint8_t *out) {
  for (int s = 0; s < 16; s++) {
    int32_t t = ((s & 1) ? v0 : 0) + ((s & 2) ? v1 : 0) + ((s & 4) ? v2 : 0) + ((s & 8) ? v3 : 0);
    out[s] = (uint8_t)(t & 0xff);
    out[16 + s] = (uint8_t)((t >> 8) & 0xff);
  }
}

/* Entry s of a subset table. */
static inline int32_t ff_table_at(const uint8_t *table, int s) { return (int16_t)(uint16_t)(table[s] | (table[16 + s] << 8)); }

#ifdef OB_SIMD128
/*
 * Subset-sum tables (the lookup form of a masked sum over 4 values). For v0..v3, entry s (0..15) is the sum
 * of the v_r whose bit r is set in s; the 16 int16 entries are stored as 32 bytes: their low bytes, then
 * their high bytes, so that two i8x16.swizzle lookups with 4-bit indices give 16 sums at once.
 */
static inline void ff_subset_table(int32_t v0, int32_t v1, int32_t v2, int32_t v3, uint8_t *out) {
  v128_t lo8 = wasm_i16x8_add(wasm_i16x8_add(wasm_v128_and(wasm_i16x8_splat((int16_t)v0), wasm_i16x8_make(0, -1, 0, -1, 0, -1, 0, -1)),
                                             wasm_v128_and(wasm_i16x8_splat((int16_t)v1), wasm_i16x8_make(0, 0, -1, -1, 0, 0, -1, -1))),
                              wasm_v128_and(wasm_i16x8_splat((int16_t)v2), wasm_i16x8_make(0, 0, 0, 0, -1, -1, -1, -1)));
  v128_t hi8 = wasm_i16x8_add(lo8, wasm_i16x8_splat((int16_t)v3));
  wasm_v128_store(out, wasm_i8x16_shuffle(lo8, hi8, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
  wasm_v128_store(out + 16, wasm_i8x16_shuffle(lo8, hi8, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
}

/* Looks up 16 sums (4-bit indices in idx) in a 32-byte subset table and adds them to acc0 (lanes 0..7) and
 * acc1 (lanes 8..15). */
#define FF_LOOKUP_ADD(table, idx, acc0, acc1)                                                             \
  do {                                                                                                    \
    v128_t lo_ = wasm_i8x16_swizzle(wasm_v128_load(table), idx);                                          \
    v128_t hi_ = wasm_i8x16_swizzle(wasm_v128_load((table) + 16), idx);                                   \
    acc0 = wasm_i16x8_add(acc0, wasm_i8x16_shuffle(lo_, hi_, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)); \
    acc1 = wasm_i16x8_add(acc1, wasm_i8x16_shuffle(lo_, hi_, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)); \
  } while (0)
#endif

static inline int32_t ff_clamp32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

#endif
