/*
 * Shared definitions for the onebit kernels.
 *
 * The kernels are plain C11 compiled to wasm32 (+simd128) by scripts/build-kernels.mjs, and later also
 * natively, so everything wasm-specific sits behind __wasm__ / __wasm_simd128__ (or OB_SIMD128, below).
 *
 * Rules every kernel follows (they keep the module safe to share between threads):
 * - no mutable globals and no static buffers: all state comes in through pointers;
 * - no libc: memcpy/memset lower to bulk-memory instructions;
 * - no address-taken locals, so the shadow stack stays unused (each instance still gets its own stack);
 * - a parallel kernel takes (tid, nt) first and processes only its own share of the work.
 */
#ifndef ONEBIT_COMMON_H
#define ONEBIT_COMMON_H

#include <stddef.h>
#include <stdint.h>

/*
 * OB_SIMD128: the 128-bit SIMD paths are compiled: on wasm with its intrinsics, natively (the engine's kernels
 * in the Node addon) with the same intrinsics written over generic vectors (simd128.h), same results.
 */
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define OB_SIMD128 1
#elif defined(ONEBIT_NATIVE_SIMD128)
#include "simd128.h"
#define OB_SIMD128 1
#endif

#if defined(__wasm__)
#define EXPORT(name) __attribute__((export_name(#name)))
#else
#define EXPORT(name) __attribute__((visibility("default")))
#endif

#define RESTRICT __restrict

static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/*
 * The share [*lo, *hi) of thread `tid` out of `nt` when `total` items are split into chunks of `align`
 * items (so shares start on aligned boundaries and SIMD loops stay aligned to the chunk size).
 */
static inline void thread_range(size_t total, size_t align, int tid, int nt, size_t *lo, size_t *hi) {
  size_t chunks = (total + align - 1) / align;
  size_t t = (size_t)tid, n = (size_t)nt;
  size_t per = chunks / n, rem = chunks % n;
  size_t c0 = t * per + (t < rem ? t : rem);
  size_t c1 = c0 + per + (t < rem ? 1 : 0);
  *lo = min_sz(c0 * align, total);
  *hi = min_sz(c1 * align, total);
}

#endif
