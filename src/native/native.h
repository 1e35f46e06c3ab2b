/*
 * The native addon's call table (src/native/addon.c, table.c). JavaScript passes each kernel's arguments as
 * numbers and typed arrays; the addon turns them into `native_arg`s (a pointer for an array or null, a double
 * for a number) and a thunk per kernel casts them to the kernel's C signature. table.c is compiled once per
 * instruction-set level, with every kernel name (and NATIVE_TABLE) renamed for that level, so one binary
 * holds the kernels of every level and addon.c picks one by the CPU it runs on. engine-table.c is the same for
 * the inference engine's kernels (NATIVE_ENGINE_TABLE), float-free-table.c for the float-free step's
 * (NATIVE_FLOAT_FREE_TABLE).
 */
#ifndef ONEBIT_NATIVE_H
#define ONEBIT_NATIVE_H

#include <stddef.h>

/* Most arguments any kernel takes after (tid, nt). */
#define NATIVE_MAX_ARGS 24

typedef struct {
  void *p;
  double d;
} native_arg;

/* Returns the kernel's result (0 for a kernel that returns nothing); only thread 0's is kept. */
typedef double (*native_thunk)(int tid, int nt, const native_arg *args);

typedef struct {
  const char *name;
  /* Arguments after (tid, nt). */
  int argc;
  native_thunk call;
} native_kernel;

#endif
