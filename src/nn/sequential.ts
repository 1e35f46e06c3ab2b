/**
 * Sequential: children run in order, backward in reverse. Children are named; parameter and state names
 * are the child's own prefixed with its name ("fc1.weight", "block2.body.conv1.weight"), so names are
 * paths relative to the container that reports them.
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import type { Rng } from '../tensor/rng.js';
import type { Shape } from '../tensor/shape.js';
import { checkBatchView, checkDims, checkMaxBatch } from './base.js';
import type { ForwardContext, Layer, Parameter, StateBuffer } from './layer.js';

/** The parameter seen from the parent: same buffers, name prefixed with the child's name. */
export function prefixParameter(prefix: string, p: Parameter): Parameter {
  return { ...p, name: `${prefix}.${p.name}` };
}

export function prefixState(prefix: string, s: StateBuffer): StateBuffer {
  return { ...s, name: `${prefix}.${s.name}` };
}

/** Throws unless child names are non-empty, dot-free and unique. */
export function checkChildNames(container: string, children: readonly Layer[]): void {
  const seen = new Set<string>();
  for (const child of children) {
    if (child.name === '' || child.name.includes('.')) {
      throw new Error(`${container}: child name "${child.name}" must be non-empty and contain no '.'`);
    }
    if (seen.has(child.name)) throw new Error(`${container}: two children are named "${child.name}"`);
    seen.add(child.name);
  }
}

export class Sequential implements Layer {
  readonly layers: readonly Layer[];
  private plannedInputShape: Shape = [];
  private outputShapeOrNull: Shape | null = null;
  private maxBatch = 0;
  private cachedParameters: Parameter[] | null = null;
  private cachedState: StateBuffer[] | null = null;

  constructor(
    readonly name: string,
    layers: readonly Layer[],
  ) {
    checkChildNames(name, layers);
    this.layers = [...layers];
  }

  /** The child named `name`; throws if there is none. */
  get(name: string): Layer {
    const layer = this.layers.find((l) => l.name === name);
    if (layer === undefined) throw new Error(`${this.name}: no child named "${name}"`);
    return layer;
  }

  /** Per-example output shape of the last plan; throws before plan. */
  get outputShape(): Shape {
    if (this.outputShapeOrNull === null) throw new Error(`${this.name}: used before plan()`);
    return this.outputShapeOrNull;
  }

  plan(backend: Backend, inputShape: Shape, maxBatch: number): Shape {
    checkMaxBatch(this.name, maxBatch);
    checkDims(this.name, inputShape);
    let shape = inputShape;
    for (const layer of this.layers) shape = layer.plan(backend, shape, maxBatch);
    this.plannedInputShape = [...inputShape];
    this.maxBatch = maxBatch;
    this.outputShapeOrNull = shape;
    this.cachedParameters = null;
    this.cachedState = null;
    return shape;
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    if (this.outputShapeOrNull === null) throw new Error(`${this.name}: used before plan()`);
    checkBatchView(this.name, 'input', input, batch, this.maxBatch, this.plannedInputShape);
    let x = input;
    for (const layer of this.layers) x = layer.forward(x, batch, ctx);
    return x;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    let g = gradOutput;
    for (let i = this.layers.length - 1; i >= 0; i--) g = this.layers[i].backward(g, batch);
    return g;
  }

  parameters(): Parameter[] {
    // Cached after plan so that callers see the same objects each time (parameters are fixed by plan).
    if (this.cachedParameters === null || this.outputShapeOrNull === null) {
      this.cachedParameters = this.layers.flatMap((l) =>
        l.parameters().map((p) => prefixParameter(l.name, p)),
      );
    }
    return [...this.cachedParameters];
  }

  stateBuffers(): StateBuffer[] {
    if (this.cachedState === null || this.outputShapeOrNull === null) {
      this.cachedState = this.layers.flatMap((l) => l.stateBuffers().map((s) => prefixState(l.name, s)));
    }
    return [...this.cachedState];
  }

  initialize(rng: Rng): void {
    for (const layer of this.layers) layer.initialize(rng);
  }

  dispose(): void {
    for (const layer of this.layers) layer.dispose();
    this.outputShapeOrNull = null;
    this.cachedParameters = null;
    this.cachedState = null;
  }
}
