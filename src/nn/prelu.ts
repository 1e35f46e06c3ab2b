/**
 * PReLU (He et al. 2015) with one learnable slope per channel: y = x for x > 0, a_c * x otherwise.
 * Per-example shape [C] or [C, ...]: channel c covers the values of its slice.
 * Slopes start at 0.25 and are excluded from weight decay.
 *
 * Built from backend kernels, splitting x into its positive part relu(x) and negative part
 * x - relu(x) = min(x, 0):
 *   y = relu(x) + a * min(x, 0),
 *   dL/dx = dy * 1[x > 0] + a * dy * 1[x <= 0],   dL/da_c = sum over channel c of dy * min(x, 0).
 */
import { ShapeError } from '../errors.js';
import type { FloatArray } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import type { Rng } from '../tensor/rng.js';
import { LayerBase } from './base.js';
import type { ForwardContext, Parameter } from './layer.js';

export interface PReLUOptions {
  /** When given, plan checks the channel count. */
  readonly channels?: number;
  /** Initial slope; default 0.25. */
  readonly init?: number;
}

export class PReLU extends LayerBase {
  readonly init: number;
  private slope: Parameter | null = null;
  private channels = 0;
  private spatial = 0;
  private positive: FloatArray | null = null;
  private negative: FloatArray | null = null;
  private output: FloatArray | null = null;
  private gradInput: FloatArray | null = null;
  private scratch: FloatArray | null = null;
  private zeros: FloatArray | null = null;
  private channelScratch: FloatArray | null = null;
  private input: FloatArray | null = null;

  constructor(
    name: string,
    private readonly options: PReLUOptions = {},
  ) {
    super(name);
    this.init = options.init ?? 0.25;
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const expected = this.options.channels;
    if (expected !== undefined && inputShape[0] !== expected) {
      throw new ShapeError(this.name, `[${expected}, ...]`, formatShape(inputShape));
    }
    this.channels = inputShape[0];
    this.spatial = this.inSize / this.channels;
    const previous = this.slope;
    this.slope = this.parameter(this.slope, 'weight', [this.channels], 'real', false);
    if (this.slope !== previous) this.backend.fill(this.slope.value, this.init, this.channels);
    const size = maxBatch * this.inSize;
    this.positive = this.activation(size);
    this.negative = this.activation(size);
    this.output = this.activation(size);
    this.gradInput = this.activation(size);
    this.scratch = this.activation(size);
    this.zeros = this.activation(this.channels);
    this.channelScratch = this.activation(this.channels);
    return [...inputShape];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    const be = this.backend;
    const n = batch * this.inSize;
    const pos = this.positive as FloatArray;
    const neg = this.negative as FloatArray;
    const out = this.output as FloatArray;
    this.input = input;
    be.relu(input, pos, n);
    be.copy(input, neg, n);
    be.axpy(-1, pos, neg, n); // min(x, 0), kept for the slope gradient
    be.channelAffine(
      neg,
      (this.slope as Parameter).value,
      this.zeros as FloatArray,
      batch,
      this.channels,
      this.spatial,
      out,
    );
    be.axpy(1, pos, out, n);
    return out;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const be = this.backend;
    const n = batch * this.inSize;
    const slope = this.slope as Parameter;
    const gx = this.gradInput as FloatArray;
    const rest = this.scratch as FloatArray;
    const scaled = this.positive as FloatArray; // the positive part is not needed after forward
    // Slope gradient first: sumsB = sum(dy * min(x, 0)) per channel.
    be.channelSums(
      gradOutput,
      this.negative,
      batch,
      this.channels,
      this.spatial,
      this.channelScratch as FloatArray,
      slope.grad,
    );
    be.reluBackward(this.input as FloatArray, gradOutput, gx, n); // dy * 1[x > 0]
    be.copy(gradOutput, rest, n);
    be.axpy(-1, gx, rest, n); // dy * 1[x <= 0]
    be.channelAffine(rest, slope.value, this.zeros as FloatArray, batch, this.channels, this.spatial, scaled);
    be.axpy(1, scaled, gx, n);
    return gx;
  }

  override parameters(): Parameter[] {
    return this.slope === null ? [] : [this.slope];
  }

  override initialize(rng: Rng): void {
    void rng;
    this.backend.fill((this.slope as Parameter).value, this.init, this.channels);
  }

  protected override onDispose(): void {
    this.slope = null;
    this.positive = null;
    this.negative = null;
    this.output = null;
    this.gradInput = null;
    this.scratch = null;
    this.zeros = null;
    this.channelScratch = null;
    this.input = null;
  }
}
