/*
 * onebit's Node addon (N-API, so one binary serves every Node >= 20): the training kernels compiled natively
 * at several instruction-set levels (table.c; scripts/build-native.mjs), the level chosen by the CPU at run
 * time, and a pool of native threads that runs each call's shares.
 *
 * JavaScript API (src/native/addon.ts wraps it):
 *   levels()                      the levels this CPU can run, best first ("avx512", "avx2", "baseline")
 *   kernelNames(set)              the kernels of a set ("training", "engine" or "float-free"), in table order
 *   open(level, threads, set)     a context: that level's table of the set and a pool of threads - 1 native
 *                                 threads
 *   run(context, index, nt, ...)  kernel `index` on nt threads (the calling one included); the arguments
 *                                 are numbers, null, or typed arrays (passed as pointers to their first entry);
 *                                 returns the kernel's result (0 for one that returns nothing)
 *   runIn(context, index, nt, memory, ...)
 *                                 as run, for kernels that take byte offsets into `memory` (a typed array; the
 *                                 engine's): a whole number 0 < v <= memory's byte length also reaches the
 *                                 kernel as the pointer memory + v, anything else as NULL
 *   misalignment(array)           the address of a typed array's first byte modulo 64
 *   close(context)                joins the pool's threads (also done when the context is collected)
 * Argument types and lengths are checked in JavaScript (src/backend/native/index.ts) before they get here.
 *
 * The pool: workers spin briefly after each call, then sleep on a condition variable. A call bumps a
 * generation counter, runs share 0 on the calling thread and waits (spinning) for the others' shares.
 */
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

#if defined(__x86_64__) || defined(__i386__)
#define ONEBIT_X86 1
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
extern const native_kernel onebit_table_avx512[];
extern const native_kernel onebit_table_avx2[];
extern const native_kernel onebit_engine_table_avx512[];
extern const native_kernel onebit_engine_table_avx2[];
extern const native_kernel onebit_float_free_table_avx512[];
extern const native_kernel onebit_float_free_table_avx2[];
#else
static inline void cpu_relax(void) {}
#endif
extern const native_kernel onebit_table_baseline[];
extern const native_kernel onebit_engine_table_baseline[];
extern const native_kernel onebit_float_free_table_baseline[];

/* About 50 us of pause instructions before a worker sleeps. */
#define SPIN_ROUNDS 4000
#define MAX_THREADS 64

/* The kernel sets, in the order of a level's tables. */
#define SET_COUNT 3
static const char *const SETS[SET_COUNT] = {"training", "engine", "float-free"};

typedef struct {
  const char *name;
  const native_kernel *tables[SET_COUNT];
} level_entry;

static int level_supported(const char *name) {
#ifdef ONEBIT_X86
  __builtin_cpu_init();
  if (strcmp(name, "avx512") == 0) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
  }
  if (strcmp(name, "avx2") == 0) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2") &&
           __builtin_cpu_supports("popcnt");
  }
#endif
  return strcmp(name, "baseline") == 0;
}

static const level_entry LEVELS[] = {
#ifdef ONEBIT_X86
    {"avx512", {onebit_table_avx512, onebit_engine_table_avx512, onebit_float_free_table_avx512}},
    {"avx2", {onebit_table_avx2, onebit_engine_table_avx2, onebit_float_free_table_avx2}},
#endif
    {"baseline", {onebit_table_baseline, onebit_engine_table_baseline, onebit_float_free_table_baseline}},
};
#define LEVEL_COUNT (sizeof(LEVELS) / sizeof(LEVELS[0]))

typedef struct context context;

typedef struct {
  context *ctx;
  int tid;
} worker_slot;

struct context {
  const native_kernel *table;
  int threads;
  int closed;
  pthread_t workers[MAX_THREADS];
  worker_slot slots[MAX_THREADS];
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  atomic_uint generation;
  atomic_int pending;
  atomic_int stop;
  /* The current call, written before the generation is bumped. */
  native_thunk call;
  int nt;
  native_arg args[NATIVE_MAX_ARGS];
};

/* Waits until the generation differs from `seen` or the pool stops; returns the generation. */
static unsigned wait_for_call(context *ctx, unsigned seen) {
  unsigned g;
  for (int i = 0; i < SPIN_ROUNDS; i++) {
    g = atomic_load_explicit(&ctx->generation, memory_order_acquire);
    if (g != seen || atomic_load_explicit(&ctx->stop, memory_order_relaxed)) return g;
    cpu_relax();
  }
  pthread_mutex_lock(&ctx->mutex);
  while ((g = atomic_load_explicit(&ctx->generation, memory_order_acquire)) == seen &&
         !atomic_load_explicit(&ctx->stop, memory_order_relaxed)) {
    pthread_cond_wait(&ctx->wake, &ctx->mutex);
  }
  pthread_mutex_unlock(&ctx->mutex);
  return g;
}

static void *worker_main(void *arg) {
  worker_slot *slot = (worker_slot *)arg;
  context *ctx = slot->ctx;
  unsigned seen = 0;
  for (;;) {
    seen = wait_for_call(ctx, seen);
    if (atomic_load_explicit(&ctx->stop, memory_order_acquire)) return NULL;
    if (slot->tid < ctx->nt) ctx->call(slot->tid, ctx->nt, ctx->args);
    atomic_fetch_sub_explicit(&ctx->pending, 1, memory_order_acq_rel);
  }
}

static double run_call(context *ctx, native_thunk call, int nt, const native_arg *args, size_t argc) {
  if (nt <= 1 || ctx->threads == 1) return call(0, 1, args);
  ctx->call = call;
  ctx->nt = nt;
  memcpy(ctx->args, args, argc * sizeof(native_arg));
  atomic_store_explicit(&ctx->pending, ctx->threads - 1, memory_order_relaxed);
  pthread_mutex_lock(&ctx->mutex);
  atomic_fetch_add_explicit(&ctx->generation, 1, memory_order_release);
  pthread_cond_broadcast(&ctx->wake);
  pthread_mutex_unlock(&ctx->mutex);
  double result = call(0, nt, args);
  while (atomic_load_explicit(&ctx->pending, memory_order_acquire) > 0) cpu_relax();
  return result;
}

static void close_context(context *ctx) {
  if (ctx->closed) return;
  ctx->closed = 1;
  pthread_mutex_lock(&ctx->mutex);
  atomic_store_explicit(&ctx->stop, 1, memory_order_release);
  pthread_cond_broadcast(&ctx->wake);
  pthread_mutex_unlock(&ctx->mutex);
  for (int t = 1; t < ctx->threads; t++) pthread_join(ctx->workers[t], NULL);
  pthread_mutex_destroy(&ctx->mutex);
  pthread_cond_destroy(&ctx->wake);
}

/* ---- N-API glue ---------------------------------------------------------------------------------- */

#define CHECK(env, call)                                                 \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error((env), NULL, "onebit native addon: " #call);      \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static napi_value string_array(napi_env env, const char *const *names, size_t count) {
  napi_value array;
  CHECK(env, napi_create_array_with_length(env, count, &array));
  for (size_t i = 0; i < count; i++) {
    napi_value s;
    CHECK(env, napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &s));
    CHECK(env, napi_set_element(env, array, (uint32_t)i, s));
  }
  return array;
}

static napi_value js_levels(napi_env env, napi_callback_info info) {
  (void)info;
  const char *names[LEVEL_COUNT];
  size_t count = 0;
  for (size_t i = 0; i < LEVEL_COUNT; i++) {
    if (level_supported(LEVELS[i].name)) names[count++] = LEVELS[i].name;
  }
  return string_array(env, names, count);
}

/* Which kernel set a "training", "engine" or "float-free" argument names (-1: none). */
static int set_of(napi_env env, napi_value value) {
  char set[16];
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, set, sizeof set, &length) != napi_ok) return -1;
  for (int i = 0; i < SET_COUNT; i++) {
    if (strcmp(set, SETS[i]) == 0) return i;
  }
  return -1;
}

static napi_value js_kernel_names(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int set = argc < 1 ? -1 : set_of(env, argv[0]);
  if (set < 0) {
    napi_throw_type_error(env, NULL, "onebit native addon: kernelNames(set: 'training' | 'engine' | 'float-free')");
    return NULL;
  }
  const char *names[64];
  size_t count = 0;
  const native_kernel *table = LEVELS[LEVEL_COUNT - 1].tables[set];
  for (const native_kernel *k = table; k->name != NULL && count < 64; k++) names[count++] = k->name;
  return string_array(env, names, count);
}

static void finalize_context(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  context *ctx = (context *)data;
  close_context(ctx);
  free(ctx);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char level[32];
  size_t length = 0;
  uint32_t threads = 0;
  int set = argc < 3 ? -1 : set_of(env, argv[2]);
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], level, sizeof level, &length) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &threads) != napi_ok || set < 0) {
    napi_throw_type_error(env, NULL,
                          "onebit native addon: open(level: string, threads: number, set: 'training' | 'engine' | "
                          "'float-free')");
    return NULL;
  }
  const native_kernel *table = NULL;
  for (size_t i = 0; i < LEVEL_COUNT; i++) {
    if (strcmp(LEVELS[i].name, level) == 0 && level_supported(level)) table = LEVELS[i].tables[set];
  }
  if (table == NULL) {
    napi_throw_range_error(env, NULL, "onebit native addon: this CPU cannot run that level");
    return NULL;
  }
  if (threads < 1 || threads > MAX_THREADS) {
    napi_throw_range_error(env, NULL, "onebit native addon: threads must be in 1..64");
    return NULL;
  }
  context *ctx = (context *)calloc(1, sizeof(context));
  if (ctx == NULL) {
    napi_throw_error(env, NULL, "onebit native addon: out of memory");
    return NULL;
  }
  ctx->table = table;
  ctx->threads = (int)threads;
  pthread_mutex_init(&ctx->mutex, NULL);
  pthread_cond_init(&ctx->wake, NULL);
  for (int t = 1; t < ctx->threads; t++) {
    ctx->slots[t].ctx = ctx;
    ctx->slots[t].tid = t;
    if (pthread_create(&ctx->workers[t], NULL, worker_main, &ctx->slots[t]) != 0) {
      ctx->threads = t; /* join the ones that started */
      close_context(ctx);
      free(ctx);
      napi_throw_error(env, NULL, "onebit native addon: could not start a thread");
      return NULL;
    }
  }
  napi_value external;
  if (napi_create_external(env, ctx, finalize_context, NULL, &external) != napi_ok) {
    close_context(ctx);
    free(ctx);
    napi_throw_error(env, NULL, "onebit native addon: napi_create_external");
    return NULL;
  }
  return external;
}

static context *context_of(napi_env env, napi_value value) {
  context *ctx = NULL;
  if (napi_get_value_external(env, value, (void **)&ctx) != napi_ok || ctx == NULL) {
    napi_throw_type_error(env, NULL, "onebit native addon: not a context");
    return NULL;
  }
  if (ctx->closed) {
    napi_throw_error(env, NULL, "onebit native addon: context used after close()");
    return NULL;
  }
  return ctx;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  context *ctx = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&ctx) != napi_ok || ctx == NULL) {
    napi_throw_type_error(env, NULL, "onebit native addon: close(context)");
    return NULL;
  }
  close_context(ctx);
  return NULL;
}

/*
 * A typed array's first byte, its length in elements and its kind: 1 when `value` is a typed array, 0 when it is
 * not, -1 when N-API fails (an exception is then pending).
 */
static int typed_array(napi_env env, napi_value value, void **data, size_t *length, napi_typedarray_type *kind) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok) return -1;
  if (!is_typed) return 0;
  return napi_get_typedarray_info(env, value, kind, length, data, NULL, NULL) == napi_ok ? 1 : -1;
}

/* run (in_memory 0) and runIn (1): the kernel arguments start after `fixed` leading ones. */
static napi_value run_kernel(napi_env env, napi_callback_info info, int in_memory) {
  size_t fixed = in_memory ? 4 : 3;
  size_t argc = 4 + NATIVE_MAX_ARGS;
  napi_value argv[4 + NATIVE_MAX_ARGS];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < fixed) {
    napi_throw_type_error(env, NULL,
                          in_memory ? "onebit native addon: runIn(context, kernel, threads, memory, ...args)"
                                    : "onebit native addon: run(context, kernel, threads, ...args)");
    return NULL;
  }
  if (argc > fixed + NATIVE_MAX_ARGS) {
    napi_throw_type_error(env, NULL, "onebit native addon: too many kernel arguments");
    return NULL;
  }
  uint8_t *memory = NULL;
  size_t memory_bytes = 0;
  if (in_memory) {
    napi_typedarray_type kind = napi_int8_array;
    void *data = NULL;
    if (typed_array(env, argv[3], &data, &memory_bytes, &kind) != 1 || kind != napi_uint8_array) {
      napi_throw_type_error(env, NULL, "onebit native addon: runIn's memory is not a Uint8Array");
      return NULL;
    }
    memory = (uint8_t *)data;
  }
  context *ctx = context_of(env, argv[0]);
  if (ctx == NULL) return NULL;
  uint32_t index = 0, nt = 0;
  CHECK(env, napi_get_value_uint32(env, argv[1], &index));
  CHECK(env, napi_get_value_uint32(env, argv[2], &nt));
  size_t kernels = 0;
  while (ctx->table[kernels].name != NULL) kernels++;
  if (index >= kernels) {
    napi_throw_range_error(env, NULL, "onebit native addon: no such kernel");
    return NULL;
  }
  const native_kernel *kernel = &ctx->table[index];
  if ((int)(argc - fixed) != kernel->argc) {
    napi_throw_type_error(env, NULL, "onebit native addon: wrong number of kernel arguments");
    return NULL;
  }
  native_arg args[NATIVE_MAX_ARGS];
  for (size_t i = 0; i < argc - fixed; i++) {
    napi_value v = argv[fixed + i];
    napi_valuetype type;
    CHECK(env, napi_typeof(env, v, &type));
    args[i].p = NULL;
    args[i].d = 0;
    if (type == napi_number) {
      CHECK(env, napi_get_value_double(env, v, &args[i].d));
      double d = args[i].d;
      if (memory != NULL && d > 0 && d <= (double)memory_bytes && d == (double)(size_t)d) args[i].p = memory + (size_t)d;
    } else if (in_memory) {
      napi_throw_type_error(env, NULL, "onebit native addon: runIn's kernel arguments must be numbers");
      return NULL;
    } else if (type != napi_null) {
      napi_typedarray_type kind;
      size_t length;
      if (typed_array(env, v, &args[i].p, &length, &kind) != 1) {
        napi_throw_type_error(env, NULL, "onebit native addon: a kernel argument is not a number, null or typed array");
        return NULL;
      }
    }
  }
  int threads = nt < 1 ? 1 : (int)nt > ctx->threads ? ctx->threads : (int)nt;
  napi_value result;
  CHECK(env, napi_create_double(env, run_call(ctx, kernel->call, threads, args, argc - fixed), &result));
  return result;
}

static napi_value js_run(napi_env env, napi_callback_info info) { return run_kernel(env, info, 0); }
static napi_value js_run_in(napi_env env, napi_callback_info info) { return run_kernel(env, info, 1); }

static napi_value js_misalignment(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  size_t length;
  napi_typedarray_type kind;
  if (argc < 1 || typed_array(env, argv[0], &data, &length, &kind) != 1) {
    napi_throw_type_error(env, NULL, "onebit native addon: misalignment(array: a typed array)");
    return NULL;
  }
  napi_value result;
  CHECK(env, napi_create_uint32(env, (uint32_t)((uintptr_t)data % 64), &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"levels", NULL, js_levels, NULL, NULL, NULL, napi_default, NULL},
      {"kernelNames", NULL, js_kernel_names, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"run", NULL, js_run, NULL, NULL, NULL, napi_default, NULL},
      {"runIn", NULL, js_run_in, NULL, NULL, NULL, napi_default, NULL},
      {"misalignment", NULL, js_misalignment, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
