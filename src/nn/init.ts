/** Weight initialisers drawing from the run's Rng (uniform variants, as PyTorch and Keras use by default). */
import type { FloatArray } from '../backend/backend.js';
import type { Rng } from '../tensor/rng.js';

/**
 * Fills the first `length` entries with U(-bound, bound). One 32-bit draw per value (not the 53-bit
 * `uniform`): plenty of resolution for an initialisation, and half the cost on million-weight layers.
 */
export function fillUniform(rng: Rng, x: FloatArray, bound: number, length = x.length): void {
  for (let i = 0; i < length; i++) x[i] = (rng.nextUint32() / 2147483648 - 1) * bound;
}

/** Glorot/Xavier uniform (Glorot & Bengio 2010): U(+-sqrt(6 / (fanIn + fanOut))). */
export function glorotUniform(rng: Rng, x: FloatArray, fanIn: number, fanOut: number): void {
  fillUniform(rng, x, Math.sqrt(6 / (fanIn + fanOut)));
}

/** Kaiming/He uniform for ReLU nets (He et al. 2015): U(+-sqrt(6 / fanIn)), i.e. variance 2 / fanIn. */
export function kaimingUniform(rng: Rng, x: FloatArray, fanIn: number): void {
  fillUniform(rng, x, Math.sqrt(6 / fanIn));
}

export type WeightInit = 'kaiming' | 'glorot';

export function initWeight(rng: Rng, x: FloatArray, init: WeightInit, fanIn: number, fanOut: number): void {
  if (init === 'kaiming') kaimingUniform(rng, x, fanIn);
  else glorotUniform(rng, x, fanIn, fanOut);
}
