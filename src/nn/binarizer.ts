/**
 * The optional input binarizer of binary layers: forward sign(x) (zero -> +1), backward through a
 * surrogate gradient. With 'none' the layer sees its real input, which gives 1-bit weights with real
 * activations; with 'sign' it gives 1-bit weights and 1-bit activations, from the same layer code.
 */
import type { Backend, FloatArray, SignSurrogate } from '../backend/backend.js';

export type BinarizerKind = 'none' | 'sign';

/** Options shared by BinaryDense and BinaryConv2d. */
export interface BinarizerOptions {
  /** 'sign' binarizes the layer input; default 'none'. */
  readonly binarizer?: BinarizerKind;
  /** Surrogate gradient of the sign; default 'clipped-identity' (BinaryNet). */
  readonly surrogate?: SignSurrogate;
}

/** Planned buffers for binarizing up to `length` input values. */
export class InputBinarizer {
  constructor(
    private readonly backend: Backend,
    readonly surrogate: SignSurrogate,
    private readonly signs: FloatArray,
    private readonly gradInput: FloatArray,
  ) {}

  /** sign(x) of the first `length` values, into a planned buffer. */
  forward(x: FloatArray, length: number): FloatArray {
    this.backend.sign(x, this.signs, length);
    return this.signs;
  }

  /** dL/dx from dL/d(sign(x)) through the surrogate. */
  backward(x: FloatArray, gradSigns: FloatArray, length: number): FloatArray {
    this.backend.signBackward(x, gradSigns, this.gradInput, this.surrogate, length);
    return this.gradInput;
  }
}
