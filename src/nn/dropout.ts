/**
 * Inverted dropout (Srivastava et al. 2014): in training each value is kept with probability 1 - p and
 * scaled by 1 / (1 - p), so evaluation is the identity. The mask is drawn from ctx.rng, one uniform per
 * value, which makes a step reproducible from the generator's state.
 */
import type { FloatArray } from '../backend/backend.js';
import type { Shape } from '../tensor/shape.js';
import { LayerBase } from './base.js';
import type { ForwardContext } from './layer.js';

export class Dropout extends LayerBase {
  private mask: FloatArray | null = null;
  private output: FloatArray | null = null;
  private gradInput: FloatArray | null = null;
  /** Whether the last forward applied a mask (training with p > 0). */
  private masked = false;

  constructor(
    name: string,
    readonly p: number,
  ) {
    super(name);
    if (!(p >= 0 && p < 1)) throw new RangeError(`${name}: dropout probability must be in [0, 1), got ${p}`);
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const size = maxBatch * this.inSize;
    this.mask = this.activation(size);
    this.output = this.activation(size);
    this.gradInput = this.activation(size);
    return [...inputShape];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    this.checkInput(input, batch);
    this.masked = ctx.training && this.p > 0;
    if (!this.masked) return input;
    const n = batch * this.inSize;
    const mask = this.mask as FloatArray;
    const keep = 1 / (1 - this.p);
    for (let i = 0; i < n; i++) mask[i] = ctx.rng.uniform() < this.p ? 0 : keep;
    this.backend.multiply(input, mask, this.output as FloatArray, n);
    return this.output as FloatArray;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    if (!this.masked) return gradOutput;
    const gx = this.gradInput as FloatArray;
    this.backend.multiply(gradOutput, this.mask as FloatArray, gx, batch * this.inSize);
    return gx;
  }

  protected override onDispose(): void {
    this.mask = null;
    this.output = null;
    this.gradInput = null;
  }
}
