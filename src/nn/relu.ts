/** ReLU: y = max(0, x); dL/dx = dL/dy * 1[x > 0]. */
import type { FloatArray } from '../backend/backend.js';
import type { Shape } from '../tensor/shape.js';
import { LayerBase } from './base.js';
import type { ForwardContext } from './layer.js';

export class ReLU extends LayerBase {
  private output: FloatArray | null = null;
  private gradInput: FloatArray | null = null;
  private input: FloatArray | null = null;

  protected build(inputShape: Shape, maxBatch: number): Shape {
    this.output = this.activation(maxBatch * this.inSize);
    this.gradInput = this.activation(maxBatch * this.inSize);
    return [...inputShape];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    this.input = input;
    this.backend.relu(input, this.output as FloatArray, batch * this.inSize);
    return this.output as FloatArray;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const gx = this.gradInput as FloatArray;
    this.backend.reluBackward(this.input as FloatArray, gradOutput, gx, batch * this.inSize);
    return gx;
  }

  protected override onDispose(): void {
    this.output = null;
    this.gradInput = null;
    this.input = null;
  }
}
