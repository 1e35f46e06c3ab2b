/**
 * Reference Bop step (Helwegen et al., "Latent Weights Do Not Exist", NeurIPS 2019; docs/methods.md#bop):
 *   m <- (1 - gamma) m + gamma g;  w <- -w where w m > threshold (m as stored)
 * Returns the number of flips.
 */
import type { FloatArray } from '../backend.js';
import { need } from './check.js';

export function bopUpdate(
  w: FloatArray,
  m: FloatArray,
  grad: FloatArray,
  gamma: number,
  threshold: number,
  length: number,
): number {
  need('bopUpdate', 'w', w, length);
  need('bopUpdate', 'm', m, length);
  need('bopUpdate', 'grad', grad, length);
  const keep = 1 - gamma;
  let flips = 0;
  for (let i = 0; i < length; i++) {
    m[i] = keep * m[i] + gamma * grad[i];
    const wi = w[i];
    if (wi * m[i] > threshold) {
      w[i] = -wi;
      flips++;
    }
  }
  return flips;
}
