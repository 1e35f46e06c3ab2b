/*
 * im2col / col2im for a batch of NCHW images (the layout of backend.ts and the reference backend), image b's
 * positions side by side in each row of col (rows of batch * outH*outW columns):
 *   col[(c*kh + i)*kw + j][b*outH*outW + oy*outW + ox] = image_b[c][oy*stride - pad + i][ox*stride - pad + j]
 * (0 outside), so that one GEMM covers the whole batch.
 * Instead of testing every tap, each (row, oy) computes the range of ox whose tap lies inside the image,
 * zero-fills around it and copies (or, for stride 1, moves contiguously) the inside part.
 * col2im visits col in the reference's order (c, i, j, oy, ox) and adds in float, so its sums are
 * bit-identical to the reference's.
 */
#include "common.h"
#include "kernels.h"

typedef ptrdiff_t sidx;

/* First ox >= 0 with ox*stride + off >= 0, and first ox with ox*stride + off >= limit (both clamped to outw). */
static inline sidx first_at_least(sidx off, sidx stride, sidx bound, sidx outw) {
  /* smallest ox with ox*stride + off >= bound */
  sidx need = bound - off;
  sidx ox = need <= 0 ? 0 : (need + stride - 1) / stride;
  return ox > outw ? outw : ox;
}

/* GEOMETRY_ARGS (kernels.h): outH/outW are computed by the caller with the shared formula. */

EXPORT(ob_im2col)
void ob_im2col(int tid, int nt, const float *images, GEOMETRY_ARGS, size_t batch, float *col) {
  size_t rows = channels * kh * kw, positions = out_h * out_w, plane = channels * height * width;
  size_t r0, r1;
  thread_range(rows * batch, 1, tid, nt, &r0, &r1);
  sidx s = (sidx)stride, w = (sidx)width, ow = (sidx)out_w;
  for (size_t task = r0; task < r1; task++) {
    size_t row = task / batch, b = task % batch;
    size_t c = row / (kh * kw), i = (row / kw) % kh, j = row % kw;
    const float *image = images + b * plane;
    float *dst = col + (row * batch + b) * positions;
    sidx xoff = (sidx)j - (sidx)pad;
    sidx ox0 = first_at_least(xoff, s, 0, ow), ox1 = first_at_least(xoff, s, w, ow);
    if (ox1 < ox0) ox1 = ox0;
    for (size_t oy = 0; oy < out_h; oy++, dst += out_w) {
      sidx y = (sidx)(oy * stride) - (sidx)pad + (sidx)i;
      if (y < 0 || y >= (sidx)height) {
        for (size_t ox = 0; ox < out_w; ox++) dst[ox] = 0.0f;
        continue;
      }
      const float *src = image + (c * height + (size_t)y) * width;
      for (sidx ox = 0; ox < ox0; ox++) dst[ox] = 0.0f;
      if (stride == 1) {
        if (ox1 > ox0) __builtin_memcpy(dst + ox0, src + ox0 + xoff, (size_t)(ox1 - ox0) * sizeof(float));
      } else {
        for (sidx ox = ox0; ox < ox1; ox++) dst[ox] = src[ox * s + xoff];
      }
      for (sidx ox = ox1; ox < ow; ox++) dst[ox] = 0.0f;
    }
  }
}

/*
 * images = 0, then image_b[tap] += col[row][b*positions + pos] for every inside tap. Threads split the
 * (image, channel) planes (disjoint).
 */
EXPORT(ob_col2im)
void ob_col2im(int tid, int nt, const float *col, GEOMETRY_ARGS, size_t batch, float *images) {
  size_t positions = out_h * out_w;
  size_t p0, p1;
  thread_range(batch * channels, 1, tid, nt, &p0, &p1);
  sidx s = (sidx)stride, w = (sidx)width, ow = (sidx)out_w;
  if (p1 > p0) __builtin_memset(images + p0 * height * width, 0, (p1 - p0) * height * width * sizeof(float));
  for (size_t plane = p0; plane < p1; plane++) {
    size_t b = plane / channels, c = plane % channels;
    float *image = images + b * channels * height * width;
    for (size_t i = 0; i < kh; i++) {
      for (size_t j = 0; j < kw; j++) {
        const float *src = col + (((c * kh + i) * kw + j) * batch + b) * positions;
        sidx xoff = (sidx)j - (sidx)pad;
        sidx ox0 = first_at_least(xoff, s, 0, ow), ox1 = first_at_least(xoff, s, w, ow);
        for (size_t oy = 0; oy < out_h; oy++, src += out_w) {
          sidx y = (sidx)(oy * stride) - (sidx)pad + (sidx)i;
          if (y < 0 || y >= (sidx)height) continue;
          float *dst = image + (c * height + (size_t)y) * width;
          for (sidx ox = ox0; ox < ox1; ox++) dst[ox * s + xoff] += src[ox];
        }
      }
    }
  }
}

/*
 * dst[(j * a + i) * inner + q] = src[(i * b + j) * inner + q] for i < a, j < b: the two outer axes of an
 * [a, b, inner] array swapped (a batch of images to a GEMM chunk's layout [channels, images, positions] and
 * back). Threads split the a * b blocks.
 */
EXPORT(ob_swap_axes)
void ob_swap_axes(int tid, int nt, const float *src, size_t a, size_t b, size_t inner, float *dst) {
  size_t lo, hi;
  thread_range(a * b, 1, tid, nt, &lo, &hi);
  for (size_t block = lo; block < hi; block++) {
    size_t i = block / b, j = block % b;
    __builtin_memcpy(dst + (j * a + i) * inner, src + block * inner, inner * sizeof(float));
  }
}
