/*
 * One instruction-set level's call table of the training kernels (src/kernels/kernels.h): a thunk per kernel
 * that casts the addon's arguments to the kernel's signature. The build compiles this file and the kernels
 * once per level with a header that renames every ob_* symbol and NATIVE_TABLE for that level
 * (scripts/build-native.mjs); the table ends with a NULL name. Sizes arrive as doubles (exact below 2^53).
 * A thunk returns the kernel's result as a double (0 for a kernel that returns nothing).
 */
#include "../kernels/kernels.h"
#include "native.h"

#define P(T, i) ((T)a[i].p)
#define Z(i) ((size_t)a[i].d)
#define I(i) ((int)a[i].d)
#define D(i) (a[i].d)
#define F(i) ((float)a[i].d)
#define GEOMETRY(i) Z(i), Z(i + 1), Z(i + 2), Z(i + 3), Z(i + 4), Z(i + 5), Z(i + 6), Z(i + 7), Z(i + 8)

static double t_gemm(int tid, int nt, const native_arg *a) {
  ob_gemm(tid, nt, I(0), Z(1), Z(2), Z(3), P(const float *, 4), P(const float *, 5), P(float *, 6), I(7), P(float *, 8));
  return 0;
}
static double t_binary_gemm(int tid, int nt, const native_arg *a) {
  ob_binary_gemm(tid, nt, Z(0), Z(1), Z(2), P(const uint32_t *, 3), P(const uint32_t *, 4), P(int32_t *, 5));
  return 0;
}
static double t_pack_signs(int tid, int nt, const native_arg *a) {
  ob_pack_signs(tid, nt, P(const float *, 0), Z(1), Z(2), P(uint32_t *, 3));
  return 0;
}
static double t_im2col(int tid, int nt, const native_arg *a) {
  ob_im2col(tid, nt, P(const float *, 0), GEOMETRY(1), Z(10), P(float *, 11));
  return 0;
}
static double t_col2im(int tid, int nt, const native_arg *a) {
  ob_col2im(tid, nt, P(const float *, 0), GEOMETRY(1), Z(10), P(float *, 11));
  return 0;
}
static double t_swap_axes(int tid, int nt, const native_arg *a) {
  ob_swap_axes(tid, nt, P(const float *, 0), Z(1), Z(2), Z(3), P(float *, 4));
  return 0;
}
static double t_max_pool(int tid, int nt, const native_arg *a) {
  ob_max_pool(tid, nt, P(const float *, 0), Z(1), Z(2), Z(3), Z(4), Z(5), Z(6), Z(7), Z(8), Z(9), P(float *, 10),
              P(int32_t *, 11));
  return 0;
}
static double t_max_pool_backward(int tid, int nt, const native_arg *a) {
  ob_max_pool_backward(tid, nt, P(const float *, 0), P(const int32_t *, 1), Z(2), Z(3), Z(4), P(float *, 5));
  return 0;
}
static double t_fill(int tid, int nt, const native_arg *a) { ob_fill(tid, nt, P(float *, 0), F(1), Z(2)); return 0; }
static double t_copy(int tid, int nt, const native_arg *a) { ob_copy(tid, nt, P(const float *, 0), P(float *, 1), Z(2)); return 0; }
static double t_axpy(int tid, int nt, const native_arg *a) {
  ob_axpy(tid, nt, D(0), P(const float *, 1), P(float *, 2), Z(3));
  return 0;
}
static double t_scale(int tid, int nt, const native_arg *a) { ob_scale(tid, nt, P(float *, 0), D(1), Z(2)); return 0; }
static double t_multiply(int tid, int nt, const native_arg *a) {
  ob_multiply(tid, nt, P(const float *, 0), P(const float *, 1), P(float *, 2), Z(3));
  return 0;
}
static double t_clip(int tid, int nt, const native_arg *a) { ob_clip(tid, nt, P(float *, 0), F(1), F(2), Z(3)); return 0; }
static double t_sign(int tid, int nt, const native_arg *a) { ob_sign(tid, nt, P(const float *, 0), P(float *, 1), Z(2)); return 0; }
static double t_sign_backward(int tid, int nt, const native_arg *a) {
  ob_sign_backward(tid, nt, P(const float *, 0), P(const float *, 1), P(float *, 2), I(3), Z(4));
  return 0;
}
static double t_relu(int tid, int nt, const native_arg *a) { ob_relu(tid, nt, P(const float *, 0), P(float *, 1), Z(2)); return 0; }
static double t_relu_backward(int tid, int nt, const native_arg *a) {
  ob_relu_backward(tid, nt, P(const float *, 0), P(const float *, 1), P(float *, 2), Z(3));
  return 0;
}
static double t_hardtanh(int tid, int nt, const native_arg *a) {
  ob_hardtanh(tid, nt, P(const float *, 0), P(float *, 1), Z(2));
  return 0;
}
static double t_hardtanh_backward(int tid, int nt, const native_arg *a) {
  ob_hardtanh_backward(tid, nt, P(const float *, 0), P(const float *, 1), P(float *, 2), Z(3));
  return 0;
}
static double t_sum(int tid, int nt, const native_arg *a) {
  ob_sum(tid, nt, P(const float *, 0), Z(1), I(2), P(double *, 3));
  return 0;
}
static double t_channel_sums(int tid, int nt, const native_arg *a) {
  ob_channel_sums(tid, nt, P(const float *, 0), P(const float *, 1), Z(2), Z(3), Z(4), P(float *, 5), P(float *, 6));
  return 0;
}
static double t_channel_affine(int tid, int nt, const native_arg *a) {
  ob_channel_affine(tid, nt, P(const float *, 0), P(const float *, 1), P(const float *, 2), Z(3), Z(4), Z(5),
                    P(float *, 6));
  return 0;
}
static double t_adam(int tid, int nt, const native_arg *a) {
  ob_adam(tid, nt, P(float *, 0), P(const float *, 1), P(float *, 2), P(float *, 3), D(4), D(5), D(6), D(7), D(8), D(9),
          D(10), Z(11));
  return 0;
}
/* Not a parallel kernel: the per-thread workspace size. */
static double t_gemm_workspace_bytes(int tid, int nt, const native_arg *a) {
  (void)tid, (void)nt, (void)a;
  return (double)ob_gemm_workspace_bytes();
}
static double t_bayesbinn_saturated(int tid, int nt, const native_arg *a) {
  return ob_bayesbinn_saturated(tid, nt, P(const float *, 0), P(float *, 1), D(2), Z(3), P(int32_t *, 4));
}
static double t_bayesbinn_update(int tid, int nt, const native_arg *a) {
  return ob_bayesbinn_update(tid, nt, P(float *, 0), P(float *, 1), P(const float *, 2), P(const float *, 3),
                             P(const float *, 4), P(float *, 5), D(6), D(7), D(8), D(9), D(10), D(11), Z(12),
                             P(int32_t *, 13), P(float *, 14));
}

static double t_bop_update(int tid, int nt, const native_arg *a) {
  return ob_bop_update(tid, nt, P(float *, 0), P(float *, 1), P(const float *, 2), D(3), D(4), Z(5));
}

static double t_vispa_project(int tid, int nt, const native_arg *a) {
  ob_vispa_project(tid, nt, P(float *, 0), P(float *, 1), Z(2), D(3), Z(4));
  return 0;
}

const native_kernel NATIVE_TABLE[] = {
    {"ob_gemm", 9, t_gemm},
    {"ob_binary_gemm", 6, t_binary_gemm},
    {"ob_pack_signs", 4, t_pack_signs},
    {"ob_im2col", 12, t_im2col},
    {"ob_col2im", 12, t_col2im},
    {"ob_swap_axes", 5, t_swap_axes},
    {"ob_max_pool", 12, t_max_pool},
    {"ob_max_pool_backward", 6, t_max_pool_backward},
    {"ob_fill", 3, t_fill},
    {"ob_copy", 3, t_copy},
    {"ob_axpy", 4, t_axpy},
    {"ob_scale", 3, t_scale},
    {"ob_multiply", 4, t_multiply},
    {"ob_clip", 4, t_clip},
    {"ob_sign", 3, t_sign},
    {"ob_sign_backward", 5, t_sign_backward},
    {"ob_relu", 3, t_relu},
    {"ob_relu_backward", 4, t_relu_backward},
    {"ob_hardtanh", 3, t_hardtanh},
    {"ob_hardtanh_backward", 4, t_hardtanh_backward},
    {"ob_sum", 4, t_sum},
    {"ob_channel_sums", 7, t_channel_sums},
    {"ob_channel_affine", 7, t_channel_affine},
    {"ob_adam", 12, t_adam},
    {"ob_gemm_workspace_bytes", 0, t_gemm_workspace_bytes},
    {"ob_bayesbinn_saturated", 5, t_bayesbinn_saturated},
    {"ob_bayesbinn_update", 15, t_bayesbinn_update},
    {"ob_bop_update", 6, t_bop_update},
    {"ob_vispa_project", 5, t_vispa_project},
    {NULL, 0, NULL},
};
