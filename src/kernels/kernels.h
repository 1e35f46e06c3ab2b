/*
 * The training backend's kernels (bits.c, conv.c, elementwise.c, gemm.c, methods.c, pool.c): one declaration each, shared by the
 * files that define them (so a changed signature fails to compile) and by the native addon's call table
 * (src/native/table.c). Every kernel takes (tid, nt) first and does its own share of the work (common.h).
 */
#ifndef ONEBIT_KERNELS_H
#define ONEBIT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define GEOMETRY_ARGS size_t channels, size_t height, size_t width, size_t kh, size_t kw, size_t stride, size_t pad, \
                      size_t out_h, size_t out_w

void ob_pack_signs(int tid, int nt, const float *x, size_t rows, size_t cols, uint32_t *out);
void ob_binary_gemm(int tid, int nt, size_t m, size_t n, size_t k, const uint32_t *a, const uint32_t *b, int32_t *c);
void ob_im2col(int tid, int nt, const float *images, GEOMETRY_ARGS, size_t batch, float *col);
void ob_col2im(int tid, int nt, const float *col, GEOMETRY_ARGS, size_t batch, float *images);
void ob_swap_axes(int tid, int nt, const float *src, size_t a, size_t b, size_t inner, float *dst);
void ob_max_pool(int tid, int nt, const float *x, size_t planes, size_t height, size_t width, size_t kh, size_t kw,
                 size_t stride, size_t pad, size_t out_h, size_t out_w, float *out, int32_t *argmax);
void ob_max_pool_backward(int tid, int nt, const float *grad_out, const int32_t *argmax, size_t planes,
                          size_t in_plane, size_t out_plane, float *grad_in);
void ob_fill(int tid, int nt, float *x, float value, size_t len);
void ob_copy(int tid, int nt, const float *src, float *dst, size_t len);
void ob_axpy(int tid, int nt, double alpha, const float *x, float *y, size_t len);
void ob_scale(int tid, int nt, float *x, double alpha, size_t len);
void ob_multiply(int tid, int nt, const float *a, const float *b, float *out, size_t len);
void ob_clip(int tid, int nt, float *x, float lower, float upper, size_t len);
void ob_sign(int tid, int nt, const float *x, float *out, size_t len);
void ob_sign_backward(int tid, int nt, const float *x, const float *g, float *gi, int surrogate, size_t len);
void ob_relu(int tid, int nt, const float *x, float *out, size_t len);
void ob_relu_backward(int tid, int nt, const float *x, const float *g, float *gi, size_t len);
void ob_hardtanh(int tid, int nt, const float *x, float *out, size_t len);
void ob_hardtanh_backward(int tid, int nt, const float *x, const float *g, float *gi, size_t len);
void ob_sum(int tid, int nt, const float *x, size_t len, int squares, double *partial);
void ob_channel_sums(int tid, int nt, const float *x, const float *y, size_t n, size_t channels, size_t spatial,
                     float *sums, float *sums_b);
void ob_channel_affine(int tid, int nt, const float *x, const float *mul, const float *add, size_t n, size_t channels,
                       size_t spatial, float *out);
void ob_adam(int tid, int nt, float *param, const float *grad, float *m, float *v, double lr, double b1, double b2,
             double eps, double wd, double c1, double c2, size_t len);
int32_t ob_bayesbinn_saturated(int tid, int nt, const float *lambda, float *sample, double skip, size_t len,
                               int32_t *pending);
int32_t ob_bayesbinn_update(int tid, int nt, float *lambda, float *mu, const float *prior, const float *grad,
                            const float *sample, float *velocity, double tau, double scale_n, double lr, double reweight,
                            double momentum, double correction, size_t len, int32_t *pending, float *pending_lambda);
int32_t ob_bop_update(int tid, int nt, float *w, float *m, const float *grad, double gamma, double threshold,
                      size_t len);
void ob_vispa_project(int tid, int nt, float *m, float *z, size_t rank, double inv_scale, size_t n);
size_t ob_gemm_workspace_bytes(void);
void ob_gemm(int tid, int nt, int layout, size_t m, size_t n, size_t k, const float *a, const float *b, float *c,
             int accumulate, float *ws);

#endif
