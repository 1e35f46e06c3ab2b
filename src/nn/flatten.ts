/**
 * Flatten: [C, H, W] (or any shape) per example to [C*H*W]. NCHW rows are already contiguous per
 * example, so forward and backward pass the views through unchanged.
 */
import type { FloatArray } from '../backend/backend.js';
import { shapeSize } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import { LayerBase } from './base.js';
import type { ForwardContext } from './layer.js';

export class Flatten extends LayerBase {
  protected build(inputShape: Shape): Shape {
    return [shapeSize(inputShape)];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    return input;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    return gradOutput;
  }
}
