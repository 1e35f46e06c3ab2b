/**
 * Random pieces of `.onebit` models for the engine's tests (src/engine/*.test.ts): output stages and sign rows.
 */
import type { Rng } from '../src/tensor/rng.js';
import type { DenseOutput } from '../src/engine/format.js';

/** n random signs (+-1). */
export const signs = (rng: Rng, n: number): Float32Array =>
  Float32Array.from({ length: n }, () => (rng.uniform() < 0.5 ? -1 : 1));

/**
 * A random output stage of n channels: thresholds spread around 0 (integer ones for an integer z), with
 * random directions, or an affine map with a random activation.
 */
export function randomOutput(
  rng: Rng,
  n: number,
  kind: 'bits' | 'real',
  integer: boolean,
  spread: number,
): DenseOutput {
  if (kind === 'bits') {
    const directions = Int8Array.from({ length: n }, () => (rng.uniform() < 0.3 ? -1 : 1));
    const thresholds = integer
      ? Int32Array.from({ length: n }, () => Math.round((rng.uniform() - 0.5) * spread))
      : Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * spread);
    return { kind: 'bits', thresholds, directions };
  }
  return {
    kind: 'real',
    scale: Float32Array.from({ length: n }, () => (rng.uniform() - 0.3) * 0.3),
    bias: Float32Array.from({ length: n }, () => rng.uniform() - 0.5),
    activation: (['none', 'relu', 'hardtanh'] as const)[Math.floor(rng.uniform() * 3)],
  };
}
