/*
 * im2col / col2im for one NCHW image (the layout of backend.ts and the reference backend):
 *   col[(c*kh + i)*kw + j][oy*outW + ox] = image[c][oy*stride - pad + i][ox*stride - pad + j]  (0 outside).
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
void ob_im2col(int tid, int nt, const float *image, GEOMETRY_ARGS, float *col) {
  size_t rows = channels * kh * kw, positions = out_h * out_w;
  size_t r0, r1;
  thread_range(rows, 1, tid, nt, &r0, &r1);
  sidx s = (sidx)stride, w = (sidx)width, ow = (sidx)out_w;
  for (size_t row = r0; row < r1; row++) {
    size_t c = row / (kh * kw), i = (row / kw) % kh, j = row % kw;
    float *dst = col + row * positions;
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

/* image = 0, then image[tap] += col[row][pos] for every inside tap. Threads split channels (disjoint planes). */
EXPORT(ob_col2im)
void ob_col2im(int tid, int nt, const float *col, GEOMETRY_ARGS, float *image) {
  size_t positions = out_h * out_w;
  size_t c0, c1;
  thread_range(channels, 1, tid, nt, &c0, &c1);
  sidx s = (sidx)stride, w = (sidx)width, ow = (sidx)out_w;
  if (c1 > c0) __builtin_memset(image + c0 * height * width, 0, (c1 - c0) * height * width * sizeof(float));
  for (size_t c = c0; c < c1; c++) {
    for (size_t i = 0; i < kh; i++) {
      for (size_t j = 0; j < kw; j++) {
        const float *src = col + ((c * kh + i) * kw + j) * positions;
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
