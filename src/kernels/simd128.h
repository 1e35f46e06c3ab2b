/*
 * The WebAssembly SIMD intrinsics that the engine's and the float-free kernels use (src/kernels/engine,
 * src/kernels/float-free), written over the compiler's generic 128-bit vectors, so that the same kernel source
 * compiles natively (the Node addon, scripts/build-native.mjs) with the same results bit for bit: every
 * operation here has the exact lane semantics of its wasm instruction (IEEE float32 adds, wrapping integer
 * adds and products, shift counts taken modulo the lane width, saturating narrows, swizzle giving 0 for an
 * index past 15, pmax as `a < b ? b : a`). Only included when ONEBIT_NATIVE_SIMD128 is defined (common.h).
 * The compiler lowers these to SSE2/SSSE3 (or wider) instructions; the hot kernels have their own x86 code.
 * The integer operations use no floating-point instruction (the float-free step's check, test/float-free.test.ts).
 */
#ifndef ONEBIT_SIMD128_H
#define ONEBIT_SIMD128_H

#include <stdint.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

typedef int32_t v128_t __attribute__((vector_size(16), aligned(16)));
typedef int8_t ob_i8x16 __attribute__((vector_size(16)));
typedef uint8_t ob_u8x16 __attribute__((vector_size(16)));
typedef int16_t ob_i16x8 __attribute__((vector_size(16)));
typedef uint16_t ob_u16x8 __attribute__((vector_size(16)));
typedef uint32_t ob_u32x4 __attribute__((vector_size(16)));
typedef int64_t ob_i64x2 __attribute__((vector_size(16)));
typedef float ob_f32x4 __attribute__((vector_size(16)));
typedef uint16_t ob_u16x4 __attribute__((vector_size(8)));
typedef int16_t ob_i16x4 __attribute__((vector_size(8)));
typedef uint8_t ob_u8x8 __attribute__((vector_size(8)));
typedef int8_t ob_i8x8 __attribute__((vector_size(8)));
typedef int32_t ob_i32x2 __attribute__((vector_size(8)));
typedef int64_t ob_i64x4 __attribute__((vector_size(32)));
typedef int32_t ob_i32x8 __attribute__((vector_size(32)));

static inline v128_t wasm_v128_load(const void *p) {
  v128_t v;
  __builtin_memcpy(&v, p, 16);
  return v;
}
static inline void wasm_v128_store(void *p, v128_t v) { __builtin_memcpy(p, &v, 16); }

static inline v128_t wasm_v128_load32_splat(const void *p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return (v128_t){v, v, v, v};
}

static inline v128_t wasm_v128_xor(v128_t a, v128_t b) { return a ^ b; }
static inline v128_t wasm_v128_and(v128_t a, v128_t b) { return a & b; }
static inline v128_t wasm_v128_or(v128_t a, v128_t b) { return a | b; }
/* Bits of a where mask is set, of b elsewhere. */
static inline v128_t wasm_v128_bitselect(v128_t a, v128_t b, v128_t mask) { return (a & mask) | (b & ~mask); }

static inline v128_t wasm_i8x16_splat(int8_t x) { return (v128_t)(ob_i8x16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
static inline v128_t wasm_i16x8_splat(int16_t x) { return (v128_t)(ob_i16x8){x, x, x, x, x, x, x, x}; }
static inline v128_t wasm_i32x4_splat(int32_t x) { return (v128_t){x, x, x, x}; }
static inline v128_t wasm_f32x4_splat(float x) { return (v128_t)(ob_f32x4){x, x, x, x}; }

static inline v128_t wasm_u8x16_make(uint8_t c0, uint8_t c1, uint8_t c2, uint8_t c3, uint8_t c4, uint8_t c5,
                                     uint8_t c6, uint8_t c7, uint8_t c8, uint8_t c9, uint8_t c10, uint8_t c11,
                                     uint8_t c12, uint8_t c13, uint8_t c14, uint8_t c15) {
  return (v128_t)(ob_u8x16){c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15};
}
static inline v128_t wasm_i16x8_make(int16_t c0, int16_t c1, int16_t c2, int16_t c3, int16_t c4, int16_t c5,
                                     int16_t c6, int16_t c7) {
  return (v128_t)(ob_i16x8){c0, c1, c2, c3, c4, c5, c6, c7};
}
static inline v128_t wasm_i32x4_make(int32_t c0, int32_t c1, int32_t c2, int32_t c3) { return (v128_t){c0, c1, c2, c3}; }

/* Integer adds and multiplies wrap (unsigned lanes, so no signed overflow). */
static inline v128_t wasm_i8x16_add(v128_t a, v128_t b) { return (v128_t)((ob_u8x16)a + (ob_u8x16)b); }
static inline v128_t wasm_i16x8_add(v128_t a, v128_t b) { return (v128_t)((ob_u16x8)a + (ob_u16x8)b); }
static inline v128_t wasm_i32x4_add(v128_t a, v128_t b) { return (v128_t)((ob_u32x4)a + (ob_u32x4)b); }
static inline v128_t wasm_i32x4_sub(v128_t a, v128_t b) { return (v128_t)((ob_u32x4)a - (ob_u32x4)b); }
static inline v128_t wasm_i16x8_mul(v128_t a, v128_t b) { return (v128_t)((ob_u16x8)a * (ob_u16x8)b); }

/* Shifts take their count modulo the lane width, as wasm does. */
static inline v128_t wasm_i32x4_shl(v128_t a, uint32_t n) { return (v128_t)((ob_u32x4)a << (n & 31)); }
static inline v128_t wasm_i32x4_shr(v128_t a, uint32_t n) { return a >> (int32_t)(n & 31); }
static inline v128_t wasm_u32x4_shr(v128_t a, uint32_t n) { return (v128_t)((ob_u32x4)a >> (n & 31)); }
static inline v128_t wasm_i16x8_shr(v128_t a, uint32_t n) { return (v128_t)((ob_i16x8)a >> (int16_t)(n & 15)); }

static inline v128_t wasm_i32x4_min(v128_t a, v128_t b) {
  v128_t less = a < b;
  return (a & less) | (b & ~less);
}
static inline v128_t wasm_i32x4_max(v128_t a, v128_t b) {
  v128_t more = a > b;
  return (a & more) | (b & ~more);
}
static inline v128_t wasm_i16x8_lt(v128_t a, v128_t b) { return (v128_t)((ob_i16x8)a < (ob_i16x8)b); }

/* Bit i: the sign of lane i. */
static inline uint32_t wasm_i16x8_bitmask(v128_t a) {
  ob_i16x8 v = (ob_i16x8)a;
  uint32_t bits = 0;
  for (int i = 0; i < 8; i++) bits |= (uint32_t)(v[i] < 0) << i;
  return bits;
}

/* Lane i: a[2i] b[2i] + a[2i+1] b[2i+1], the i16 products summed in i32 (wrapping, as wasm's instruction). */
static inline v128_t wasm_i32x4_dot_i16x8(v128_t a, v128_t b) {
#ifdef __SSE2__
  return (v128_t)_mm_madd_epi16((__m128i)a, (__m128i)b);
#else
  ob_i16x8 x = (ob_i16x8)a, y = (ob_i16x8)b;
  ob_u32x4 even = (ob_u32x4)(__builtin_convertvector((ob_i16x4)__builtin_shufflevector(x, x, 0, 2, 4, 6), v128_t) *
                             __builtin_convertvector((ob_i16x4)__builtin_shufflevector(y, y, 0, 2, 4, 6), v128_t));
  ob_u32x4 odd = (ob_u32x4)(__builtin_convertvector((ob_i16x4)__builtin_shufflevector(x, x, 1, 3, 5, 7), v128_t) *
                            __builtin_convertvector((ob_i16x4)__builtin_shufflevector(y, y, 1, 3, 5, 7), v128_t));
  return (v128_t)(even + odd);
#endif
}

static inline v128_t wasm_i32x4_extend_low_i16x8(v128_t a) {
  ob_i16x8 v = (ob_i16x8)a;
  return __builtin_convertvector((ob_i16x4)__builtin_shufflevector(v, v, 0, 1, 2, 3), v128_t);
}
static inline v128_t wasm_i32x4_extend_high_i16x8(v128_t a) {
  ob_i16x8 v = (ob_i16x8)a;
  return __builtin_convertvector((ob_i16x4)__builtin_shufflevector(v, v, 4, 5, 6, 7), v128_t);
}

/* Signed saturating narrows: a's lanes, then b's. */
static inline v128_t wasm_i8x16_narrow_i16x8(v128_t a, v128_t b) {
#ifdef __SSE2__
  return (v128_t)_mm_packs_epi16((__m128i)a, (__m128i)b);
#else
  ob_i16x8 x = (ob_i16x8)a, y = (ob_i16x8)b;
  ob_i8x16 r;
  for (int i = 0; i < 8; i++) {
    r[i] = (int8_t)(x[i] < -128 ? -128 : x[i] > 127 ? 127 : x[i]);
    r[i + 8] = (int8_t)(y[i] < -128 ? -128 : y[i] > 127 ? 127 : y[i]);
  }
  return (v128_t)r;
#endif
}
static inline v128_t wasm_i16x8_narrow_i32x4(v128_t a, v128_t b) {
#ifdef __SSE2__
  return (v128_t)_mm_packs_epi32((__m128i)a, (__m128i)b);
#else
  ob_i16x8 r;
  for (int i = 0; i < 4; i++) {
    r[i] = (int16_t)(a[i] < -32768 ? -32768 : a[i] > 32767 ? 32767 : a[i]);
    r[i + 4] = (int16_t)(b[i] < -32768 ? -32768 : b[i] > 32767 ? 32767 : b[i]);
  }
  return (v128_t)r;
#endif
}
static inline v128_t wasm_f32x4_add(v128_t a, v128_t b) { return (v128_t)((ob_f32x4)a + (ob_f32x4)b); }

static inline v128_t wasm_i8x16_eq(v128_t a, v128_t b) { return (v128_t)((ob_i8x16)a == (ob_i8x16)b); }

/* wasm's pmax: b where a < b, else a (lane for lane; NaNs and signed zeros as the instruction has them). */
static inline v128_t wasm_f32x4_pmax(v128_t a, v128_t b) {
  v128_t less = (v128_t)((ob_f32x4)a < (ob_f32x4)b);
  return (less & b) | (~less & a);
}

static inline float wasm_f32x4_extract_lane_(v128_t v, int i) { return ((ob_f32x4)v)[i]; }
static inline int32_t wasm_i32x4_extract_lane_(v128_t v, int i) { return v[i]; }
#define wasm_f32x4_extract_lane(v, i) wasm_f32x4_extract_lane_((v), (i))
#define wasm_i32x4_extract_lane(v, i) wasm_i32x4_extract_lane_((v), (i))

#define wasm_i8x16_shuffle(a, b, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15)          \
  ((v128_t)__builtin_shufflevector((ob_i8x16)(a), (ob_i8x16)(b), c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, \
                                   c12, c13, c14, c15))
#define wasm_i16x8_shuffle(a, b, c0, c1, c2, c3, c4, c5, c6, c7) \
  ((v128_t)__builtin_shufflevector((ob_i16x8)(a), (ob_i16x8)(b), c0, c1, c2, c3, c4, c5, c6, c7))
#define wasm_i32x4_shuffle(a, b, c0, c1, c2, c3) ((v128_t)__builtin_shufflevector((v128_t)(a), (v128_t)(b), c0, c1, c2, c3))
#define wasm_i64x2_shuffle(a, b, c0, c1) ((v128_t)__builtin_shufflevector((ob_i64x2)(a), (ob_i64x2)(b), c0, c1))

/* Lane i: a's byte idx[i], or 0 when idx[i] > 15. */
static inline v128_t wasm_i8x16_swizzle(v128_t a, v128_t idx) {
#ifdef __SSSE3__
  ob_u8x16 i = (ob_u8x16)idx;
  ob_u8x16 past = (ob_u8x16)(i > (ob_u8x16){15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15});
  return (v128_t)_mm_shuffle_epi8((__m128i)a, (__m128i)(i | past));
#else
  ob_u8x16 s = (ob_u8x16)a, i = (ob_u8x16)idx, r;
  for (int l = 0; l < 16; l++) r[l] = i[l] < 16 ? s[i[l] & 15] : 0;
  return (v128_t)r;
#endif
}

/* Bits set in each byte. */
static inline v128_t wasm_i8x16_popcnt(v128_t a) {
  ob_u8x16 v = (ob_u8x16)a;
  v = v - ((v >> 1) & 0x55);
  v = (v & 0x33) + ((v >> 2) & 0x33);
  return (v128_t)((v + (v >> 4)) & 0x0f);
}

static inline v128_t wasm_u16x8_extadd_pairwise_u8x16(v128_t a) {
  ob_u8x16 v = (ob_u8x16)a;
  ob_u8x8 even = __builtin_shufflevector(v, v, 0, 2, 4, 6, 8, 10, 12, 14);
  ob_u8x8 odd = __builtin_shufflevector(v, v, 1, 3, 5, 7, 9, 11, 13, 15);
  return (v128_t)(__builtin_convertvector(even, ob_u16x8) + __builtin_convertvector(odd, ob_u16x8));
}
static inline v128_t wasm_u32x4_extadd_pairwise_u16x8(v128_t a) {
  ob_u16x8 v = (ob_u16x8)a;
  ob_u16x4 even = __builtin_shufflevector(v, v, 0, 2, 4, 6);
  ob_u16x4 odd = __builtin_shufflevector(v, v, 1, 3, 5, 7);
  return (v128_t)(__builtin_convertvector(even, ob_u32x4) + __builtin_convertvector(odd, ob_u32x4));
}
static inline v128_t wasm_u32x4_extend_low_u16x8(v128_t a) {
  ob_u16x8 v = (ob_u16x8)a;
  return (v128_t)__builtin_convertvector((ob_u16x4)__builtin_shufflevector(v, v, 0, 1, 2, 3), ob_u32x4);
}
static inline v128_t wasm_u32x4_extend_high_u16x8(v128_t a) {
  ob_u16x8 v = (ob_u16x8)a;
  return (v128_t)__builtin_convertvector((ob_u16x4)__builtin_shufflevector(v, v, 4, 5, 6, 7), ob_u32x4);
}

#endif
