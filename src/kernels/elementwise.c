/*
 * Elementwise kernels, reductions and per-channel (batch-norm) helpers over float32 buffers.
 *
 * Every kernel here except the sums is bit-for-bit equal to the reference backend run in float32: where
 * the reference computes in double and rounds once on store (axpy, scale, channel_affine, the
 * approx-sign surrogate), so do we, with f64x2 lanes; where float arithmetic is already exact (multiply,
 * selects, min/max) we stay in f32x4. wasm's f32x4.min/max have JavaScript's Math.min/max semantics
 * (NaN propagates, -0 < +0), which is why clip and hardtanh use them. The sums accumulate in double with
 * several lanes, so they differ from the reference's sequential double sum only by reassociation.
 *
 * In-place use (output == input) is allowed: each entry depends only on the same index.
 */
#include "common.h"
#include "kernels.h"

/* Scalar twins of wasm min/max with Math.min/Math.max semantics, for loop tails. */
static inline float max_js(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return __builtin_signbit(a) ? b : a;
  return a > b ? a : b;
}
static inline float min_js(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return __builtin_signbit(a) ? a : b;
  return a < b ? a : b;
}
static inline double max_js_d(double a, double b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return __builtin_signbit(a) ? b : a;
  return a > b ? a : b;
}
static inline float abs_f(float x) { return __builtin_fabsf(x); }

#ifdef __wasm_simd128__
/* Widen the low / high two lanes of an f32x4 to f64x2, and narrow two f64x2 back to one f32x4. */
static inline v128_t lo_f64(v128_t f) { return wasm_f64x2_promote_low_f32x4(f); }
static inline v128_t hi_f64(v128_t f) { return wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(f, f, 2, 3, 2, 3)); }
static inline v128_t to_f32(v128_t lo, v128_t hi) {
  return wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
}
#endif

/* Each thread's share of a length-`len` elementwise loop, in 16-element chunks. */
#define SHARE(len)        \
  size_t lo, hi;          \
  thread_range(len, 16, tid, nt, &lo, &hi)

EXPORT(ob_fill) void ob_fill(int tid, int nt, float *x, float value, size_t len) {
  SHARE(len);
  for (size_t i = lo; i < hi; i++) x[i] = value;
}

EXPORT(ob_copy) void ob_copy(int tid, int nt, const float *src, float *dst, size_t len) {
  SHARE(len);
  /* memmove semantics (memory.copy); the caller runs overlapping copies on one thread. */
  if (hi > lo) __builtin_memmove(dst + lo, src + lo, (hi - lo) * sizeof(float));
}

/* y += alpha * x, in double like the reference. */
EXPORT(ob_axpy) void ob_axpy(int tid, int nt, double alpha, const float *x, float *y, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t a = wasm_f64x2_splat(alpha);
  for (; i + 4 <= hi; i += 4) {
    v128_t xv = wasm_v128_load(x + i), yv = wasm_v128_load(y + i);
    v128_t l = wasm_f64x2_add(lo_f64(yv), wasm_f64x2_mul(a, lo_f64(xv)));
    v128_t h = wasm_f64x2_add(hi_f64(yv), wasm_f64x2_mul(a, hi_f64(xv)));
    wasm_v128_store(y + i, to_f32(l, h));
  }
#endif
  for (; i < hi; i++) y[i] = (float)((double)y[i] + alpha * (double)x[i]);
}

/* x *= alpha, in double like the reference. */
EXPORT(ob_scale) void ob_scale(int tid, int nt, float *x, double alpha, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t a = wasm_f64x2_splat(alpha);
  for (; i + 4 <= hi; i += 4) {
    v128_t xv = wasm_v128_load(x + i);
    wasm_v128_store(x + i, to_f32(wasm_f64x2_mul(lo_f64(xv), a), wasm_f64x2_mul(hi_f64(xv), a)));
  }
#endif
  for (; i < hi; i++) x[i] = (float)((double)x[i] * alpha);
}

/* out = a * b: a float product rounded once is the same in f32 and via double. */
EXPORT(ob_multiply) void ob_multiply(int tid, int nt, const float *a, const float *b, float *out, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  for (; i + 4 <= hi; i += 4) wasm_v128_store(out + i, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
#endif
  for (; i < hi; i++) out[i] = a[i] * b[i];
}

/*
 * x = min(hi, max(lo, x)). The bounds arrive rounded to float; for a float x that gives the same result
 * as clamping to the exact bounds and rounding (no float lies strictly between a bound and its rounding).
 */
EXPORT(ob_clip) void ob_clip(int tid, int nt, float *x, float lower, float upper, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t l = wasm_f32x4_splat(lower), u = wasm_f32x4_splat(upper);
  for (; i + 4 <= hi; i += 4) wasm_v128_store(x + i, wasm_f32x4_min(u, wasm_f32x4_max(l, wasm_v128_load(x + i))));
#endif
  for (; i < hi; i++) x[i] = min_js(upper, max_js(lower, x[i]));
}

/* out = x >= 0 ? 1 : -1 (NaN gives -1). */
EXPORT(ob_sign) void ob_sign(int tid, int nt, const float *x, float *out, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t pos = wasm_f32x4_splat(1.0f), neg = wasm_f32x4_splat(-1.0f), zero = wasm_f32x4_splat(0.0f);
  for (; i + 4 <= hi; i += 4) {
    wasm_v128_store(out + i, wasm_v128_bitselect(pos, neg, wasm_f32x4_ge(wasm_v128_load(x + i), zero)));
  }
#endif
  for (; i < hi; i++) out[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}

enum { SURROGATE_IDENTITY = 0, SURROGATE_CLIPPED = 1, SURROGATE_APPROX_SIGN = 2 };

/* gradInput = gradOutput * surrogate'(x); the derivative multiplies (as in the reference), it does not select. */
EXPORT(ob_sign_backward)
void ob_sign_backward(int tid, int nt, const float *x, const float *g, float *gi, int surrogate, size_t len) {
  SHARE(len);
  size_t i = lo;
  if (surrogate == SURROGATE_IDENTITY) {
    /* g * 1 == g for every float except that it quiets signalling NaNs, which JS cannot produce anyway. */
    if (gi != g && hi > lo) __builtin_memmove(gi + lo, g + lo, (hi - lo) * sizeof(float));
    return;
  }
  if (surrogate == SURROGATE_CLIPPED) {
#ifdef __wasm_simd128__
    v128_t one = wasm_f32x4_splat(1.0f), zero = wasm_f32x4_splat(0.0f);
    for (; i + 4 <= hi; i += 4) {
      v128_t d = wasm_v128_bitselect(one, zero, wasm_f32x4_le(wasm_f32x4_abs(wasm_v128_load(x + i)), one));
      wasm_v128_store(gi + i, wasm_f32x4_mul(wasm_v128_load(g + i), d));
    }
#endif
    for (; i < hi; i++) gi[i] = g[i] * (abs_f(x[i]) <= 1.0f ? 1.0f : 0.0f);
    return;
  }
  /* approx-sign: d = max(0, 2 - 2|x|), computed and applied in double like the reference. */
#ifdef __wasm_simd128__
  v128_t two = wasm_f64x2_splat(2.0), zero = wasm_f64x2_splat(0.0);
  for (; i + 4 <= hi; i += 4) {
    v128_t xv = wasm_f32x4_abs(wasm_v128_load(x + i)), gv = wasm_v128_load(g + i);
    v128_t dl = wasm_f64x2_max(zero, wasm_f64x2_sub(two, wasm_f64x2_mul(two, lo_f64(xv))));
    v128_t dh = wasm_f64x2_max(zero, wasm_f64x2_sub(two, wasm_f64x2_mul(two, hi_f64(xv))));
    wasm_v128_store(gi + i, to_f32(wasm_f64x2_mul(lo_f64(gv), dl), wasm_f64x2_mul(hi_f64(gv), dh)));
  }
#endif
  for (; i < hi; i++) {
    double d = max_js_d(0.0, 2.0 - 2.0 * (double)abs_f(x[i]));
    gi[i] = (float)((double)g[i] * d);
  }
}

/* out = x > 0 ? x : 0 (a select, so -0 and NaN give +0 as in the reference). */
EXPORT(ob_relu) void ob_relu(int tid, int nt, const float *x, float *out, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t zero = wasm_f32x4_splat(0.0f);
  for (; i + 4 <= hi; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    wasm_v128_store(out + i, wasm_v128_and(v, wasm_f32x4_gt(v, zero)));
  }
#endif
  for (; i < hi; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* gradInput = x > 0 ? gradOutput : 0 */
EXPORT(ob_relu_backward)
void ob_relu_backward(int tid, int nt, const float *x, const float *g, float *gi, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t zero = wasm_f32x4_splat(0.0f);
  for (; i + 4 <= hi; i += 4) {
    wasm_v128_store(gi + i, wasm_v128_and(wasm_v128_load(g + i), wasm_f32x4_gt(wasm_v128_load(x + i), zero)));
  }
#endif
  for (; i < hi; i++) gi[i] = x[i] > 0.0f ? g[i] : 0.0f;
}

/* out = min(1, max(-1, x)) */
EXPORT(ob_hardtanh) void ob_hardtanh(int tid, int nt, const float *x, float *out, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t one = wasm_f32x4_splat(1.0f), minus = wasm_f32x4_splat(-1.0f);
  for (; i + 4 <= hi; i += 4) wasm_v128_store(out + i, wasm_f32x4_min(one, wasm_f32x4_max(minus, wasm_v128_load(x + i))));
#endif
  for (; i < hi; i++) out[i] = min_js(1.0f, max_js(-1.0f, x[i]));
}

/* gradInput = |x| <= 1 ? gradOutput : 0 */
EXPORT(ob_hardtanh_backward)
void ob_hardtanh_backward(int tid, int nt, const float *x, const float *g, float *gi, size_t len) {
  SHARE(len);
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t one = wasm_f32x4_splat(1.0f);
  for (; i + 4 <= hi; i += 4) {
    v128_t inside = wasm_f32x4_le(wasm_f32x4_abs(wasm_v128_load(x + i)), one);
    wasm_v128_store(gi + i, wasm_v128_and(wasm_v128_load(g + i), inside));
  }
#endif
  for (; i < hi; i++) gi[i] = abs_f(x[i]) <= 1.0f ? g[i] : 0.0f;
}

#if !defined(__wasm__)
/*
 * Native: sums in double over 8 lanes (two 4-lane vectors), so the adds' latency is hidden and the compiler
 * may use any vector width; a scalar double sum is one dependent add per value. The order differs from the
 * wasm path's (float rounding only); it is fixed, so results do not depend on the thread count.
 */
typedef float ob_f2 __attribute__((vector_size(8), aligned(4)));
typedef double ob_d2 __attribute__((vector_size(16)));

static inline ob_d2 load_d2(const float *p) {
  ob_f2 v;
  __builtin_memcpy(&v, p, 8);
  return __builtin_convertvector(v, ob_d2);
}

/* s += sum x, sb += sum x * y (x * x when y is NULL) over len values, 8 at a time in four 2-lane sums. */
static inline void sums_native(const float *x, const float *y, size_t len, double *s, double *sb) {
  ob_d2 a[4] = {{0, 0}, {0, 0}, {0, 0}, {0, 0}}, b[4] = {{0, 0}, {0, 0}, {0, 0}, {0, 0}};
  size_t p = 0;
  for (; p + 8 <= len; p += 8) {
    for (int q = 0; q < 4; q++) {
      ob_d2 xv = load_d2(x + p + 2 * q), yv = y ? load_d2(y + p + 2 * q) : xv;
      a[q] += xv;
      b[q] += xv * yv;
    }
  }
  ob_d2 ta = (a[0] + a[1]) + (a[2] + a[3]), tb2 = (b[0] + b[1]) + (b[2] + b[3]);
  double ts = ta[0] + ta[1], tb = tb2[0] + tb2[1];
  for (; p < len; p++) {
    double v = (double)x[p];
    ts += v;
    tb += v * (y ? (double)y[p] : v);
  }
  *s += ts;
  *sb += tb;
}
#endif

/* Sum (squares = 0) or sum of squares (squares = 1) of x[lo, hi) in double. */
static double sum_range(const float *x, size_t lo, size_t hi, int squares) {
  size_t i = lo;
  double s = 0.0;
#if !defined(__wasm__)
  double s1 = 0.0, s2 = 0.0;
  sums_native(x + lo, NULL, hi - lo, &s1, &s2);
  (void)i;
  return squares ? s2 : s1;
#endif
#ifdef __wasm_simd128__
  /* Two f64x2 accumulators per half keep the add latency hidden. */
  v128_t s0 = wasm_f64x2_splat(0.0), s1 = s0, s2 = s0, s3 = s0;
  for (; i + 8 <= hi; i += 8) {
    v128_t a = wasm_v128_load(x + i), b = wasm_v128_load(x + i + 4);
    v128_t a0 = lo_f64(a), a1 = hi_f64(a), b0 = lo_f64(b), b1 = hi_f64(b);
    if (squares) {
      a0 = wasm_f64x2_mul(a0, a0), a1 = wasm_f64x2_mul(a1, a1), b0 = wasm_f64x2_mul(b0, b0), b1 = wasm_f64x2_mul(b1, b1);
    }
    s0 = wasm_f64x2_add(s0, a0), s1 = wasm_f64x2_add(s1, a1), s2 = wasm_f64x2_add(s2, b0), s3 = wasm_f64x2_add(s3, b1);
  }
  v128_t t = wasm_f64x2_add(wasm_f64x2_add(s0, s1), wasm_f64x2_add(s2, s3));
  s = wasm_f64x2_extract_lane(t, 0) + wasm_f64x2_extract_lane(t, 1);
#endif
  for (; i < hi; i++) {
    double v = (double)x[i];
    s += squares ? v * v : v;
  }
  return s;
}

/* partial[tid] = this thread's share of the sum; the caller adds the partials in thread order. */
EXPORT(ob_sum) void ob_sum(int tid, int nt, const float *x, size_t len, int squares, double *partial) {
  SHARE(len);
  partial[tid] = sum_range(x, lo, hi, squares);
}

/* sums[c] = sum x, sums_b[c] = sum x*y (or x*x when y is 0) over an (n, channels, spatial) array. Threads split channels. */
EXPORT(ob_channel_sums)
void ob_channel_sums(int tid, int nt, const float *x, const float *y, size_t n, size_t channels, size_t spatial,
                     float *sums, float *sums_b) {
  size_t c0, c1;
  thread_range(channels, 1, tid, nt, &c0, &c1);
  for (size_t c = c0; c < c1; c++) {
    double s = 0.0, sb = 0.0;
    for (size_t i = 0; i < n; i++) {
      const float *xs = x + (i * channels + c) * spatial;
#if !defined(__wasm__)
      sums_native(xs, y ? y + (i * channels + c) * spatial : NULL, spatial, &s, &sb);
      continue;
#endif
      if (!y) {
        s += sum_range(xs, 0, spatial, 0);
        sb += sum_range(xs, 0, spatial, 1);
        continue;
      }
      const float *ys = y + (i * channels + c) * spatial;
      size_t p = 0;
#ifdef __wasm_simd128__
      v128_t a0 = wasm_f64x2_splat(0.0), a1 = a0, b0 = a0, b1 = a0;
      for (; p + 4 <= spatial; p += 4) {
        v128_t xv = wasm_v128_load(xs + p), yv = wasm_v128_load(ys + p);
        v128_t xl = lo_f64(xv), xh = hi_f64(xv);
        a0 = wasm_f64x2_add(a0, xl), a1 = wasm_f64x2_add(a1, xh);
        b0 = wasm_f64x2_add(b0, wasm_f64x2_mul(xl, lo_f64(yv)));
        b1 = wasm_f64x2_add(b1, wasm_f64x2_mul(xh, hi_f64(yv)));
      }
      a0 = wasm_f64x2_add(a0, a1), b0 = wasm_f64x2_add(b0, b1);
      s += wasm_f64x2_extract_lane(a0, 0) + wasm_f64x2_extract_lane(a0, 1);
      sb += wasm_f64x2_extract_lane(b0, 0) + wasm_f64x2_extract_lane(b0, 1);
#endif
      for (; p < spatial; p++) {
        double v = (double)xs[p];
        s += v;
        sb += v * (double)ys[p];
      }
    }
    sums[c] = (float)s;
    sums_b[c] = (float)sb;
  }
}

/* out[i, c, s] = x[i, c, s] * mul[c] + add[c], in double like the reference. Threads split (i, c) rows. */
EXPORT(ob_channel_affine)
void ob_channel_affine(int tid, int nt, const float *x, const float *mul, const float *add, size_t n, size_t channels,
                       size_t spatial, float *out) {
  size_t r0, r1;
  thread_range(n * channels, 1, tid, nt, &r0, &r1);
  for (size_t r = r0; r < r1; r++) {
    size_t c = r % channels;
    double mc = (double)mul[c], ac = (double)add[c];
    const float *xs = x + r * spatial;
    float *os = out + r * spatial;
    size_t p = 0;
#ifdef __wasm_simd128__
    v128_t m = wasm_f64x2_splat(mc), a = wasm_f64x2_splat(ac);
    for (; p + 4 <= spatial; p += 4) {
      v128_t v = wasm_v128_load(xs + p);
      v128_t l = wasm_f64x2_add(wasm_f64x2_mul(lo_f64(v), m), a);
      v128_t h = wasm_f64x2_add(wasm_f64x2_mul(hi_f64(v), m), a);
      wasm_v128_store(os + p, to_f32(l, h));
    }
#endif
    for (; p < spatial; p++) os[p] = (float)((double)xs[p] * mc + ac);
  }
}

/*
 * One Adam(W) step, in double exactly as the reference writes it:
 *   m = b1 m + (1-b1) g;  v = b2 v + ((1-b2) g) g   (both rounded to float on store)
 *   p -= lr * ((m / c1) / (sqrt(v / c2) + eps) + wd p)
 * c1 = 1 - b1^t and c2 = 1 - b2^t come from the caller (Math.pow), so they match bit for bit.
 */
EXPORT(ob_adam)
void ob_adam(int tid, int nt, float *param, const float *grad, float *m, float *v, double lr, double b1, double b2,
             double eps, double wd, double c1, double c2, size_t len) {
  SHARE(len);
  double ob1 = 1.0 - b1, ob2 = 1.0 - b2;
  size_t i = lo;
#ifdef __wasm_simd128__
  v128_t vb1 = wasm_f64x2_splat(b1), vb2 = wasm_f64x2_splat(b2), vob1 = wasm_f64x2_splat(ob1);
  v128_t vob2 = wasm_f64x2_splat(ob2), vc1 = wasm_f64x2_splat(c1), vc2 = wasm_f64x2_splat(c2);
  v128_t vlr = wasm_f64x2_splat(lr), veps = wasm_f64x2_splat(eps), vwd = wasm_f64x2_splat(wd);
  for (; i + 4 <= hi; i += 4) {
    v128_t g4 = wasm_v128_load(grad + i), m4 = wasm_v128_load(m + i), v4 = wasm_v128_load(v + i);
    v128_t p4 = wasm_v128_load(param + i);
    v128_t gl = lo_f64(g4), gh = hi_f64(g4);
    v128_t ml = wasm_f64x2_add(wasm_f64x2_mul(vb1, lo_f64(m4)), wasm_f64x2_mul(vob1, gl));
    v128_t mh = wasm_f64x2_add(wasm_f64x2_mul(vb1, hi_f64(m4)), wasm_f64x2_mul(vob1, gh));
    v128_t vl = wasm_f64x2_add(wasm_f64x2_mul(vb2, lo_f64(v4)), wasm_f64x2_mul(wasm_f64x2_mul(vob2, gl), gl));
    v128_t vh = wasm_f64x2_add(wasm_f64x2_mul(vb2, hi_f64(v4)), wasm_f64x2_mul(wasm_f64x2_mul(vob2, gh), gh));
    m4 = to_f32(ml, mh);
    v4 = to_f32(vl, vh);
    wasm_v128_store(m + i, m4);
    wasm_v128_store(v + i, v4);
    /* Continue from the rounded moments, as the reference re-reads them from its float32 arrays. */
    ml = lo_f64(m4), mh = hi_f64(m4), vl = lo_f64(v4), vh = hi_f64(v4);
    v128_t pl = lo_f64(p4), ph = hi_f64(p4);
    v128_t ul = wasm_f64x2_div(wasm_f64x2_div(ml, vc1), wasm_f64x2_add(wasm_f64x2_sqrt(wasm_f64x2_div(vl, vc2)), veps));
    v128_t uh = wasm_f64x2_div(wasm_f64x2_div(mh, vc1), wasm_f64x2_add(wasm_f64x2_sqrt(wasm_f64x2_div(vh, vc2)), veps));
    pl = wasm_f64x2_sub(pl, wasm_f64x2_mul(vlr, wasm_f64x2_add(ul, wasm_f64x2_mul(vwd, pl))));
    ph = wasm_f64x2_sub(ph, wasm_f64x2_mul(vlr, wasm_f64x2_add(uh, wasm_f64x2_mul(vwd, ph))));
    wasm_v128_store(param + i, to_f32(pl, ph));
  }
#endif
  for (; i < hi; i++) {
    double g = (double)grad[i];
    m[i] = (float)(b1 * (double)m[i] + ob1 * g);
    v[i] = (float)(b2 * (double)v[i] + ob2 * g * g);
    double mhat = (double)m[i] / c1, vhat = (double)v[i] / c2;
    double p = (double)param[i];
    param[i] = (float)(p - lr * (mhat / (__builtin_sqrt(vhat) + eps) + wd * p));
  }
}
