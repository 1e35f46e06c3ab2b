/**
 * Classification losses over a batch of output rows (batch x classes) and integer labels. A loss is planned
 * like a layer, forward returns the scalar mean loss and keeps what backward needs, and backward returns
 * dL/d(output) of the last forward in a planned buffer.
 */
import { ShapeError } from '../errors.js';
import type { Backend, FloatArray, KernelArray } from '../backend/backend.js';
import { checkBatchView, checkMaxBatch } from './base.js';

export type Labels = Int32Array | Uint8Array;

export interface Loss {
  readonly name: string;
  /** Allocates buffers for up to `maxBatch` rows of `classes` outputs. */
  plan(backend: Backend, classes: number, maxBatch: number): void;
  /** Mean loss over the batch. */
  forward(output: FloatArray, labels: Labels, batch: number): number;
  /** dL/d(output) of the last forward; valid until the next backward. */
  backward(): FloatArray;
  dispose(): void;
}

/** Shared planning and checks. */
abstract class LossBase implements Loss {
  protected backendOrNull: Backend | null = null;
  protected classes = 0;
  protected maxBatch = 0;
  protected lastBatch = 0;
  protected grad: FloatArray | null = null;
  /** Labels of the last forward, copied so that backward does not depend on the caller's array. */
  protected labelsSeen: Int32Array = new Int32Array(0);

  constructor(readonly name: string) {}

  plan(backend: Backend, classes: number, maxBatch: number): void {
    checkMaxBatch(this.name, maxBatch);
    if (!Number.isInteger(classes) || classes < 1)
      throw new RangeError(`${this.name}: classes must be >= 1, got ${classes}`);
    this.dispose();
    this.backendOrNull = backend;
    this.classes = classes;
    this.maxBatch = maxBatch;
    this.grad = backend.alloc(maxBatch * classes);
    this.labelsSeen = backend.allocInt32(maxBatch);
    this.allocate(backend, classes, maxBatch);
  }

  protected allocate(backend: Backend, classes: number, maxBatch: number): void {
    void backend;
    void classes;
    void maxBatch;
  }

  abstract forward(output: FloatArray, labels: Labels, batch: number): number;
  abstract backward(): FloatArray;

  dispose(): void {
    const be = this.backendOrNull;
    if (be !== null) {
      for (const b of this.buffers()) be.free(b);
    }
    this.backendOrNull = null;
    this.grad = null;
    this.labelsSeen = new Int32Array(0);
    this.lastBatch = 0;
  }

  /** Every buffer this loss allocated. */
  protected buffers(): KernelArray[] {
    return this.grad === null ? [] : [this.grad, this.labelsSeen];
  }

  protected checkForward(output: FloatArray, labels: Labels, batch: number): void {
    if (this.backendOrNull === null) throw new Error(`${this.name}: used before plan()`);
    checkBatchView(this.name, 'output', output, batch, this.maxBatch, [this.classes]);
    if (labels.length < batch) {
      throw new ShapeError(this.name, `${batch} labels`, `${labels.length} labels`);
    }
    for (let i = 0; i < batch; i++) {
      const y = labels[i];
      if (!(y >= 0 && y < this.classes)) {
        throw new RangeError(`${this.name}: label ${y} at row ${i} is outside 0..${this.classes - 1}`);
      }
    }
    this.lastBatch = batch;
  }

  protected checkBackward(): FloatArray {
    if (this.grad === null || this.lastBatch === 0)
      throw new Error(`${this.name}: backward() before forward()`);
    return this.grad;
  }
}

/**
 * Softmax cross-entropy, mean over the batch: L = -(1/B) sum_i log softmax(z_i)[y_i].
 * dL/dz_i = (softmax(z_i) - onehot(y_i)) / B. Uses the max-shifted log-sum-exp for stability.
 */
export class SoftmaxCrossEntropy extends LossBase {
  private probs: FloatArray | null = null;

  constructor(name = 'softmax-cross-entropy') {
    super(name);
  }

  protected override allocate(backend: Backend, classes: number, maxBatch: number): void {
    this.probs = backend.alloc(maxBatch * classes);
  }

  protected override buffers(): KernelArray[] {
    return this.probs === null ? super.buffers() : [...super.buffers(), this.probs];
  }

  override dispose(): void {
    super.dispose();
    this.probs = null;
  }

  /** Softmax probabilities of the last forward, row-major batch x classes. */
  get probabilities(): FloatArray {
    if (this.probs === null) throw new Error(`${this.name}: used before plan()`);
    return this.probs;
  }

  forward(output: FloatArray, labels: Labels, batch: number): number {
    this.checkForward(output, labels, batch);
    const C = this.classes;
    const p = this.probs as FloatArray;
    let total = 0;
    for (let i = 0; i < batch; i++) {
      const row = i * C;
      let max = -Infinity;
      for (let c = 0; c < C; c++) max = Math.max(max, output[row + c]);
      let sum = 0;
      for (let c = 0; c < C; c++) {
        const e = Math.exp(output[row + c] - max);
        p[row + c] = e;
        sum += e;
      }
      for (let c = 0; c < C; c++) p[row + c] /= sum;
      // -log softmax(z)[y] = log(sum) - (z_y - max)
      total += Math.log(sum) - (output[row + labels[i]] - max);
      this.labelsSeen[i] = labels[i];
    }
    return total / batch;
  }

  backward(): FloatArray {
    const g = this.checkBackward();
    const C = this.classes;
    const batch = this.lastBatch;
    const p = this.probs as FloatArray;
    for (let i = 0; i < batch; i++) {
      for (let c = 0; c < C; c++) {
        const target = c === this.labelsSeen[i] ? 1 : 0;
        g[i * C + c] = (p[i * C + c] - target) / batch;
      }
    }
    return g;
  }
}

/**
 * Multi-class square hinge (BinaryNet, Courbariaux et al. 2016): one-vs-all targets t = +1 for the label
 * and -1 elsewhere, L = mean over batch and classes of max(0, 1 - t*y)^2.
 * dL/dy = -2 t max(0, 1 - t*y) / (B * C).
 */
export class SquareHinge extends LossBase {
  private output: FloatArray | null = null;

  constructor(name = 'square-hinge') {
    super(name);
  }

  forward(output: FloatArray, labels: Labels, batch: number): number {
    this.checkForward(output, labels, batch);
    const C = this.classes;
    let total = 0;
    for (let i = 0; i < batch; i++) {
      for (let c = 0; c < C; c++) {
        const t = c === labels[i] ? 1 : -1;
        const margin = Math.max(0, 1 - t * output[i * C + c]);
        total += margin * margin;
      }
      this.labelsSeen[i] = labels[i];
    }
    this.output = output;
    return total / (batch * C);
  }

  backward(): FloatArray {
    const g = this.checkBackward();
    const C = this.classes;
    const batch = this.lastBatch;
    const y = this.output as FloatArray;
    for (let i = 0; i < batch; i++) {
      for (let c = 0; c < C; c++) {
        const t = c === this.labelsSeen[i] ? 1 : -1;
        g[i * C + c] = (-2 * t * Math.max(0, 1 - t * y[i * C + c])) / (batch * C);
      }
    }
    return g;
  }

  override dispose(): void {
    super.dispose();
    this.output = null;
  }
}

/** Number of rows whose largest logit is at the label (ties go to the lower class, as argmax does). */
export function countCorrect(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  batch: number,
  classes: number,
): number {
  let correct = 0;
  for (let i = 0; i < batch; i++) {
    const row = i * classes;
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[row + c] > logits[row + best]) best = c;
    if (best === labels[i]) correct++;
  }
  return correct;
}
