/**
 * 2-D average pooling over NCHW batches. Padded positions count as zeros in the average (PyTorch's
 * default count_include_pad), so every window divides by kernelSize^2 and backward spreads
 * dL/dy / kernelSize^2 over the window's in-image positions. Plain loops.
 */
import type { Conv2dGeometry, FloatArray } from '../backend/backend.js';
import type { Shape } from '../tensor/shape.js';
import { LayerBase } from './base.js';
import type { ForwardContext } from './layer.js';
import { poolGeometry } from './pool-options.js';
import type { Pool2dOptions } from './pool-options.js';

export class AvgPool2d extends LayerBase {
  private geometry: Conv2dGeometry | null = null;
  private outH = 0;
  private outW = 0;
  private output: FloatArray | null = null;
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
    this.output = this.activation(maxBatch * g.channels * outH * outW);
    this.gradInput = this.activation(maxBatch * this.inSize);
    return [g.channels, outH, outW];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    const { channels, height, width, kernelH, kernelW, stride, padding } = this.geometry as Conv2dGeometry;
    const out = this.output as FloatArray;
    const area = kernelH * kernelW;
    let o = 0;
    for (let plane = 0; plane < batch * channels; plane++) {
      const base = plane * height * width;
      for (let oy = 0; oy < this.outH; oy++) {
        for (let ox = 0; ox < this.outW; ox++) {
          let s = 0;
          for (let i = 0; i < kernelH; i++) {
            const y = oy * stride - padding + i;
            if (y < 0 || y >= height) continue;
            for (let j = 0; j < kernelW; j++) {
              const x = ox * stride - padding + j;
              if (x >= 0 && x < width) s += input[base + y * width + x];
            }
          }
          out[o++] = s / area;
        }
      }
    }
    return out;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const { channels, height, width, kernelH, kernelW, stride, padding } = this.geometry as Conv2dGeometry;
    const gx = this.gradInput as FloatArray;
    const area = kernelH * kernelW;
    this.backend.fill(gx, 0, batch * this.inSize);
    let o = 0;
    for (let plane = 0; plane < batch * channels; plane++) {
      const base = plane * height * width;
      for (let oy = 0; oy < this.outH; oy++) {
        for (let ox = 0; ox < this.outW; ox++) {
          const g = gradOutput[o++] / area;
          for (let i = 0; i < kernelH; i++) {
            const y = oy * stride - padding + i;
            if (y < 0 || y >= height) continue;
            for (let j = 0; j < kernelW; j++) {
              const x = ox * stride - padding + j;
              if (x >= 0 && x < width) gx[base + y * width + x] += g;
            }
          }
        }
      }
    }
    return gx;
  }

  protected override onDispose(): void {
    this.geometry = null;
    this.output = null;
    this.gradInput = null;
  }
}
