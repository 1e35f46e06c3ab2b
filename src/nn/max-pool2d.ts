/**
 * 2-D max pooling over NCHW batches. Forward records the flat input index of each window's maximum
 * (the first one on ties; padding never wins); backward routes each output gradient to that index.
 * Plain loops: there is no pooling kernel in the backend yet.
 */
import type { Conv2dGeometry, FloatArray } from '../backend/backend.js';
import type { Shape } from '../tensor/shape.js';
import { LayerBase } from './base.js';
import type { ForwardContext } from './layer.js';
import { poolGeometry } from './pool-options.js';
import type { Pool2dOptions } from './pool-options.js';

export class MaxPool2d extends LayerBase {
  private geometry: Conv2dGeometry | null = null;
  private outH = 0;
  private outW = 0;
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
    this.outH = outH;
    this.outW = outW;
    const outSize = g.channels * outH * outW;
    this.output = this.activation(maxBatch * outSize);
    this.argmax = this.activationInt32(maxBatch * outSize);
    this.gradInput = this.activation(maxBatch * this.inSize);
    return [g.channels, outH, outW];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    const { channels, height, width, kernelH, kernelW, stride, padding } = this.geometry as Conv2dGeometry;
    const out = this.output as FloatArray;
    const arg = this.argmax as Int32Array;
    let o = 0;
    for (let plane = 0; plane < batch * channels; plane++) {
      const base = plane * height * width;
      for (let oy = 0; oy < this.outH; oy++) {
        for (let ox = 0; ox < this.outW; ox++) {
          let best = -Infinity;
          let bestIndex = -1;
          for (let i = 0; i < kernelH; i++) {
            const y = oy * stride - padding + i;
            if (y < 0 || y >= height) continue;
            for (let j = 0; j < kernelW; j++) {
              const x = ox * stride - padding + j;
              if (x < 0 || x >= width) continue;
              const index = base + y * width + x;
              if (bestIndex < 0 || input[index] > best) {
                best = input[index];
                bestIndex = index;
              }
            }
          }
          out[o] = best;
          arg[o] = bestIndex;
          o++;
        }
      }
    }
    return out;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const gx = this.gradInput as FloatArray;
    const arg = this.argmax as Int32Array;
    this.backend.fill(gx, 0, batch * this.inSize);
    const n = batch * this.outSize;
    for (let o = 0; o < n; o++) gx[arg[o]] += gradOutput[o];
    return gx;
  }

  protected override onDispose(): void {
    this.geometry = null;
    this.output = null;
    this.argmax = null;
    this.gradInput = null;
  }
}
