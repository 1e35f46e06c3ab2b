/**
 * 2-D max pooling over NCHW batches. Forward records the flat input index of each window's maximum
 * (the first one on ties; padding never wins); backward routes each output gradient to that index. Both are
 * the backend's kernels (maxPool, maxPoolBackward; the reference backend's loops are their specification).
 */
import type { Conv2dGeometry, FloatArray } from '../backend/backend.js';
import type { Shape } from '../tensor/shape.js';
import { LayerBase } from './base.js';
import type { ForwardContext } from './layer.js';
import { poolGeometry } from './pool-options.js';
import type { Pool2dOptions } from './pool-options.js';

export class MaxPool2d extends LayerBase {
  private geometry: Conv2dGeometry | null = null;
  private output: FloatArray | null = null;
  private argmax: Int32Array | null = null;
  private gradInput: FloatArray | null = null;

  constructor(
    name: string,
    private readonly options: Pool2dOptions,
  ) {
    super(name);
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const { g, outH, outW } = poolGeometry(this.name, this.options, inputShape);
    this.geometry = g;
    const outSize = g.channels * outH * outW;
    this.output = this.activation(maxBatch * outSize);
    this.argmax = this.activationInt32(maxBatch * outSize);
    this.gradInput = this.activation(maxBatch * this.inSize);
    return [g.channels, outH, outW];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    const out = this.output as FloatArray;
    this.backend.maxPool(input, batch, this.geometry as Conv2dGeometry, out, this.argmax as Int32Array);
    return out;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const gx = this.gradInput as FloatArray;
    this.backend.maxPoolBackward(
      gradOutput,
      this.argmax as Int32Array,
      batch,
      this.geometry as Conv2dGeometry,
      gx,
    );
    return gx;
  }

  protected override onDispose(): void {
    this.geometry = null;
    this.output = null;
    this.argmax = null;
    this.gradInput = null;
  }
}
