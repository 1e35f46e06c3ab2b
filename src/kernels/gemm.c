/*
 * Single-precision GEMM: C (m x n) = op(A) * op(B) (+ C when accumulating), row-major.
 *
 * Structure follows BLIS / GotoBLAS: the k dimension is cut into KC-deep slices; for each slice a
 * KC x NC panel of op(B) is packed into NR-wide column strips and an MC x KC block of op(A) into
 * MR-high row strips, so the micro-kernel streams both operands contiguously whatever the layout
 * (the transposes are paid once, in packing). The micro-kernel keeps an MR x NR tile of C in
 * f32x4 registers. V8 on x64 has 15 usable xmm registers and wasm SIMD has no FMA, so a tile needs
 * accumulators + NR/4 B vectors + an A splat + a product temporary: 4x8 (12 registers) fits; measured
 * under Node 20 on the dev machine, 4x8 ran ~40 GFLOP/s on one thread and 5x8 (14 registers, but V8
 * spills) ~23. C with fewer than MR rows skips packing altogether (gemm_few_rows).
 *
 * Compiled natively (the addon), the avx512 and avx2 levels take their own tiles (12x32 and 6x16) with fused
 * multiply-adds, so their sums round differently from the other levels' (still the same at any thread count);
 * they also compute 'nt' with a long inner dimension as unpacked dot products (gemm_dot_nt).
 *
 * Threads split C into column blocks (or row blocks when C is tall and narrow); every thread packs
 * into its own workspace, so no synchronisation is needed inside a call. Each entry of C is computed by
 * the same sequence of operations whatever the thread count, so results do not depend on it.
 */
#include "common.h"
#include "kernels.h"

#if defined(__AVX512F__) && defined(__FMA__)
/* Native avx512 level: a 12 x 32 tile in 24 zmm accumulators, B rows of 2 vectors, A broadcast, FMA. */
#include <immintrin.h>
#define FMA_TILE
#define MR 12
#define VLEN 16
typedef __m512 vec_t;
#define VZERO _mm512_setzero_ps
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VSET1 _mm512_set1_ps
#define VFMA _mm512_fmadd_ps
#define VADD _mm512_add_ps
#define NR (2 * VLEN)
#define MC 120
#elif defined(__AVX2__) && defined(__FMA__)
/* Native avx2 level: a 6 x 16 tile in 12 ymm accumulators, FMA. */
#include <immintrin.h>
#define FMA_TILE
#define MR 6
#define VLEN 8
typedef __m256 vec_t;
#define VZERO _mm256_setzero_ps
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VADD _mm256_add_ps
#define NR (2 * VLEN)
#define MC 120
#else
#define MR 4
#define NR 8
#define MC 128 /* multiple of MR; an MC x KC block of A (128 KiB) stays in L2 */
#endif
#define KC 256
#define NC 1024 /* multiple of NR; a KC x NC panel of B (1 MiB) */

enum { LAYOUT_NN = 0, LAYOUT_NT = 1, LAYOUT_TN = 2 };

/* Per-thread workspace: packed A block, packed B panel, and an MR x NR tile for ragged edges. */
#define WS_A_FLOATS (MC * KC)
#define WS_B_FLOATS (KC * NC)
#define WS_TILE_FLOATS (MR * NR)

EXPORT(ob_gemm_workspace_bytes) size_t ob_gemm_workspace_bytes(void) {
  return (WS_A_FLOATS + WS_B_FLOATS + WS_TILE_FLOATS) * sizeof(float);
}

/*
 * Packs op(A)[i0 .. i0+mc) x [p0 .. p0+kc) into MR-row strips: strip s holds, for each p, the MR values
 * op(A)[s*MR + r, p] consecutively; rows past mc are zero.
 */
static void pack_a(int trans, size_t mc, size_t kc, const float *RESTRICT a, size_t lda, float *RESTRICT ap) {
  for (size_t i = 0; i < mc; i += MR) {
    size_t rows = min_sz(MR, mc - i);
    if (!trans) {
      /* op(A)(i, p) = a[i*lda + p]: gather across rows. */
      const float *src = a + i * lda;
      size_t p = 0;
#ifdef __wasm_simd128__
      if (rows == MR) {
        for (; p + 4 <= kc; p += 4) {
          v128_t r0 = wasm_v128_load(src + p);
          v128_t r1 = wasm_v128_load(src + lda + p);
          v128_t r2 = wasm_v128_load(src + 2 * lda + p);
          v128_t r3 = wasm_v128_load(src + 3 * lda + p);
          /* 4x4 transpose: out row q holds column p+q of the four rows. */
          v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
          v128_t t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
          v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
          v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
          wasm_v128_store(ap + (p + 0) * MR, wasm_i64x2_shuffle(t0, t2, 0, 2));
          wasm_v128_store(ap + (p + 1) * MR, wasm_i64x2_shuffle(t0, t2, 1, 3));
          wasm_v128_store(ap + (p + 2) * MR, wasm_i64x2_shuffle(t1, t3, 0, 2));
          wasm_v128_store(ap + (p + 3) * MR, wasm_i64x2_shuffle(t1, t3, 1, 3));
        }
      }
#endif
      for (; p < kc; p++) {
        for (size_t r = 0; r < MR; r++) ap[p * MR + r] = r < rows ? src[r * lda + p] : 0.0f;
      }
    } else {
      /* op(A)(i, p) = a[p*lda + i]: each p is a contiguous run of rows. */
      const float *src = a + i;
      for (size_t p = 0; p < kc; p++) {
        for (size_t r = 0; r < MR; r++) ap[p * MR + r] = r < rows ? src[p * lda + r] : 0.0f;
      }
    }
    ap += MR * kc;
  }
}

/*
 * Packs op(B)[p0 .. p0+kc) x [j0 .. j0+nc) into NR-column strips: strip s holds, for each p, the NR values
 * op(B)[p, s*NR + c] consecutively; columns past nc are zero.
 */
static void pack_b(int trans, size_t kc, size_t nc, const float *RESTRICT b, size_t ldb, float *RESTRICT bp) {
  for (size_t j = 0; j < nc; j += NR) {
    size_t cols = min_sz(NR, nc - j);
    if (!trans) {
      /* op(B)(p, j) = b[p*ldb + j]: rows of the strip are contiguous. */
      const float *src = b + j;
      if (cols == NR) {
        for (size_t p = 0; p < kc; p++) {
#ifdef __wasm_simd128__
          wasm_v128_store(bp + p * NR, wasm_v128_load(src + p * ldb));
          wasm_v128_store(bp + p * NR + 4, wasm_v128_load(src + p * ldb + 4));
#else
          for (size_t c = 0; c < NR; c++) bp[p * NR + c] = src[p * ldb + c];
#endif
        }
      } else {
        for (size_t p = 0; p < kc; p++) {
          for (size_t c = 0; c < NR; c++) bp[p * NR + c] = c < cols ? src[p * ldb + c] : 0.0f;
        }
      }
    } else {
      /* op(B)(p, j) = b[j*ldb + p]: gather across rows of B (the 'nt' case, e.g. x * W^T). */
      const float *src = b + j * ldb;
      size_t p = 0;
#ifdef __wasm_simd128__
      if (cols == NR) {
        for (; p + 4 <= kc; p += 4) {
          for (size_t h = 0; h < NR; h += 4) {
            const float *s = src + h * ldb + p;
            v128_t r0 = wasm_v128_load(s);
            v128_t r1 = wasm_v128_load(s + ldb);
            v128_t r2 = wasm_v128_load(s + 2 * ldb);
            v128_t r3 = wasm_v128_load(s + 3 * ldb);
            v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
            v128_t t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
            v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
            v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
            wasm_v128_store(bp + (p + 0) * NR + h, wasm_i64x2_shuffle(t0, t2, 0, 2));
            wasm_v128_store(bp + (p + 1) * NR + h, wasm_i64x2_shuffle(t0, t2, 1, 3));
            wasm_v128_store(bp + (p + 2) * NR + h, wasm_i64x2_shuffle(t1, t3, 0, 2));
            wasm_v128_store(bp + (p + 3) * NR + h, wasm_i64x2_shuffle(t1, t3, 1, 3));
          }
        }
      }
#endif
      for (; p < kc; p++) {
        for (size_t c = 0; c < NR; c++) bp[p * NR + c] = c < cols ? src[c * ldb + p] : 0.0f;
      }
    }
    bp += NR * kc;
  }
}

#if defined(FMA_TILE)
/*
 * The register tile (native avx512 and avx2): C[0..MR) x [0..NR) (+)= Ap strip * Bp strip over kc, each row
 * of the tile two vectors, with fused multiply-adds (the vector type and operations are FMA_TILE's).
 */
static void micro_kernel(size_t kc, const float *RESTRICT ap, const float *RESTRICT bp, float *RESTRICT c,
                         size_t ldc, int accumulate) {
  vec_t t[MR][2];
  for (int r = 0; r < MR; r++) t[r][0] = t[r][1] = VZERO();
  for (size_t p = 0; p < kc; p++) {
    vec_t b0 = VLOAD(bp), b1 = VLOAD(bp + VLEN);
    for (int r = 0; r < MR; r++) {
      vec_t a = VSET1(ap[r]);
      t[r][0] = VFMA(a, b0, t[r][0]);
      t[r][1] = VFMA(a, b1, t[r][1]);
    }
    ap += MR;
    bp += NR;
  }
  for (int r = 0; r < MR; r++) {
    float *cr = c + (size_t)r * ldc;
    if (accumulate) {
      t[r][0] = VADD(t[r][0], VLOAD(cr));
      t[r][1] = VADD(t[r][1], VLOAD(cr + VLEN));
    }
    VSTORE(cr, t[r][0]);
    VSTORE(cr + VLEN, t[r][1]);
  }
}
#elif defined(__wasm_simd128__)
/*
 * The register tile: C[0..MR) x [0..NR) (+)= Ap strip * Bp strip over kc. Writes to `c` with row stride ldc.
 */
static void micro_kernel(size_t kc, const float *RESTRICT ap, const float *RESTRICT bp, float *RESTRICT c,
                         size_t ldc, int accumulate) {
  v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (size_t p = 0; p < kc; p++) {
    v128_t b0 = wasm_v128_load(bp);
    v128_t b1 = wasm_v128_load(bp + 4);
    v128_t a;
    a = wasm_v128_load32_splat(ap + 0);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a, b0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(ap + 1);
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a, b0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(ap + 2);
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a, b0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(ap + 3);
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a, b0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a, b1));
    ap += MR;
    bp += NR;
  }
  if (accumulate) {
    c00 = wasm_f32x4_add(c00, wasm_v128_load(c + 0 * ldc));
    c01 = wasm_f32x4_add(c01, wasm_v128_load(c + 0 * ldc + 4));
    c10 = wasm_f32x4_add(c10, wasm_v128_load(c + 1 * ldc));
    c11 = wasm_f32x4_add(c11, wasm_v128_load(c + 1 * ldc + 4));
    c20 = wasm_f32x4_add(c20, wasm_v128_load(c + 2 * ldc));
    c21 = wasm_f32x4_add(c21, wasm_v128_load(c + 2 * ldc + 4));
    c30 = wasm_f32x4_add(c30, wasm_v128_load(c + 3 * ldc));
    c31 = wasm_f32x4_add(c31, wasm_v128_load(c + 3 * ldc + 4));
  }
  wasm_v128_store(c + 0 * ldc, c00);
  wasm_v128_store(c + 0 * ldc + 4, c01);
  wasm_v128_store(c + 1 * ldc, c10);
  wasm_v128_store(c + 1 * ldc + 4, c11);
  wasm_v128_store(c + 2 * ldc, c20);
  wasm_v128_store(c + 2 * ldc + 4, c21);
  wasm_v128_store(c + 3 * ldc, c30);
  wasm_v128_store(c + 3 * ldc + 4, c31);
}
#else
static void micro_kernel(size_t kc, const float *RESTRICT ap, const float *RESTRICT bp, float *RESTRICT c,
                         size_t ldc, int accumulate) {
  float t[MR][NR] = {{0}};
  for (size_t p = 0; p < kc; p++) {
    for (size_t r = 0; r < MR; r++) {
      for (size_t q = 0; q < NR; q++) t[r][q] += ap[p * MR + r] * bp[p * NR + q];
    }
  }
  for (size_t r = 0; r < MR; r++) {
    for (size_t q = 0; q < NR; q++) c[r * ldc + q] = accumulate ? c[r * ldc + q] + t[r][q] : t[r][q];
  }
}
#endif

/* C block (mc x nc at c, stride ldc) (+)= packed A block * packed B panel over kc. */
static void macro_kernel(size_t mc, size_t nc, size_t kc, const float *ap, const float *bp, float *c, size_t ldc,
                         int accumulate, float *tile) {
  for (size_t j = 0; j < nc; j += NR) {
    size_t cols = min_sz(NR, nc - j);
    const float *bs = bp + j * kc;
    for (size_t i = 0; i < mc; i += MR) {
      size_t rows = min_sz(MR, mc - i);
      const float *as = ap + i * kc;
      float *cij = c + i * ldc + j;
      if (rows == MR && cols == NR) {
        micro_kernel(kc, as, bs, cij, ldc, accumulate);
      } else {
        /* Ragged edge: compute the full tile into scratch, then write only the part inside C. */
        micro_kernel(kc, as, bs, tile, NR, 0);
        for (size_t r = 0; r < rows; r++) {
          for (size_t q = 0; q < cols; q++) {
            float v = tile[r * NR + q];
            cij[r * ldc + q] = accumulate ? cij[r * ldc + q] + v : v;
          }
        }
      }
    }
  }
}

/* Single-threaded GEMM on strided operands; transA/transB say whether A/B are stored transposed. */
static void gemm_serial(int trans_a, int trans_b, size_t m, size_t n, size_t k, const float *a, size_t lda,
                        const float *b, size_t ldb, float *c, size_t ldc, int accumulate, float *ws) {
  float *ap = ws;
  float *bp = ws + WS_A_FLOATS;
  float *tile = bp + WS_B_FLOATS;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) c[i * ldc + j] = 0.0f;
      }
    }
    return;
  }
  for (size_t jc = 0; jc < n; jc += NC) {
    size_t nc = min_sz(NC, n - jc);
    for (size_t pc = 0; pc < k; pc += KC) {
      size_t kc = min_sz(KC, k - pc);
      const float *bsrc = trans_b ? b + jc * ldb + pc : b + pc * ldb + jc;
      pack_b(trans_b, kc, nc, bsrc, ldb, bp);
      int acc = accumulate || pc > 0;
      for (size_t ic = 0; ic < m; ic += MC) {
        size_t mc = min_sz(MC, m - ic);
        const float *asrc = trans_a ? a + pc * lda + ic : a + ic * lda + pc;
        pack_a(trans_a, mc, kc, asrc, lda, ap);
        macro_kernel(mc, nc, kc, ap, bp, c + ic * ldc + jc, ldc, acc, tile);
      }
    }
  }
}

/*
 * Few rows of C (m < MR): packing B would cost as much as the multiply, so work on the operands in
 * place, GEMV-style. 'nt' takes dot products of rows (both contiguous in k), four rows of B at a time so
 * that the four B rows (reused for every row of A) stay in L1; 'nn' / 'tn' add a*B[p, :] into each C row.
 * Columns [j0, j1) only.
 */
static void gemm_few_rows(int trans_a, int trans_b, size_t m, size_t j0, size_t j1, size_t k, const float *a,
                          size_t lda, const float *b, size_t ldb, float *c, size_t ldc, int accumulate) {
#define A_AT(i, p) (trans_a ? a[(p) * lda + (i)] : a[(i) * lda + (p)])
  if (trans_b) {
    size_t j = j0;
    for (; j + 4 <= j1; j += 4) {
      const float *b0 = b + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
      for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * lda; /* trans_a is never set together with trans_b */
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        size_t p = 0;
#ifdef __wasm_simd128__
        v128_t v0 = wasm_f32x4_splat(0.0f), v1 = v0, v2 = v0, v3 = v0;
        for (; p + 4 <= k; p += 4) {
          v128_t x = wasm_v128_load(ai + p);
          v0 = wasm_f32x4_add(v0, wasm_f32x4_mul(x, wasm_v128_load(b0 + p)));
          v1 = wasm_f32x4_add(v1, wasm_f32x4_mul(x, wasm_v128_load(b1 + p)));
          v2 = wasm_f32x4_add(v2, wasm_f32x4_mul(x, wasm_v128_load(b2 + p)));
          v3 = wasm_f32x4_add(v3, wasm_f32x4_mul(x, wasm_v128_load(b3 + p)));
        }
        /* Transpose-and-add: lane q of the result is the horizontal sum of v_q. */
        v128_t t0 = wasm_f32x4_add(wasm_i32x4_shuffle(v0, v1, 0, 4, 1, 5), wasm_i32x4_shuffle(v0, v1, 2, 6, 3, 7));
        v128_t t1 = wasm_f32x4_add(wasm_i32x4_shuffle(v2, v3, 0, 4, 1, 5), wasm_i32x4_shuffle(v2, v3, 2, 6, 3, 7));
        v128_t sum = wasm_f32x4_add(wasm_i64x2_shuffle(t0, t1, 0, 2), wasm_i64x2_shuffle(t0, t1, 1, 3));
        s0 = wasm_f32x4_extract_lane(sum, 0), s1 = wasm_f32x4_extract_lane(sum, 1);
        s2 = wasm_f32x4_extract_lane(sum, 2), s3 = wasm_f32x4_extract_lane(sum, 3);
#endif
        for (; p < k; p++) {
          float x = ai[p];
          s0 += x * b0[p], s1 += x * b1[p], s2 += x * b2[p], s3 += x * b3[p];
        }
        float *ci = c + i * ldc + j;
        if (accumulate) ci[0] += s0, ci[1] += s1, ci[2] += s2, ci[3] += s3;
        else ci[0] = s0, ci[1] = s1, ci[2] = s2, ci[3] = s3;
      }
    }
    for (; j < j1; j++) {
      for (size_t i = 0; i < m; i++) {
        float s = 0.0f;
        for (size_t p = 0; p < k; p++) s += a[i * lda + p] * b[j * ldb + p];
        c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
      }
    }
    return;
  }
  if (!accumulate) {
    for (size_t i = 0; i < m; i++) {
      for (size_t j = j0; j < j1; j++) c[i * ldc + j] = 0.0f;
    }
  }
  for (size_t p = 0; p < k; p++) {
    const float *bp = b + p * ldb;
    for (size_t i = 0; i < m; i++) {
      float x = A_AT(i, p);
      float *ci = c + i * ldc;
      size_t j = j0;
#ifdef __wasm_simd128__
      v128_t xv = wasm_f32x4_splat(x);
      for (; j + 4 <= j1; j += 4) {
        wasm_v128_store(ci + j, wasm_f32x4_add(wasm_v128_load(ci + j), wasm_f32x4_mul(xv, wasm_v128_load(bp + j))));
      }
#endif
      for (; j < j1; j++) ci[j] += x * bp[j];
    }
  }
#undef A_AT
}

#ifdef FMA_TILE
/*
 * 'nt' with a long inner dimension next to a small C (a convolution's weight gradient, dY col^T summed over a
 * batch of positions): C[i][j] = dot(A row i, B row j), both rows contiguous, so nothing is packed. The rows
 * are read in slices of DOT_KC floats that stay in L2 while every 4 x 4 block of C takes its dot products over
 * the slice (VLEN-lane FMA accumulators, summed in a fixed order, added to C slice after slice). The packed
 * path transposes B with scalar loads and ran cnn-small's 32 x 144 x 19600 at about 45 GFLOP/s. Every entry
 * is computed the same way whichever block and thread holds it, so results do not depend on the thread count.
 */
#define DOT_KC 512

/* The lanes of v summed in a fixed pairwise order. */
static inline float lane_sum(vec_t v) {
  float t[VLEN];
  __builtin_memcpy(t, &v, sizeof t);
  for (int w = VLEN / 2; w >= 1; w /= 2) {
    for (int l = 0; l < w; l++) t[l] = t[l] + t[l + w];
  }
  return t[0];
}

/* Rows i0..i0+R-1 of A against rows j0..j0+C-1 of B over [p0, p1); always inlined with constant R and C. */
static inline __attribute__((always_inline)) void dot_block(const float *a, const float *b, size_t k, size_t i0,
                                                            int R, size_t j0, int C, size_t p0, size_t p1,
                                                            float *c, size_t ldc, int first) {
  vec_t acc[4][4];
  for (int r = 0; r < R; r++) {
    for (int q = 0; q < C; q++) acc[r][q] = VZERO();
  }
  size_t p = p0;
  for (; p + VLEN <= p1; p += VLEN) {
    vec_t x[4], y[4];
    for (int r = 0; r < R; r++) x[r] = VLOAD(a + (i0 + (size_t)r) * k + p);
    for (int q = 0; q < C; q++) y[q] = VLOAD(b + (j0 + (size_t)q) * k + p);
    for (int r = 0; r < R; r++) {
      for (int q = 0; q < C; q++) acc[r][q] = VFMA(x[r], y[q], acc[r][q]);
    }
  }
  for (int r = 0; r < R; r++) {
    const float *ar = a + (i0 + (size_t)r) * k;
    for (int q = 0; q < C; q++) {
      const float *bq = b + (j0 + (size_t)q) * k;
      float s = lane_sum(acc[r][q]);
      for (size_t t = p; t < p1; t++) s += ar[t] * bq[t];
      float *cij = c + (i0 + (size_t)r) * ldc + j0 + (size_t)q;
      *cij = first ? s : *cij + s;
    }
  }
}

static void gemm_dot_nt(int tid, int nt, size_t m, size_t n, size_t k, const float *a, const float *b, float *c,
                        int accumulate) {
  size_t bn = (n + 3) / 4, lo, hi;
  thread_range(((m + 3) / 4) * bn, 1, tid, nt, &lo, &hi);
  for (size_t p0 = 0; p0 < k; p0 += DOT_KC) {
    size_t p1 = min_sz(k, p0 + DOT_KC);
    int first = p0 == 0 && !accumulate;
    for (size_t block = lo; block < hi; block++) {
      size_t i0 = (block / bn) * 4, j0 = (block % bn) * 4;
      if (i0 + 4 <= m && j0 + 4 <= n) {
        dot_block(a, b, k, i0, 4, j0, 4, p0, p1, c, n, first);
      } else {
        /* Edge blocks: one entry at a time, the same arithmetic per entry. */
        for (size_t i = i0; i < min_sz(m, i0 + 4); i++) {
          for (size_t j = j0; j < min_sz(n, j0 + 4); j++) dot_block(a, b, k, i, 1, j, 1, p0, p1, c, n, first);
        }
      }
    }
  }
}
#endif

/*
 * Exported entry. layout: 0 = 'nn' (A m x k, B k x n), 1 = 'nt' (B n x k), 2 = 'tn' (A k x m).
 * Thread tid computes its block of C using the workspace at ws + tid * ob_gemm_workspace_bytes().
 */
EXPORT(ob_gemm)
void ob_gemm(int tid, int nt, int layout, size_t m, size_t n, size_t k, const float *a, const float *b, float *c,
             int accumulate, float *ws) {
  int trans_a = layout == LAYOUT_TN;
  int trans_b = layout == LAYOUT_NT;
  size_t lda = trans_a ? m : k;
  size_t ldb = trans_b ? k : n;
  float *my_ws = ws + (size_t)tid * (ob_gemm_workspace_bytes() / sizeof(float));
  size_t lo, hi;
#ifdef FMA_TILE
  if (trans_b && k >= 1024 && k >= 16 * (m > n ? m : n)) {
    gemm_dot_nt(tid, nt, m, n, k, a, b, c, accumulate);
    return;
  }
#endif
  if (m < MR) {
    thread_range(n, 4, tid, nt, &lo, &hi);
    if (lo < hi) gemm_few_rows(trans_a, trans_b, m, lo, hi, k, a, lda, b, ldb, c, n, accumulate);
    return;
  }
  /* Split the longer side of C; columns by preference since then threads share the (small) A. */
  if (n >= m || m < (size_t)nt * MR) {
    thread_range(n, NR, tid, nt, &lo, &hi);
    if (lo >= hi) return;
    const float *bsub = trans_b ? b + lo * ldb : b + lo;
    gemm_serial(trans_a, trans_b, m, hi - lo, k, a, lda, bsub, ldb, c + lo, n, accumulate, my_ws);
  } else {
    thread_range(m, MR, tid, nt, &lo, &hi);
    if (lo >= hi) return;
    const float *asub = trans_a ? a + lo : a + lo * lda;
    gemm_serial(trans_a, trans_b, hi - lo, n, k, asub, lda, b, ldb, c + lo * n, n, accumulate, my_ws);
  }
}
