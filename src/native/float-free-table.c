/*
 * One instruction-set level's call table of the float-free kernels (src/kernels/float-free/kernels.h), as
 * table.c is for the training kernels: a thunk per kernel casting the addon's arguments (typed arrays as
 * pointers, numbers) to its signature. Integer arguments arrive as doubles, exact below 2^53.
 */
#include "../kernels/float-free/kernels.h"
#include "native.h"

#define P(T, i) ((T)a[i].p)
#define Z(i) ((size_t)a[i].d)
#define I(i) ((int)a[i].d)
#define U(i) ((uint32_t)(size_t)a[i].d)

static double t_center_max(int tid, int nt, const native_arg *a) {
  ff_center_max(tid, nt, Z(0), Z(1), P(int32_t *, 2), Z(3), P(const uint32_t *, 4), I(5), P(const uint32_t *, 6),
                P(int32_t *, 7), P(int32_t *, 8));
  return 0;
}
static double t_quantize(int tid, int nt, const native_arg *a) {
  ff_quantize(tid, nt, Z(0), Z(1), P(const int32_t *, 2), Z(3), P(const int32_t *, 4), Z(5), P(int8_t *, 6), Z(7),
              P(uint32_t *, 8), P(int32_t *, 9));
  return 0;
}
static double t_error_tables(int tid, int nt, const native_arg *a) {
  ff_error_tables(tid, nt, Z(0), Z(1), P(const int8_t *, 2), Z(3), P(uint8_t *, 4), P(int32_t *, 5));
  return 0;
}
static double t_backward_input(int tid, int nt, const native_arg *a) {
  ff_backward_input(tid, nt, Z(0), Z(1), Z(2), P(const int16_t *, 3), P(const uint8_t *, 4), P(const int32_t *, 5),
                    P(int32_t *, 6), P(uint8_t *, 7));
  return 0;
}
static double t_input(int tid, int nt, const native_arg *a) {
  ff_input(tid, nt, Z(0), Z(1), Z(2), P(int8_t *, 3), P(uint32_t *, 4));
  return 0;
}
static double t_dense_pixels(int tid, int nt, const native_arg *a) {
  ff_dense_pixels(tid, nt, Z(0), Z(1), Z(2), P(const int16_t *, 3), P(const uint8_t *, 4), P(const int32_t *, 5),
                  P(int32_t *, 6), Z(7), P(uint8_t *, 8));
  return 0;
}
static double t_dense_bits(int tid, int nt, const native_arg *a) {
  ff_dense_bits(tid, nt, Z(0), Z(1), Z(2), P(const uint32_t *, 3), P(const uint32_t *, 4), P(int32_t *, 5), Z(6));
  return 0;
}
static double t_hidden(int tid, int nt, const native_arg *a) {
  ff_hidden(tid, nt, Z(0), Z(1), P(const int32_t *, 2), Z(3), I(4), P(int32_t *, 5), I(6), P(int32_t *, 7),
            P(int32_t *, 8), P(uint32_t *, 9), P(uint32_t *, 10));
  return 0;
}
static double t_output_train(int tid, int nt, const native_arg *a) {
  ff_output_train(tid, nt, Z(0), Z(1), P(const int32_t *, 2), Z(3), P(const int32_t *, 4), P(const int32_t *, 5),
                  P(int32_t *, 6), I(7), P(int32_t *, 8), P(int32_t *, 9), P(int32_t *, 10), P(int32_t *, 11), I(12));
  return 0;
}
static double t_output_eval(int tid, int nt, const native_arg *a) {
  ff_output_eval(tid, nt, Z(0), Z(1), P(const int32_t *, 2), Z(3), P(const int32_t *, 4), P(int32_t *, 5));
  return 0;
}
static double t_row_tables(int tid, int nt, const native_arg *a) {
  ff_row_tables(tid, nt, Z(0), Z(1), P(const int8_t *, 2), Z(3), P(uint8_t *, 4), P(int32_t *, 5));
  return 0;
}
static double t_act_nibbles(int tid, int nt, const native_arg *a) {
  ff_act_nibbles(tid, nt, Z(0), Z(1), Z(2), P(const uint32_t *, 3), P(uint8_t *, 4));
  return 0;
}
static double t_update_bits(int tid, int nt, const native_arg *a) {
  ff_update_bits(tid, nt, Z(0), Z(1), Z(2), Z(3), P(const uint8_t *, 4), P(const int32_t *, 5), P(const uint8_t *, 6),
                 P(int16_t *, 7), P(uint32_t *, 8), U(9), I(10), (int32_t)I(11));
  return 0;
}
static double t_update_pixels(int tid, int nt, const native_arg *a) {
  ff_update_pixels(tid, nt, Z(0), Z(1), Z(2), Z(3), P(const uint32_t *, 4), P(const uint32_t *, 5), P(int16_t *, 6),
                   U(7), I(8), (int32_t)I(9));
  return 0;
}

/* The addon looks kernels up by name (src/methods/float-free/native-kernels.ts). */
const native_kernel NATIVE_FLOAT_FREE_TABLE[] = {
    {"ff_center_max", 9, t_center_max},
    {"ff_quantize", 10, t_quantize},
    {"ff_error_tables", 6, t_error_tables},
    {"ff_backward_input", 8, t_backward_input},
    {"ff_input", 5, t_input},
    {"ff_dense_pixels", 9, t_dense_pixels},
    {"ff_dense_bits", 7, t_dense_bits},
    {"ff_hidden", 11, t_hidden},
    {"ff_output_train", 13, t_output_train},
    {"ff_output_eval", 6, t_output_eval},
    {"ff_row_tables", 6, t_row_tables},
    {"ff_act_nibbles", 5, t_act_nibbles},
    {"ff_update_bits", 12, t_update_bits},
    {"ff_update_pixels", 10, t_update_pixels},
    {NULL, 0, NULL},
};
