/*
 * Bit kernels: sign packing and the XNOR-popcount GEMM of binary layers.
 *
 * Packing convention (backend.ts): row r of an R x K sign matrix takes words(K) = ceil(K/128)*4 32-bit
 * words; bit j of word w is column 32w + j; a set bit means -1 (x < 0 or NaN), clear means +1 (x >= 0,
 * including -0); padding bits are 0. Rows padded to 128 bits let binary_gemm read whole v128 vectors,
 * and zero padding in both operands XORs to zero, so it never counts.
 *
 * binary_gemm uses i8x16.popcnt. Measured under Node 20 on the dev machine (M=100, N=K=2048, one
 * thread): a 2x4 block of (A row, B row) pairs with byte accumulators ran ~320 GOPS, 1x4 ~305, scalar
 * i64.popcnt 2x2 ~245, hand-written nibble lookup ~285, Harley-Seal carry-save ~270; so 2x4 it is.
 * Byte accumulators can take 31 vectors (8 counts per byte each) before they must be widened.
 *
 * Compiled natively (the addon, scripts/build-native.mjs), the avx512 level takes 4x4 blocks of 512-bit XORs
 * and VPOPCNTQ; the other levels take 64-bit popcounts in 2x4 blocks.
 */
#include "common.h"
#include "kernels.h"
#include "popcount.h"

static inline size_t packed_words(size_t cols) { return (cols + 127) / 128 * 4; }

EXPORT(ob_pack_signs)
void ob_pack_signs(int tid, int nt, const float *x, size_t rows, size_t cols, uint32_t *out) {
  size_t words = packed_words(cols);
  size_t lo, hi;
  thread_range(rows, 1, tid, nt, &lo, &hi);
  for (size_t r = lo; r < hi; r++) {
    const float *src = x + r * cols;
    uint32_t *dst = out + r * words;
    size_t w = 0;
#ifdef __wasm_simd128__
    v128_t zero = wasm_f32x4_splat(0.0f);
    for (; 32 * w + 32 <= cols; w++) {
      const float *s = src + 32 * w;
      uint32_t bits = 0;
      for (int q = 0; q < 8; q++) {
        /* ge is false for x < 0 and for NaN: exactly the lanes whose sign is -1. */
        uint32_t nonneg = (uint32_t)wasm_i32x4_bitmask(wasm_f32x4_ge(wasm_v128_load(s + 4 * q), zero));
        bits |= (~nonneg & 0xFu) << (4 * q);
      }
      dst[w] = bits;
    }
#endif
    for (; w < words; w++) {
      uint32_t bits = 0;
      size_t c0 = 32 * w;
      size_t c1 = min_sz(cols, c0 + 32);
      for (size_t c = c0; c < c1; c++) {
        if (!(src[c] >= 0.0f)) bits |= 1u << (c - c0);
      }
      dst[w] = bits; /* also zeroes the padding words past the last column */
    }
  }
}

#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512F__)
/*
 * Native AVX-512 with VPOPCNTDQ (the native addon's avx512 level): 512 bits per XOR and per popcount, in a
 * 4 x 4 block (each loaded vector of A meets four of B and each of B four of A: 8 loads per 16 counts).
 * Rows are whole 128-bit vectors; the last 512-bit step of a row loads only its remaining words (a mask).
 */
#include <immintrin.h>
#define BLOCK_ROWS 4

static inline __mmask16 tail_mask(size_t words, size_t w) {
  size_t left = words - w;
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

static uint32_t xor_popcount(const uint32_t *x, const uint32_t *y, size_t vecs) {
  size_t words = 4 * vecs;
  __m512i acc = _mm512_setzero_si512();
  for (size_t w = 0; w < words; w += 16) {
    __mmask16 m = tail_mask(words, w);
    __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi32(m, x + w), _mm512_maskz_loadu_epi32(m, y + w));
    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(v));
  }
  return (uint32_t)_mm512_reduce_add_epi64(acc);
}

#define XP(acc, x, y) acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)))

/* The 4 x 4 block: rows a0 .. a0+3*words of A against rows b0 .. b0+3*words of B; results to c (stride ldc). */
static void block_rows_x4(const uint32_t *a0, const uint32_t *b0, size_t words, int32_t k, int32_t *c, size_t ldc) {
  __m512i s[4][4];
  for (int r = 0; r < 4; r++) {
    for (int q = 0; q < 4; q++) s[r][q] = _mm512_setzero_si512();
  }
  for (size_t w = 0; w < words; w += 16) {
    __mmask16 m = tail_mask(words, w);
    __m512i y0 = _mm512_maskz_loadu_epi32(m, b0 + w), y1 = _mm512_maskz_loadu_epi32(m, b0 + words + w);
    __m512i y2 = _mm512_maskz_loadu_epi32(m, b0 + 2 * words + w), y3 = _mm512_maskz_loadu_epi32(m, b0 + 3 * words + w);
    for (int r = 0; r < 4; r++) {
      __m512i x = _mm512_maskz_loadu_epi32(m, a0 + (size_t)r * words + w);
      XP(s[r][0], x, y0);
      XP(s[r][1], x, y1);
      XP(s[r][2], x, y2);
      XP(s[r][3], x, y3);
    }
  }
  for (int r = 0; r < 4; r++) {
    for (int q = 0; q < 4; q++) c[(size_t)r * ldc + (size_t)q] = k - 2 * (int32_t)_mm512_reduce_add_epi64(s[r][q]);
  }
}
#undef XP
#elif defined(__wasm_simd128__)
#define BLOCK_ROWS 2
/* popcount(x XOR y) over `vecs` 128-bit vectors. */
static uint32_t xor_popcount(const uint32_t *x, const uint32_t *y, size_t vecs) { return xor_popcount_vecs(x, y, vecs); }

/* The 2 x 4 block: rows a0, a0+words of A against rows b0 .. b0+3*words of B; results to c (stride ldc). */
static void block_rows_x4(const uint32_t *a0, const uint32_t *b0, size_t words, int32_t k, int32_t *c, size_t ldc) {
  popcounts_2x4 p = xor_popcount_2x4(a0, b0, words);
  for (size_t q = 0; q < 4; q++) c[q] = k - 2 * (int32_t)p.t[q];
  for (size_t q = 0; q < 4; q++) c[ldc + q] = k - 2 * (int32_t)p.u[q];
}
#else
#define BLOCK_ROWS 2
/* Portable C (the native addon's other levels): 64-bit popcounts, which clang turns into POPCNT where it may. */
static uint32_t xor_popcount(const uint32_t *x, const uint32_t *y, size_t vecs) {
  const uint64_t *x64 = (const uint64_t *)x, *y64 = (const uint64_t *)y;
  uint32_t total = 0;
  for (size_t w = 0; w < 2 * vecs; w++) total += (uint32_t)__builtin_popcountll(x64[w] ^ y64[w]);
  return total;
}

static void block_rows_x4(const uint32_t *a0, const uint32_t *b0, size_t words, int32_t k, int32_t *c, size_t ldc) {
  const uint64_t *a = (const uint64_t *)a0, *b = (const uint64_t *)b0;
  size_t halves = words / 2;
  uint32_t t[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  for (size_t i = 0; i < halves; i++) {
    uint64_t x0 = a[i], x1 = a[halves + i];
    for (size_t q = 0; q < 4; q++) {
      uint64_t y = b[q * halves + i];
      t[0][q] += (uint32_t)__builtin_popcountll(x0 ^ y);
      t[1][q] += (uint32_t)__builtin_popcountll(x1 ^ y);
    }
  }
  for (size_t r = 0; r < 2; r++) {
    for (size_t q = 0; q < 4; q++) c[r * ldc + q] = k - 2 * (int32_t)t[r][q];
  }
}
#endif

/* Rows of B per cache block: keeps the streamed B rows (<= 128 KiB) in L2 while all of A passes over them. */
static size_t b_block_rows(size_t words) {
  if (words == 0) return (size_t)1 << 30; /* k = 0: nothing to stream, every entry is 0 */
  size_t rows = (128 * 1024) / (words * 4);
  rows = rows < 4 ? 4 : rows & ~(size_t)3;
  return rows;
}

/* C[i0..i1) x [j0..j1) of the binary GEMM. */
static void binary_gemm_part(size_t i0, size_t i1, size_t j0, size_t j1, size_t n, size_t k, const uint32_t *a,
                             const uint32_t *b, int32_t *c) {
  size_t words = packed_words(k);
  size_t step = b_block_rows(words);
  int32_t kk = (int32_t)k;
  for (size_t jb = j0; jb < j1; jb += step) {
    size_t je = min_sz(j1, jb + step);
    size_t j4 = jb + (je - jb) / 4 * 4; /* end of the columns the BLOCK_ROWS x 4 blocks cover */
    size_t i = i0;
    for (; i + BLOCK_ROWS <= i1; i += BLOCK_ROWS) {
      for (size_t j = jb; j < j4; j += 4) block_rows_x4(a + i * words, b + j * words, words, kk, c + i * n + j, n);
    }
    /* Ragged edges: the last rows (< BLOCK_ROWS), and the last (< 4) columns of the block. */
    for (size_t r = i0; r < i1; r++) {
      size_t from = r < i ? j4 : jb;
      for (size_t j = from; j < je; j++) {
        c[r * n + j] = kk - 2 * (int32_t)xor_popcount(a + r * words, b + j * words, words / 4);
      }
    }
  }
}

/*
 * C (m x n) = A * B^T over +-1 values packed from k columns: C[i][j] = k - 2 popcount(A_i XOR B_j).
 * Threads split the longer side of C.
 */
EXPORT(ob_binary_gemm)
void ob_binary_gemm(int tid, int nt, size_t m, size_t n, size_t k, const uint32_t *a, const uint32_t *b,
                    int32_t *c) {
  size_t lo, hi;
  if (n >= m) {
    thread_range(n, 4, tid, nt, &lo, &hi);
    if (lo < hi) binary_gemm_part(0, m, lo, hi, n, k, a, b, c);
  } else {
    thread_range(m, BLOCK_ROWS, tid, nt, &lo, &hi);
    if (lo < hi) binary_gemm_part(lo, hi, 0, n, n, k, a, b, c);
  }
}
