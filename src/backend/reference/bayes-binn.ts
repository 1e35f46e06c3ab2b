/**
 * Reference BayesBiNN kernels (Meng, Bachmann & Khan 2020; docs/methods.md#bayesbinn): the parts of the
 * method's per-weight loops that need no random number and no transcendental function, which the method
 * (src/methods/bayes-binn.ts) hands to its backend; it finishes the pending weights itself.
 *
 *   saturated sample   sample = sign(lambda) where |lambda| > skip (the sample is the same for every noise)
 *   update             g_hat = N s g with the float32 scale s = (1 - w^2 + 1e-10) / tau / (1 - mu^2 + 1e-10),
 *                      d = g_hat + reweight (lambda - lambda0), v = beta v + (1 - beta) d (with momentum),
 *                      lambda <- lambda - lr d (or lr v / correction), mu <- tanh(lambda before the update)
 *                      where float32 tanh is +-1 (|lambda| >= 9.5); the others are left pending.
 */
import type { BayesBinnUpdateStep, FloatArray } from '../backend.js';
import { need } from './check.js';

const f32 = Math.fround;
/** The official epsilon 1e-10, as float32. */
const EPSILON = f32(1e-10);
/** |lambda| from which float32 tanh(lambda) is exactly +-1: tanh(9.5) = 1 - 1.1e-8, within half an ulp of 1. */
export const TANH_SATURATED = 9.5;

/**
 * The BayesBiNN scale s = (1 - w^2 + 1e-10) / tau / (1 - mu^2 + 1e-10), rounded to float32 after every
 * operation, exactly as the official float32 PyTorch expression evaluates it.
 */
export function bayesBinnScale(w: number, mu: number, tau: number): number {
  const numerator = f32(f32(1 - f32(w * w)) + EPSILON);
  const denominator = f32(f32(1 - f32(mu * mu)) + EPSILON);
  return f32(f32(numerator / f32(tau)) / denominator);
}

/**
 * lambda[i] <- lambda[i] - lr d with d = gHat + reweight (lambda[i] - lambda0[i]), or lr v / correction through
 * the momentum v <- beta v + (1 - beta) d when a velocity is given: the step every BayesBiNN scale shares.
 */
export function bayesBinnStepLambda(
  lambda: FloatArray,
  prior: FloatArray,
  velocity: FloatArray | null,
  i: number,
  gradHat: number,
  hp: BayesBinnUpdateStep,
): void {
  const lam = lambda[i];
  let direction = gradHat + hp.klReweight * (lam - prior[i]);
  if (velocity !== null) {
    const v = hp.momentum * velocity[i] + (1 - hp.momentum) * direction;
    velocity[i] = v;
    direction = v / hp.correction;
  }
  lambda[i] = lam - hp.learningRate * direction;
}

export function bayesBinnSaturated(
  lambda: FloatArray,
  sample: FloatArray,
  skip: number,
  pending: Int32Array,
  length: number,
): number {
  need('bayesBinnSaturated', 'lambda', lambda, length);
  need('bayesBinnSaturated', 'sample', sample, length);
  need('bayesBinnSaturated', 'pending', pending, length);
  let count = 0;
  for (let i = 0; i < length; i++) {
    const lam = lambda[i];
    if (lam > skip || lam < -skip) sample[i] = lam > 0 ? 1 : -1;
    else pending[count++] = i;
  }
  return count;
}

export function bayesBinnUpdate(
  lambda: FloatArray,
  mu: FloatArray,
  prior: FloatArray,
  grad: FloatArray,
  sample: FloatArray,
  velocity: FloatArray | null,
  hp: BayesBinnUpdateStep,
  pending: Int32Array,
  pendingLambda: FloatArray,
  length: number,
): number {
  for (const [what, buffer] of [
    ['lambda', lambda],
    ['mu', mu],
    ['prior', prior],
    ['grad', grad],
    ['sample', sample],
    ['pending', pending],
    ['pendingLambda', pendingLambda],
    ...(velocity !== null ? [['velocity', velocity] as const] : []),
  ] as const) {
    need('bayesBinnUpdate', what, buffer, length);
  }
  const scaleN = f32(hp.trainSetSize);
  let count = 0;
  for (let i = 0; i < length; i++) {
    const lam = lambda[i];
    bayesBinnStepLambda(
      lambda,
      prior,
      velocity,
      i,
      f32(f32(bayesBinnScale(sample[i], mu[i], hp.temperature) * grad[i]) * scaleN),
      hp,
    );
    if (lam >= TANH_SATURATED || lam <= -TANH_SATURATED) {
      mu[i] = lam > 0 ? 1 : -1;
    } else {
      pending[count] = i;
      pendingLambda[count] = lam;
      count++;
    }
  }
  return count;
}
