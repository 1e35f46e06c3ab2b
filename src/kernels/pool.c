/*
 * Max pooling over planes of NCHW batches (src/nn/max-pool2d.ts; the reference backend's loops are the
 * specification): each window's maximum over its in-image taps and the flat input index of the first
 * maximum (strict >, so the first of equal values wins and a NaN first tap stays); a window with no in-image
 * tap gives -infinity and index -1. Backward adds each output gradient to its index. Threads split planes,
 * so the scatter-adds of overlapping windows never race and the sums do not depend on the thread count.
 */
#include "common.h"
#include "kernels.h"

EXPORT(ob_max_pool)
void ob_max_pool(int tid, int nt, const float *x, size_t planes, size_t height, size_t width, size_t kh, size_t kw,
                 size_t stride, size_t pad, size_t out_h, size_t out_w, float *out, int32_t *argmax) {
  size_t p0, p1;
  thread_range(planes, 1, tid, nt, &p0, &p1);
  for (size_t plane = p0; plane < p1; plane++) {
    size_t base = plane * height * width, o = plane * out_h * out_w;
    for (size_t oy = 0; oy < out_h; oy++) {
      /* The window's rows inside the image, then per output column its columns inside: no test per tap. */
      ptrdiff_t y0 = (ptrdiff_t)(oy * stride) - (ptrdiff_t)pad;
      size_t i0 = y0 < 0 ? (size_t)(-y0) : 0;
      size_t i1 = y0 + (ptrdiff_t)kh > (ptrdiff_t)height ? (size_t)((ptrdiff_t)height - y0) : kh;
      for (size_t ox = 0; ox < out_w; ox++, o++) {
        float best = -__builtin_inff();
        int64_t best_index = -1;
        ptrdiff_t x0 = (ptrdiff_t)(ox * stride) - (ptrdiff_t)pad;
        size_t j0 = x0 < 0 ? (size_t)(-x0) : 0;
        size_t j1 = x0 + (ptrdiff_t)kw > (ptrdiff_t)width ? (size_t)((ptrdiff_t)width - x0) : kw;
        if (i0 < i1 && j0 < j1) {
          /* The first in-image tap, then selects (no branch on the data: a random max mispredicts). */
          best_index = (int64_t)(base + (size_t)(y0 + (ptrdiff_t)i0) * width + (size_t)(x0 + (ptrdiff_t)j0));
          best = x[best_index];
          for (size_t i = i0; i < i1; i++) {
            size_t row = base + (size_t)(y0 + (ptrdiff_t)i) * width;
            for (size_t j = j0; j < j1; j++) {
              size_t index = row + (size_t)(x0 + (ptrdiff_t)j);
              float v = x[index];
              int take = v > best;
              best = take ? v : best;
              best_index = take ? (int64_t)index : best_index;
            }
          }
        }
        out[o] = best;
        argmax[o] = (int32_t)best_index;
      }
    }
  }
}

/* grad_in = 0 over the planes, then grad_in[argmax[o]] += grad_out[o] (indices of -1 skipped). */
EXPORT(ob_max_pool_backward)
void ob_max_pool_backward(int tid, int nt, const float *grad_out, const int32_t *argmax, size_t planes,
                          size_t in_plane, size_t out_plane, float *grad_in) {
  size_t p0, p1;
  thread_range(planes, 1, tid, nt, &p0, &p1);
  if (p1 > p0) __builtin_memset(grad_in + p0 * in_plane, 0, (p1 - p0) * in_plane * sizeof(float));
  for (size_t o = p0 * out_plane; o < p1 * out_plane; o++) {
    int32_t at = argmax[o];
    if (at >= 0) grad_in[at] += grad_out[o];
  }
}
