/**
 * A fully connected layer with binary weights and no bias: y = b(x) W^T, where W is whatever +-1 values
 * (or relaxed values) the training method proposed, used as given, and b is the optional input binarizer.
 * The weight's gradient dL/dW is what the method turns into its update.
 */
import type { SignSurrogate } from '../backend/backend.js';
import type { BinarizerKind, BinarizerOptions } from './binarizer.js';
import { DenseBase } from './dense.js';

export interface BinaryDenseOptions extends BinarizerOptions {
  readonly units: number;
  readonly inFeatures?: number;
}

export class BinaryDense extends DenseBase {
  constructor(name: string, options: BinaryDenseOptions) {
    const binarizer: BinarizerKind = options.binarizer ?? 'none';
    const surrogate: SignSurrogate = options.surrogate ?? 'clipped-identity';
    // Glorot-uniform real values: a method takes them as its latent initialisation and overwrites `value`.
    super(name, {
      units: options.units,
      inFeatures: options.inFeatures,
      bias: false,
      kind: 'binary',
      init: 'glorot',
      binarizer,
      surrogate,
    });
  }
}
