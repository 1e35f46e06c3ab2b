/**
 * Reference Adam(W) step (Kingma & Ba 2015; decoupled weight decay, Loshchilov & Hutter 2019):
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
 *   mhat = m / (1 - b1^t);  vhat = v / (1 - b2^t)
 *   p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)
 */
import type { AdamStep, FloatArray } from '../backend.js';
import { need } from './check.js';

export function adam(
  param: FloatArray,
  grad: FloatArray,
  m: FloatArray,
  v: FloatArray,
  hp: AdamStep,
  length: number,
): void {
  if (!Number.isInteger(hp.step) || hp.step < 1)
    throw new RangeError(`adam: step must be a 1-based integer, got ${hp.step}`);
  need('adam', 'param', param, length);
  need('adam', 'grad', grad, length);
  need('adam', 'm', m, length);
  need('adam', 'v', v, length);
  const { learningRate: lr, beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd } = hp;
  const correction1 = 1 - Math.pow(b1, hp.step);
  const correction2 = 1 - Math.pow(b2, hp.step);
  for (let i = 0; i < length; i++) {
    const g = grad[i];
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    const mhat = m[i] / correction1;
    const vhat = v[i] / correction2;
    // The decay term uses the parameter before this step's update.
    param[i] -= lr * (mhat / (Math.sqrt(vhat) + eps) + wd * param[i]);
  }
}
