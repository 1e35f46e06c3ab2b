/*
 * Convolution, pooling and reshaping kernels of the bit-packed inference engine (src/engine/engine.ts).
 *
 * Feature maps are kept pixel-major (HWC): one row per pixel, exactly as a dense layer's output rows, so a
 * convolution's output stage is the dense one (blocks.h) with rows = output pixels:
 *   bits  [N, H, W, words(C)] uint32, channel c of a pixel at bit c, padding bits 0;
 *   real  [N, H, W, words(C) * 32] float32 (the network input may use a tighter pixel stride, `xs`).
 *
 * A convolution is im2col + GEMM, fused per block of CONV_BLOCK output pixels so that the gathered rows stay
 * in cache: each thread gathers the receptive fields of its block into its own scratch rows (the taps in
 * (i, j, c) order, exactly the order of the packed weight columns) and runs the dense block over them.
 *  - bits: each in-image tap appends the pixel's C bits to the row (a word copy when C is a multiple of 32,
 *    else shifted words); a padded tap leaves C clear bits (+1), and the border correction (blocks.h,
 *    `correction`) subtracts the padded taps' weight sum, so z is the zero-padded convolution exactly;
 *  - real: padded taps are 0.0, as in training;
 *  - bytes (the first layer on one-channel 8-bit images): padded taps are pixel 0, which is the normalised
 *    value only when mean = 0, so the normalisation x = a v + c is applied as in oe_dense_u8 with the weight
 *    sum over in-image taps only: s = a sum_t w_t v_t + c (S0 - corr).
 * Threads split output pixels (rows) in blocks, or output channels when there are few pixels.
 */
#include "blocks.h"
#include "kernels.h"

/* Output pixels per gathered block. */
#define CONV_BLOCK 32

/* The output pixels [r0, r1) and channels [j0, j1) of this thread: whole blocks of rows when there are enough. */
static inline void conv_split(size_t rows, size_t n, int tid, int nt, size_t *r0, size_t *r1, size_t *j0,
                              size_t *j1) {
  if (rows >= (size_t)CONV_BLOCK * (size_t)nt || n <= 32) {
    thread_range(rows, CONV_BLOCK, tid, nt, r0, r1);
    *j0 = 0;
    *j1 = n;
  } else if (rows >= 4 * (size_t)nt) {
    thread_range(rows, 2, tid, nt, r0, r1);
    *j0 = 0;
    *j1 = n;
  } else {
    *r0 = 0;
    *r1 = rows;
    thread_range(n, 32, tid, nt, j0, j1);
  }
}

/* ORs `bits` bits of src (a pixel's packed channels, clear past the last channel) into dst at bit `at`. */
static inline void append_bits(uint32_t *dst, size_t at, const uint32_t *src, size_t bits) {
  if ((at & 31) == 0) {
    size_t words = (bits + 31) / 32;
    for (size_t q = 0; q < words; q++) dst[(at >> 5) + q] |= src[q];
    return;
  }
  unsigned shift = (unsigned)(at & 31);
  for (size_t q = 0; 32 * q < bits; q++) {
    uint32_t v = src[q];
    size_t p = (at >> 5) + q;
    dst[p] |= v << shift;
    size_t taken = bits - 32 * q < 32 ? bits - 32 * q : 32;
    if (shift + taken > 32) dst[p + 1] |= v >> (32 - shift);
  }
}

/* The packed receptive field of output pixel `row` (image-major) into `dst` (words(k * k * c) words). */
static inline void gather_bits(uint32_t *dst, size_t row, const uint32_t *x, size_t h, size_t w, size_t c, size_t xs,
                               size_t k, size_t stride, size_t pad, size_t oh, size_t ow) {
  size_t words = words_of(k * k * c);
  for (size_t q = 0; q < words; q++) dst[q] = 0;
  size_t img = row / (oh * ow), p = row % (oh * ow), oy = p / ow, ox = p % ow;
  size_t at = 0;
  for (size_t i = 0; i < k; i++) {
    long y = (long)(oy * stride + i) - (long)pad;
    for (size_t j = 0; j < k; j++, at += c) {
      long xx = (long)(ox * stride + j) - (long)pad;
      if (y < 0 || y >= (long)h || xx < 0 || xx >= (long)w) continue;
      append_bits(dst, at, x + ((img * h + (size_t)y) * w + (size_t)xx) * xs, c);
    }
  }
}

/*
 * Binary convolution on packed bits: x [n_img, h, w] pixels of xs words, weights [n, words(k*k*c)], output rows
 * = output pixels. cidx/corr: the border correction (per output pixel of one image; see blocks.h).
 * scratch: CONV_BLOCK * words(k*k*c) words per thread.
 */
EXPORT(oe_conv_bits)
void oe_conv_bits(int tid, int nt, size_t n_img, size_t h, size_t w, size_t c, size_t xs, size_t k, size_t stride,
                  size_t pad, size_t oh, size_t ow, size_t n, const uint32_t *x, const uint32_t *wt,
                  const int32_t *cidx, const int32_t *corr, int mode, const void *p0, const void *p1, int act,
                  void *out, uint32_t *scratch) {
  size_t rows = n_img * oh * ow, taps = k * k * c, words = words_of(taps);
  size_t r0, r1, j0, j1;
  conv_split(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  uint32_t *rowsbuf = scratch + (size_t)tid * CONV_BLOCK * words;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  for (size_t b = r0; b < r1; b += CONV_BLOCK) {
    size_t e = min_sz(r1, b + CONV_BLOCK);
    for (size_t r = b; r < e; r++) gather_bits(rowsbuf + (r - b) * words, r, x, h, w, c, xs, k, stride, pad, oh, ow);
#if defined(OB_AVX512)
    xnor_avx512(0, e - b, j0, j1, taps, rowsbuf, wt, mode, p0, p1, act, out, n, b, cidx, corr, oh * ow);
#elif defined(OB_SIMD128)
    xnor_simd(0, e - b, j0, j1, taps, rowsbuf, wt, mode, p0, p1, act, out, n, b, cidx, corr, oh * ow);
#else
    xnor_scalar(0, e - b, j0, j1, taps, rowsbuf, wt, mode, p0, p1, act, out, n, b, cidx, corr, oh * ow);
#endif
  }
}

/* The receptive field of output pixel `row` as floats (padded taps 0) into `dst` (words(k*k*c) * 32 floats). */
static inline void gather_f32(float *dst, size_t row, const float *x, size_t h, size_t w, size_t c, size_t xs,
                              size_t k, size_t stride, size_t pad, size_t oh, size_t ow) {
  /* f32_rows reads the first ceil(taps / 4) * 4 floats of a row: only those need the zero tail. */
  size_t taps = k * k * c, used = (taps + 3) / 4 * 4;
  size_t img = row / (oh * ow), p = row % (oh * ow), oy = p / ow, ox = p % ow;
  size_t at = 0;
  for (size_t i = 0; i < k; i++) {
    long y = (long)(oy * stride + i) - (long)pad;
    for (size_t j = 0; j < k; j++, at += c) {
      long xx = (long)(ox * stride + j) - (long)pad;
      if (y < 0 || y >= (long)h || xx < 0 || xx >= (long)w) {
        for (size_t q = 0; q < c; q++) dst[at + q] = 0.0f;
      } else {
        const float *src = x + ((img * h + (size_t)y) * w + (size_t)xx) * xs;
        for (size_t q = 0; q < c; q++) dst[at + q] = src[q];
      }
    }
  }
  for (size_t q = taps; q < used; q++) dst[q] = 0.0f;
}

/* Binary convolution on real inputs (1W32A), zero padding; as oe_conv_bits otherwise. */
EXPORT(oe_conv_f32)
void oe_conv_f32(int tid, int nt, size_t n_img, size_t h, size_t w, size_t c, size_t xs, size_t k, size_t stride,
                 size_t pad, size_t oh, size_t ow, size_t n, const float *x, const uint32_t *wt, int mode,
                 const void *p0, const void *p1, int act, void *out, float *scratch) {
  size_t rows = n_img * oh * ow, taps = k * k * c, kp = words_of(taps) * 32;
  size_t r0, r1, j0, j1;
  conv_split(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  float *rowsbuf = scratch + (size_t)tid * CONV_BLOCK * kp;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  for (size_t b = r0; b < r1; b += CONV_BLOCK) {
    size_t e = min_sz(r1, b + CONV_BLOCK);
    for (size_t r = b; r < e; r++) gather_f32(rowsbuf + (r - b) * kp, r, x, h, w, c, xs, k, stride, pad, oh, ow);
    f32_rows(0, e - b, j0, j1, taps, rowsbuf, wt, mode, p0, p1, act, out, n, b, NULL);
  }
}

/* The receptive field of output pixel `row` of one-channel bytes as float pixel values (padded taps 0). */
static inline void gather_u8(float *dst, size_t row, const uint8_t *x, size_t h, size_t w, size_t k, size_t stride,
                             size_t pad, size_t oh, size_t ow) {
  size_t used = (k * k + 3) / 4 * 4; /* the floats f32_rows reads */
  size_t img = row / (oh * ow), p = row % (oh * ow), oy = p / ow, ox = p % ow;
  const uint8_t *base = x + img * h * w;
  size_t t = 0;
  for (size_t i = 0; i < k; i++) {
    long y = (long)(oy * stride + i) - (long)pad;
    for (size_t j = 0; j < k; j++, t++) {
      long xx = (long)(ox * stride + j) - (long)pad;
      dst[t] = (y < 0 || y >= (long)h || xx < 0 || xx >= (long)w) ? 0.0f : (float)base[(size_t)y * w + (size_t)xx];
    }
  }
  for (; t < used; t++) dst[t] = 0.0f;
}

/*
 * The first convolution on raw one-channel bytes x [n_img, h, w], normalised as x = a v + c: for each output
 * pixel and channel, s = a sum_t w_t v_t + c (wsum[j] - corr), the sum over in-image taps exact (integers in
 * float32). scratch: CONV_BLOCK * words(k * k) * 32 floats per thread.
 */
EXPORT(oe_conv_u8)
void oe_conv_u8(int tid, int nt, size_t n_img, size_t h, size_t w, size_t k, size_t stride, size_t pad, size_t oh,
                size_t ow, size_t n, const uint8_t *x, const uint32_t *wt, const int32_t *wsum, const int32_t *cidx,
                const int32_t *corr, double a, double cc, int mode, const void *p0, const void *p1, int act,
                void *out, float *scratch) {
  size_t rows = n_img * oh * ow, taps = k * k, kp = words_of(taps) * 32;
  size_t r0, r1, j0, j1;
  conv_split(rows, n, tid, nt, &r0, &r1, &j0, &j1);
  if (r0 >= r1 || j0 >= j1) return;
  float *rowsbuf = scratch + (size_t)tid * CONV_BLOCK * kp;
  if (mode == OUT_BITS) zero_bits((uint32_t *)out, n, r0, r1, j0, j1);
  struct pixel_sums ps = {wsum, a, cc, cidx, corr, oh * ow};
  for (size_t b = r0; b < r1; b += CONV_BLOCK) {
    size_t e = min_sz(r1, b + CONV_BLOCK);
    for (size_t r = b; r < e; r++) gather_u8(rowsbuf + (r - b) * kp, r, x, h, w, k, stride, pad, oh, ow);
    f32_rows(0, e - b, j0, j1, taps, rowsbuf, wt, mode, p0, p1, act, out, n, b, &ps);
  }
}

/* The output pixels [*lo, *hi) of this thread for an elementwise or pooling pass over `rows` pixels. */
static inline void pixel_range(size_t rows, int tid, int nt, size_t *lo, size_t *hi) {
  thread_range(rows, 1, tid, nt, lo, hi);
}

/*
 * Max pooling on packed signs: the maximum of +-1 values is -1 only when all are, so the output bits are the
 * AND of the window's bits (padded positions skipped: they never win). x and out are pixels of `words` words.
 */
EXPORT(oe_maxpool_bits)
void oe_maxpool_bits(int tid, int nt, size_t n_img, size_t h, size_t w, size_t words, size_t k, size_t stride,
                     size_t pad, size_t oh, size_t ow, const uint32_t *x, uint32_t *out) {
  size_t lo, hi;
  pixel_range(n_img * oh * ow, tid, nt, &lo, &hi);
  for (size_t r = lo; r < hi; r++) {
    size_t img = r / (oh * ow), p = r % (oh * ow), oy = p / ow, ox = p % ow;
    uint32_t *o = out + r * words;
    for (size_t q = 0; q < words; q++) o[q] = 0xffffffffu;
    for (size_t i = 0; i < k; i++) {
      long y = (long)(oy * stride + i) - (long)pad;
      if (y < 0 || y >= (long)h) continue;
      for (size_t j = 0; j < k; j++) {
        long xx = (long)(ox * stride + j) - (long)pad;
        if (xx < 0 || xx >= (long)w) continue;
        const uint32_t *src = x + ((img * h + (size_t)y) * w + (size_t)xx) * words;
        for (size_t q = 0; q < words; q++) o[q] &= src[q];
      }
    }
  }
}

/*
 * Max (avg = 0) or average (avg = 1) pooling of real maps, pixels of xs floats (c used). The average sums the
 * window in double in row-major order and divides by k * k (padding counts as 0), as the training layer does.
 */
EXPORT(oe_pool_f32)
void oe_pool_f32(int tid, int nt, size_t n_img, size_t h, size_t w, size_t c, size_t xs, size_t k, size_t stride,
                 size_t pad, size_t oh, size_t ow, const float *x, float *out, int avg) {
  size_t lo, hi;
  pixel_range(n_img * oh * ow, tid, nt, &lo, &hi);
  for (size_t r = lo; r < hi; r++) {
    size_t img = r / (oh * ow), p = r % (oh * ow), oy = p / ow, ox = p % ow;
    float *o = out + r * xs;
    size_t ch = 0;
#ifdef OB_SIMD128
    if (!avg) {
      /* Four channels at a time; pmax keeps the first of equal values, as the training layer does. */
      for (; ch + 4 <= c; ch += 4) {
        v128_t best = wasm_f32x4_splat(0.0f);
        int seen = 0;
        for (size_t i = 0; i < k; i++) {
          long y = (long)(oy * stride + i) - (long)pad;
          if (y < 0 || y >= (long)h) continue;
          for (size_t j = 0; j < k; j++) {
            long xx = (long)(ox * stride + j) - (long)pad;
            if (xx < 0 || xx >= (long)w) continue;
            v128_t v = wasm_v128_load(x + ((img * h + (size_t)y) * w + (size_t)xx) * xs + ch);
            best = seen ? wasm_f32x4_pmax(best, v) : v;
            seen = 1;
          }
        }
        wasm_v128_store(o + ch, best);
      }
    }
#endif
    for (; ch < c; ch++) {
      double s = 0.0;
      float best = 0.0f;
      int seen = 0;
      for (size_t i = 0; i < k; i++) {
        long y = (long)(oy * stride + i) - (long)pad;
        if (y < 0 || y >= (long)h) continue;
        for (size_t j = 0; j < k; j++) {
          long xx = (long)(ox * stride + j) - (long)pad;
          if (xx < 0 || xx >= (long)w) continue;
          float v = x[((img * h + (size_t)y) * w + (size_t)xx) * xs + ch];
          s += (double)v;
          if (!seen || v > best) best = v;
          seen = 1;
        }
      }
      o[ch] = avg ? (float)(s / (double)(k * k)) : best;
    }
  }
}

/*
 * Real values to signs per channel: bit set (-1) iff v < t (direction +1) or v > t (direction -1). Rows of
 * xs floats in, rows of words_of(c) words out.
 */
EXPORT(oe_threshold_f32)
void oe_threshold_f32(int tid, int nt, size_t rows, size_t c, size_t xs, const float *x, const float *t,
                      const int8_t *d, uint32_t *out) {
  size_t lo, hi, words = words_of(c);
  pixel_range(rows, tid, nt, &lo, &hi);
  for (size_t r = lo; r < hi; r++) {
    uint32_t *o = out + r * words;
    for (size_t q = 0; q < words; q++) o[q] = 0;
    for (size_t ch = 0; ch < c; ch++) {
      float v = x[r * xs + ch];
      uint32_t neg = d[ch] > 0 ? (uint32_t)(v < t[ch]) : (uint32_t)(v > t[ch]);
      o[ch >> 5] |= neg << (ch & 31);
    }
  }
}

/* y = act(v * scale + bias) per channel, in double and rounded once (as the dense output stage). */
EXPORT(oe_affine_f32)
void oe_affine_f32(int tid, int nt, size_t rows, size_t c, size_t xs, const float *x, const float *scale,
                   const float *bias, int act, float *out) {
  size_t lo, hi;
  pixel_range(rows, tid, nt, &lo, &hi);
  for (size_t r = lo; r < hi; r++) {
    for (size_t ch = 0; ch < c; ch++) {
      double y = (double)x[r * xs + ch] * (double)scale[ch] + (double)bias[ch];
      out[r * xs + ch] = activate((float)y, act);
    }
  }
}

/*
 * Flattens each image's [pixels, c] map to one row: packed bits (pixels of xs words) into rows of
 * words_of(pixels * c) words (bits = 1), or floats (pixels of xs floats) into rows of words_of(pixels * c) * 32
 * floats (bits = 0). Feature order (pixel, channel) ('hwc', chw = 0: whole pixels appended) or (channel,
 * pixel) ('chw', chw = 1: the training model's order, gathered value by value).
 */
EXPORT(oe_flatten)
void oe_flatten(int tid, int nt, size_t n_img, size_t pixels, size_t c, size_t xs, const void *x, void *out,
                int bits, int chw) {
  size_t lo, hi, flat = pixels * c, words = words_of(flat);
  pixel_range(n_img, tid, nt, &lo, &hi);
  for (size_t img = lo; img < hi; img++) {
    if (bits) {
      uint32_t *o = (uint32_t *)out + img * words;
      const uint32_t *src = (const uint32_t *)x + img * pixels * xs;
      for (size_t q = 0; q < words; q++) o[q] = 0;
      if (!chw) {
        for (size_t p = 0; p < pixels; p++) append_bits(o, p * c, src + p * xs, c);
      } else {
        for (size_t p = 0; p < pixels; p++) {
          for (size_t ch = 0; ch < c; ch++) {
            size_t f = ch * pixels + p;
            o[f >> 5] |= ((src[p * xs + (ch >> 5)] >> (ch & 31)) & 1u) << (f & 31);
          }
        }
      }
    } else {
      float *o = (float *)out + img * words * 32;
      const float *src = (const float *)x + img * pixels * xs;
      for (size_t p = 0; p < pixels; p++) {
        for (size_t ch = 0; ch < c; ch++) o[chw ? ch * pixels + p : p * c + ch] = src[p * xs + ch];
      }
      for (size_t q = flat; q < words * 32; q++) o[q] = 0.0f;
    }
  }
}

/* out = a + b over `count` floats (a residual block's branches; float32 addition, as training's). */
EXPORT(oe_add_f32)
void oe_add_f32(int tid, int nt, size_t count, const float *a, const float *b, float *out) {
  size_t lo, hi;
  thread_range(count, 4, tid, nt, &lo, &hi);
  for (size_t i = lo; i < hi; i++) out[i] = a[i] + b[i];
}
