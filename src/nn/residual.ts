/**
 * Residual block (He et al. 2016; Bi-Real Net's real-valued shortcuts): y = body(x) + shortcut(x), or
 * y = body(x) + x without a shortcut layer. The gradient flows through both branches and adds up:
 * dL/dx = body'(x)^T dy + shortcut'(x)^T dy (or + dy). The branches must produce the same shape.
 */
import { ShapeError } from '../errors.js';
import type { FloatArray } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Rng } from '../tensor/rng.js';
import type { Shape } from '../tensor/shape.js';
import { LayerBase, sameShape } from './base.js';
import type { ForwardContext, Layer, Parameter, StateBuffer } from './layer.js';
import { checkChildNames, prefixParameter, prefixState } from './sequential.js';

export class Residual extends LayerBase {
  private output: FloatArray | null = null;
  private gradInput: FloatArray | null = null;

  constructor(
    name: string,
    readonly body: Layer,
    readonly shortcut: Layer | null = null,
  ) {
    super(name);
    checkChildNames(name, shortcut === null ? [body] : [body, shortcut]);
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const bodyShape = this.body.plan(this.backend, inputShape, maxBatch);
    const shortcutShape =
      this.shortcut === null ? inputShape : this.shortcut.plan(this.backend, inputShape, maxBatch);
    if (!sameShape(bodyShape, shortcutShape)) {
      throw new ShapeError(
        this.name,
        `an input for which body and shortcut agree (body gives ${formatShape(bodyShape)})`,
        `${formatShape(inputShape)}, for which the shortcut gives ${formatShape(shortcutShape)}`,
      );
    }
    const size = maxBatch * bodyShape.reduce((a, b) => a * b, 1);
    this.output = this.activation(size);
    this.gradInput = this.activation(maxBatch * this.inSize);
    return bodyShape;
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    this.checkInput(input, batch);
    const be = this.backend;
    const out = this.output as FloatArray;
    const n = batch * this.outSize;
    be.copy(this.body.forward(input, batch, ctx), out, n);
    be.axpy(1, this.shortcut === null ? input : this.shortcut.forward(input, batch, ctx), out, n);
    return out;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const be = this.backend;
    const gx = this.gradInput as FloatArray;
    const n = batch * this.inSize;
    be.copy(this.body.backward(gradOutput, batch), gx, n);
    be.axpy(1, this.shortcut === null ? gradOutput : this.shortcut.backward(gradOutput, batch), gx, n);
    return gx;
  }

  override parameters(): Parameter[] {
    const children = this.shortcut === null ? [this.body] : [this.body, this.shortcut];
    return children.flatMap((l) => l.parameters().map((p) => prefixParameter(l.name, p)));
  }

  override stateBuffers(): StateBuffer[] {
    const children = this.shortcut === null ? [this.body] : [this.body, this.shortcut];
    return children.flatMap((l) => l.stateBuffers().map((s) => prefixState(l.name, s)));
  }

  override initialize(rng: Rng): void {
    this.body.initialize(rng);
    this.shortcut?.initialize(rng);
  }

  protected override onDispose(): void {
    this.body.dispose();
    this.shortcut?.dispose();
    this.output = null;
    this.gradInput = null;
  }
}
