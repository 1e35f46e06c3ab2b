/*
 * Training methods' per-weight update loops (src/methods), as kernels: Bop's whole update, BayesBiNN's for
 * the weights where it needs no random number and no transcendental function (the method finishes the others
 * in TypeScript from the list the kernel returns), and VISPA's projection, bit-identical to the methods' own
 * loops on every backend.
 *
 * Each f32() mirrors a Math.fround of src/backend/reference/bayes-binn.ts: the expression is evaluated in double, as
 * JavaScript evaluates it, and rounded to float once (-ffp-contract=off keeps every operation separate).
 * Bop's and BayesBiNN's loops run on one thread (tid 0), so the pending lists come out in index order, the
 * order in which the method draws its random numbers; VISPA's projection splits the weights across threads.
 */
#include "common.h"
#include "kernels.h"

static inline float f32(double x) { return (float)x; }

/*
 * +1 or -1 with the sign bit of x (x = +-0 never reaches it), without a branch: the signs of trained weights
 * are random, and a branch on them mispredicts half the time (measured 8x slower on a 4M-weight layer).
 */
static inline float sign_of(float x) { return __builtin_copysignf(1.0f, x); }

/* The official epsilon 1e-10, as float32 (EPSILON in bayes-binn.ts). */
#define BAYESBINN_EPSILON ((double)(float)1e-10)
/* |lambda| from which float32 tanh(lambda) is exactly +-1 (tanh(9.5) = 1 - 1.1e-8, within half an ulp of 1). */
#define TANH_SATURATED 9.5

/*
 * BayesBiNN's relaxed sample where it does not depend on the noise (docs/methods.md#bayesbinn): sample = sign
 * of lambda where |lambda| > skip. Returns how many weights are left; their indices, in order, go to `pending`.
 */
EXPORT(ob_bayesbinn_saturated)
int32_t ob_bayesbinn_saturated(int tid, int nt, const float *lambda, float *sample, double skip, size_t len,
                               int32_t *pending) {
  (void)nt;
  if (tid != 0) return 0;
  int32_t count = 0;
  for (size_t i = 0; i < len; i++) {
    float lam = lambda[i];
    /* NaN fails the test and is left pending, as in the method's loop. */
    if (__builtin_fabs((double)lam) > skip) sample[i] = sign_of(lam);
    else pending[count++] = (int32_t)i;
  }
  return count;
}

/* The float32 scale s = (1 - w^2 + 1e-10) / tau / (1 - mu^2 + 1e-10), rounded after every operation. */
static inline float bayesbinn_scale(float w, float mu, double tau) {
  float num = f32((double)f32(1.0 - (double)f32((double)w * (double)w)) + BAYESBINN_EPSILON);
  float den = f32((double)f32(1.0 - (double)f32((double)mu * (double)mu)) + BAYESBINN_EPSILON);
  return f32((double)f32((double)num / (double)f32(tau)) / (double)den);
}

/*
 * BayesBiNN's update with the float32 scale and the lagged mean mu (bayes-binn.ts `update`), over every weight:
 *   g_hat = N s g,  d = g_hat + reweight (lambda - lambda0),  v = beta v + (1 - beta) d (velocity, when given),
 *   lambda <- lambda - lr d (or lr v / correction),  mu <- tanh(lambda before the update).
 * mu is written where tanh saturates to +-1 in float32; the other weights' indices go to `pending` and their
 * lambda before the update to `pending_lambda`, for the method to finish with Math.tanh. Returns their count.
 */
EXPORT(ob_bayesbinn_update)
int32_t ob_bayesbinn_update(int tid, int nt, float *lambda, float *mu, const float *prior, const float *grad,
                            const float *sample, float *velocity, double tau, double scale_n, double lr, double reweight,
                            double momentum, double correction, size_t len, int32_t *pending, float *pending_lambda) {
  (void)nt;
  if (tid != 0) return 0;
  int32_t count = 0;
  /* w = +-1 and mu = +-1 (the saturated regime, almost every weight after a few steps) give one scale. */
  const float saturated_scale = bayesbinn_scale(1.0f, 1.0f, tau);
  for (size_t i = 0; i < len; i++) {
    double lam = lambda[i];
    float w = sample[i], m = mu[i];
    int both_saturated = (__builtin_fabsf(w) == 1.0f) & (__builtin_fabsf(m) == 1.0f);
    float s = both_saturated ? saturated_scale : bayesbinn_scale(w, m, tau);
    float g_hat = f32((double)f32((double)s * (double)grad[i]) * scale_n);
    double direction = (double)g_hat + reweight * (lam - (double)prior[i]);
    if (velocity != NULL) {
      double v = momentum * (double)velocity[i] + (1 - momentum) * direction;
      velocity[i] = (float)v;
      direction = v / correction;
    }
    lambda[i] = (float)(lam - lr * direction);
    if (__builtin_fabs(lam) >= TANH_SATURATED) {
      mu[i] = sign_of((float)lam);
    } else {
      pending[count] = (int32_t)i;
      pending_lambda[count] = (float)lam;
      count++;
    }
  }
  return count;
}

/*
 * Bop's step (Helwegen et al. 2019; src/methods/bop.ts `update`): m <- (1 - gamma) m + gamma g, then w <- -w
 * where w m > threshold (m as stored). Returns the number of flips.
 */
EXPORT(ob_bop_update)
int32_t ob_bop_update(int tid, int nt, float *w, float *m, const float *grad, double gamma, double threshold,
                      size_t len) {
  (void)nt;
  if (tid != 0) return 0;
  double keep = 1 - gamma;
  int32_t flips = 0;
  for (size_t i = 0; i < len; i++) {
    float mi = (float)(keep * (double)m[i] + gamma * (double)grad[i]);
    m[i] = mi;
    float wi = w[i];
    /* Without a branch (flips come at random): a select, which also lets the loop vectorise. */
    int flip = (double)wi * (double)mi > threshold;
    w[i] = flip ? -wi : wi;
    flips += flip;
  }
  return flips;
}

/*
 * VISPA's projection onto m_i^2 + ||z_i||^2 / S = 1 (src/methods/vispa.ts; the reference backend's
 * vispaProject is its specification), one pass over the weights instead of 2K + 3 passes of elementwise
 * kernels and a TypeScript loop, with the same roundings: a = m*m in float; per row a = (float)(a + inv_scale *
 * z*z) in double; f = (float)(1 / sqrt(a)) (0 when a = 0, NaN when a is NaN); m *= f, z_k *= f in float;
 * a = 0 restarts the weight at m = +1. z is rank x n, row k at z + k * n.
 */
EXPORT(ob_vispa_project)
void ob_vispa_project(int tid, int nt, float *m, float *z, size_t rank, double inv_scale, size_t n) {
  size_t lo, hi;
  thread_range(n, 16, tid, nt, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    float mi = m[i];
    float a = mi * mi;
    for (size_t k = 0; k < rank; k++) {
      float zk = z[k * n + i];
      float sq = zk * zk;
      a = (float)((double)a + inv_scale * (double)sq);
    }
    float f = a > 0.0f ? (float)(1.0 / __builtin_sqrt((double)a)) : a == 0.0f ? 0.0f : a;
    m[i] = f == 0.0f ? 1.0f : mi * f;
    for (size_t k = 0; k < rank; k++) z[k * n + i] = z[k * n + i] * f;
  }
}
