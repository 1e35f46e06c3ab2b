/*
 * One instruction-set level's call table of the inference engine's kernels (src/kernels/engine/kernels.h), as
 * table.c is for the training kernels: a thunk per kernel casting the addon's arguments to its signature. The
 * engine passes byte offsets into its memory; the addon's runIn turns each into a pointer (offset 0: NULL)
 * and keeps the number too, so a thunk reads pointers with P and sizes with Z.
 */
#include "../kernels/engine/kernels.h"
#include "native.h"

#define P(T, i) ((T)a[i].p)
#define Z(i) ((size_t)a[i].d)
#define I(i) ((int)a[i].d)
#define D(i) (a[i].d)
#define CONV_GEOMETRY(i) Z(i), Z(i + 1), Z(i + 2), Z(i + 3), Z(i + 4), Z(i + 5), Z(i + 6), Z(i + 7), Z(i + 8), Z(i + 9)

static double t_dense_bits(int tid, int nt, const native_arg *a) {
  oe_dense_bits(tid, nt, Z(0), Z(1), Z(2), P(const uint32_t *, 3), P(const uint32_t *, 4), I(5), P(const void *, 6),
                P(const void *, 7), I(8), P(void *, 9), I(10));
  return 0;
}
static double t_dense_f32(int tid, int nt, const native_arg *a) {
  oe_dense_f32(tid, nt, Z(0), Z(1), Z(2), P(const float *, 3), P(const uint32_t *, 4), I(5), P(const void *, 6),
               P(const void *, 7), I(8), P(void *, 9));
  return 0;
}
static double t_dense_f32_lut(int tid, int nt, const native_arg *a) {
  oe_dense_f32_lut(tid, nt, Z(0), Z(1), Z(2), P(const float *, 3), P(const uint32_t *, 4), P(const uint8_t *, 5), I(6),
                   P(const void *, 7), P(const void *, 8), I(9), P(void *, 10), P(uint8_t *, 11));
  return 0;
}
static double t_dense_u8(int tid, int nt, const native_arg *a) {
  oe_dense_u8(tid, nt, Z(0), Z(1), Z(2), P(const uint8_t *, 3), P(const uint32_t *, 4), P(const int32_t *, 5), D(6),
              D(7), I(8), P(const void *, 9), P(const void *, 10), I(11), P(void *, 12));
  return 0;
}
static double t_dense_lut(int tid, int nt, const native_arg *a) {
  oe_dense_lut(tid, nt, Z(0), Z(1), Z(2), P(const uint8_t *, 3), P(const uint8_t *, 4), P(const int32_t *, 5), D(6),
               D(7), I(8), P(const void *, 9), P(const void *, 10), I(11), P(void *, 12), P(uint8_t *, 13));
  return 0;
}
static double t_nibbles(int tid, int nt, const native_arg *a) {
  oe_nibbles(tid, nt, Z(0), Z(1), P(const uint32_t *, 2), P(uint8_t *, 3));
  return 0;
}
static double t_dense_g5(int tid, int nt, const native_arg *a) {
  oe_dense_g5(tid, nt, Z(0), Z(1), Z(2), P(const uint8_t *, 3), P(const uint16_t *, 4), P(const int32_t *, 5), D(6),
              D(7), I(8), P(const void *, 9), P(const void *, 10), I(11), P(void *, 12), P(uint8_t *, 13));
  return 0;
}
static double t_groups5(int tid, int nt, const native_arg *a) {
  oe_groups5(tid, nt, Z(0), Z(1), P(const uint32_t *, 2), P(uint16_t *, 3));
  return 0;
}
static double t_conv_bits(int tid, int nt, const native_arg *a) {
  oe_conv_bits(tid, nt, CONV_GEOMETRY(0), Z(10), P(const uint32_t *, 11), P(const uint32_t *, 12),
               P(const int32_t *, 13), P(const int32_t *, 14), I(15), P(const void *, 16), P(const void *, 17), I(18),
               P(void *, 19), P(uint32_t *, 20));
  return 0;
}
static double t_conv_f32(int tid, int nt, const native_arg *a) {
  oe_conv_f32(tid, nt, CONV_GEOMETRY(0), Z(10), P(const float *, 11), P(const uint32_t *, 12), I(13),
              P(const void *, 14), P(const void *, 15), I(16), P(void *, 17), P(float *, 18));
  return 0;
}
static double t_conv_u8(int tid, int nt, const native_arg *a) {
  oe_conv_u8(tid, nt, Z(0), Z(1), Z(2), Z(3), Z(4), Z(5), Z(6), Z(7), Z(8), P(const uint8_t *, 9),
             P(const uint32_t *, 10), P(const int32_t *, 11), P(const int32_t *, 12), P(const int32_t *, 13), D(14),
             D(15), I(16), P(const void *, 17), P(const void *, 18), I(19), P(void *, 20), P(float *, 21));
  return 0;
}
static double t_maxpool_bits(int tid, int nt, const native_arg *a) {
  oe_maxpool_bits(tid, nt, Z(0), Z(1), Z(2), Z(3), Z(4), Z(5), Z(6), Z(7), Z(8), P(const uint32_t *, 9),
                  P(uint32_t *, 10));
  return 0;
}
static double t_pool_f32(int tid, int nt, const native_arg *a) {
  oe_pool_f32(tid, nt, CONV_GEOMETRY(0), P(const float *, 10), P(float *, 11), I(12));
  return 0;
}
static double t_threshold_f32(int tid, int nt, const native_arg *a) {
  oe_threshold_f32(tid, nt, Z(0), Z(1), Z(2), P(const float *, 3), P(const float *, 4), P(const int8_t *, 5),
                   P(uint32_t *, 6));
  return 0;
}
static double t_affine_f32(int tid, int nt, const native_arg *a) {
  oe_affine_f32(tid, nt, Z(0), Z(1), Z(2), P(const float *, 3), P(const float *, 4), P(const float *, 5), I(6),
                P(float *, 7));
  return 0;
}
static double t_flatten(int tid, int nt, const native_arg *a) {
  oe_flatten(tid, nt, Z(0), Z(1), Z(2), Z(3), P(const void *, 4), P(void *, 5), I(6), I(7));
  return 0;
}
static double t_add_f32(int tid, int nt, const native_arg *a) {
  oe_add_f32(tid, nt, Z(0), P(const float *, 1), P(const float *, 2), P(float *, 3));
  return 0;
}

/* In the order of ENGINE_KERNELS (src/engine/plan.ts); the addon looks kernels up by name. */
const native_kernel NATIVE_ENGINE_TABLE[] = {
    {"oe_dense_bits", 11, t_dense_bits},
    {"oe_dense_f32", 10, t_dense_f32},
    {"oe_dense_f32_lut", 12, t_dense_f32_lut},
    {"oe_dense_u8", 13, t_dense_u8},
    {"oe_dense_lut", 14, t_dense_lut},
    {"oe_nibbles", 4, t_nibbles},
    {"oe_dense_g5", 14, t_dense_g5},
    {"oe_groups5", 4, t_groups5},
    {"oe_conv_bits", 21, t_conv_bits},
    {"oe_conv_f32", 19, t_conv_f32},
    {"oe_conv_u8", 22, t_conv_u8},
    {"oe_maxpool_bits", 11, t_maxpool_bits},
    {"oe_pool_f32", 13, t_pool_f32},
    {"oe_threshold_f32", 7, t_threshold_f32},
    {"oe_affine_f32", 8, t_affine_f32},
    {"oe_flatten", 8, t_flatten},
    {"oe_add_f32", 4, t_add_f32},
    {NULL, 0, NULL},
};
