/*
 * The inference engine's kernels (engine.c, conv.c): one declaration each, shared by the files that define them
 * (so a changed signature fails to compile) and by the native addon's call table (src/native/engine-table.c).
 * Pointers are offsets into the engine's memory on wasm and real pointers natively; see engine.c for the
 * conventions.
 */
#ifndef ONEBIT_ENGINE_KERNELS_H
#define ONEBIT_ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define CONV_GEOMETRY_ARGS size_t n_img, size_t h, size_t w, size_t c, size_t xs, size_t k, size_t stride, size_t pad, \
                           size_t oh, size_t ow

void oe_dense_bits(int tid, int nt, size_t rows, size_t k, size_t n, const uint32_t *x, const uint32_t *w, int mode,
                   const void *p0, const void *p1, int act, void *out, int variant);
void oe_dense_f32(int tid, int nt, size_t rows, size_t k, size_t n, const float *x, const uint32_t *w, int mode,
                  const void *p0, const void *p1, int act, void *out);
void oe_dense_f32_lut(int tid, int nt, size_t rows, size_t k, size_t n, const float *x, const uint32_t *w,
                      const uint8_t *nib, int mode, const void *p0, const void *p1, int act, void *out,
                      uint8_t *scratch);
void oe_dense_u8(int tid, int nt, size_t rows, size_t k, size_t n, const uint8_t *x, const uint32_t *w,
                 const int32_t *wsum, double a, double c, int mode, const void *p0, const void *p1, int act, void *out);
void oe_dense_lut(int tid, int nt, size_t rows, size_t k, size_t n, const uint8_t *x, const uint8_t *nib,
                  const int32_t *wsum, double a, double c, int mode, const void *p0, const void *p1, int act,
                  void *out, uint8_t *scratch);
void oe_nibbles(int tid, int nt, size_t k, size_t n, const uint32_t *w, uint8_t *nib);
void oe_dense_g5(int tid, int nt, size_t rows, size_t k, size_t n, const uint8_t *x, const uint16_t *g5,
                 const int32_t *wsum, double a, double c, int mode, const void *p0, const void *p1, int act, void *out,
                 uint8_t *scratch);
void oe_groups5(int tid, int nt, size_t k, size_t n, const uint32_t *w, uint16_t *g5);
void oe_conv_bits(int tid, int nt, CONV_GEOMETRY_ARGS, size_t n, const uint32_t *x, const uint32_t *wt,
                  const int32_t *cidx, const int32_t *corr, int mode, const void *p0, const void *p1, int act,
                  void *out, uint32_t *scratch);
void oe_conv_f32(int tid, int nt, CONV_GEOMETRY_ARGS, size_t n, const float *x, const uint32_t *wt, int mode,
                 const void *p0, const void *p1, int act, void *out, float *scratch);
void oe_conv_u8(int tid, int nt, size_t n_img, size_t h, size_t w, size_t k, size_t stride, size_t pad, size_t oh,
                size_t ow, size_t n, const uint8_t *x, const uint32_t *wt, const int32_t *wsum, const int32_t *cidx,
                const int32_t *corr, double a, double cc, int mode, const void *p0, const void *p1, int act, void *out,
                float *scratch);
void oe_maxpool_bits(int tid, int nt, size_t n_img, size_t h, size_t w, size_t words, size_t k, size_t stride,
                     size_t pad, size_t oh, size_t ow, const uint32_t *x, uint32_t *out);
void oe_pool_f32(int tid, int nt, CONV_GEOMETRY_ARGS, const float *x, float *out, int avg);
void oe_threshold_f32(int tid, int nt, size_t rows, size_t c, size_t xs, const float *x, const float *t,
                      const int8_t *d, uint32_t *out);
void oe_affine_f32(int tid, int nt, size_t rows, size_t c, size_t xs, const float *x, const float *scale,
                   const float *bias, int act, float *out);
void oe_flatten(int tid, int nt, size_t n_img, size_t pixels, size_t c, size_t xs, const void *x, void *out, int bits,
                int chw);
void oe_add_f32(int tid, int nt, size_t count, const float *a, const float *b, float *out);

#endif
