/**
 * A 2-D convolution with binary weights and no bias: y = conv(b(x), W), W being the values the training
 * method proposed (used as given) and b the optional input binarizer. See conv2d.ts for the computation.
 */
import type { BinarizerOptions } from './binarizer.js';
import { Conv2dBase } from './conv2d.js';

export interface BinaryConv2dOptions extends BinarizerOptions {
  readonly filters: number;
  readonly kernelSize: number;
  /** Default 1. */
  readonly stride?: number;
  /** Default 0. */
  readonly padding?: number;
  readonly inChannels?: number;
}

export class BinaryConv2d extends Conv2dBase {
  constructor(name: string, options: BinaryConv2dOptions) {
    super(name, {
      filters: options.filters,
      kernelSize: options.kernelSize,
      stride: options.stride ?? 1,
      padding: options.padding ?? 0,
      inChannels: options.inChannels,
      bias: false,
      kind: 'binary',
      // Glorot-uniform real values: a method takes them as its latent initialisation and overwrites `value`.
      init: 'glorot',
      binarizer: options.binarizer ?? 'none',
      surrogate: options.surrogate ?? 'clipped-identity',
    });
  }
}
