/*
 * The float-free kernels (backward.c, forward.c, update.c): one declaration each, shared by the files that
 * define them (so a changed signature fails to compile) and by the native addon's call table
 * (src/native/float-free-table.c). Integer arithmetic only (ff.h).
 */
#ifndef ONEBIT_FF_KERNELS_H
#define ONEBIT_FF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

void ff_center_max(int tid, int nt, size_t n, size_t cols, int32_t *g, size_t gs, const uint32_t *gate, int center, const uint32_t *act, int32_t *csum, int32_t *partial);
void ff_quantize(int tid, int nt, size_t n, size_t cols, const int32_t *g, size_t gs, const int32_t *partial, size_t parts, int8_t *e, size_t es, uint32_t *pairs, int32_t *qout);
void ff_error_tables(int tid, int nt, size_t n, size_t rows, const int8_t *e, size_t es, uint8_t *tables, int32_t *totals);
void ff_backward_input(int tid, int nt, size_t n, size_t rows, size_t p, const int16_t *h, const uint8_t *tables, const int32_t *totals, int32_t *ex, uint8_t *scratch);
void ff_input(int tid, int nt, size_t n, size_t k, size_t p, int8_t *x, uint32_t *xp);
void ff_dense_pixels(int tid, int nt, size_t n, size_t rows, size_t p, const int16_t *h, const uint8_t *tables, const int32_t *totals, int32_t *z, size_t zs, uint8_t *scratch);
void ff_dense_bits(int tid, int nt, size_t n, size_t rows, size_t k, const uint32_t *a, const uint32_t *w, int32_t *z, size_t zs);
void ff_hidden(int tid, int nt, size_t n, size_t rows, const int32_t *z, size_t zs, int mode, int32_t *running, int shift, int32_t *mu, int32_t *gexp, uint32_t *act, uint32_t *gate);
void ff_output_train(int tid, int nt, size_t n, size_t classes, const int32_t *z, size_t zs, const int32_t *labels, const int32_t *lut, int32_t *running, int shift, int32_t *stats, int32_t *mu, int32_t *u, int32_t *g, int project);
void ff_output_eval(int tid, int nt, size_t n, size_t classes, const int32_t *z, size_t zs, const int32_t *running, int32_t *raw);
void ff_row_tables(int tid, int nt, size_t n, size_t rows, const int8_t *e, size_t es, uint8_t *tables, int32_t *totals);
void ff_act_nibbles(int tid, int nt, size_t n, size_t cols, size_t p, const uint32_t *act, uint8_t *nib);
void ff_update_bits(int tid, int nt, size_t n, size_t rows, size_t cols, size_t p, const uint8_t *tables, const int32_t *totals, const uint8_t *nib, int16_t *h, uint32_t *w, uint32_t key, int shift, int32_t clip);
void ff_update_pixels(int tid, int nt, size_t n, size_t rows, size_t cols, size_t p, const uint32_t *ep, const uint32_t *xp, int16_t *h, uint32_t key, int shift, int32_t clip);

#endif
