/**
 * Shared plumbing for leaf layers: binding to a backend, the bookkeeping of planned buffers, parameter
 * creation that survives re-planning, and the input checks every layer makes before it touches memory.
 */
import { ShapeError } from '../errors.js';
import type { Backend, FloatArray, KernelArray } from '../backend/backend.js';
import { formatShape, shapeSize } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import type { ForwardContext, Layer, Parameter, StateBuffer } from './layer.js';
import type { Rng } from '../tensor/rng.js';

/** Throws unless `maxBatch` is a positive integer. */
export function checkMaxBatch(layer: string, maxBatch: number): void {
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`${layer}: maxBatch must be a positive integer, got ${maxBatch}`);
  }
}

/** Same shape, entry by entry. */
export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Throws ShapeError unless every dimension is a positive integer. */
export function checkDims(layer: string, shape: Shape): void {
  if (shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new ShapeError(layer, 'a shape of positive integer dimensions', formatShape(shape));
  }
}

/**
 * Throws ShapeError unless `batch` is in 1..maxBatch and `view` holds at least batch * size(shape) values.
 * `what` says which tensor is checked ("input" or "gradOutput").
 */
export function checkBatchView(
  layer: string,
  what: string,
  view: FloatArray,
  batch: number,
  maxBatch: number,
  shape: Shape,
): void {
  if (!Number.isInteger(batch) || batch < 1 || batch > maxBatch) {
    const dims = shape.join(', ');
    throw new ShapeError(
      layer,
      `${what} [<=${maxBatch}, ${dims}] (batch 1..${maxBatch})`,
      `[${batch}, ${dims}]`,
    );
  }
  const needed = batch * shapeSize(shape);
  if (view.length < needed) {
    throw new ShapeError(
      layer,
      `${what} ${formatShape([batch, ...shape])} (${needed} values)`,
      `a view of ${view.length} values`,
    );
  }
}

/**
 * Reuses per-example views (subarrays) of a buffer across steps: layers that work one image at a time
 * need views at offsets, and the buffer a neighbouring layer hands over is the same object every step,
 * so the views are built once and the training step allocates nothing.
 */
export class ViewCache {
  private source: FloatArray | null = null;
  private stride = 0;
  private views: FloatArray[] = [];

  /** View of entries [i*stride, (i+1)*stride) of `buffer`. */
  get(buffer: FloatArray, i: number, stride: number): FloatArray {
    if (buffer !== this.source || stride !== this.stride) {
      this.source = buffer;
      this.stride = stride;
      this.views = [];
    }
    let view = this.views[i];
    if (view === undefined) {
      view = buffer.subarray(i * stride, (i + 1) * stride);
      this.views[i] = view;
    }
    return view;
  }

  clear(): void {
    this.source = null;
    this.views = [];
  }
}

/**
 * Base class of leaf layers. Subclasses implement `build` (allocate through `activation`/`parameter`/
 * `state` and return the output shape) plus forward/backward; the base keeps parameters and state across
 * re-plans with an unchanged shape and frees everything on dispose.
 */
export abstract class LayerBase implements Layer {
  protected backendOrNull: Backend | null = null;
  protected inputShape: Shape = [];
  protected outputShape: Shape = [];
  protected maxBatch = 0;
  /** Values per example of the input and output. */
  protected inSize = 0;
  protected outSize = 0;
  /** Batch size of the last forward, which backward must match. */
  protected lastBatch = 0;
  private activations: KernelArray[] = [];
  private persistent: KernelArray[] = [];

  constructor(readonly name: string) {}

  /** The backend this layer is planned on; throws before plan. */
  protected get backend(): Backend {
    if (this.backendOrNull === null) throw new Error(`${this.name}: used before plan()`);
    return this.backendOrNull;
  }

  plan(backend: Backend, inputShape: Shape, maxBatch: number): Shape {
    checkMaxBatch(this.name, maxBatch);
    checkDims(this.name, inputShape);
    if (this.backendOrNull !== null && this.backendOrNull !== backend) this.dispose();
    this.freeActivations();
    this.backendOrNull = backend;
    this.inputShape = [...inputShape];
    this.maxBatch = maxBatch;
    this.inSize = shapeSize(inputShape);
    this.lastBatch = 0;
    this.outputShape = this.build(inputShape, maxBatch);
    this.outSize = shapeSize(this.outputShape);
    return this.outputShape;
  }

  /** Validates the per-example shape, allocates every buffer and returns the per-example output shape. */
  protected abstract build(inputShape: Shape, maxBatch: number): Shape;

  abstract forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray;
  abstract backward(gradOutput: FloatArray, batch: number): FloatArray;

  parameters(): Parameter[] {
    return [];
  }

  stateBuffers(): StateBuffer[] {
    return [];
  }

  initialize(rng: Rng): void {
    void this.backend; // requires a plan
    void rng;
  }

  dispose(): void {
    this.freeActivations();
    const backend = this.backendOrNull;
    if (backend !== null) for (const b of this.persistent) backend.free(b);
    this.persistent = [];
    this.backendOrNull = null;
    this.onDispose();
  }

  /** Drops references to freed parameters and state (called by dispose). */
  protected onDispose(): void {}

  /** A zero-filled float buffer that lives until the next plan. */
  protected activation(length: number): FloatArray {
    const b = this.backend.alloc(length);
    this.activations.push(b);
    return b;
  }

  protected activationInt32(length: number): Int32Array {
    const b = this.backend.allocInt32(length);
    this.activations.push(b);
    return b;
  }

  /**
   * The parameter `name` of `shape`: `existing` itself when it already has that shape (values kept across
   * re-plans), else a fresh zero-filled one (the old one, if any, is freed).
   */
  protected parameter(
    existing: Parameter | null,
    name: string,
    shape: Shape,
    kind: 'binary' | 'real',
    decay: boolean,
  ): Parameter {
    if (existing !== null && sameShape(existing.shape, shape)) return existing;
    if (existing !== null) {
      this.freePersistent(existing.value);
      this.freePersistent(existing.grad);
    }
    const size = shapeSize(shape);
    return {
      name,
      shape: [...shape],
      kind,
      decay,
      value: this.persistentBuffer(size),
      grad: this.persistentBuffer(size),
    };
  }

  /** A state buffer of `length` values, kept across re-plans when the length is unchanged. */
  protected state(existing: StateBuffer | null, name: string, length: number): StateBuffer {
    if (existing !== null && existing.value.length === length) return existing;
    if (existing !== null) this.freePersistent(existing.value);
    return { name, value: this.persistentBuffer(length) };
  }

  /** Frees a parameter this layer no longer uses (e.g. a bias switched off). */
  protected dropParameter(p: Parameter | null): null {
    if (p !== null) {
      this.freePersistent(p.value);
      this.freePersistent(p.grad);
    }
    return null;
  }

  protected checkInput(input: FloatArray, batch: number): void {
    void this.backend;
    checkBatchView(this.name, 'input', input, batch, this.maxBatch, this.inputShape);
    this.lastBatch = batch;
  }

  protected checkGradOutput(gradOutput: FloatArray, batch: number): void {
    void this.backend;
    if (batch !== this.lastBatch) {
      throw new ShapeError(
        this.name,
        `gradOutput for the last forward's batch of ${this.lastBatch}`,
        `batch ${batch}`,
      );
    }
    checkBatchView(this.name, 'gradOutput', gradOutput, batch, this.maxBatch, this.outputShape);
  }

  private persistentBuffer(length: number): FloatArray {
    const b = this.backend.alloc(length);
    this.persistent.push(b);
    return b;
  }

  private freePersistent(buffer: KernelArray): void {
    const i = this.persistent.indexOf(buffer);
    if (i >= 0) {
      this.persistent.splice(i, 1);
      this.backend.free(buffer);
    }
  }

  private freeActivations(): void {
    const backend = this.backendOrNull;
    if (backend !== null) for (const b of this.activations) backend.free(b);
    this.activations = [];
  }
}
