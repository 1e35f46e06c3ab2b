/**
 * A learnable per-channel scale: y[c, ...] = alpha_c * x[c, ...], one real `alpha` per output channel of
 * the binary layer it follows. This is VISPA's `Alpha` (snownus/bnn_vi, `BinarizeConv2dSDP`: the binary
 * conv or linear output is multiplied by a per-output-channel parameter initialised U(0, 1)), in the
 * spirit of XNOR-Net's per-filter scale but learned instead of computed from the latent weights.
 *
 * Per-example shape [C] (after a dense layer) or [C, H, W] (after a conv): channel c covers its slice.
 * The scale is a real-valued parameter trained by the run's optimizer, with weight decay (as VISPA's SGD
 * decays every parameter).
 *
 *   forward   y = x * alpha                        (channelAffine with a zero shift)
 *   backward  dL/dx = dy * alpha,   dL/dalpha_c = sum over the batch and channel c's slice of dy * x
 *
 * When a batch norm without affine follows (onebit's models), a positive scale cancels in the
 * normalisation up to its epsilon; the layer is kept for fidelity to the VISPA architecture.
 */
import { ShapeError } from '../errors.js';
import type { FloatArray } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import type { Rng } from '../tensor/rng.js';
import { LayerBase } from './base.js';
import type { ForwardContext, Parameter } from './layer.js';

export interface ChannelScaleOptions {
  /** When given, plan checks the channel count. */
  readonly channels?: number;
}

export class ChannelScale extends LayerBase {
  private alpha: Parameter | null = null;
  private channels = 0;
  private spatial = 0;
  private output: FloatArray | null = null;
  private gradInput: FloatArray | null = null;
  private zeros: FloatArray | null = null;
  private channelScratch: FloatArray | null = null;
  private input: FloatArray | null = null;

  constructor(
    name: string,
    private readonly options: ChannelScaleOptions = {},
  ) {
    super(name);
  }

  /** The scale parameter [C]; throws before plan. */
  get scale(): Parameter {
    if (this.alpha === null) throw new Error(`${this.name}: scale used before plan()`);
    return this.alpha;
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const expected = this.options.channels;
    if (expected !== undefined && inputShape[0] !== expected) {
      throw new ShapeError(this.name, `[${expected}, ...]`, formatShape(inputShape));
    }
    this.channels = inputShape[0];
    this.spatial = this.inSize / this.channels;
    this.alpha = this.parameter(this.alpha, 'weight', [this.channels], 'real', true);
    const size = maxBatch * this.inSize;
    this.output = this.activation(size);
    this.gradInput = this.activation(size);
    this.zeros = this.activation(this.channels);
    this.channelScratch = this.activation(this.channels);
    return [...inputShape];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    this.input = input;
    const out = this.output as FloatArray;
    this.backend.channelAffine(
      input,
      this.scale.value,
      this.zeros as FloatArray,
      batch,
      this.channels,
      this.spatial,
      out,
    );
    return out;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const be = this.backend;
    const alpha = this.scale;
    // dL/dalpha_c = sum dy * x over channel c (the second sum of channelSums); the first sum is unused.
    be.channelSums(
      gradOutput,
      this.input as FloatArray,
      batch,
      this.channels,
      this.spatial,
      this.channelScratch as FloatArray,
      alpha.grad,
    );
    const gx = this.gradInput as FloatArray;
    be.channelAffine(
      gradOutput,
      alpha.value,
      this.zeros as FloatArray,
      batch,
      this.channels,
      this.spatial,
      gx,
    );
    return gx;
  }

  override parameters(): Parameter[] {
    return this.alpha === null ? [] : [this.alpha];
  }

  /** alpha ~ U(0, 1), as torch.rand in VISPA. */
  override initialize(rng: Rng): void {
    const alpha = this.scale.value;
    for (let c = 0; c < this.channels; c++) alpha[c] = rng.uniform();
  }

  protected override onDispose(): void {
    this.alpha = null;
    this.output = null;
    this.gradInput = null;
    this.zeros = null;
    this.channelScratch = null;
    this.input = null;
  }
}
